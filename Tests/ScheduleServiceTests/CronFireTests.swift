import Foundation
import Testing
@testable import ScheduleService

/// One row: expression, zone, start (exclusive), the next fires in UTC.
struct FireCase: CustomTestStringConvertible, Sendable {
    let expression: String
    let zone: String
    let start: String
    let fires: [String]
    init(_ expression: String, _ zone: String, _ start: String, _ fires: [String]) {
        (self.expression, self.zone, self.start, self.fires) = (expression, zone, start, fires)
    }
    var testDescription: String { "\(expression) in \(zone) after \(start)" }
}

@Suite struct CronFireTests {
    /// Computed once with Python croniter 7.0.0 (zoneinfo, tzdata 2026.6) in a private venv and
    /// pasted here; the tests do not run croniter. Only rows where croniter agrees with the
    /// documented rule are here; where it differs, see `daylightSaving` below.
    static let croniter: [FireCase] = [
        FireCase("*/15 * * * *", "UTC", "2026-03-01T00:07Z",
                 ["2026-03-01T00:15Z", "2026-03-01T00:30Z", "2026-03-01T00:45Z", "2026-03-01T01:00Z", "2026-03-01T01:15Z"]),
        FireCase("0 9 * * MON-FRI", "Europe/Paris", "2026-03-27T12:00Z",  // crosses the spring change
                 ["2026-03-30T07:00Z", "2026-03-31T07:00Z", "2026-04-01T07:00Z", "2026-04-02T07:00Z", "2026-04-03T07:00Z"]),
        FireCase("30 2 * * *", "Europe/Paris", "2026-03-27T00:00Z",  // 02:30 does not exist on 03-29
                 ["2026-03-27T01:30Z", "2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z", "2026-03-31T00:30Z"]),
        FireCase("0 * * * *", "Europe/Paris", "2026-10-24T22:30Z",  // both 02:00s of 10-25 fire
                 ["2026-10-24T23:00Z", "2026-10-25T00:00Z", "2026-10-25T01:00Z", "2026-10-25T02:00Z", "2026-10-25T03:00Z", "2026-10-25T04:00Z"]),
        FireCase("0 * * * *", "America/New_York", "2026-03-08T04:30Z",  // 02:00 EST never shows
                 ["2026-03-08T05:00Z", "2026-03-08T06:00Z", "2026-03-08T07:00Z", "2026-03-08T08:00Z", "2026-03-08T09:00Z"]),
        FireCase("0 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00Z",  // 02:00 falls in the 30-minute gap on 10-04
                 ["2026-10-02T15:30Z", "2026-10-03T15:30Z", "2026-10-04T15:00Z", "2026-10-05T15:00Z"]),
        FireCase("30 2 * * *", "Asia/Kolkata", "2026-03-27T00:00Z",
                 ["2026-03-27T21:00Z", "2026-03-28T21:00Z", "2026-03-29T21:00Z"]),
        FireCase("0 22 * * 1-5", "Asia/Kolkata", "2026-06-05T10:00Z",
                 ["2026-06-05T16:30Z", "2026-06-08T16:30Z", "2026-06-09T16:30Z", "2026-06-10T16:30Z"]),
        FireCase("0 0 29 2 *", "UTC", "2026-01-01T00:00Z",
                 ["2028-02-29T00:00Z", "2032-02-29T00:00Z", "2036-02-29T00:00Z"]),
        FireCase("0 0 29 2 *", "Europe/Paris", "2026-01-01T00:00Z", ["2028-02-28T23:00Z", "2032-02-28T23:00Z"]),
        FireCase("0 12 1,15 * 5", "UTC", "2026-05-01T00:00Z",  // both day fields restricted: OR
                 ["2026-05-01T12:00Z", "2026-05-08T12:00Z", "2026-05-15T12:00Z", "2026-05-22T12:00Z", "2026-05-29T12:00Z", "2026-06-01T12:00Z"]),
        FireCase("0 0 13 * 5", "UTC", "2026-01-01T00:00Z",
                 ["2026-01-02T00:00Z", "2026-01-09T00:00Z", "2026-01-13T00:00Z", "2026-01-16T00:00Z", "2026-01-23T00:00Z"]),
        FireCase("5 4 * * sun", "America/New_York", "2026-01-01T00:00Z",
                 ["2026-01-04T09:05Z", "2026-01-11T09:05Z", "2026-01-18T09:05Z"]),
        FireCase("15 10 * * 7", "UTC", "2026-01-01T00:00Z", ["2026-01-04T10:15Z", "2026-01-11T10:15Z"]),
        FireCase("*/20 9-17/4 * JAN-MAR/2 *", "UTC", "2026-01-31T16:50Z",
                 ["2026-01-31T17:00Z", "2026-01-31T17:20Z", "2026-01-31T17:40Z", "2026-03-01T09:00Z", "2026-03-01T09:20Z"]),
        FireCase("@weekly", "Europe/Paris", "2026-03-25T00:00Z", ["2026-03-28T23:00Z", "2026-04-04T22:00Z", "2026-04-11T22:00Z"]),
        FireCase("@yearly", "Australia/Lord_Howe", "2026-06-01T00:00Z", ["2026-12-31T13:00Z", "2027-12-31T13:00Z"]),
        FireCase("59 23 31 12 *", "UTC", "2026-12-31T23:59Z", ["2027-12-31T23:59Z", "2028-12-31T23:59Z"]),
    ]

