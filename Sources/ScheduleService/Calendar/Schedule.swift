public import Foundation

/// A fixed interval from an anchor: fires at `anchor + k * every` for k = 0, 1, 2, ... Real
/// elapsed time, so daylight-saving changes do not affect it.
public struct IntervalSchedule: Sendable, Hashable {
    public static let minimum: Duration = .seconds(1)
    public static let maximum: Duration = .seconds(3_660 * 86_400)

    public let anchor: Date
    public let every: Duration
    private let anchorMicros: Int64
    private let stepMicros: Int64
    private static let limitMicros = Double(Civil.lastSecond) * 1_000_000

    public init(every: Duration, anchor: Date) throws(ScheduleError) {
        guard every >= Self.minimum, every <= Self.maximum else {
            throw ScheduleError(.invalidInterval, "interval must be between 1 second and 3660 days, got \(every)")
        }
        let micros = anchor.timeIntervalSince1970 * 1_000_000
        guard micros.isFinite, abs(micros) < Self.limitMicros else {
            throw ScheduleError(.invalidInterval, "interval anchor is out of range")
        }
        self.anchor = anchor
        self.every = every
        anchorMicros = Int64(micros.rounded())
        let (seconds, attoseconds) = every.components
        stepMicros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    public func nextFire(after date: Date) -> Date? {
        let micros = date.timeIntervalSince1970 * 1_000_000
        guard micros.isFinite else { return nil }
        guard micros >= Double(anchorMicros) else { return anchor }
        guard micros < Self.limitMicros else { return nil }
        var k = (Int64(micros.rounded(.down)) - anchorMicros) / stepMicros + 1
        // Microseconds through a Double can land one tick short; never return `date` itself.
        while true {
            let (product, overflow) = k.multipliedReportingOverflow(by: stepMicros)
            let (micros, overflowed) = anchorMicros.addingReportingOverflow(product)
            guard !overflow, !overflowed, Double(micros) < Self.limitMicros else { return nil }
            let fire = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            if fire > date { return fire }
            k += 1
        }
    }
}

/// When a plan fires.
public enum Schedule: Sendable, Hashable {
    /// Run once, as soon as possible: `requestedAt` is when it was asked for. Never subject to the
    /// missed-fire policy (a request to run now is not dropped because the service was down).
    case now(requestedAt: Date)
    /// Run once at a given instant.
    case once(at: Date)
    case interval(IntervalSchedule)
    case cron(CronSchedule)

    /// The first fire strictly after `date`, or nil when the schedule has no more.
    public func nextFire(after date: Date) -> Date? {
        switch self {
        case .now(let at), .once(let at): at > date ? at : nil
        case .interval(let interval): interval.nextFire(after: date)
        case .cron(let cron): cron.nextFire(after: date)
        }
    }

    /// The next `count` fires after `date` (fewer if the schedule ends).
    public func nextFires(after date: Date, count: Int) -> [Date] {
        var fires: [Date] = []
        var cursor = date
        while fires.count < count, let next = nextFire(after: cursor) {
            fires.append(next)
            cursor = next
        }
        return fires
    }
}
