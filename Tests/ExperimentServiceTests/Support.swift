import ExperimentService
import Foundation
import Testing

/// Paths and real peers (Chaos Toolkit, Python) the tests use.
enum Env {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var shared: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_SHARED"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    static var fixtures: URL { shared.appendingPathComponent("fixtures/experiments") }

    static var venv: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_VENV"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return packageRoot.appendingPathComponent(".venv")
    }

    static var python: URL { venv.appendingPathComponent("bin/python") }
    static var chaos: URL { venv.appendingPathComponent("bin/chaos") }

    /// A fresh directory under `$FAULTLINE_TEST_TMP` (or the system temporary directory).
    static func makeTemporaryDirectory(_ label: String) throws -> URL {
        let base = ProcessInfo.processInfo.environment["FAULTLINE_TEST_TMP"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory
        let dir = base.appendingPathComponent("experiments-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Every fixture experiment file (JSON or YAML), valid or in `invalid/`; the Python helper
    /// module that sits beside them is not an experiment.
    static func fixtureFiles(invalid: Bool) throws -> [URL] {
        let dir = invalid ? fixtures.appendingPathComponent("invalid") : fixtures
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        return names.filter { $0.hasSuffix(".json") || $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted().map { dir.appendingPathComponent($0) }
    }

    static func bytes(_ url: URL) throws -> [UInt8] {
        Array(try Data(contentsOf: url))
    }
}

struct ProcessResult {
    var exitCode: Int32?
    var signal: Int32?
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, feeding `input` on stdin. Standard streams go through files,
/// so no pipe can fill up and block either side.
func runProcess(
    _ executable: URL, _ arguments: [String], input: String = "", directory: URL? = nil,
    environment: [String: String] = [:]
) throws -> ProcessResult {
    let io = try Env.makeTemporaryDirectory("io")
    defer { try? FileManager.default.removeItem(at: io) }
    let inURL = io.appendingPathComponent("in"), outURL = io.appendingPathComponent("out")
    let errURL = io.appendingPathComponent("err")
    try Data(input.utf8).write(to: inURL)
    for url in [outURL, errURL] { try Data().write(to: url) }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardInput = try FileHandle(forReadingFrom: inURL)
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    process.waitUntilExit()
    let signaled = process.terminationReason == .uncaughtSignal
    return ProcessResult(
        exitCode: signaled ? nil : process.terminationStatus,
        signal: signaled ? process.terminationStatus : nil,
        stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// Asks Python what it makes of documents: for each input, `json.dumps` of what the loader
/// returns, or `{"error": ...}`. One Python process for the whole batch.
func pythonLoad(_ documents: [String], loader: String) throws -> [JSONValue] {
    let script = """
        import json, sys, yaml
        docs = json.load(sys.stdin)
        out = []
        for d in docs:
            try:
                v = \(loader)(d)
                out.append({"ok": json.dumps(v, allow_nan=False)})
            except Exception as e:
                out.append({"error": type(e).__name__})
        print(json.dumps(out))
        """
    let input = JSONValue.array(documents.map { .string($0) }).serialized()
    let result = try runProcess(Env.python, ["-c", script], input: input)
    try #require(result.exitCode == 0, "python failed: \(result.stderr)")
    let parsed = try JSONValue.parse(jsonBytes: Array(result.stdout.utf8))
    return try parsed.arrayValue.unwrap().map { entry in
        if let ok = entry["ok"]?.stringValue { return try JSONValue.parse(jsonBytes: Array(ok.utf8)) }
        return ["python-error": entry["error"] ?? .null]
    }
}

extension Optional {
    func unwrap(_ what: String = "value", sourceLocation: SourceLocation = #_sourceLocation) throws -> Wrapped {
        try #require(self, "missing \(what)", sourceLocation: sourceLocation)
    }
}

/// A working directory laid out like the Chaos Toolkit repository, which its fixtures assume:
/// `tests/conftest.py`, `tests/fixtures/dummy.txt` and the `tests.fixtures.force_failure` module.
struct ChaosWorkspace {
    let directory: URL

    init(_ label: String) throws {
        directory = try Env.makeTemporaryDirectory(label)
        let fixtures = directory.appendingPathComponent("tests/fixtures")
        try FileManager.default.createDirectory(at: fixtures, withIntermediateDirectories: true)
        try Data().write(to: directory.appendingPathComponent("tests/conftest.py"))
        try Data("dummy\n".utf8).write(to: fixtures.appendingPathComponent("dummy.txt"))
        let helper = Env.fixtures.appendingPathComponent("chaostoolkit__tests_fixtures_force_failure.py")
        try FileManager.default.copyItem(at: helper, to: fixtures.appendingPathComponent("force_failure.py"))
    }

    var environment: [String: String] { ["PYTHONPATH": directory.path] }

    func write(_ text: String, as name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// `chaos validate` of a file: (accepted, what it logged).
    func validate(_ file: URL) throws -> (Bool, String) {
        let r = try runProcess(
            Env.chaos, ["--no-version-check", "--no-log-file", "validate", file.path], directory: directory,
            environment: environment)
        return (r.exitCode == 0, r.stdout + r.stderr)
    }

    /// Runs `chaos run` to completion and returns the journal (nil when none was written).
    func run(_ experiment: URL, name: String, extraArguments: [String] = []) throws -> (JSONValue?, ProcessResult) {
        let journal = directory.appendingPathComponent("\(name).journal.json")
        let result = try runProcess(
            Env.chaos,
            ["--no-version-check", "--log-file", directory.appendingPathComponent("\(name).log").path, "run",
             "--journal-path", journal.path] + extraArguments + [experiment.path],
            directory: directory, environment: environment)
        return (try readJournal(journal), result)
    }

    func readJournal(_ url: URL) throws -> JSONValue? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try JSONValue.parse(journalBytes: Env.bytes(url))
    }
}
