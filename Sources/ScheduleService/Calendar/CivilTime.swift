// Proleptic Gregorian arithmetic on "wall seconds": seconds since 1970-01-01T00:00 as read on a
// wall clock, with no time zone attached. Cron fields, run windows and local times are all
// evaluated on wall seconds; `ZoneRules` is the only place that turns them into instants.

/// A civil date (no time zone).
struct CivilDate: Hashable, Sendable {
    var year: Int64
    var month: Int  // 1...12
    var day: Int  // 1...31
}

enum Civil {
    static let secondsPerDay: Int64 = 86_400
    /// No schedule computes anything past the end of year 9999.
    static let lastSecond: Int64 = 253_402_300_799

    /// Days since 1970-01-01 (H. Hinnant's `days_from_civil`), exact for any year.
    static func days(from date: CivilDate) -> Int64 {
        let y = date.month <= 2 ? date.year - 1 : date.year
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let m = Int64(date.month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(date.day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse of `days(from:)`.
    static func date(fromDays days: Int64) -> CivilDate {
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return CivilDate(year: yoe + era * 400 + (month <= 2 ? 1 : 0), month: month, day: day)
    }

    /// 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
    static func weekday(days: Int64) -> Int { Int(floorMod(days + 4, 7)) }

    static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(month: Int, year: Int64) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }
}
