import ExperimentService
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Outcomes and scores from journals that the real `chaos run` wrote, in a workspace laid out
/// like the Chaos Toolkit repository its fixtures come from.
@Suite("Outcomes and scores of real chaos runs")
struct RealRunTests {
    static let validFixtures = (try? Env.fixtureFiles(invalid: false)) ?? []

    @Test(arguments: validFixtures)
    func fixtureJournalIsClassifiedAsItsStatusSays(_ file: URL) throws {
        let workspace = try ChaosWorkspace("run-fixture")
        let (journal, result) = try workspace.run(file, name: "fixture")
        let j = try journal.unwrap("journal of \(file.lastPathComponent): \(result.stderr)")
        let summary = try JournalSummary(journal: j).unwrap()
        let status = try j["status"]?.stringValue.unwrap()
        let deviated = j["deviated"]?.boolValue ?? false
        // chaos exits 1 exactly when status != completed or deviated (chaostoolkit.md §7).
        #expect(result.exitCode == ((status == "completed" && !deviated) ? 0 : 1))

        let outcome = ExecutionOutcome.classify(journal: j, exitCode: result.exitCode, signal: result.signal)
        let expected: ExecutionStatus = switch (status, deviated) {
        case (_, true): .deviated
        case ("completed", false) where summary.steadyStateBefore == false: .deviated
        case ("completed", false): .completed
        case ("failed", false): .failed
        case ("aborted", false): .aborted
        default: .interrupted
        }
        #expect(outcome.status == expected, "\(file.lastPathComponent): \(outcome.reason)")
        #expect(outcome.journal == summary)
        let score = try ExecutionScore.score(outcome).unwrap()
        switch outcome.status {
        case .completed: #expect(score == 1)
        case .deviated: #expect(score == 0)
        default: #expect(score == 0.5)
        }
    }

    /// What each fixture does when run (recorded for the reader; checked above from the journal):
    /// check-file-exists → completed/false, exit 0; -deviated → completed/true, exit 1 (it deletes
    /// the file its hypothesis checks); -fail → failed/false, exit 1 (the baseline probe raises);
    /// the two override fixtures → completed/false, exit 0 (one skips the after-hypothesis, the
    /// other never plays its rollback).
    @Test func fixturesCoverTheMainVerdicts() throws {
        var seen: Set<ExecutionStatus> = []
        for file in Self.validFixtures {
            let workspace = try ChaosWorkspace("run-cover")
            let (journal, result) = try workspace.run(file, name: "fixture")
            seen.insert(ExecutionOutcome.classify(journal: journal, exitCode: result.exitCode, signal: result.signal).status)
        }
        #expect(seen == [.completed, .deviated, .failed])
    }

    static let probeFileExists: JSONValue = [
        "type": "probe", "name": "marker-exists", "tolerance": true,
        "provider": ["type": "python", "module": "os.path", "func": "exists", "arguments": ["path": "marker"]],
    ]

    static func experiment(method: [JSONValue], rollbacks: [JSONValue] = [], hypothesis: Bool = true) -> JSONValue {
        var o = JSONObject()
        o["title"] = "t"
        o["description"] = "d"
        if hypothesis { o["steady-state-hypothesis"] = ["title": "marker is there", "probes": [probeFileExists]] }
        o["method"] = .array(method)
        o["rollbacks"] = .array(rollbacks)
        return .object(o)
    }

    static func process(_ name: String, _ path: String, _ arguments: [JSONValue] = [], type: String = "action") -> JSONValue {
        ["type": .string(type), "name": .string(name), "provider": ["type": "process", "path": .string(path), "arguments": .array(arguments)]]
    }

    static let kaboom: JSONValue = [
        "type": "action", "name": "kaboom",
        "provider": ["type": "python", "module": "tests.fixtures.force_failure", "func": "kaboom"],
    ]

    struct Scenario: CustomTestStringConvertible, Sendable {
        let name: String
        let experiment: JSONValue
        var createMarker = true
        let exitCode: Int32?
        let status: ExecutionStatus
        let reason: ExecutionOutcome.Reason
        let score: Double?
        var testDescription: String { name }
    }

    /// Exit codes as chaos gives them: the exit-0 rows are the ones an exit-code check gets wrong.
    static let scenarios: [Scenario] = [
        Scenario(name: "all met", experiment: experiment(method: [process("touch", "touch", ["marker"])]),
                 exitCode: 0, status: .completed, reason: .steadyStateMet, score: 1),
        Scenario(name: "baseline not met", experiment: experiment(method: [process("touch", "touch", ["other"])]), createMarker: false,
                 exitCode: 0, status: .deviated, reason: .baselineNotMet, score: 0),
        Scenario(name: "method activity raised", experiment: experiment(method: [kaboom]),
                 exitCode: 0, status: .failed, reason: .methodActivityFailed, score: 0.5),
        Scenario(name: "method action exited 1", experiment: experiment(method: [process("false", "false")]),
                 exitCode: 0, status: .failed, reason: .methodActivityFailed, score: 0.5),
        Scenario(name: "deviated after the method", experiment: experiment(method: [process("rm", "rm", ["marker"])]),
                 exitCode: 1, status: .deviated, reason: .steadyStateAfterNotMet, score: 0),
        Scenario(name: "rollback failed", experiment: experiment(method: [process("true", "true")], rollbacks: [kaboom]),
                 exitCode: 0, status: .completed, reason: .rollbackFailed, score: 0.5),
        Scenario(name: "rollback ref to nothing", experiment: experiment(method: [process("true", "true")], rollbacks: [["ref": "ghost"]]),
                 exitCode: 1, status: .failed, reason: .preRunError, score: 0.5),
        Scenario(name: "unknown runtime strategy", experiment: {
            var o = experiment(method: [process("true", "true")]).objectValue!
            o["runtime"] = ["hypothesis": ["strategy": "whenever"]]
            return .object(o)
        }(), exitCode: 1, status: .failed, reason: .preRunError, score: 0.5),
    ]

