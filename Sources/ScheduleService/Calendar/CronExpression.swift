/// A set of small integers (0...63), one bit each.
struct FieldSet: Hashable, Sendable {
    var bits: UInt64 = 0

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0 }
    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }

    /// The smallest member that is at least `value`.
    func first(atLeast value: Int) -> Int? {
        guard value < 64 else { return nil }
        let masked = bits & (UInt64.max << UInt64(max(value, 0)))
        return masked == 0 ? nil : masked.trailingZeroBitCount
    }
}

/// A parsed five-field cron expression (minute hour day-of-month month day-of-week), as a value.
///
/// Accepted: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b,c`, month names
/// JAN-DEC and weekday names SUN-SAT (any case, also inside ranges), 0 and 7 for Sunday, and the
/// aliases `@yearly @annually @monthly @weekly @daily @midnight @hourly`. Everything else is
/// rejected with a `CronParseError` naming the field, the token and the reason. When both
/// day fields are restricted (neither starts with `*`), a day matches if *either* matches
/// (Vixie cron); otherwise both must match.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// Longest accepted input, in UTF-8 bytes. Every real expression fits in a fraction of it.
    public static let maximumLength = 512

    /// The expression as given, trimmed.
    public let source: String
    let minutes: FieldSet
    let hours: FieldSet
    let daysOfMonth: FieldSet
    let months: FieldSet
    let daysOfWeek: FieldSet  // 0...6, Sunday = 0
    /// Vixie's DOM_STAR / DOW_STAR: the field's text starts with `*` (so `*/2` counts as star).
    let dayOfMonthStar: Bool
    let dayOfWeekStar: Bool

    public var description: String { source }

    /// True when the hour field covers all 24 hours: such a job runs on the wall clock's hours
    /// as they come, which decides how it behaves across daylight-saving changes (SCHEDULING.md).
    public var runsEveryHour: Bool { hours.bits == (1 << 24) - 1 }

    private static let aliases: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    public init(parsing text: String) throws(CronParseError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw CronParseError(.tooLong, "expression is \(text.utf8.count) bytes; the limit is \(Self.maximumLength)")
        }
        // Works on bytes from here on: only printable ASCII and tab are allowed.
        if !text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F || $0 == 0x09 }),
           let bad = text.unicodeScalars.firstIndex(where: { !($0.isASCII && ($0.value >= 0x20 && $0.value < 0x7F || $0 == "\t")) }) {
            let position = text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: bad)
            let scalar = text.unicodeScalars[bad].value
            throw CronParseError(.invalidCharacter, "character U+\(String(scalar, radix: 16, uppercase: true)) at position \(position) is not allowed")
        }
        let bytes = Array(text.utf8)
        var (low, high) = (0, bytes.count)
        while low < high, Self.isBlank(bytes[low]) { low += 1 }
        while high > low, Self.isBlank(bytes[high - 1]) { high -= 1 }
        var body = bytes[low..<high]
        guard !body.isEmpty else { throw CronParseError(.empty, "expression is empty") }
        let source = Self.string(body)

        if body.first == UInt8(ascii: "@") {
            guard let expanded = Self.aliases[source.lowercased()] else {
                throw CronParseError(.unknownAlias, token: source,
                                     "unknown alias; expected one of @yearly @annually @monthly @weekly @daily @midnight @hourly")
            }
            body = Array(expanded.utf8)[...]
        }
        let fields = body.split(whereSeparator: Self.isBlank)
        guard fields.count == 5 else {
            throw CronParseError(.wrongFieldCount,
                                 "expected 5 fields (minute hour day-of-month month day-of-week), found \(fields.count)")
        }
        self.source = source
        minutes = try Self.parse(fields[0], .minute)
        hours = try Self.parse(fields[1], .hour)
        daysOfMonth = try Self.parse(fields[2], .dayOfMonth)
        months = try Self.parse(fields[3], .month)
        var dow = try Self.parse(fields[4], .dayOfWeek)
        if dow.contains(7) { dow.bits &= ~(1 << 7); dow.insert(0) }
        daysOfWeek = dow
        dayOfMonthStar = fields[2].first == UInt8(ascii: "*")
        dayOfWeekStar = fields[4].first == UInt8(ascii: "*")
    }

    private typealias Bytes = ArraySlice<UInt8>

    private static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func string(_ bytes: Bytes) -> String { String(decoding: bytes, as: UTF8.self) }

    private static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    private static let weekdayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    private static func parse(_ text: Bytes, _ field: CronField) throws(CronParseError) -> FieldSet {
        var set = FieldSet()
        for element in text.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            guard !element.isEmpty else {
                throw CronParseError(.emptyElement, field: field, token: string(text), "list has an empty element")
            }
            let token = string(element)
            let pieces = element.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            guard pieces.count <= 2 else {
                throw CronParseError(.invalidToken, field: field, token: token, "more than one '/'")
            }
            let base = pieces[0]
            let star = base.count == 1 && base.first == UInt8(ascii: "*")
            var low: Int, high: Int
            if star {
                (low, high) = (field.range.lowerBound, field.range.upperBound)
            } else {
                let ends = base.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
                guard ends.count <= 2, !ends.contains(where: \.isEmpty) else {
                    throw CronParseError(.invalidToken, field: field, token: token, "expected *, a value or a range a-b")
                }
                low = try value(ends[0], field, token)
                high = ends.count == 2 ? try value(ends[1], field, token) : low
                guard low <= high else {
                    throw CronParseError(.reversedRange, field: field, token: token, "range start \(low) is after its end \(high)")
                }
            }
            var step = 1
            if pieces.count == 2 {
                guard star || base.contains(UInt8(ascii: "-")) else {
                    let (b, s) = (string(base), string(pieces[1]))
                    throw CronParseError(.stepWithoutRange, field: field, token: token,
                                         "a step needs * or a range before it (write \(b)-\(field.range.upperBound)/\(s) or */\(s))")
                }
                step = try number(pieces[1], field, token, what: "step")
                guard step > 0 else { throw CronParseError(.zeroStep, field: field, token: token, "step must be at least 1") }
                let span = field.range.count
                guard step <= span else {
                    throw CronParseError(.outOfRange, field: field, token: token, "step \(step) is larger than the field's span \(span)")
                }
            }
            for v in stride(from: low, through: high, by: step) { set.insert(v) }
        }
        return set
    }

    private static func value(_ text: Bytes, _ field: CronField, _ token: String) throws(CronParseError) -> Int {
        if let first = text.first, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first & 0xDF) {
            let names: [String] = switch field {
            case .month: monthNames
            case .dayOfWeek: weekdayNames
            default: []
            }
            guard !names.isEmpty else {
                throw CronParseError(.invalidToken, field: field, token: token, "names are only allowed in the month and day-of-week fields")
            }
            guard let index = names.firstIndex(of: string(text).uppercased()) else {
                throw CronParseError(.invalidToken, field: field, token: token,
                                     "unknown name \"\(string(text.prefix(16)))\"; expected one of \(names.joined(separator: " "))")
            }
            return field == .month ? index + 1 : index
        }
        let v = try number(text, field, token, what: "value")
        guard field.range.contains(v) else {
            throw CronParseError(.outOfRange, field: field, token: token,
                                 "\(v) is out of range \(field.range.lowerBound)-\(field.range.upperBound)")
        }
        return v
    }

    private static func number(_ text: Bytes, _ field: CronField, _ token: String, what: String) throws(CronParseError) -> Int {
        guard !text.isEmpty, text.allSatisfy(isDigit) else {
            throw CronParseError(.invalidToken, field: field, token: token, "\(what) \"\(string(text.prefix(16)))\" is not a number")
        }
        guard text.count <= 4 else {
            throw CronParseError(.outOfRange, field: field, token: token, "\(what) \(string(text.prefix(16))) is out of range")
        }
        return text.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    // MARK: matching wall-clock time

    func dayMatches(_ date: CivilDate, weekday: Int) -> Bool {
        let dom = daysOfMonth.contains(date.day)
        let dow = daysOfWeek.contains(weekday)
        return dayOfMonthStar || dayOfWeekStar ? dom && dow : dom || dow
    }

    /// Whether the wall-clock minute `wall` (wall seconds) matches.
    func matches(wall: Int64) -> Bool {
        let days = Civil.floorDiv(wall, Civil.secondsPerDay)
        let second = Int(wall - days * Civil.secondsPerDay)
        let date = Civil.date(fromDays: days)
        return months.contains(date.month) && dayMatches(date, weekday: Civil.weekday(days: days))
            && hours.contains(second / 3600) && minutes.contains(second % 3600 / 60) && second % 60 == 0
    }

    /// False when no calendar day can ever match, e.g. `0 0 30 2 *`. When both day fields are
    /// restricted the OR rule always finds a day; otherwise some listed day of the month must
    /// exist in some listed month (each such date falls on every weekday within 400 years).
    var isSatisfiable: Bool {
        guard dayOfMonthStar || dayOfWeekStar else { return true }
        guard daysOfWeek.bits != 0 else { return false }
        return (1...12).contains { month in
            months.contains(month) && daysOfMonth.first(atLeast: 1).map { $0 <= Civil.daysIn(month: month, year: 2000) } == true
        }
    }

    /// The first matching wall-clock minute at or after `start` and before `limit`. Jumps over
    /// months and hours that cannot match, so a whole year costs at most a few hundred steps.
    func nextMatch(atOrAfter start: Int64, before limit: Int64) -> Int64? {
        var days = Civil.floorDiv(start + 59, Civil.secondsPerDay)
        let secondOfDay = Int(Civil.floorMod(start + 59, Civil.secondsPerDay)) / 60 * 60
        var date = Civil.date(fromDays: days)
        var hour = secondOfDay / 3600, minute = secondOfDay % 3600 / 60
        while days * Civil.secondsPerDay < limit {
            if !months.contains(date.month) {
                // Jump to the first day of the next listed month.
                var year = date.year
                var month = months.first(atLeast: date.month + 1)
                if month == nil { year += 1; month = months.first(atLeast: 1) }
                guard let month else { return nil }
                date = CivilDate(year: year, month: month, day: 1)
                days = Civil.days(from: date)
                (hour, minute) = (0, 0)
                continue
            }
            if dayMatches(date, weekday: Civil.weekday(days: days)), var h = hours.first(atLeast: hour) {
                var m = h == hour ? minutes.first(atLeast: minute) : minutes.first(atLeast: 0)
                if m == nil, let next = hours.first(atLeast: hour + 1) {
                    h = next
                    m = minutes.first(atLeast: 0)
                }
                if let m {
                    let wall = days * Civil.secondsPerDay + Int64(h * 3600 + m * 60)
                    return wall < limit ? wall : nil
                }
            }
            days += 1
            date.day += 1
            if date.day > Civil.daysIn(month: date.month, year: date.year) {
                date.day = 1
                date.month += 1
                if date.month > 12 { date.month = 1; date.year += 1 }
            }
            (hour, minute) = (0, 0)
        }
        return nil
    }
}
