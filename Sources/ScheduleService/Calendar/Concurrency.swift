public import Foundation

/// What a plan does when an occurrence comes due while earlier runs are still in flight.
public enum ConcurrencyPolicy: String, Sendable, Hashable, CaseIterable {
    /// Start alongside them, up to the plan's maximum in flight.
    case allow
    /// Start only when nothing is in flight.
    case forbid
    /// Cancel the oldest runs in flight to make room, then start.
    case replace
}

/// A run of the plan that has started and not finished.
public struct RunInFlight: Sendable, Hashable {
    public let id: String
    public let startedAt: Date

    public init(id: String, startedAt: Date) {
        self.id = id
        self.startedAt = startedAt
    }
}

public enum ConcurrencyDecision: Sendable, Hashable {
    case start
    /// Cancel these runs (oldest first), then start.
    case startAfterCancelling([String])
    case skip(SkipReason)

    public enum SkipReason: String, Sendable, Hashable {
        /// `forbid` and a run is in flight.
        case runInFlight
        /// `allow` and the maximum in flight is reached.
        case maximumInFlight
    }
}

/// A concurrency policy with its maximum of runs in flight.
public struct ConcurrencyRule: Sendable, Hashable {
    public static let maximumAllowed = 1_000

    public let policy: ConcurrencyPolicy
    public let maximumInFlight: Int

    /// `forbid` always means one run at a time, whatever `maximumInFlight` says.
    public init(_ policy: ConcurrencyPolicy, maximumInFlight: Int = 1) throws(ScheduleError) {
        guard (1...Self.maximumAllowed).contains(maximumInFlight) else {
            throw ScheduleError(.invalidPolicy, "maximum in flight must be between 1 and \(Self.maximumAllowed), got \(maximumInFlight)")
        }
        self.policy = policy
        self.maximumInFlight = policy == .forbid ? 1 : maximumInFlight
    }

    /// What to do with a new run given the runs in flight. `replace` cancels just enough of the
    /// oldest runs (by start time, then id) to stay within the maximum after starting.
    public func decide(inFlight: [RunInFlight]) -> ConcurrencyDecision {
        switch policy {
        case .forbid:
            return inFlight.isEmpty ? .start : .skip(.runInFlight)
        case .allow:
            return inFlight.count < maximumInFlight ? .start : .skip(.maximumInFlight)
        case .replace:
            let excess = inFlight.count - maximumInFlight + 1
            guard excess > 0 else { return .start }
            let oldest = inFlight.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }.prefix(excess)
            return .startAfterCancelling(oldest.map(\.id))
        }
    }
}
