import Foundation
import Testing

/// `scripts/generate-protos --check` is what keeps the committed code honest, so it must be able
/// to fail: these run it on a copy of the repository's contract and generated code.
@Suite("scripts/generate-protos")
struct GenerateProtosTests {
    /// protos/, scripts/ and the generated Sources/ProtoC and Sources/Proto, copied.
    static func copyOfTheRepository() throws -> URL {
        let root = try Tools.scratch()
        for path in ["protos", "scripts", "Sources/ProtoC", "Sources/Proto"] {
            let target = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Tools.repo.appendingPathComponent(path), to: target)
        }
        return root
    }

    static func generate(_ root: URL, _ arguments: [String] = []) throws -> Tools.Result {
        try Tools.run(root.appendingPathComponent("scripts/generate-protos"), arguments, in: root,
                      environment: ["FAULTLINE_VENV": Tools.venv.path])
    }

    static func append(_ text: String, to file: URL) throws {
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    @Test func checkPassesOnTheCommittedCodeAndFailsOnEveryKindOfDrift() throws {
        let root = try Self.copyOfTheRepository()
        defer { try? FileManager.default.removeItem(at: root) }

        let clean = try Self.generate(root, ["--check"])
        #expect(clean.status == 0, "\(clean.stderr)")

        // A contract change not regenerated: the files it would change are named.
        let echo = root.appendingPathComponent("protos/faultline/testing/v1/echo.proto")
        let original = try Data(contentsOf: echo)
        try Self.append("\nmessage Added { string note = 1; }\n", to: echo)
        let stale = try Self.generate(root, ["--check"])
        #expect(stale.status != 0)
        #expect(stale.stderr.contains("echo.pb.swift"))
        #expect(stale.stderr.contains("echo.pb-c.h"))
        #expect(stale.stderr.contains("echo.pb-c.c"))
        try original.write(to: echo)

        // A hand edit of generated code.
        try Self.append("// edited by hand\n", to: root.appendingPathComponent("Sources/Proto/Namespaces.pb.swift"))
        let edited = try Self.generate(root, ["--check"])
        #expect(edited.status != 0)
        #expect(edited.stderr.contains("Namespaces.pb.swift"))

        // A generated file deleted, and a stray one added.
        try FileManager.default.removeItem(at: root.appendingPathComponent("Sources/ProtoC/faultline_protoc_support.c"))
        try Data().write(to: root.appendingPathComponent("Sources/Proto/Stray.swift"))
        let drifted = try Self.generate(root, ["--check"])
        #expect(drifted.status != 0)
        #expect(drifted.stderr.contains("faultline_protoc_support.c"))
        #expect(drifted.stderr.contains("Stray.swift"))

        // Regenerating repairs all of it, byte for byte.
        let regenerated = try Self.generate(root)
        #expect(regenerated.status == 0, "\(regenerated.stderr)")
        #expect(try Self.generate(root, ["--check"]).status == 0)
        #expect(try Tools.run(URL(fileURLWithPath: "/usr/bin/diff"), ["-r", root.appendingPathComponent("Sources/Proto").path,
                                                                     Tools.repo.appendingPathComponent("Sources/Proto").path]).status == 0)
    }

    @Test func aBadContractFailsWithTheReason() throws {
        let root = try Self.copyOfTheRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("protos/faultline/testing/v1/recursive.proto")
        try Data("""
            syntax = "proto3";
            package faultline.testing.v1;
            message Tree { repeated Tree children = 1; }
            """.utf8).write(to: file)
        let result = try Self.generate(root)
        #expect(result.status != 0)
        #expect(result.stderr.contains("recursive message types are not allowed (faultline.testing.v1.Tree -> faultline.testing.v1.Tree)"))
        // Nothing was replaced by the failed run.
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("Sources/Proto/Namespaces.pb.swift").path))
    }

    @Test func contractConventionsAreEnforced() throws {
        let root = try Self.copyOfTheRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("""
            syntax = "proto3";
            package faultline.testing.v1;
            enum Mood { MOOD_HAPPY = 0; }
            message ListThingsRequest { int32 limit = 1; }
            message ListThingsResponse { repeated string things = 1; int32 started_us = 2; }
            service Things { rpc ListThings(ListThingsRequest) returns (ListThingsResponse); }
            """.utf8).write(to: root.appendingPathComponent("protos/faultline/testing/v1/bad.proto"))
        let result = try Self.generate(root)
        #expect(result.status != 0)
        for problem in [
            "enum faultline.testing.v1.Mood: the zero value must be named *_UNSPECIFIED",
            "faultline.testing.v1.ListThingsResponse.started_us: `_us` fields are singular int64 microseconds",
            "faultline.testing.v1.Things.ListThings: list requests take int32 page_size and string page_token",
            "faultline.testing.v1.Things.ListThings: list responses return string next_page_token",
        ] {
            #expect(result.stderr.contains(problem), "missing: \(problem)")
        }
    }

    @Test func theGeneratorAlsoWorksAsAProtocPlugin() throws {
        // Debian's protoc-c has no plugin support; grpc_tools' protoc has, and must produce the
        // same Swift from the same contract.
        let out = try Tools.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        let protos = try FileManager.default.subpathsOfDirectory(atPath: Tools.repo.appendingPathComponent("protos").path)
            .filter { $0.hasSuffix(".proto") }.sorted()
        try Tools.python(["-m", "grpc_tools.protoc", "-I", "protos",
                          "--plugin=protoc-gen-faultline=\(Tools.repo.appendingPathComponent("scripts/protoc-gen-faultline-swift").path)",
                          "--faultline_out=\(out.path)"] + protos, in: Tools.repo)
        let diff = try Tools.run(URL(fileURLWithPath: "/usr/bin/diff"), ["-r", out.appendingPathComponent("Proto").path,
                                                                         Tools.repo.appendingPathComponent("Sources/Proto").path])
        #expect(diff.status == 0, "\(diff.stdout)")
    }
}
