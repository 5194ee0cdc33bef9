/// Where an execution is in its life: pending → running → exactly one terminal state.
public enum ExecutionStatus: String, Sendable, Hashable, CaseIterable {
    /// Created, `chaos run` not started yet.
    case pending
    case running
    /// The journal says the steady state held and every method activity succeeded.
    case completed
    /// The system did not hold its steady state (before, during or after the method).
    case deviated
    /// The experiment could not be carried out (pre-run error, a failing activity or probe).
    case failed
    /// Chaos Toolkit aborted the run on an unexpected error.
    case aborted
    /// Stopped on purpose (a user, a control, a signal from the runner).
    case interrupted
    /// Nobody knows how it ended: the runner died or the process was killed from outside.
    case lost
    /// The runner stopped it because it ran past its time limit.
    case timedOut = "timed_out"

    public var isTerminal: Bool {
        switch self {
        case .pending, .running: false
        default: true
        }
    }

    /// What may follow `self`. From pending a run may also end without ever running: it failed to
    /// start, was cancelled before starting, or its runner vanished. `timedOut` needs a running
    /// process, and a verdict (completed, deviated, aborted) needs a journal, so neither can
    /// follow pending.
    public var allowedSuccessors: Set<ExecutionStatus> {
        switch self {
        case .pending: [.running, .failed, .interrupted, .lost]
        case .running: [.completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut]
        default: []
        }
    }

    public enum TransitionResult: Sendable, Hashable {
        case moved(to: ExecutionStatus)
        /// Asked for the state it is already in: a retried report, nothing to write.
        case unchanged
    }

    /// Checks a requested move. Asking for the current state again is `.unchanged` (so retried
    /// reports are idempotent); anything not in `allowedSuccessors` is an `IllegalTransition`
    /// (FAILED_PRECONDITION at the RPC layer).
    public func transition(to next: ExecutionStatus) throws(IllegalTransition) -> TransitionResult {
        if next == self { return .unchanged }
        guard allowedSuccessors.contains(next) else { throw IllegalTransition(from: self, to: next) }
        return .moved(to: next)
    }

    /// How a completion moves an execution to `final`. An external run (a plain `chaos run`
    /// reporting over HTTP, no runner) never says that it started, so its completion also starts
    /// it when it is still pending: pending → running → `final`, both moves checked. Anyone
    /// else's completion is the single move `transition(to:)` checks.
    public func completing(to final: ExecutionStatus, external: Bool) throws(IllegalTransition) -> Completing {
        if external, self == .pending, final != .pending {
            guard case .moved = try ExecutionStatus.running.transition(to: final) else {
                throw IllegalTransition(from: self, to: final)  // `final` is running: no completion
            }
            return .startedAndMoved(to: final)
        }
        return switch try transition(to: final) {
        case .moved(let next): .moved(to: next)
        case .unchanged: .unchanged
        }
    }

    public enum Completing: Sendable, Hashable {
        case moved(to: ExecutionStatus)
        /// Started (`started_us` set) and ended at once.
        case startedAndMoved(to: ExecutionStatus)
        case unchanged
    }
}

public struct IllegalTransition: Error, Sendable, Hashable, CustomStringConvertible {
    public let from: ExecutionStatus
    public let to: ExecutionStatus

    public init(from: ExecutionStatus, to: ExecutionStatus) {
        self.from = from
        self.to = to
    }

    public var description: String {
        from.isTerminal
            ? "execution is already \(from.rawValue); it cannot become \(to.rawValue)"
            : "an execution that is \(from.rawValue) cannot become \(to.rawValue)"
    }
}
