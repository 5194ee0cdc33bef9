import FaultlinePostgres
import Foundation
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

    // Known failing (issue 8 stays open): schemathesis 4.x still reports 6 x ST204 (a method the
    // spec does not list, on a path that has others, answers 404 instead of 405) and 1 x ST108
    // (the spec types SSE event data as a string). Run by hand: Tests/GatewayTests/schemathesis.sh.
    @Test("schemathesis finds no 5xx and no schema violation",
          .disabled("known findings ST204 and ST108, see the comment above"),
          .enabled(if: binary != nil, "no schemathesis binary"))
    func conformance() async throws {
        try await Harness.with("schemathesis") { h in
            _ = try await h.importExperiment("seeded")
            let port = try #require(h.client.port)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [Self.script, "http://127.0.0.1:\(port)", h.token()]
            var environment = ProcessInfo.processInfo.environment
            environment["SCHEMATHESIS"] = Self.binary
            process.environment = environment
            let log = try TestPostgres.makeTemporaryDirectory("gw-st") + "/schemathesis.log"
            FileManager.default.createFile(atPath: log, contents: nil)
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