    /// Worked out by hand from the documented rule (SCHEDULING.md). Zone facts, 2026:
    /// Paris +1→+2 at 03-29 01:00Z (02:00-02:59 skipped), +2→+1 at 10-25 01:00Z (02:00-02:59 twice);
    /// New York -5→-4 at 03-08 07:00Z (02:xx skipped), -4→-5 at 11-01 06:00Z (01:xx twice);
    /// Lord Howe +10:30→+11 at 10-03 15:30Z (02:00-02:29 skipped), +11→+10:30 at 04-04 15:00Z
    /// (01:30-01:59 twice). Rows marked "croniter:" are where croniter 7.0.0 differs: it fires a
    /// fixed-time job at both occurrences of an overlapped time; the rule here fires it once.
    static let daylightSaving: [FireCase] = [
        // Spring forward: a fixed time in the gap fires once, at the first instant after it.
        FireCase("30 2 * * *", "America/New_York", "2026-03-07T12:00Z", ["2026-03-08T07:00Z", "2026-03-09T06:30Z"]),
        FireCase("*/30 2 * * *", "Europe/Paris", "2026-03-28T23:00Z",  // 02:00 and 02:30 both → one fire at 03:00
                 ["2026-03-29T01:00Z", "2026-03-30T00:00Z", "2026-03-30T00:30Z"]),
        FireCase("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00Z", ["2026-10-03T15:30Z", "2026-10-04T15:15Z"]),
        FireCase("0 2,3 * * *", "Europe/Paris", "2026-03-28T23:00Z",  // 02:00 moved to 03:00 coincides with 03:00: once
                 ["2026-03-29T01:00Z", "2026-03-30T00:00Z", "2026-03-30T01:00Z"]),
        // Spring forward: every-hour jobs keep their real-time rhythm; gap readings never show.
        FireCase("*/30 * * * *", "Europe/Paris", "2026-03-29T00:15Z", ["2026-03-29T00:30Z", "2026-03-29T01:00Z", "2026-03-29T01:30Z"]),
        FireCase("*/15 * * * *", "America/New_York", "2026-03-08T06:40Z", ["2026-03-08T06:45Z", "2026-03-08T07:00Z", "2026-03-08T07:15Z"]),
        FireCase("0 * * * *", "Australia/Lord_Howe", "2026-10-03T14:00Z",  // 02:00 is skipped; 01:00 → 03:00 is 90 min
                 ["2026-10-03T14:30Z", "2026-10-03T16:00Z", "2026-10-03T17:00Z"]),
        // Fall back: a fixed time in the overlap fires once, at its first occurrence.
        FireCase("30 2 * * *", "Europe/Paris", "2026-10-23T00:00Z",  // croniter: also 2026-10-25T01:30Z
                 ["2026-10-23T00:30Z", "2026-10-24T00:30Z", "2026-10-25T00:30Z", "2026-10-26T01:30Z", "2026-10-27T01:30Z"]),
        FireCase("30 1 * * *", "America/New_York", "2026-10-31T12:00Z",  // croniter: also 2026-11-01T06:30Z
                 ["2026-11-01T05:30Z", "2026-11-02T06:30Z", "2026-11-03T06:30Z"]),
        FireCase("45 1 * * *", "Australia/Lord_Howe", "2026-04-03T00:00Z",  // croniter: also 2026-04-04T15:15Z
                 ["2026-04-03T14:45Z", "2026-04-04T14:45Z", "2026-04-05T15:15Z", "2026-04-06T15:15Z"]),
        FireCase("*/20 2 * * *", "Europe/Paris", "2026-10-24T23:00Z",
                 ["2026-10-25T00:00Z", "2026-10-25T00:20Z", "2026-10-25T00:40Z", "2026-10-26T01:00Z"]),
        // Starting inside the second occurrence: the first already fired, so the next day is next.
        FireCase("30 2 * * *", "Europe/Paris", "2026-10-25T01:10Z", ["2026-10-26T01:30Z"]),
        // Fall back: every-hour jobs fire in both occurrences (every real hour).
        FireCase("0 * * * *", "America/New_York", "2026-11-01T04:30Z", ["2026-11-01T05:00Z", "2026-11-01T06:00Z", "2026-11-01T07:00Z"]),
        FireCase("0 * * * *", "America/New_York", "2026-11-01T05:50Z", ["2026-11-01T06:00Z", "2026-11-01T07:00Z"]),
        FireCase("*/30 * * * *", "America/New_York", "2026-11-01T05:10Z",
                 ["2026-11-01T05:30Z", "2026-11-01T06:00Z", "2026-11-01T06:30Z", "2026-11-01T07:00Z"]),
        FireCase("*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:20Z",
                 ["2026-04-04T14:30Z", "2026-04-04T14:45Z", "2026-04-04T15:00Z", "2026-04-04T15:15Z", "2026-04-04T15:30Z", "2026-04-04T15:45Z"]),
        // Vixie's star rule: `*/10` starts with `*`, so day-of-month AND day-of-week must both
        // match (croniter treats `*/10` as restricted and ORs them).
        FireCase("0 12 */10 * MON", "UTC", "2026-05-01T00:00Z", ["2026-05-11T12:00Z", "2026-06-01T12:00Z", "2026-08-31T12:00Z"]),
        // Feb 29 that is a Sunday (`*/7` is star-flagged, so AND): a long search.
        FireCase("0 0 29 2 */7", "UTC", "2026-01-01T00:00Z", ["2032-02-29T00:00Z", "2060-02-29T00:00Z", "2088-02-29T00:00Z"]),
    ]

