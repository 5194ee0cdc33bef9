public import Foundation

/// A period during which a plan must not start runs.
public struct Blackout: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        case period(start: Date, end: Date)
        case recurring(RunWindow)
    }

    let kind: Kind
    /// For people: why nothing may start (e.g. "release freeze"); quoted in SKIPPED plan runs.
    public var reason = ""

    /// From `start` (included) to `end` (excluded), absolute instants.
    public static func period(from start: Date, to end: Date, reason: String = "") throws(ScheduleError) -> Blackout {
        guard start.timeIntervalSince1970.isFinite, end.timeIntervalSince1970.isFinite, start < end else {
            throw ScheduleError(.invalidBlackout, "a blackout period must end after it starts")
        }
        return Blackout(kind: .period(start: start, end: end), reason: reason)
    }

    /// Every time the wall clock is inside `window`, e.g. Fridays 16:00-24:00 Europe/Paris.
    public static func recurring(_ window: RunWindow) -> Blackout { Blackout(kind: .recurring(window)) }

    public func contains(_ date: Date) -> Bool {
        switch kind {
        case .period(let start, let end): start <= date && date < end
        case .recurring(let window): window.contains(date)
        }
    }

    /// When the blackout that contains `date` is over; nil if it never ends (a recurring blackout
    /// that covers the whole week).
    func end(containing date: Date) -> Date? {
        switch kind {
        case .period(_, let end): return end
        case .recurring(let window):
            let second = Int64(date.timeIntervalSince1970.rounded(.down))
            return window.firstInstant(atOrAfter: second, containing: false).map { Date(timeIntervalSince1970: Double($0)) }
        }
    }

    var periodEnd: Date? {
        if case .period(_, let end) = kind { end } else { nil }
    }
}

/// When a plan may start runs: inside any of its windows (always, when it has none) and outside
/// all of its blackouts.
public struct Availability: Sendable, Hashable {
    public var windows: [RunWindow]
    public var blackouts: [Blackout]

    public static let always = Availability(windows: [], blackouts: [])

    public init(windows: [RunWindow] = [], blackouts: [Blackout] = []) {
        self.windows = windows
        self.blackouts = blackouts
    }

    public func isAllowed(at date: Date) -> Bool {
        (windows.isEmpty || windows.contains { $0.contains(date) }) && !blackouts.contains { $0.contains(date) }
    }

    /// The first blackout (in the plan's order) that contains `date`.
    public func blackout(at date: Date) -> Blackout? { blackouts.first { $0.contains(date) } }

    /// Why no run may start at `date`; nil when one may. A blackout wins over a closed window: it
    /// is the more specific reason.
    public func closure(at date: Date) -> SkipCause? {
        if let blackout = blackout(at: date) { return .blackout(reason: blackout.reason) }
        return isAllowed(at: date) ? nil : .outsideWindows
    }

    /// The first instant at or after `date` at which runs may start, or nil if there is none:
    /// jumps to the next window opening or the end of the current blackout until both agree.
    /// Past the last absolute blackout everything repeats weekly, so the search stops 15 days
    /// after it.
    public func nextAllowed(from date: Date) -> Date? {
        guard date.timeIntervalSince1970.isFinite else { return nil }
        let lastPeriodEnd = blackouts.compactMap(\.periodEnd).max() ?? date
        let horizon = max(lastPeriodEnd, date).addingTimeInterval(15 * 86_400)
        var cursor = date
        while cursor <= horizon {
            if isAllowed(at: cursor) { return cursor }
            var next = cursor
            if !windows.isEmpty, !windows.contains(where: { $0.contains(cursor) }) {
                let second = Int64(cursor.timeIntervalSince1970.rounded(.down))
                guard let opening = windows.compactMap({ $0.firstInstant(atOrAfter: second, containing: true) }).min() else {
                    return nil
                }
                next = max(next, Date(timeIntervalSince1970: Double(opening)))
            }
            for blackout in blackouts where blackout.contains(cursor) {
                guard let end = blackout.end(containing: cursor) else { return nil }
                next = max(next, end)
            }
            guard next > cursor else { return nil }
            cursor = next
        }
        return nil
    }
}
