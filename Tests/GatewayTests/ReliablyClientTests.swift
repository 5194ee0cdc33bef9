import FaultlinePostgres
import Foundation
@testable import Gateway
import HTTPTypes
import HummingbirdTesting
import Testing

/// The real Reliably control (chaostoolkit-reliably 0.84.0 under `chaos run`, from the
/// `.venv-reliably` that scripts/bootstrap makes) against a live gateway.
@Suite("Reliably clients against the gateway")
struct ReliablyClientTests {
    @Test("a fixture experiment with the Reliably control runs with chaos run and appears in Faultline with its journal and status")
    func controlReportsRun() async throws {
        try await ReliablySupport.with("rly_run") { h in
            let (experiment, raw) = try await ReliablySupport.importFixture(h, "chaostoolkit__tests_fixtures_check-file-exists.json")
            let run = try await ChaosRun.start(raw, token: h.token("a", .runner), port: try #require(h.client.port))
            let status = await run.wait()
            #expect(status == 0, "\(run.output)")

            let list = try await h.call(.get, "/api/v1/executions?experiment_id=\(experiment)", token: h.token())
            let executions = try #require(list.json["executions"] as? [[String: Any]])
            try #require(executions.count == 1, "\(list.text)\n\(run.output)")
            let execution = executions[0]
            #expect(execution["status"] as? String == "completed", "\(execution)\n\(run.output)")
            let id = try #require(execution["id"] as? String)
            let journal = try await h.call(.get, "/api/v1/executions/\(id)/journal", token: h.token())
            #expect(journal.status == 200)
            #expect(journal.json["status"] as? String == "completed")
            #expect((journal.json["run"] as? [Any])?.count == 1)
            // Under plain `chaos run` the control's log stream stays empty (only reliably-cli
            // attaches it), so the log is there but empty.
            let log = try await h.call(.get, "/api/v1/executions/\(id)/log", token: h.token())
            #expect(log.status == 200)
            // The journal became Faultline control events: experiment, hypothesis probes, the
            // method's action and the end, numbered without gaps.
            let events = try await h.call(.get, "/api/v1/executions/\(id)/events", token: h.token())
            let types = (events.json["events"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            #expect(types.first == "experiment-before")
            #expect(types.last == "experiment-after")
            #expect(types.filter { $0 == "activity-after" }.count == 5, "\(types)")  // 2 probes before, 1 action, 2 probes after
            #expect(execution["contiguous_sequence"] as? Int == types.count)
        }
    }

    @Test("a terminate made through Faultline's own API stops the run through the control's state polling")
    func terminateStopsRun() async throws {
        try await ReliablySupport.with("rly_term") { h in
            let (experiment, raw) = try await ReliablySupport.importFixture(h, "chaostoolkit__tests_fixtures_check-file-exists.json") { definition in
                var method = definition["method"] as? [[String: Any]] ?? []
                method.append(["type": "action", "name": "wait-a-long-time",
                               "provider": ["type": "process", "path": "sleep", "arguments": "300"]])
                definition["method"] = method
            }
            let run = try await ChaosRun.start(raw, token: h.token("a", .runner), port: try #require(h.client.port))
            // Wait (bounded by attempts, not time) for the control to report the run as running.
            var executionID: String?
            for _ in 0..<600 where executionID == nil {
                let list = try await h.call(.get, "/api/v1/executions?experiment_id=\(experiment)&status=running", token: h.token())
                executionID = (list.json["executions"] as? [[String: Any]])?.first?["id"] as? String
                if executionID == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let id = try #require(executionID, "\(run.output)")
            let terminated = try await h.call(.post, "/api/v1/executions/\(id)/terminate", token: h.token("a", .editor),
                                              body: #"{"skip_rollbacks": false, "reason": "stop it"}"#)
            #expect(terminated.status == 200, "\(terminated.text)")
            let status = await run.wait()
            #expect(status != 0)
            let found = try await h.call(.get, "/api/v1/executions/\(id)", token: h.token())
            #expect(found.json["status"] as? String == "interrupted", "\(found.text)\n\(run.output)")
            let journal = try await h.call(.get, "/api/v1/executions/\(id)/journal", token: h.token())
            #expect(journal.json["status"] as? String == "interrupted")
            // The control recorded why, in its journal extension.
            let extensions = (journal.json["experiment"] as? [String: Any])?["extensions"] as? [[String: Any]] ?? []
            let reliably = extensions.first { $0["name"] as? String == "reliably" }
            #expect(reliably?["termination"] is [String: Any], "\(extensions)")
        }
    }
}

extension ReliablyClientTests {
    @Test("reliably service plan execute runs a Faultline plan end to end")
    func planExecute() async throws {
        try await ReliablySupport.with("rly_plan") { h in
            let (experiment, _) = try await ReliablySupport.importFixture(h, "chaostoolkit__tests_fixtures_check-file-exists.json")
            let created = try await h.call(.post, "/api/v1/plans", token: h.token("a", .editor), body: """
                {"spec": {"name": "nightly", "experiment_id": "\(experiment)", "schedule": {"cron": {"expression": "0 3 * * *", "time_zone": "Europe/Paris"}}}}
                """)
            let planID = try #require(created.json["id"] as? String, "\(created.text)")
            let ids = try await h.call(.get, "/api/v1/reliably/plans/\(planID)", token: h.token())
            let org = try #require(ids.json["organization_id"] as? String, "\(ids.text)")
            let plan = try #require(ids.json["id"] as? String)
            let run = try await ChaosRun.planExecute(plan, organization: org, token: h.token("a", .runner), port: try #require(h.client.port))
            let status = await run.wait()
            #expect(status == 0, "\(run.output)")

            let list = try await h.call(.get, "/api/v1/executions?plan_id=\(planID)", token: h.token())
            let executions = try #require(list.json["executions"] as? [[String: Any]])
            try #require(executions.count == 1, "\(list.text)\n\(run.output)")
            #expect(executions[0]["status"] as? String == "completed", "\(executions[0])")
            #expect(executions[0]["experiment_id"] as? String == experiment)
            let id = try #require(executions[0]["id"] as? String)
            // Under the CLI the control's log stream is attached: the whole log reached Faultline.
            let log = try await h.call(.get, "/api/v1/executions/\(id)/log", token: h.token())
            #expect((log.json["log"] as? String)?.contains("Reliably") == true, "\(log.text.prefix(2000))")
            let journal = try await h.call(.get, "/api/v1/executions/\(id)/journal", token: h.token())
            #expect(journal.json["status"] as? String == "completed")
        }
    }
}

/// A `chaos run` of the Reliably venv, in a directory of its own, its output in a file.
/// `@unchecked`: the Process is only asked isRunning/terminate/waitUntilExit, which Foundation locks.
final class ChaosRun: @unchecked Sendable {
    let process: Process
    let directory: String

    static var venv: String {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_RELIABLY_VENV"], !dir.isEmpty { return dir }
        return ReliablySupport.root + "/.venv-reliably"
    }

    private init(process: Process, directory: String) {
        self.process = process
        self.directory = directory
    }

    /// Starts `chaos run` of `experiment` (JSON text) with the Reliably control pointed at the gateway.
    static func start(_ experiment: String, token: String, port: Int) async throws -> ChaosRun {
        var environment: [String: String] = [:]
        environment["RELIABLY_HOST"] = "127.0.0.1:\(port)"
        environment["RELIABLY_USE_HTTP"] = "1"
        environment["RELIABLY_TOKEN"] = token
        return try await launch(experiment: experiment, environment: environment) { directory in
            [venv + "/bin/chaos", "--no-version-check", "--log-file", directory + "/chaos.log", "run",
             "--journal-path", directory + "/journal.json", directory + "/experiment.json"]
        }
    }

    /// Starts `reliably service plan execute --set-status <plan>` against the gateway.
    static func planExecute(_ plan: String, organization: String, token: String, port: Int) async throws -> ChaosRun {
        let environment = ["RELIABLY_SERVICE_HOST": "http://127.0.0.1:\(port)", "RELIABLY_SERVICE_TOKEN": token,
                           "RELIABLY_ORGANIZATION_ID": organization, "RELIABLY_VERIFY_TLS": "0"]
        return try await launch(experiment: nil, environment: environment) { directory in
            [venv + "/bin/reliably", "service", "plan", "execute", "--set-status", "--result-file", directory + "/journal.json",
             "--log-file", directory + "/chaos.log", plan]
        }
    }

    private static func launch(experiment: String?, environment extra: [String: String],
                               arguments: (String) -> [String]) async throws -> ChaosRun {
        let directory = try TestPostgres.makeTemporaryDirectory("rly-chaos")
        // The fixtures check files relative to the working directory.
        try FileManager.default.createDirectory(atPath: directory + "/tests/fixtures", withIntermediateDirectories: true)
        try #require(FileManager.default.createFile(atPath: directory + "/tests/conftest.py", contents: Data()))
        try experiment?.write(toFile: directory + "/experiment.json", atomically: true, encoding: .utf8)
        let process = Process()
        // Foundation's Process leaves the child the test process's blocked signals, and chaoslib
        // stops a run on SIGUSR1/SIGUSR2 (what the control sends itself on terminate): start it
        // as a shell would, with an empty mask and default dispositions (ServiceKit's
        // SpawnedProcess does the same with posix_spawn).
        process.executableURL = URL(fileURLWithPath: venv + "/bin/python")
        process.arguments = ["-c", """
            import os, signal, sys
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2): signal.signal(s, signal.SIG_DFL)
            os.execv(sys.argv[1], sys.argv[1:])
            """] + arguments(directory)
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("RELIABLY_") }
        environment["HOME"] = directory  // no user configuration of the clients
        environment.merge(extra) { $1 }
        process.environment = environment
        try #require(FileManager.default.createFile(atPath: directory + "/output.txt", contents: nil))
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/output.txt"))
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try output.close()
        return ChaosRun(process: process, directory: directory)
    }

    /// Waits for the exit without blocking a thread (the gateway shares the cooperative pool);
    /// a run still going after 240 s is killed so a broken test ends.
    func wait() async -> Int32 {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while self.process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(240))
                if self.process.isRunning { self.process.terminate() }
            }
            await group.next()
            group.cancelAll()
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    var output: String {
        let text = (try? String(contentsOfFile: directory + "/output.txt", encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: directory + "/chaos.log", encoding: .utf8)) ?? ""
        return String((text + "\n--- chaos.log\n" + log).suffix(8000))
    }
}

enum ReliablySupport {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static var fixtures: String {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_SHARED"], !dir.isEmpty { return dir + "/fixtures/experiments" }
        return root + "/../shared/fixtures/experiments"
    }

    /// Runs a Python snippet in the Reliably venv with `input` on stdin.
    static func python(_ code: String, input: String) async throws -> (status: Int32, output: String) {
        let directory = try TestPostgres.makeTemporaryDirectory("rly-py")
        try input.write(toFile: directory + "/input", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ChaosRun.venv + "/bin/python")
        process.arguments = ["-c", code]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: directory + "/input"))
        try #require(FileManager.default.createFile(atPath: directory + "/output", contents: nil))
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/output"))
        process.standardOutput = output
        process.standardError = output
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        try output.close()
        return (process.terminationStatus, (try? String(contentsOfFile: directory + "/output", encoding: .utf8)) ?? "")
    }

    /// A harness whose database also has the Reliably mapping schema.
    static func with(_ name: String, _ body: @Sendable (Harness) async throws -> Void) async throws {
        try await Harness.with(name) { h in
            try await ReliablyIDs.migrations.apply(on: h.database)
            try await body(h)
        }
    }

    /// Imports a fixture (optionally changed) for organisation `a`; returns its Faultline id and
    /// the experiment as the Reliably API serves it (with the control).
    static func importFixture(_ h: Harness, _ file: String, change: (inout [String: Any]) -> Void = { _ in }) async throws -> (String, String) {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + file))
        var definition = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        change(&definition)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: definition), as: UTF8.self)
        let created = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: text)
        let experiment = try #require((created.json["experiment"] as? [String: Any])?["id"] as? String, "\(created.text)")
        let ids = try await h.call(.get, "/api/v1/reliably/experiments/\(experiment)", token: h.token())
        let path = try #require(ids.json["raw_path"] as? String, "\(ids.text)")
        let raw = try await h.call(.get, path, token: h.token())
        #expect(raw.status == 200)
        #expect(raw.headers[.contentType] == "application/json")  // exactly: the CLI refuses parameters
        return (experiment, raw.text)
    }
}
