public import Foundation

/// Why an occurrence of a schedule got no run of its own.
public enum SkipCause: Sendable, Hashable {
    /// Not started within the lateness bound of its due time (no dispatcher ran, or the plan was
    /// paused), and nothing ran for it.
    case missed
    /// Missed, and covered by the catch-up run of this later missed occurrence (`runOnce`).
    case caughtUp(by: Date)
    /// Due together with a later occurrence that got the run (a late pass, or several occurrences
    /// postponed to one window opening).
    case folded(into: Date)
    /// Outside every run window of the plan.
    case outsideWindows
    /// Inside a blackout, with the blackout's reason (empty when it has none).
    case blackout(reason: String)
}

/// One occurrence that gets a SKIPPED plan run.
public struct SkippedOccurrence: Sendable, Hashable {
    public let scheduled: Date
    public let cause: SkipCause

    public init(scheduled: Date, cause: SkipCause) {
        self.scheduled = scheduled
        self.cause = cause
    }
}

/// Skipped occurrences not listed one by one (beyond `SkipLedger.limit` in one decision): one
/// summary record stands for them.
public struct SkipSummary: Sendable, Hashable {
    public var count = 0
    public var missed = 0
    public var closed = 0
    public var folded = 0
    public var first: Date = .distantFuture
    public var last: Date = .distantPast
    /// False when the walk jumped over occurrences it did not count (a very long downtime).
    public var exact = true
}

/// What one decision skipped: the latest `limit` occurrences in full, the rest summed up. Memory
/// and records stay bounded however long the downtime was.
struct SkipLedger {
    /// Occurrences recorded one by one per decision (per plan and pass).
    static let limit = 100

    enum Raw { case missed, folded, closed }

    private(set) var listed: [(scheduled: Date, raw: Raw)] = []
    private(set) var summary = SkipSummary()

    mutating func add(_ scheduled: Date, _ raw: Raw) {
        listed.append((scheduled, raw))
        // Amortised: spill the oldest half only when twice the limit is reached.
        if listed.count >= 2 * Self.limit { spill(listed.count - Self.limit) }
    }

    mutating func markInexact() { summary.exact = false }

    /// Takes `scheduled` out again: it gets a run after all (a catch-up).
    mutating func remove(_ scheduled: Date) {
        if let index = listed.lastIndex(where: { $0.scheduled == scheduled }) {
            listed.remove(at: index)
        } else if summary.count > 0 {
            summary.count -= 1
            summary.missed = max(0, summary.missed - 1)
            // The summary is keyed by its first occurrence; the run has that key now.
            if summary.first == scheduled { summary.first = scheduled.addingTimeInterval(1e-6) }
        }
    }

    /// The listed ones with their final causes, and the summary (nil when everything is listed).
    /// `catchUp`: the occurrence whose catch-up run (now, or once the windows open) stands for
    /// the missed ones.
    mutating func finish(fire: Fire?, catchUp: Date?, availability: Availability) -> ([SkippedOccurrence], SkipSummary?) {
        if listed.count > Self.limit { spill(listed.count - Self.limit) }
        let occurrences = listed.map { entry -> SkippedOccurrence in
            let cause: SkipCause
            switch entry.raw {
            case .missed:
                cause = catchUp.map { .caughtUp(by: $0) } ?? .missed
            case .folded:
                cause = fire.map { .folded(into: $0.occurrence) } ?? .missed
            case .closed:
                cause = availability.closure(at: entry.scheduled) ?? .outsideWindows
            }
            return SkippedOccurrence(scheduled: entry.scheduled, cause: cause)
        }
        return (occurrences, summary.count > 0 ? summary : nil)
    }

    private mutating func spill(_ count: Int) {
        for entry in listed.prefix(count) {
            summary.count += 1
            switch entry.raw {
            case .missed: summary.missed += 1
            case .folded: summary.folded += 1
            case .closed: summary.closed += 1
            }
            summary.first = min(summary.first, entry.scheduled)
            summary.last = max(summary.last, entry.scheduled)
        }
        listed.removeFirst(count)
    }
}

/// The `reason` of SKIPPED plan runs, for people. One place, so a manual trigger and a scheduled
/// occurrence say the same thing.
public enum SkipText {
    public static func reason(_ cause: SkipCause, policy: FirePolicy) -> String {
        switch cause {
        case .missed:
            let policyName = policy.missedFire == .skip ? "SKIP"
                : "RUN_ONCE, without a catch-up (an occurrence after it was on time, or the catch-up fell outside the run windows)"
            return "missed: not started within \(seconds(policy.lateness)) of its due time (no scheduler was running, "
                + "or the plan was paused); missed-fire policy \(policyName)"
        case .caughtUp(let by):
            return "missed: not started within \(seconds(policy.lateness)) of its due time; the catch-up run for the "
                + "occurrence at \(stamp(by)) stands for it (missed-fire policy RUN_ONCE)"
        case .folded(let into):
            return "folded into the run of the later occurrence at \(stamp(into)), due at the same time"
        case .outsideWindows:
            return "outside the plan's run windows"
        case .blackout(let reason):
            return reason.isEmpty ? "in a blackout" : "in a blackout: \(clip(reason))"
        }
    }

    /// The summary record's reason.
    public static func summary(_ s: SkipSummary) -> String {
        var parts: [String] = []
        if s.missed > 0 { parts.append("\(s.missed) missed") }
        if s.closed > 0 { parts.append("\(s.closed) outside the run windows or in a blackout") }
        if s.folded > 0 { parts.append("\(s.folded) folded into a later run") }
        return "\(s.exact ? "" : "at least ")\(s.count) earlier occurrences from \(stamp(s.first)) to \(stamp(s.last)) "
            + "were skipped and are not recorded one by one (\(parts.joined(separator: ", "))); "
            + "at most \(SkipLedger.limit) are recorded individually per pass"
    }

    public static let halted = "the organisation is halted"
    public static let forbid = "a run of this plan is still in flight (concurrency policy FORBID)"

    public static func queueFull(_ maximum: Int) -> String {
        "\(maximum) runs of this plan are in flight (max_in_flight) and \(maximum) more are already waiting"
    }

    /// A blackout's reason is the user's text: at most 200 characters of it, on one line.
    static func clip(_ text: String) -> String {
        let line = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        return line.count > 200 ? String(line.prefix(200)) + "…" : line
    }

    /// UTC, to the second (a value-type format: no formatter object per call).
    static func stamp(_ date: Date) -> String { date.formatted(.iso8601) }

    private static func seconds(_ d: Duration) -> String { "\(d.components.seconds) s" }
}
