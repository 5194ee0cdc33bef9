/// How an execution ended, decided from the journal first and from the process only when there
/// is no journal: `chaos run` exits 0 for a baseline not met and for failed method activities,
/// so the exit code alone would call those runs green.
///
/// The rules, in order (first match wins):
///
/// | journal | other facts | status | reason |
/// |---|---|---|---|
/// | none | runner stopped it at its time limit | timedOut | `time_limit` |
/// | none | runner cancelled it | interrupted | `cancelled` |
/// | none | killed by a signal the runner did not send (OOM killer, an operator) | lost | `killed` |
/// | none | exit code ≠ 0 | failed | `pre_run_error` (invalid experiment, bad rollback ref, load failure) |
/// | none | exit code 0 | failed | `journal_missing` (chaos always writes one when it gets that far) |
/// | none | neither exit code nor signal (the runner lost the process) | lost | `runner_lost` |
/// | unreadable | | failed | `journal_unreadable` |
/// | interrupted/failed/aborted | runner stopped it at its time limit | timedOut | `time_limit` |
/// | interrupted | runner cancelled it | interrupted | `cancelled` |
/// | any | `deviated: true` | deviated | `steady_state_after_not_met` |
/// | any | a check *during* the method not met | deviated | `steady_state_during_not_met` |
/// | completed | steady state *before* not met | deviated | `baseline_not_met` |
/// | completed | a method activity failed, did not finish, or an action's process exited ≠ 0 / HTTP ≥ 400 | failed | `method_activity_failed` |
/// | completed | a rollback failed | completed | `rollback_failed` |
/// | completed | | completed | `steady_state_met` |
/// | failed | | failed | `hypothesis_probe_failed` or `run_failed` |
/// | aborted | | aborted | `run_aborted` |
/// | interrupted | | interrupted | `interrupted` |
///
/// Why a baseline not met is `deviated` and not `failed`: the system was outside its steady state
/// before any fault, which is a fact about the system that its owners must act on (as for a
/// deviation), not a defect of the experiment. A failed method activity is `failed`: the fault was
/// not injected as designed, so "the steady state held" proves nothing.
public struct ExecutionOutcome: Sendable, Hashable {
    /// Why the runner stopped the process, when it did.
    public enum StopRequest: Sendable, Hashable {
        /// A user (or a control) asked to terminate the run.
        case cancelled
        /// The run exceeded its time limit.
        case timeLimit
    }

    public struct Reason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let steadyStateMet = Self(rawValue: "steady_state_met")
        public static let rollbackFailed = Self(rawValue: "rollback_failed")
        public static let steadyStateAfterNotMet = Self(rawValue: "steady_state_after_not_met")
        public static let steadyStateDuringNotMet = Self(rawValue: "steady_state_during_not_met")
        public static let baselineNotMet = Self(rawValue: "baseline_not_met")
        public static let methodActivityFailed = Self(rawValue: "method_activity_failed")
        public static let hypothesisProbeFailed = Self(rawValue: "hypothesis_probe_failed")
        public static let runFailed = Self(rawValue: "run_failed")
        public static let runAborted = Self(rawValue: "run_aborted")
        public static let interrupted = Self(rawValue: "interrupted")
        public static let cancelled = Self(rawValue: "cancelled")
        public static let timeLimit = Self(rawValue: "time_limit")
        public static let killed = Self(rawValue: "killed")
        public static let preRunError = Self(rawValue: "pre_run_error")
        public static let journalMissing = Self(rawValue: "journal_missing")
        public static let journalUnreadable = Self(rawValue: "journal_unreadable")
        public static let runnerLost = Self(rawValue: "runner_lost")
    }

    /// Always a terminal status.
    public let status: ExecutionStatus
    public let reason: Reason
    /// The journal's facts, when there was a readable journal.
    public let journal: JournalSummary?

    public init(status: ExecutionStatus, reason: Reason, journal: JournalSummary? = nil) {
        precondition(status.isTerminal, "an outcome is a terminal status")
        self.status = status
        self.reason = reason
        self.journal = journal
    }

    /// - Parameters:
    ///   - journal: the parsed journal file, nil when `chaos` wrote none.
    ///   - exitCode: the exit status when the process exited normally.
    ///   - signal: the signal that ended the process, when it was killed.
    ///   - stopRequest: why the runner itself stopped the run, if it did (it sends SIGTERM, then
    ///     SIGKILL; chaos then usually still writes an `interrupted` journal).
    public static func classify(
        journal: JSONValue?, exitCode: Int32?, signal: Int32?, stopRequest: StopRequest? = nil
    ) -> ExecutionOutcome {
        guard let journal else {
            switch (stopRequest, signal, exitCode) {
            case (.timeLimit?, _, _): return .init(status: .timedOut, reason: .timeLimit)
            case (.cancelled?, _, _): return .init(status: .interrupted, reason: .cancelled)
            case (nil, _?, _): return .init(status: .lost, reason: .killed)
            case (nil, nil, let code?) where code != 0: return .init(status: .failed, reason: .preRunError)
            case (nil, nil, _?): return .init(status: .failed, reason: .journalMissing)
            case (nil, nil, nil): return .init(status: .lost, reason: .runnerLost)
            }
        }
        guard let summary = JournalSummary(journal: journal) else {
            return .init(status: .failed, reason: .journalUnreadable)
        }
        return verdict(summary, stopRequest: stopRequest)
    }

    private static func verdict(_ j: JournalSummary, stopRequest: StopRequest?) -> ExecutionOutcome {
        func outcome(_ status: ExecutionStatus, _ reason: Reason) -> ExecutionOutcome {
            ExecutionOutcome(status: status, reason: reason, journal: j)
        }
        // A run that finished with a verdict before the stop landed keeps its verdict.
        if stopRequest == .timeLimit, j.status != .completed { return outcome(.timedOut, .timeLimit) }
        if stopRequest == .cancelled, j.status == .interrupted { return outcome(.interrupted, .cancelled) }
        if j.deviated { return outcome(.deviated, .steadyStateAfterNotMet) }
        if j.steadyStateDuring == false { return outcome(.deviated, .steadyStateDuringNotMet) }
        switch j.status {
        case .completed:
            if j.steadyStateBefore == false { return outcome(.deviated, .baselineNotMet) }
            if j.steadyStateAfter == false { return outcome(.deviated, .steadyStateAfterNotMet) }
            if j.method.failed + j.method.unfinished > 0 { return outcome(.failed, .methodActivityFailed) }
            if j.rollbacks.failed + j.rollbacks.unfinished > 0 { return outcome(.completed, .rollbackFailed) }
            return outcome(.completed, .steadyStateMet)
        case .failed:
            let probeFailed = j.steadyStateBefore == false || j.steadyStateAfter == false
            return outcome(.failed, probeFailed ? .hypothesisProbeFailed : .runFailed)
        case .aborted:
            return outcome(.aborted, .runAborted)
        case .interrupted:
            return outcome(.interrupted, .interrupted)
        }
    }
}
