import ExperimentService
import Foundation
import Testing

/// Hostile and damaged input: fixtures with random bytes replaced, inserted or deleted (a fixed
/// seed, so a failure replays). Whatever we accept, Python must accept as the same value;
/// whatever Python refuses, we must refuse, with a DocumentError and never a crash.
@Suite("Mutated documents, compared with Python json and PyYAML")
struct MutationTests {
    /// SplitMix64: a small deterministic generator.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// `FAULTLINE_MUTATIONS` raises the count for a longer local run.
    static let count = ProcessInfo.processInfo.environment["FAULTLINE_MUTATIONS"].flatMap { Int($0) } ?? 400

    static let alphabet = Array(#"{}[]:,"'\ -#&*!|>?01.eE+tfnul x\#n\#t"#.utf8) + [0xC3, 0xA9, 0xFF]

    static func mutations(of bytes: [UInt8], count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = Seeded(state: seed)
        return (0..<count).map { _ in
            var b = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) where !b.isEmpty {
                let i = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[i] = alphabet.randomElement(using: &rng)!
                case 1: b.insert(alphabet.randomElement(using: &rng)!, at: i)
                default: b.remove(at: i)
                }
            }
            return b
        }
    }

    /// Python's verdicts for raw byte documents (passed as latin-1 strings to keep every byte).
    private func pythonVerdicts(_ docs: [[UInt8]], loader: String) throws -> [JSONValue?] {
        let script = """
            import json, sys, yaml
            out = []
            for d in json.load(sys.stdin):
                raw = d.encode("latin-1")
                try:
                    text = raw.decode("utf-8")
                    v = \(loader)(text)
                    out.append(json.dumps(v, allow_nan=False))
                except Exception:
                    out.append(None)
            print(json.dumps(out))
            """
        let input = JSONValue.array(docs.map { .string(String(decoding: $0.map { UInt16($0) }, as: UTF16.self)) }).serialized()
        let result = try runProcess(Env.python, ["-c", script], input: input)
        try #require(result.exitCode == 0, "\(result.stderr)")
        return try JSONValue.parse(jsonBytes: Array(result.stdout.utf8), limits: DocumentLimits(maxBytes: 64 << 20))
            .arrayValue.unwrap().map { entry in
                try entry.stringValue.map { try JSONValue.parse(jsonBytes: Array($0.utf8), limits: DocumentLimits(maxBytes: 64 << 20, maxDepth: 1000)) }
            }
    }

    @Test func mutatedJSONAgreesWithPython() throws {
        let fixture = try Env.bytes(try #require(Env.fixtureFiles(invalid: false).first))
        let docs = Self.mutations(of: fixture, count: Self.count, seed: 1)
        let python = try pythonVerdicts(docs, loader: "json.loads")
        var accepted = 0
        for (doc, py) in zip(docs, python) {
            do {
                let ours = try JSONValue.parse(jsonBytes: doc)
                accepted += 1
                #expect(py == ours, "we accepted what Python reads differently: \(String(decoding: doc, as: UTF8.self))")
            } catch {
                // We may refuse more than Python (duplicate keys, lone surrogates, 1e400), never less.
                if py != nil, !(error.code == .duplicateKey || error.code == .jsonString || error.code == .jsonNumber) {
                    Issue.record("Python accepts what we refuse (\(error)): \(String(decoding: doc, as: UTF8.self))")
                }
            }
        }
        #expect(accepted > 10 && accepted < Self.count, "mutations should hit both sides (\(accepted) accepted)")
    }

    @Test func mutatedYAMLAgreesWithPyYAML() throws {
        let fixture = try Env.bytes(try #require(Env.fixtureFiles(invalid: false).last))
        let yaml = Array(try ExperimentDocument.parse(bytes: fixture).export(as: .yaml).utf8)
        let docs = Self.mutations(of: yaml, count: Self.count, seed: 2)
        let python = try pythonVerdicts(docs, loader: "yaml.safe_load")
        var accepted = 0
        for (doc, py) in zip(docs, python) {
            let ours: JSONValue
            do {
                ours = try JSONValue.parse(yamlBytes: doc)
            } catch {
                continue  // refusing is always safe here: PyYAML is laxer (duplicates, timestamps, key types)
            }
            accepted += 1
            if py != ours {
                Issue.record("we read YAML differently from PyYAML (\(py == nil ? "it refuses" : "other value")):\n\(String(decoding: doc, as: UTF8.self))")
            }
        }
        #expect(accepted > 10, "mutations should mostly stay YAML (\(accepted) accepted)")
    }
}
