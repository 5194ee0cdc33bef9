import FaultlinePostgres
import Foundation
import HTTPTypes
import HummingbirdTesting
@testable import Gateway
import Testing

/// schemathesis (PyPI, scripts/requirements-test.txt) against the live gateway: finds no server
/// error and no response that breaks the served OpenAPI document. Runs when a schemathesis
/// binary exists: `$SCHEMATHESIS`, `$FAULTLINE_VENV/bin/schemathesis` or `.venv-gw/bin/schemathesis`.
@Suite("Gateway OpenAPI conformance")
struct SchemathesisTests {
    static var binary: String? {
        let environment = ProcessInfo.processInfo.environment
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let candidates = [environment["SCHEMATHESIS"], environment["FAULTLINE_VENV"].map { $0 + "/bin/schemathesis" },
                          root + "/.venv/bin/schemathesis", root + "/.venv-gw/bin/schemathesis"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("schemathesis.sh").path
    }

    // Run by hand against any gateway: Tests/GatewayTests/schemathesis.sh BASE_URL OWNER_TOKEN.
    @Test("schemathesis finds no 5xx and no schema violation",
          // Under the test command (FAULTLINE_VENV set, requirements installed) a missing binary fails.
          .enabled(if: binary != nil || ProcessInfo.processInfo.environment["FAULTLINE_VENV"] != nil, "no schemathesis binary"))
    func conformance() async throws {
        try await Harness.with("schemathesis") { h in
            // As `faultline gateway` does before serving: the Reliably routes keep their id mapping there.
            try await ReliablyIDs.migrations.apply(on: h.database)
            // Something to find, so generated calls reach past "not found" into the services.
            _ = try await h.importExperiment("seeded")
            _ = try await h.call(.post, "/api/v1/environments", token: h.token(), body: SecretRoutesTests.environmentBody)
            _ = try await h.call(.post, "/api/v1/integrations", token: h.token(),
                                 body: #"{"name": "gate", "config": {"http_pre_check": {"probe": {"url": "https://status.example"}}}}"#)
            let port = try #require(h.client.port)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [Self.script, "http://127.0.0.1:\(port)", h.token()]
            var environment = ProcessInfo.processInfo.environment
            let binary: String = try #require(Self.binary, "schemathesis is not installed in $FAULTLINE_VENV (scripts/requirements-test.txt)")
            environment["SCHEMATHESIS"] = binary
            process.environment = environment
            let directory = try TestPostgres.makeTemporaryDirectory("gw-st")
            // schemathesis keeps its cache (.schemathesis, .hypothesis) in its working directory.
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            let log = directory + "/schemathesis.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = output
            process.standardError = output
            // Waits without blocking a thread: the gateway's handlers share the cooperative pool.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                process.terminationHandler = { _ in done.resume() }
                do { try process.run() } catch { process.terminationHandler = nil; done.resume() }
            }
            try output.close()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus == 0, "\(text.suffix(6000))")
        }
    }
}
