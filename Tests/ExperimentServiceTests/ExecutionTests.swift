import ExperimentService
import Testing

@Suite("Execution status transitions")
struct ExecutionStatusTests {
    /// Written out independently of the implementation: what may follow what.
    static let legal: [ExecutionStatus: Set<ExecutionStatus>] = [
        .pending: [.running, .failed, .interrupted, .lost],
        .running: [.completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut],
    ]

    static let pairs = ExecutionStatus.allCases.flatMap { from in ExecutionStatus.allCases.map { (from, $0) } }

    @Test(arguments: pairs)
    func transition(_ from: ExecutionStatus, _ to: ExecutionStatus) throws {
        if from == to {
            #expect(try from.transition(to: to) == .unchanged)
        } else if Self.legal[from, default: []].contains(to) {
            #expect(try from.transition(to: to) == .moved(to: to))
        } else {
            #expect(throws: IllegalTransition(from: from, to: to)) { try from.transition(to: to) }
        }
    }

    @Test func everyPairIsCovered() {
        #expect(Self.pairs.count == 81)
        #expect(ExecutionStatus.allCases.filter(\.isTerminal).count == 7)
        #expect(IllegalTransition(from: .completed, to: .running).description == "execution is already completed; it cannot become running")
        #expect(ExecutionStatus.timedOut.rawValue == "timed_out")
    }
}

/// Builds journals shaped as chaostoolkit-lib 1.45 writes them.
enum Journal {
    struct Run {
        var type = "action"
        var provider = "process"
        var status: String? = "succeeded"
        var output: JSONValue = ["status": 0, "stdout": "", "stderr": ""]
        var name = "a"
    }

    static func make(
        status: String, deviated: Bool? = false, before: Bool?? = .some(true), after: Bool?? = .some(true),
        during: [Bool] = [], run: [Run] = [Run()], rollbacks: [Run] = [], interruption: String? = nil
    ) -> JSONValue {
        func state(_ met: Bool??) -> JSONValue {
            switch met {
            case .none: .null
            case .some(.none): ["steady_state_met": nil, "probes": []]
            case .some(.some(let m)): ["steady_state_met": .bool(m), "probes": []]
            }
        }
        func entries(_ runs: [Run]) -> JSONValue {
            .array(runs.map { r in
                var o: JSONObject = JSONObject()
                o["activity"] = ["type": .string(r.type), "name": .string(r.name), "provider": ["type": .string(r.provider)]]
                o["output"] = r.output
                if let s = r.status { o["status"] = .string(s) }
                return .object(o)
            })
        }
        var j = JSONObject()
        j["chaoslib-version"] = "1.45.1"
        j["status"] = .string(status)
        if let deviated { j["deviated"] = .bool(deviated) }
        j["steady_states"] = ["before": state(before), "after": state(after), "during": .array(during.map { ["steady_state_met": .bool($0)] })]
        j["run"] = entries(run)
        j["rollbacks"] = entries(rollbacks)
        if let interruption { j["interruption"] = ["kind": "signal", "name": .string(interruption)] }
        return .object(j)
    }
}

@Suite("Outcome from the journal")
struct ExecutionOutcomeTests {
    typealias R = ExecutionOutcome.Reason