    @Test(arguments: scenarios)
    func scenarioOutcome(_ s: Scenario) throws {
        let workspace = try ChaosWorkspace("run-scenario")
        if s.createMarker { try Data().write(to: workspace.directory.appendingPathComponent("marker")) }
        let file = try workspace.write(s.experiment.serialized(.pretty(indent: 2)), as: "experiment.json")
        let (journal, result) = try workspace.run(file, name: "scenario", extraArguments: ["--rollback-strategy", "always"])
        #expect(result.exitCode == s.exitCode, "\(result.stderr.suffix(400))")
        let outcome = ExecutionOutcome.classify(journal: journal, exitCode: result.exitCode, signal: result.signal)
        #expect(outcome.status == s.status)
        #expect(outcome.reason == s.reason)
        #expect(ExecutionScore.score(outcome) == s.score)
        if s.reason == .preRunError {
            #expect(journal == nil, "chaos writes no journal for a pre-run error")
            #expect(!ExperimentValidator.validate(s.experiment).isValid, "we reject what chaos validate lets through")
        }
    }

    // MARK: runs stopped from outside

    /// Starts `chaos run` on an experiment whose method sleeps, and returns once the sleep started.
    private func startSleepingRun(_ workspace: ChaosWorkspace) throws -> (Process, URL) {
        try Data().write(to: workspace.directory.appendingPathComponent("marker"))
        let experiment = Self.experiment(method: [Self.process("sleep", "sleep", ["30"])])
        let file = try workspace.write(experiment.serialized(), as: "experiment.json")
        let journal = workspace.directory.appendingPathComponent("journal.json")
        let events = workspace.directory.appendingPathComponent("events.ndjson")
        let process = Process()
        // Foundation's Process (Linux) passes on the spawning thread's signal mask, and Swift
        // concurrency threads block SIGTERM: `cat /proc/self/status` spawned from a test shows
        // `SigBlk: fffffffe3bfbea27`, and chaos then never sees the runner's SIGTERM (the sleep
        // ran its 30 s, journal "completed"). Clear the mask before exec; the runner must too.
        process.executableURL = Env.python
        process.arguments = ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                             Env.chaos.path, "--no-version-check", "--log-file", workspace.directory.appendingPathComponent("chaos.log").path,
                             "run", "--journal-path", journal.path, "--events-file", events.path, file.path]
        process.currentDirectoryURL = workspace.directory
        process.environment = ProcessInfo.processInfo.environment.merging(workspace.environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait (bounded) until the sleep activity has started; no assertion on how long it took.
        for _ in 0..<600 {
            let lines = ((try? String(contentsOf: events, encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.contains(where: { $0.contains(#""type": "activity-started""#) && $0.contains(#""name": "sleep""#) }) {
                return (process, journal)
            }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        process.terminate()
        process.waitUntilExit()
        throw ChaosDidNotStart()
    }

    struct ChaosDidNotStart: Error {}

    @Test func sigtermFromTheRunnerEndsInterruptedOrTimedOut() throws {
        let workspace = try ChaosWorkspace("run-sigterm")
        let (process, journalURL) = try startSleepingRun(workspace)
        process.terminate()  // SIGTERM, as the runner does on cancel or at the time limit
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 1)
        let journal = try workspace.readJournal(journalURL).unwrap("journal after SIGTERM")
        #expect(journal["status"] == "interrupted")
        #expect(journal["interruption"]?["name"] == "SIGTERM")
        let cancelled = ExecutionOutcome.classify(journal: journal, exitCode: 1, signal: nil, stopRequest: .cancelled)
        #expect(cancelled.status == .interrupted && cancelled.reason == .cancelled)
        #expect(cancelled.journal?.method.unfinished == 1 || cancelled.journal?.method.failed == 1, "the sleep was cut off")
        #expect(ExecutionScore.score(cancelled) == nil)
        let timedOut = ExecutionOutcome.classify(journal: journal, exitCode: 1, signal: nil, stopRequest: .timeLimit)
        #expect(timedOut.status == .timedOut)
        let unexplained = ExecutionOutcome.classify(journal: journal, exitCode: 1, signal: nil)
        #expect(unexplained.status == .interrupted && unexplained.reason == .interrupted)
    }

    @Test func sigkillLeavesNoJournal() throws {
        let workspace = try ChaosWorkspace("run-sigkill")
        let (process, journalURL) = try startSleepingRun(workspace)
        // The whole process group when chaos leads one, so the sleeping activity dies with it.
        let pid = process.processIdentifier
        if getpgid(pid) != pid || kill(-pid, SIGKILL) != 0 { kill(pid, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
        let journal = try workspace.readJournal(journalURL)
        #expect(journal == nil)
        let byNobody = ExecutionOutcome.classify(journal: journal, exitCode: nil, signal: SIGKILL)
        #expect(byNobody.status == .lost && byNobody.reason == .killed)
        let byRunner = ExecutionOutcome.classify(journal: journal, exitCode: nil, signal: SIGKILL, stopRequest: .cancelled)
        #expect(byRunner.status == .interrupted)
        #expect(ExecutionScore.score(byNobody) == nil)
    }
}
