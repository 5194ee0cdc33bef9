import Foundation

// Schedules in words for people ("at 03:00 on Monday to Friday (Europe/Paris)"), from the parsed
// values the dispatcher uses, so the words never disagree with the fires.

extension CronExpression {
    /// The expression in words, e.g. `every 15 minutes`, `at 09:00 and 17:30 on Monday to Friday`,
    /// `at minute 5 of every hour on day 1 of the month in January`.
    public var words: String {
        var parts = [timeWords]
        if let days = dayWords { parts.append(days) }
        if months.bits != Self.allBits(.month) {
            parts.append("in " + Self.list(months, names: Self.monthWords))
        }
        return parts.joined(separator: " ")
    }

    private var timeWords: String {
        let allMinutes = minutes.bits == Self.allBits(.minute), allHours = hours.bits == Self.allBits(.hour)
        let minuteValues = Self.members(minutes), hourValues = Self.members(hours)
        if allMinutes && allHours { return "every minute" }
        if allHours, let step = Self.step(minutes, .minute) { return "every \(step) minutes" }
        if allHours { return "at minute " + Self.list(minutes) + " of every hour" }
        // A few exact times read best as clock times.
        if minuteValues.count * hourValues.count <= 6 {
            let times = hourValues.flatMap { h in minuteValues.map { m in Self.clock(h, m) } }
            return "at " + Self.joined(times)
        }
        let minutePart = allMinutes ? "every minute" : Self.step(minutes, .minute).map { "every \($0) minutes" }
            ?? "at minute " + Self.list(minutes)
        let hourPart = Self.step(hours, .hour).map { "of every \($0) hours" } ?? "of hour " + Self.list(hours)
        return minutePart + " " + hourPart
    }

    /// Nil for every day. Restricted in both fields, a day matching either one fires (Vixie cron);
    /// otherwise (a field starting with `*`, as in `*/2`) both must match.
    private var dayWords: String? {
        let dom = "on day " + Self.list(daysOfMonth) + " of the month"
        let dow = Self.list(daysOfWeek, names: Self.weekdayWords)
        if !dayOfMonthStar && !dayOfWeekStar { return dom + " or on " + dow }
        let domAll = daysOfMonth.bits == Self.allBits(.dayOfMonth), dowAll = daysOfWeek.bits == Self.allBits(.dayOfWeek)
        switch (domAll, dowAll) {
        case (true, true): return nil
        case (true, false): return "on " + dow
        case (false, true): return dom
        case (false, false): return dom + " when it is a " + dow.replacingOccurrences(of: " and ", with: " or ")
        }
    }

    private static let monthWords = [
        "", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    ]
    private static let weekdayWords = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    private static func allBits(_ field: CronField) -> UInt64 {
        switch field {
        case .dayOfWeek: (1 << 7) - 1  // Sunday is stored as 0 only
        default: field.range.reduce(0) { $0 | 1 << UInt64($1) }
        }
    }

    private static func members(_ set: FieldSet) -> [Int] { (0..<64).filter(set.contains) }

    /// `s` when the set is exactly every s-th value from the field's start (s > 1).
    private static func step(_ set: FieldSet, _ field: CronField) -> Int? {
        let values = members(set)
        guard values.count > 1, values[0] == field.range.lowerBound else { return nil }
        let step = values[1] - values[0]
        guard step > 1 else { return nil }
        let expected = Array(stride(from: field.range.lowerBound, through: field.range.upperBound, by: step))
        return values == expected ? step : nil
    }

    /// Members as a list, runs of three or more as ranges: `1, 15 and 20 to 25`.
    private static func list(_ set: FieldSet, names: [String]? = nil) -> String {
        let values = members(set)
        let name = { (v: Int) in names.map { $0[v] } ?? String(v) }
        var items: [String] = []
        var index = 0
        while index < values.count {
            var end = index
            while end + 1 < values.count, values[end + 1] == values[end] + 1 { end += 1 }
            if end - index >= 2 {
                items.append("\(name(values[index])) to \(name(values[end]))")
            } else {
                items += values[index...end].map(name)
            }
            index = end + 1
        }
        return joined(items)
    }

    private static func joined(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " and " + items[items.count - 1]
    }

    private static func clock(_ hour: Int, _ minute: Int) -> String {
        (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }
}

extension Schedule {
    /// The schedule in words; cron names its zone.
    public var words: String {
        switch self {
        case .now: return "once, as soon as it is created"
        case .once(let at): return "once, at " + Self.utc(at)
        case .interval(let interval):
            return "every " + Self.duration(interval.every) + " from " + Self.utc(interval.anchor)
        case .cron(let cron):
            // Foundation names UTC "GMT"; people asked for UTC.
            let zone = cron.timeZone.identifier == "GMT" ? "UTC" : cron.timeZone.identifier
            return cron.expression.words + " (" + zone + ")"
        }
    }

    static func utc(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!).year().month().day()
            .dateTimeSeparator(.space).time(includingFractionalSeconds: false)) + " UTC"
    }

    /// `90 seconds` stays exact; whole minutes, hours and days read as such.
    static func duration(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        for (unit, size) in [("day", Int64(86_400)), ("hour", 3_600), ("minute", 60)] where seconds % size == 0 {
            let n = seconds / size
            return n == 1 ? unit : "\(n) \(unit)s"
        }
        return seconds == 1 ? "second" : "\(seconds) seconds"
    }
}