    struct Row: CustomTestStringConvertible, Sendable {
        let name: String
        let journal: JSONValue?
        var exit: Int32? = 1
        var signal: Int32? = nil
        var stop: ExecutionOutcome.StopRequest? = nil
        let status: ExecutionStatus
        let reason: R
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "pre-run error", journal: nil, status: .failed, reason: .preRunError),
        Row(name: "exit 0 without journal", journal: nil, exit: 0, status: .failed, reason: .journalMissing),
        Row(name: "SIGKILL from outside", journal: nil, exit: nil, signal: 9, status: .lost, reason: .killed),
        Row(name: "SIGTERM by the runner on cancel", journal: nil, exit: nil, signal: 15, stop: .cancelled, status: .interrupted, reason: .cancelled),
        Row(name: "SIGKILL by the runner at the time limit", journal: nil, exit: nil, signal: 9, stop: .timeLimit, status: .timedOut, reason: .timeLimit),
        Row(name: "runner lost the process", journal: nil, exit: nil, status: .lost, reason: .runnerLost),
        Row(name: "journal is not a journal", journal: [1, 2], status: .failed, reason: .journalUnreadable),
        Row(name: "unknown journal status", journal: ["status": "exploded"], status: .failed, reason: .journalUnreadable),
        Row(name: "all met", journal: Journal.make(status: "completed"), exit: 0, status: .completed, reason: .steadyStateMet),
        Row(name: "after not met", journal: Journal.make(status: "completed", deviated: true, after: .some(false)), status: .deviated, reason: .steadyStateAfterNotMet),
        Row(name: "baseline not met, exit 0", journal: Journal.make(status: "completed", before: .some(false), after: .none, run: []),
            exit: 0, status: .deviated, reason: .baselineNotMet),
        Row(name: "method activity failed, exit 0", journal: Journal.make(status: "completed", run: [Journal.Run(provider: "python", status: "failed")]),
            exit: 0, status: .failed, reason: .methodActivityFailed),
        Row(name: "method action exited 1, exit 0", journal: Journal.make(status: "completed", run: [Journal.Run(output: ["status": 1, "stdout": "", "stderr": "no"])]),
            exit: 0, status: .failed, reason: .methodActivityFailed),
        Row(name: "method http action answered 503", journal: Journal.make(status: "completed", run: [Journal.Run(provider: "http", output: ["status": 503, "body": ""])]),
            exit: 0, status: .failed, reason: .methodActivityFailed),
        Row(name: "method probe exited 1 (a measurement)", journal: Journal.make(status: "completed", run: [Journal.Run(type: "probe", output: ["status": 1])]),
            exit: 0, status: .completed, reason: .steadyStateMet),
        Row(name: "method activity cut off", journal: Journal.make(status: "completed", run: [Journal.Run(status: nil)]),
            exit: 0, status: .failed, reason: .methodActivityFailed),
        Row(name: "deviated during the method only", journal: Journal.make(status: "completed", during: [true, false]),
            exit: 0, status: .deviated, reason: .steadyStateDuringNotMet),
        Row(name: "rollback failed", journal: Journal.make(status: "completed", rollbacks: [Journal.Run(provider: "python", status: "failed")]),
            exit: 0, status: .completed, reason: .rollbackFailed),
        Row(name: "baseline probe raised", journal: Journal.make(status: "failed", before: .some(false), after: .none, run: []),
            status: .failed, reason: .hypothesisProbeFailed),
        Row(name: "after probe raised", journal: Journal.make(status: "failed", deviated: true, after: .some(false)),
            status: .deviated, reason: .steadyStateAfterNotMet),
        Row(name: "continuous deviation with fail-fast", journal: Journal.make(status: "failed", after: .none, during: [false]),
            status: .deviated, reason: .steadyStateDuringNotMet),
        Row(name: "failed otherwise", journal: Journal.make(status: "failed"), status: .failed, reason: .runFailed),
        Row(name: "aborted", journal: Journal.make(status: "aborted"), status: .aborted, reason: .runAborted),
        Row(name: "interrupted by SIGTERM", journal: Journal.make(status: "interrupted", run: [Journal.Run(status: nil)], interruption: "SIGTERM"),
            status: .interrupted, reason: .interrupted),
        Row(name: "interrupted on cancel", journal: Journal.make(status: "interrupted"), stop: .cancelled, status: .interrupted, reason: .cancelled),
        Row(name: "interrupted at the time limit", journal: Journal.make(status: "interrupted"), stop: .timeLimit, status: .timedOut, reason: .timeLimit),
        Row(name: "finished just before the time limit", journal: Journal.make(status: "completed"), exit: 0, stop: .timeLimit,
            status: .completed, reason: .steadyStateMet),
        Row(name: "deviated just before a cancel", journal: Journal.make(status: "completed", deviated: true, after: .some(false)), stop: .cancelled,
            status: .deviated, reason: .steadyStateAfterNotMet),
        Row(name: "lib 0.x journal without deviated", journal: Journal.make(status: "completed", deviated: nil), exit: 0,
            status: .completed, reason: .steadyStateMet),
        Row(name: "exit code disagrees with the journal", journal: Journal.make(status: "completed"), exit: 1,
            status: .completed, reason: .steadyStateMet),
    ]

    @Test(arguments: rows)
    func classify(_ row: Row) {
        let outcome = ExecutionOutcome.classify(journal: row.journal, exitCode: row.exit, signal: row.signal, stopRequest: row.stop)
        #expect(outcome.status == row.status)
        #expect(outcome.reason == row.reason)
        #expect(outcome.status.isTerminal)
        #expect((outcome.journal != nil) == (row.journal.flatMap(JournalSummary.init(journal:)) != nil))
    }

    /// chaos writes journals with Python's `allow_nan=True`: a probe that returns NaN must not
    /// make the journal unreadable (and the run "failed").
    @Test func journalWithPythonNaNIsReadable() throws {
        let script = """
            import json
            print(json.dumps({"status": "completed", "deviated": False,
                "steady_states": {"before": {"steady_state_met": True, "probes": [{"output": float("nan")}]},
                                  "after": {"steady_state_met": True, "probes": [{"output": [float("inf"), -float("inf")]}]}},
                "run": [], "rollbacks": []}, indent=2))
            """
        let written = try runProcess(Env.python, ["-c", script])
        try #require(written.exitCode == 0)
        #expect(written.stdout.contains("NaN") && written.stdout.contains("-Infinity"))
        #expect(throws: DocumentError.self) { _ = try JSONValue.parse(jsonBytes: Array(written.stdout.utf8)) }
        let journal = try JSONValue.parse(journalBytes: Array(written.stdout.utf8))
        #expect(journal["steady_states"]?["after"]?["probes"]?.arrayValue?.first?["output"] == [nil, nil])
        let outcome = ExecutionOutcome.classify(journal: journal, exitCode: 0, signal: nil)
        #expect(outcome.status == .completed)
        #expect(throws: DocumentError.self) { _ = try JSONValue.parse(journalBytes: Array("[Nan]".utf8)) }
        #expect(throws: DocumentError.self) { _ = try JSONValue.parse(journalBytes: Array("[-Inf]".utf8)) }
    }

    @Test func summaryCountsActivities() throws {
        let j = Journal.make(
            status: "interrupted",
            run: [Journal.Run(name: "ok"), Journal.Run(output: ["status": 1], name: "exit1"), Journal.Run(status: nil, name: "cut")],
            rollbacks: [Journal.Run(name: "undo")], interruption: "SIGINT")
        let s = try JournalSummary(journal: j).unwrap()
        #expect(s.method.succeeded == 1 && s.method.failed == 1 && s.method.unfinished == 1)
        #expect(s.method.problems == ["exit1", "cut"])
        #expect(s.rollbacks.successRatio == 1)
        #expect(s.interruptionSignal == "SIGINT")
        #expect(s.steadyStateDuring == nil)
    }
}

