public import Foundation

/// A set of days of the week.
public struct Weekdays: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x7F }

    public static let sunday = Weekdays(rawValue: 1 << 0)
    public static let monday = Weekdays(rawValue: 1 << 1)
    public static let tuesday = Weekdays(rawValue: 1 << 2)
    public static let wednesday = Weekdays(rawValue: 1 << 3)
    public static let thursday = Weekdays(rawValue: 1 << 4)
    public static let friday = Weekdays(rawValue: 1 << 5)
    public static let saturday = Weekdays(rawValue: 1 << 6)
    public static let weekdays: Weekdays = [.monday, .tuesday, .wednesday, .thursday, .friday]
    public static let weekend: Weekdays = [.saturday, .sunday]
    public static let everyDay = Weekdays(rawValue: 0x7F)

    /// 0 = Sunday ... 6 = Saturday.
    func contains(weekday: Int) -> Bool { rawValue & (1 << UInt8(weekday)) != 0 }
}

/// A wall-clock time of day, minute precision; 24:00 is allowed as the end of a window.
public struct LocalTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let minuteOfDay: Int

    public init(hour: Int, minute: Int = 0) throws(ScheduleError) {
        guard (0...23).contains(hour) && (0...59).contains(minute) || hour == 24 && minute == 0 else {
            throw ScheduleError(.invalidLocalTime, "time of day \(hour):\(minute) is out of range 00:00-24:00")
        }
        minuteOfDay = hour * 60 + minute
    }

    /// `HH:MM`, exactly two digits each.
    public init(parsing text: String) throws(ScheduleError) {
        let bytes = Array(text.utf8.prefix(6))
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":"),
              bytes.enumerated().allSatisfy({ $0.offset == 2 || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0.element) })
        else {
            throw ScheduleError(.invalidLocalTime, "time of day \"\(text.prefix(16))\" is not HH:MM")
        }
        let digit = { (i: Int) in Int(bytes[i] - UInt8(ascii: "0")) }
        try self.init(hour: digit(0) * 10 + digit(1), minute: digit(3) * 10 + digit(4))
    }

    public static func < (a: LocalTime, b: LocalTime) -> Bool { a.minuteOfDay < b.minuteOfDay }

    public var description: String {
        let h = minuteOfDay / 60, m = minuteOfDay % 60
        return (h < 10 ? "0" : "") + "\(h):" + (m < 10 ? "0" : "") + "\(m)"
    }
}

/// Days of the week and a wall-clock time range in a zone, e.g. weekdays 09:00-17:00
/// Europe/Paris. A range whose end is before its start runs overnight: it opens on a listed day
/// and closes the next morning. The window is open whenever the zone's wall clock reads a time
/// inside it, so across daylight-saving changes it is as long as the wall clock says (one hour
/// longer in a fall-back overlap, shorter or absent in a spring-forward gap).
public struct RunWindow: Sendable, Hashable {
    public let days: Weekdays
    public let start: LocalTime
    public let end: LocalTime
    public let timeZone: TimeZone
    let zone: ZoneRules

    public init(days: Weekdays, from start: LocalTime, to end: LocalTime, timeZone: TimeZone) throws(ScheduleError) {
        guard !days.isEmpty else { throw ScheduleError(.invalidWindow, "a window needs at least one day") }
        guard start != end else {
            throw ScheduleError(.invalidWindow, "window \(start)-\(end) is empty; use 00:00-24:00 for a whole day")
        }
        guard start.minuteOfDay < 24 * 60 else { throw ScheduleError(.invalidWindow, "a window cannot start at 24:00") }
        self.days = days
        self.start = start
        self.end = end
        self.timeZone = timeZone
        zone = ZoneRules(timeZone: timeZone)
    }

    /// The same, with the zone given by IANA identifier (see `CronSchedule`).
    public init(days: Weekdays, from start: LocalTime, to end: LocalTime, timeZoneIdentifier: String) throws(ScheduleError) {
        try self.init(days: days, from: start, to: end, timeZone: TimeZone.iana(timeZoneIdentifier))
    }

    public func contains(_ date: Date) -> Bool {
        contains(second: Int64(date.timeIntervalSince1970.rounded(.down)))
    }

    func contains(second instant: Int64) -> Bool {
        let wall = zone.wall(at: instant)
        let day = Civil.floorDiv(wall, Civil.secondsPerDay)
        let minute = Int(wall - day * Civil.secondsPerDay) / 60
        let weekday = Civil.weekday(days: day)
        if start < end {
            return days.contains(weekday: weekday) && minute >= start.minuteOfDay && minute < end.minuteOfDay
        }
        return days.contains(weekday: weekday) && minute >= start.minuteOfDay
            || days.contains(weekday: (weekday + 6) % 7) && minute < end.minuteOfDay
    }

    /// The first instant at or after `from` at which `contains` equals `wanted`, looking at most
    /// 15 days ahead. Whether the window contains an instant only changes where the wall clock
    /// crosses a start or end time, or jumps at a transition, so only those instants are tried.
    func firstInstant(atOrAfter from: Int64, containing wanted: Bool) -> Int64? {
        if contains(second: from) == wanted { return from }
        let firstDay = Civil.floorDiv(zone.wall(at: from), Civil.secondsPerDay) - 1
        var candidates: [Int64] = []
        for day in firstDay...(firstDay + 16) {
            for minute in [start.minuteOfDay, end.minuteOfDay] {
                switch zone.resolve(wall: day * Civil.secondsPerDay + Int64(minute) * 60) {
                case .unique(let i): candidates.append(i)
                case .repeated(let a, let b): candidates += [a, b]
                case .skipped(let t): candidates.append(t)
                }
            }
        }
        var cursor = from
        while let t = zone.nextTransition(after: cursor), t <= from + 16 * Civil.secondsPerDay {
            candidates.append(t)
            cursor = t
        }
        return candidates.filter { $0 > from && contains(second: $0) == wanted }.min()
    }
}