    @Test(arguments: croniter + daylightSaving)
    func nextFires(_ row: FireCase) throws {
        let schedule = try cron(row.expression, row.zone)
        let fires = Array(schedule.fires(after: utc(row.start)).prefix(row.fires.count)).map(iso)
        #expect(fires == row.fires.map { iso(utc($0)) })
    }

    @Test func fireIsStrictlyAfterAndSecondsAreIgnored() throws {
        let schedule = try cron("0 12 * * *", "UTC")
        #expect(schedule.nextFire(after: utc("2026-05-01T12:00:00Z")) == utc("2026-05-02T12:00Z"))
        #expect(schedule.nextFire(after: utc("2026-05-01T11:59:59Z")) == utc("2026-05-01T12:00Z"))
        #expect(schedule.nextFire(after: utc("2026-05-01T11:59:59Z").addingTimeInterval(0.999)) == utc("2026-05-01T12:00Z"))
    }

    @Test(arguments: ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 FEB *", "0 0 31 2 */2"])
    func impossibleExpressionsNeverFire(_ expression: String) throws {
        #expect(try cron(expression, "Europe/Paris").nextFire(after: utc("2026-01-01T00:00Z")) == nil)
    }

    @Test func restrictedDayOfWeekMakesFebruaryThirtiethFire() throws {
        // Both day fields restricted: OR, so every Monday in February matches.
        #expect(try cron("0 0 30 2 1", "UTC").nextFire(after: utc("2026-01-01T00:00Z")) == utc("2026-02-02T00:00Z"))
    }

    @Test func endsOfTime() throws {
        let schedule = try cron("* * * * *", "UTC")
        #expect(schedule.nextFire(after: .distantFuture).map { $0 > .distantFuture } == true)  // year 4001
        #expect(schedule.nextFire(after: Date(timeIntervalSince1970: .infinity)) == nil)
        #expect(schedule.nextFire(after: Date(timeIntervalSince1970: .nan)) == nil)
        #expect(schedule.nextFire(after: utc("9999-12-31T23:58:00Z")) == utc("9999-12-31T23:59:00Z"))
        #expect(schedule.nextFire(after: utc("9999-12-31T23:59:00Z")) == nil)
        #expect(schedule.nextFire(after: .distantPast) != nil)
    }

    /// Against a brute-force minute-by-minute evaluation of the same rule, over a week around
    /// each transition of 2026 in the test zones.
    @Test(arguments: ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
    func agreesWithBruteForceAroundTransitions(_ zoneID: String) throws {
        let expressions = ["*/7 * * * *", "0 * * * *", "30 2 * * *", "*/10 1-3 * * *", "45 1 * * SUN", "0,30 0-2 * * *"]
        let rules = ZoneRules(timeZone: zone(zoneID))
        var starts = [Int64(utc("2026-01-10T00:00Z").timeIntervalSince1970)]
        var cursor = starts[0]
        while let t = rules.nextTransition(after: cursor), t < Int64(utc("2027-01-01T00:00Z").timeIntervalSince1970) {
            starts.append(t - 3 * 86_400)
            cursor = t
        }
        for text in expressions {
            let schedule = try cron(text, zoneID)
            for start in starts {
                let expected = bruteForce(schedule, from: start, to: start + 6 * 86_400)
                #expect(!expected.isEmpty)
                var got: [Int64] = []
                var c = start
                while let next = schedule.nextFire(afterSecond: c), next <= start + 6 * 86_400 {
                    got.append(next)
                    c = next
                }
                #expect(firstDifference(got, expected) == nil, "\(text) in \(zoneID) from \(iso(Date(timeIntervalSince1970: Double(start))))")
            }
        }
    }
}


@Suite struct ZoneRulesTests {
    static func wall(_ text: String) -> Int64 { Int64(utc(text).timeIntervalSince1970) }  // a wall reading written as if UTC
    static func instant(_ text: String) -> Int64 { Int64(utc(text).timeIntervalSince1970) }

    @Test func resolvesUniqueRepeatedAndSkippedReadings() {
        let paris = ZoneRules(timeZone: zone("Europe/Paris"))
        #expect(paris.resolve(wall: Self.wall("2026-05-01T12:00Z")) == .unique(Self.instant("2026-05-01T10:00Z")))
        #expect(paris.resolve(wall: Self.wall("2026-03-29T02:30Z")) == .skipped(transition: Self.instant("2026-03-29T01:00Z")))
        #expect(paris.resolve(wall: Self.wall("2026-10-25T02:30Z"))
            == .repeated(first: Self.instant("2026-10-25T00:30Z"), second: Self.instant("2026-10-25T01:30Z")))
        let lordHowe = ZoneRules(timeZone: zone("Australia/Lord_Howe"))
        #expect(lordHowe.resolve(wall: Self.wall("2026-10-04T02:15Z")) == .skipped(transition: Self.instant("2026-10-03T15:30Z")))
        #expect(lordHowe.resolve(wall: Self.wall("2026-04-05T01:45Z"))
            == .repeated(first: Self.instant("2026-04-04T14:45Z"), second: Self.instant("2026-04-04T15:15Z")))
        #expect(lordHowe.resolve(wall: Self.wall("2026-04-05T02:00Z")) == .unique(Self.instant("2026-04-04T15:30Z")))
        let kolkata = ZoneRules(timeZone: zone("Asia/Kolkata"))
        #expect(kolkata.nextTransition(after: Self.instant("2026-01-01T00:00Z")) == nil)
    }

    /// Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14): the same rules, a day-long gap.
    @Test func samoaSkippingADay() throws {
        let noon = try cron("0 12 * * *", "Pacific/Apia")
        #expect(Array(noon.fires(after: utc("2011-12-29T12:00Z")).prefix(3)).map(iso)
            == ["2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T22:00:00Z"])
        let hourly = try cron("0 * * * *", "Pacific/Apia")  // every hour: nothing for the missing day
        #expect(Array(hourly.fires(after: utc("2011-12-30T08:30Z")).prefix(3)).map(iso)
            == ["2011-12-30T09:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T11:00:00Z"])
    }
}
