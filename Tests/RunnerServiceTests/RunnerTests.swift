import ExperimentService
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import RunnerService

#if canImport(Glibc)
import Glibc
#endif

/// The runner end to end: real `chaos run` with the faultline control, a real ExperimentService on
/// Postgres, both over real sockets.
@Suite("RunnerService with real chaos runs", .serialized)
struct RunnerTests {
    static func experiment(method: String, rollbacks: String = "[]") -> String {
        #"{"title": "runner test", "description": "d", "method": \#(method), "rollbacks": \#(rollbacks)}"#
    }

    static func sleep(_ seconds: String, name: String = "long-sleep") -> String {
        #"{"type": "action", "name": "\#(name)", "provider": {"type": "process", "path": "sleep", "arguments": "\#(seconds)"}}"#
    }

    static let getcwd = #"{"type": "action", "name": "cwd", "provider": {"type": "python", "module": "os", "func": "getcwd"}}"#
    static let undo = #"{"type": "action", "name": "undo", "provider": {"type": "python", "module": "os", "func": "getcwd"}}"#

    @Test("every valid fixture ends as a plain chaos run of it does", arguments: Env.validFixtures())
    func fixture(_ file: URL) async throws {
        let workspace = try Env.fixtureWorkspace()
        defer { try? FileManager.default.removeItem(at: workspace) }
        let plain = try Env.plainRun(file, workspace: workspace)
        let index = Env.validFixtures().firstIndex(of: file) ?? 0
        try await Platform.with(database: "runner_fixture_\(index)", configure: { $0.runFiles = workspace }) { platform in
            let id = try await platform.createExperiment(String(decoding: try Data(contentsOf: file), as: UTF8.self))
            let run = try await platform.start(id)
            #expect(!run.executionId.isEmpty)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == expectedState(journal: plain), "\(file.lastPathComponent): \(execution.reason)")
            #expect(execution.deviated == (plain["deviated"] as? Bool ?? false))
            let journal = try await platform.journal(run.executionId)
            #expect(journal["status"] as? String == plain["status"] as? String)
            let faultline = try #require(journal["faultline"] as? [String: Any], "the control ran in runner mode")
            #expect(faultline["mode"] as? String == "runner")
            // Every event the control sent is stored, none missing.
            let lastSeq = try #require(faultline["last_seq"] as? Int)
            let events = try await platform.events(run.executionId)
            #expect(events.map(\.sequence) == Array(1...Int64(lastSeq)))
            #expect(events.first?.type == "loading-before")
            #expect(events.last?.type == "experiment-after")
            let log = try await platform.experiments.getExecutionLog(.init(executionId: run.executionId), options: Platform.options).log
            #expect(!log.isEmpty)
            // The run directory is gone, the runner's state for it too.
            let runDirectories = platform.stateDirectory.appendingPathComponent("r").path
            _ = try await platform.waitFor("run directory removed") {
                try FileManager.default.contentsOfDirectory(atPath: runDirectories).isEmpty ? true : nil
            }
        }
    }