@Suite("Scores")
struct ScoringTests {
    private func score(_ journal: JSONValue, stop: ExecutionOutcome.StopRequest? = nil) -> Double? {
        ExecutionScore.score(ExecutionOutcome.classify(journal: journal, exitCode: 0, signal: nil, stopRequest: stop))
    }

    @Test func perExecution() {
        let ok = Journal.Run(), bad = Journal.Run(provider: "python", status: "failed")
        #expect(score(Journal.make(status: "completed")) == 1)
        #expect(score(Journal.make(status: "completed", rollbacks: [ok, ok])) == 1)
        #expect(score(Journal.make(status: "completed", rollbacks: [ok, bad])) == 0.75, "half the rollbacks failed")
        #expect(score(Journal.make(status: "completed", rollbacks: [bad])) == 0.5)
        #expect(score(Journal.make(status: "completed", deviated: true, after: .some(false))) == 0)
        #expect(score(Journal.make(status: "completed", before: .some(false), after: .none, run: [])) == 0, "baseline not met")
        #expect(score(Journal.make(status: "completed", during: [false], rollbacks: [ok])) == 0.25, "deviated during, recovered after")
        #expect(score(Journal.make(status: "completed", after: .none, during: [false])) == 0, "deviated during, never checked after")
        #expect(score(Journal.make(status: "completed", run: [bad])) == 0.5, "fault not injected: no verdict")
        #expect(score(Journal.make(status: "failed", before: .some(false), after: .none, run: [])) == 0.5)
        #expect(score(Journal.make(status: "aborted", rollbacks: [bad])) == 0.25)
        #expect(score(Journal.make(status: "interrupted")) == nil)
        #expect(score(Journal.make(status: "interrupted"), stop: .timeLimit) == 0.5)
        #expect(ExecutionScore.score(ExecutionOutcome(status: .lost, reason: .runnerLost)) == nil)
        #expect(ExecutionScore.score(ExecutionOutcome(status: .failed, reason: .preRunError)) == 0.5)
    }

    @Test func perExperimentWeighsRecentRunsMore() throws {
        // Newest first: the latest run deviated after nine clean ones.
        let regressed = ExperimentScore(newestFirst: [0] + Array(repeating: 1, count: 9))
        let recovered = ExperimentScore(newestFirst: Array(repeating: 1, count: 9) + [0])
        let reliablyMean = 0.9  // Reliably: plain mean, the same for both histories
        #expect(try regressed.value.unwrap() < reliablyMean - 0.05)
        #expect(try recovered.value.unwrap() > reliablyMean + 0.05)
        #expect(regressed.scoredExecutions == 10)
        // Exact formula: Σ 0.85^i·s_i / Σ 0.85^i.
        let weights = (0..<10).map { pow085($0) }
        let expected = weights.dropFirst().reduce(0, +) / weights.reduce(0, +)
        #expect(abs(try regressed.value.unwrap() - expected) < 1e-12)
    }

    @Test func unscoredRunsAreSkippedAndTheWindowHolds() throws {
        let s = ExperimentScore(newestFirst: [nil, 1, nil, 0.5] + Array(repeating: 0, count: 20), policy: ScoringPolicy(window: 3, decay: 1))
        #expect(s.scoredExecutions == 3)
        #expect(abs(try s.value.unwrap() - 0.5) < 1e-12)
        #expect(ExperimentScore(newestFirst: [nil, nil]).value == nil)
        #expect(ExperimentScore(newestFirst: []).scoredExecutions == 0)
    }

    private func pow085(_ i: Int) -> Double { (0..<i).reduce(1.0) { acc, _ in acc * 0.85 } }
}