    @Test("a cancelled long run ends interrupted, its rollbacks played unless skipped, no orphan left", arguments: [false, true])
    func cancel(skipRollbacks: Bool) async throws {
        let seconds = skipRollbacks ? "3117" : "3118"
        try await Platform.with(database: "runner_cancel") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep(seconds))]", rollbacks: "[\(Self.undo)]"))
            let run = try await platform.start(id)
            _ = try await platform.waitFor("the sleep started") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "long-sleep" } ? true : nil
            }
            let cancelled = try #require(try await platform.runner.cancelRun(
                .init(executionId: run.executionId, skipRollbacks: skipRollbacks, reason: "test cancel"), options: Platform.options).run)
            #expect([.cancelling, .finished].contains(cancelled.state))
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .interrupted, "\(execution.reason)")
            #expect(execution.outcome?.rollbacksRun == (skipRollbacks ? 0 : 1))
            #expect(Env.processes(commandLine: ["sleep", seconds]).isEmpty, "the process group was killed")
            let runs = try await platform.runner.listRuns(.init(states: [.finished]), options: Platform.options).runs
            #expect(runs.contains { $0.executionId == run.executionId && $0.executionState == .interrupted })
        }
    }

    @Test("chaos ignoring SIGTERM is SIGKILLed with its process group after the grace period")
    func graceThenKill() async throws {
        // The first action makes `chaos` itself ignore SIGTERM (SIG_IGN = 1).
        let ignore = #"{"type": "action", "name": "ignore-term", "provider": {"type": "python", "module": "signal", "func": "signal", "arguments": {"signalnum": 15, "handler": 1}}}"#
        try await Platform.with(database: "runner_kill") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(ignore), \(Self.sleep("3122"))]"))
            let run = try await platform.start(id) { $0.terminationGraceUs = 1_000_000 }
            _ = try await platform.waitFor("the sleep started") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "long-sleep" } ? true : nil
            }
            _ = try await platform.runner.cancelRun(.init(executionId: run.executionId, reason: "kill it"), options: Platform.options)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .interrupted, "\(execution.reason)")
            #expect(execution.outcome?.hasJournal == false, "SIGKILLed before writing one")
            #expect(Env.processes(commandLine: ["sleep", "3122"]).isEmpty, "the process group was killed")
        }
    }

    @Test("pause holds the run between activities; resume lets it complete")
    func pauseAndResume() async throws {
        try await Platform.with(database: "runner_pause") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep("2", name: "first")), \(Self.getcwd)]"))
            let run = try await platform.start(id)
            _ = try await platform.waitFor("running") { try await platform.execution(run.executionId).state == .running ? true : nil }
            _ = try await platform.experiments.pauseExecution(.init(executionId: run.executionId, reason: "hold on"), options: Platform.options)
            _ = try await platform.waitFor("paused event") {
                try await platform.events(run.executionId).contains { $0.type == "paused" } ? true : nil
            }
            #expect(try await platform.execution(run.executionId).state == .running)
            _ = try await platform.experiments.resumeExecution(.init(executionId: run.executionId, reason: "go"), options: Platform.options)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")
            let resumed = try #require(try await platform.events(run.executionId).first { $0.type == "resumed" })
            let payload = try JSONSerialization.jsonObject(with: Data(resumed.payloadJson.utf8)) as? [String: Any]
            #expect(payload?["outcome"] as? String == "resumed")
        }
    }

    /// An action that waits until `file` exists: the test decides when the next checkpoint comes.
    static func gate(_ file: String, name: String) -> String {
        #"{"type": "action", "name": "\#(name)", "provider": {"type": "process", "path": "sh", "arguments": ["-c", "while [ ! -e \#(file) ]; do sleep 0.05; done"]}}"#
    }

    @Test("pause, resume and terminate from ExperimentService reach the run though its user-state stream broke twice")
    func userStateAcrossStreamLoss() async throws {
        let gates = try Env.temporaryDirectory("gate")
        defer { try? FileManager.default.removeItem(at: gates) }
        let first = gates.appendingPathComponent("first").path, second = gates.appendingPathComponent("second").path
        try await Platform.with(database: "runner_user_state") { platform in
            let method = "[\(Self.gate(first, name: "first")), \(Self.getcwd), \(Self.gate(second, name: "second"))]"
            let id = try await platform.createExperiment(Self.experiment(method: method, rollbacks: "[\(Self.undo)]"))
            let run = try await platform.start(id)
            let handle = try #require(platform.runnerServer.handle(run.executionId))
            _ = try await platform.waitFor("the first gate") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "first" } ? true : nil
            }
            // ExperimentService goes away and comes back: every stream on it breaks.
            await platform.endpoint.stop()
            try await platform.endpoint.restart()
            _ = try await platform.waitFor("paused") {
                _ = try await platform.experiments.pauseExecution(.init(executionId: run.executionId, reason: "hold"), options: Platform.options)
                return true
            }
            // Only a stream opened again can have told the runner.
            _ = try await platform.waitFor("the runner told of the pause") {
                if case .pause = handle.desiredState() { return true }
                return nil
            }
            #expect(FileManager.default.createFile(atPath: first, contents: nil))
            _ = try await platform.waitFor("paused event") {
                try await platform.events(run.executionId).contains { $0.type == "paused" } ? true : nil
            }
            await platform.endpoint.stop()
            try await platform.endpoint.restart()
            _ = try await platform.waitFor("resumed") {
                _ = try await platform.experiments.resumeExecution(.init(executionId: run.executionId, reason: "go"), options: Platform.options)
                return true
            }
            _ = try await platform.waitFor("the second gate") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "second" } ? true : nil
            }
            #expect(try await platform.events(run.executionId).contains { $0.type == "resumed" })
            _ = try await platform.experiments.terminateExecution(.init(executionId: run.executionId, reason: "enough"), options: Platform.options)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .interrupted, "\(execution.reason)")
            #expect(execution.outcome?.rollbacksRun == 1)
        }
    }

    @Test("a run past its maximum duration is stopped and ends timed out")
    func maxDuration() async throws {
        try await Platform.with(database: "runner_timeout") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep("3119"))]"))
            let run = try await platform.start(id) { $0.maxDurationUs = 1_500_000; $0.terminationGraceUs = 2_000_000 }
            #expect(run.deadlineAtUs > run.acceptedAtUs)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .timedOut, "\(execution.reason)")
            #expect(Env.processes(commandLine: ["sleep", "3119"]).isEmpty)
        }
    }

    @Test("ExperimentService down during a run: events wait in the spool, none lost")
    func spoolWhileUnreachable() async throws {
        try await Platform.with(database: "runner_spool") { platform in
            let method = "[\(Self.sleep("1", name: "s1")), \(Array(repeating: Self.getcwd, count: 5).joined(separator: ", "))]"
            let id = try await platform.createExperiment(Self.experiment(method: method))
            let run = try await platform.start(id)
            _ = try await platform.waitFor("running") { try await platform.execution(run.executionId).state == .running ? true : nil }
            await platform.endpoint.stop()
            let ended = try await platform.waitFor("chaos exited with events spooled") {
                try await platform.runner.listRuns(.init(states: [.running, .cancelling, .finished]), options: Platform.options)
                    .runs.first { $0.executionId == run.executionId && $0.endedAtUs > 0 }
            }
            #expect(ended.state != .finished)
            #expect(ended.eventsSpooled > 0)
            try await platform.endpoint.restart()
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")
            let faultline = try #require(try await platform.journal(run.executionId)["faultline"] as? [String: Any])
            let lastSeq = try #require(faultline["last_seq"] as? Int)
            #expect(execution.contiguousSequence == Int64(lastSeq))
            #expect(execution.eventsReceived == Int64(lastSeq))
        }
    }

    @Test("capacity: StartRun past it is RESOURCE_EXHAUSTED; request_id repeats return the same run")
    func capacityAndIdempotency() async throws {
        try await Platform.with(database: "runner_capacity", configure: { $0.capacity = 1 }) { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep("3120"))]"))
            let first = try await platform.start(id) { $0.requestId = "plan-run-1" }
            let again = try await platform.start(id) { $0.requestId = "plan-run-1" }
            #expect(again.executionId == first.executionId)
            await #expect(throws: RPCError.self) { _ = try await platform.start(id) }
            do {
                _ = try await platform.start(id)
            } catch let error as RPCError {
                #expect(error.code == .resourceExhausted)
            }
            // Another organisation sees nothing of it.
            let other = CallOptions.on(behalfOf: OrganizationID("org-other")!)
            #expect(try await platform.runner.listRuns(.init(), options: other).runs.isEmpty)
            await #expect(throws: RPCError.self) {
                _ = try await platform.runner.cancelRun(.init(executionId: first.executionId), options: other)
            }
            _ = try await platform.runner.cancelRun(.init(executionId: first.executionId, skipRollbacks: true), options: Platform.options)
            #expect(try await platform.waitUntilTerminal(first.executionId).state == .interrupted)
        }
    }

    @Test("bad StartRun, CancelRun and ListRuns input gets a clear error")
    func badInput() async throws {
        try await Platform.with(database: "runner_bad") { platform in
            for (what, request) in [("no experiment", RunnersV1.StartRunRequest()),
                                    ("negative duration", RunnersV1.StartRunRequest(experimentId: "x", maxDurationUs: -1))] {
                do {
                    _ = try await platform.runner.startRun(request, options: Platform.options)
                    Issue.record("\(what) accepted")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument, "\(what)")
                }
            }
            do {
                _ = try await platform.runner.startRun(.init(experimentId: "missing"), options: Platform.options)
                Issue.record("unknown experiment accepted")
            } catch let error as RPCError {
                #expect(error.code == .notFound || error.code == .invalidArgument)
            }
            do {
                _ = try await platform.runner.startRun(.init(experimentId: "x"), options: CallOptions())
                Issue.record("no organisation accepted")
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated)
            }
            do {
                _ = try await platform.runner.listRuns(.init(pageToken: "garbage"), options: Platform.options)
                Issue.record("bad page token accepted")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
            }
            do {
                _ = try await platform.runner.cancelRun(.init(executionId: "nope"), options: Platform.options)
                Issue.record("unknown run cancelled")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test("a runner dedicated to other organisations refuses StartRun PERMISSION_DENIED; its own organisation gets through")
    func dedicatedRunner() async throws {
        for (organizations, served) in [(["org-other"], false), (["org-other", Platform.org.rawValue], true)] {
            try await Platform.with(database: "runner_dedicated", configure: { $0.tenancy = .dedicated(Set(organizations.compactMap(OrganizationID.init))) }) { platform in
                do {
                    _ = try await platform.runner.startRun(.init(experimentId: "missing"), options: Platform.options)
                    Issue.record("a run for \(Platform.org) was started")
                } catch let error as RPCError {
                    // Served: the check passes and the unknown experiment is what fails.
                    #expect(served ? error.code != .permissionDenied : error.code == .permissionDenied, "\(error)")
                }
                #expect(platform.runnerServer.activeRuns().isEmpty)
            }
        }
    }

    @Test("drain stops the running runs, waits until each is completed, then refuses new ones")
    func drain() async throws {
        try await Platform.with(database: "runner_drain") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep("3123"))]"))
            let run = try await platform.start(id)
            _ = try await platform.waitFor("the sleep started") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "long-sleep" } ? true : nil
            }
            await platform.runnerServer.drain()
            // Completed before drain returned: no waiting here.
            let execution = try await platform.execution(run.executionId)
            #expect(execution.state == .interrupted, "\(execution.reason)")
            #expect(Env.processes(commandLine: ["sleep", "3123"]).isEmpty)
            do {
                _ = try await platform.start(id)
                Issue.record("a draining runner accepted a run")
            } catch let error as RPCError {
                #expect(error.code == .unavailable)
            }
        }
    }

    @Test("a runner whose run() is cancelled kills its runs' process groups; what it could not complete ends lost on restart")
    func cancelledRunner() async throws {
        try await Platform.with(database: "runner_cancelled") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.sleep("3124"))]"))
            let run = try await platform.start(id)
            _ = try await platform.waitFor("the sleep started") {
                try await platform.events(run.executionId).contains { $0.type == "activity-before" && $0.activityName == "long-sleep" } ? true : nil
            }
            platform.lifecycle.cancel()
            _ = await platform.lifecycle.result
            #expect(Env.processes(commandLine: ["sleep", "3124"]).isEmpty, "the process group was killed")
            // Either CompleteExecution still went through, or the record stayed for the next start.
            await platform.runnerServer.recoverLeftoverRuns()
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect([.interrupted, .lost].contains(execution.state), "\(execution.state) \(execution.reason)")
            #expect(try StateDirectory(platform.stateDirectory).records().isEmpty)
        }
    }

    @Test("a restarted runner ends the runs it owned as lost, delivers their spool, kills their group")
    func recoveryMarksLost() async throws {
        try await Platform.with(database: "runner_recover") { platform in
            let id = try await platform.createExperiment(Self.experiment(method: "[\(Self.getcwd)]"))
            let created = try await platform.experiments.createExecution(.init(experimentId: id), options: Platform.options)
            let executionID = try #require(created.execution?.id)
            _ = try await platform.experiments.startExecution(.init(executionId: executionID, runnerId: "runner-test"), options: Platform.options)
            // What a runner killed mid-run leaves: its record, a spool, a process group still alive.
            let state = try StateDirectory(platform.stateDirectory)
            let orphan = try SpawnedProcess(executable: "/bin/sleep", arguments: ["3121"], environment: [:],
                                            options: .init(output: .null, group: .newSession))
            try state.save(RunRecord(executionID: executionID, organization: Platform.org.rawValue, pid: orphan.pid,
                                     runDirectory: platform.stateDirectory.appendingPathComponent("r/gone").path))
            let spool = [ControlEvent(seq: 1, type: "loading-before", tsUs: 1, payloadJSON: "{}", activityName: ""),
                         ControlEvent(seq: 2, type: "loading-after", tsUs: 2, payloadJSON: "{}", activityName: "")]
            let lines = try spool.map { try JSONEncoder().encode($0) + Data("\n".utf8) }.reduce(Data(), +) + Data("{\"seq\": 3, trunc".utf8)
            try lines.write(to: state.spoolFile(executionID))

            await platform.runnerServer.recoverLeftoverRuns()
            let execution = try await platform.execution(executionID)
            #expect(execution.state == .lost)
            #expect(execution.eventsReceived == 2)
            #expect(await orphan.waitForExit() == .signaled(SIGKILL))
            #expect(state.records().isEmpty)
        }
    }
}
