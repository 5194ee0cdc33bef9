import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import ScheduleService

/// PreviewSchedule over real RPC: the dispatcher's calendar (cron, daylight saving, windows,
/// blackouts), the schedule in words, and hostile requests refused with INVALID_ARGUMENT that
/// names the field.
@Suite struct PreviewScheduleTests {
    static func cron(_ expression: String, zone: String = "") -> SchedulesV1.Schedule {
        .init(kind: .cron(.init(expression: expression, timeZone: zone)))
    }

    static func preview(_ p: Platform, _ schedule: SchedulesV1.Schedule?, after: String, count: Int32 = 5,
                        windows: [SchedulesV1.RunWindow] = [], blackouts: [SchedulesV1.Blackout] = []) async throws -> ([String], String) {
        let answer = try await p.schedule.previewSchedule(
            .init(schedule: schedule, windows: windows, blackouts: blackouts, afterUs: utc(after).micros, count: count),
            options: Platform.options())
        return (answer.fires.map { iso(Date(micros: $0.atUs)) }, answer.description)
    }

    @Test func firesFollowTheDispatchersCalendar() async throws {
        try await Platform.with(database: "sched_preview") { p in
            // Paris springs forward at 02:00 on 2026-03-29: 02:30 does not exist that day and
            // fires once, at the end of the gap (03:00 CEST = 01:00 UTC).
            let (dst, words) = try await Self.preview(p, Self.cron("30 2 * * *", zone: "Europe/Paris"), after: "2026-03-27T00:00:00Z", count: 4)
            #expect(dst == ["2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"])
            #expect(words == "at 02:30 (Europe/Paris)")
            // A fire exactly at the start counts, as it would for a plan created then.
            #expect(try await Self.preview(p, Self.cron("0 12 * * *"), after: "2026-06-01T12:00:00Z", count: 1).0 == ["2026-06-01T12:00:00Z"])

            // Windows: weekdays 09:00-11:00 UTC (end excluded). 2026-06-05 is a Friday.
            let window = SchedulesV1.RunWindow(days: [.monday, .tuesday, .wednesday, .thursday, .friday], startMinute: 540, endMinute: 660)
            let (windowed, windowWords) = try await Self.preview(p, Self.cron("0 * * * *"), after: "2026-06-05T10:30:00Z", count: 3, windows: [window])
            #expect(windowed == ["2026-06-08T09:00:00Z", "2026-06-08T10:00:00Z", "2026-06-09T09:00:00Z"])
            #expect(windowWords == "at minute 0 of every hour (UTC), starting only inside its window")

            // A blackout drops the fires inside it.
            let freeze = SchedulesV1.Blackout(startAtUs: utc("2026-06-02T00:00:00Z").micros, endAtUs: utc("2026-06-04T00:00:00Z").micros, reason: "release")
            #expect(try await Self.preview(p, Self.cron("0 12 * * *"), after: "2026-06-01T13:00:00Z", count: 2, blackouts: [freeze]).0
                    == ["2026-06-04T12:00:00Z", "2026-06-05T12:00:00Z"])

            // Interval without a start counts from `after`; once and now fire once; 0 = 5 fires.
            let interval = SchedulesV1.Schedule(kind: .interval(.init(everyUs: 900_000_000)))
            let (every, everyWords) = try await Self.preview(p, interval, after: "2026-06-01T10:00:00Z", count: 0)
            #expect(every == ["2026-06-01T10:00:00Z", "2026-06-01T10:15:00Z", "2026-06-01T10:30:00Z", "2026-06-01T10:45:00Z", "2026-06-01T11:00:00Z"])
            #expect(everyWords == "every 15 minutes from 2026-06-01 10:00:00 UTC")
            let once = SchedulesV1.Schedule(kind: .at(.init(atUs: utc("2026-07-01T08:00:00Z").micros)))
            #expect(try await Self.preview(p, once, after: "2026-06-01T10:00:00Z").0 == ["2026-07-01T08:00:00Z"])
            #expect(try await Self.preview(p, once, after: "2026-08-01T10:00:00Z").0.isEmpty)
            #expect(try await Self.preview(p, .init(kind: .now(.init())), after: "2026-06-01T10:00:00Z").0 == ["2026-06-01T10:00:00Z"])
            // after_us 0 = the service's clock.
            let now = try await p.schedule.previewSchedule(.init(schedule: Self.cron("0 12 * * *"), count: 1), options: Platform.options())
            #expect(now.fires.map(\.atUs) == [utc("2026-06-01T12:00:00Z").micros])

            // Never firing is an answer, not an error: no fires.
            let (never, neverWords) = try await Self.preview(p, Self.cron("0 0 31 2 *"), after: "2026-06-01T10:00:00Z", count: 50)
            #expect(never.isEmpty)
            #expect(neverWords == "at 00:00 on day 31 of the month in February (UTC)")
            // A blackout until year 9999 ends the preview (bounded work) with no fires.
            let forever = SchedulesV1.Blackout(startAtUs: 1, endAtUs: Check.latestMicros - 1)
            #expect(try await Self.preview(p, Self.cron("* * * * *"), after: "2026-06-01T10:00:00Z", count: 50, blackouts: [forever]).0.isEmpty)
            // The walk is bounded: an every-minute cron in a one-minute weekly window looks at
            // 50,000 occurrences (about five weeks) and answers the five Sundays found in them.
            let sunday = SchedulesV1.RunWindow(days: [.sunday], startMinute: 0, endMinute: 1)
            let (sparse, _) = try await Self.preview(p, Self.cron("* * * * *"), after: "2026-06-01T10:00:30Z", count: 50, windows: [sunday])
            #expect(sparse == ["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z", "2026-06-21T00:00:00Z", "2026-06-28T00:00:00Z", "2026-07-05T00:00:00Z"])
            // At most 50, all in order.
            let (many, _) = try await Self.preview(p, Self.cron("*/5 * * * *", zone: "America/New_York"), after: "2026-06-01T10:00:00Z", count: 50)
            #expect(many.count == 50 && many == many.sorted() && Set(many).count == 50)
        }
    }

    @Test func hostileRequestsNameTheirField() async throws {
        try await Platform.with(database: "sched_preview_bad") { p in
            let ok = Self.cron("0 3 * * *")
            let cases: [(String, SchedulesV1.PreviewScheduleRequest)] = [
                ("count:", .init(schedule: ok, count: 51)),
                ("count:", .init(schedule: ok, count: -1)),
                ("count:", .init(schedule: ok, count: .max)),
                ("after_us:", .init(schedule: ok, afterUs: -1)),
                ("after_us:", .init(schedule: ok, afterUs: .max)),
                ("schedule:", .init()),
                ("schedule.cron.time_zone:", .init(schedule: Self.cron("0 3 * * *", zone: "Mars/Olympus"))),
                ("schedule.cron.time_zone:", .init(schedule: Self.cron("0 3 * * *", zone: "GMT+2"))),
                ("schedule.cron.time_zone:", .init(schedule: Self.cron("0 3 * * *", zone: "../../etc/passwd"))),
                ("schedule.cron.expression:", .init(schedule: Self.cron("61 * * * *"))),
                ("schedule.cron.expression:", .init(schedule: Self.cron("0 3 * *"))),
                ("schedule.cron.expression:", .init(schedule: Self.cron(""))),
                ("schedule.cron.expression:", .init(schedule: Self.cron("0 3 * * * *"))),
                ("schedule.cron.expression:", .init(schedule: Self.cron("@reboot"))),
                ("schedule.cron.expression:", .init(schedule: Self.cron(String(repeating: "1,", count: 5000) + "1 * * * *"))),
                ("schedule.interval", .init(schedule: .init(kind: .interval(.init(everyUs: 0))))),
                ("schedule.interval", .init(schedule: .init(kind: .interval(.init(everyUs: -5))))),
                ("schedule.interval", .init(schedule: .init(kind: .interval(.init(everyUs: 1000))))),
                ("schedule.at.at_us", .init(schedule: .init(kind: .at(.init(atUs: -1))))),
                ("windows[1]", .init(schedule: ok, windows: [.init(startMinute: 0, endMinute: 60), .init(startMinute: 0, endMinute: 1440)])),
                ("windows[0]", .init(schedule: ok, windows: [.init(startMinute: 60, endMinute: 60)])),
                ("windows[0]", .init(schedule: ok, windows: [.init(days: [.unrecognized(9)], startMinute: 0, endMinute: 60)])),
                ("windows[0]", .init(schedule: ok, windows: [.init(startMinute: 0, endMinute: 60, timeZone: "Nowhere/Land")])),
                ("at most 50 windows", .init(schedule: ok, windows: Array(repeating: .init(startMinute: 0, endMinute: 60), count: 51))),
                ("blackouts[0]", .init(schedule: ok, blackouts: [.init(startAtUs: 10, endAtUs: 5)])),
                ("blackouts[0].reason", .init(schedule: ok, blackouts: [.init(startAtUs: 5, endAtUs: 10, reason: String(repeating: "r", count: 1001))])),
            ]
            for (field, request) in cases {
                let error = await expectRPCError(.invalidArgument, field) {
                    try await p.schedule.previewSchedule(request, options: Platform.options())
                }
                #expect(error?.message.hasPrefix(field) == true, "\(field): \(error?.message ?? "")")
                #expect((error?.message.utf8.count ?? 0) < 400, "\(field): the message quotes at most a clipped token")
            }
            let cron = await expectRPCError(.invalidArgument) {
                try await p.schedule.previewSchedule(.init(schedule: Self.cron("0 25 * * *")), options: Platform.options())
            }
            #expect(cron?.message.contains("hour field, token \"25\"") == true, "\(cron?.message ?? "")")
            // NUL never reaches the calendar: the message decoder refuses it, naming the field.
            let nul = await expectRPCError(.invalidArgument) {
                try await p.schedule.previewSchedule(.init(schedule: Self.cron("0 3 * * \u{0}")), options: Platform.options())
            }
            #expect(nul?.message.contains("Cron.expression") == true, "\(nul?.message ?? "")")
            // The service keeps answering.
            let after = try await p.schedule.previewSchedule(.init(schedule: ok, count: 1), options: Platform.options())
            #expect(after.fires.count == 1)
        }
    }

    @Test(arguments: [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("5 * * * *", "at minute 5 of every hour"),
        ("0 9,17 * * 1-5", "at 09:00 and 17:00 on Monday to Friday"),
        ("30 2 1 * *", "at 02:30 on day 1 of the month"),
        ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
        ("@weekly", "at 00:00 on Sunday"),
        ("0 12 13 * 5", "at 12:00 on day 13 of the month or on Friday"),
        ("0 */2 * * *", "at minute 0 of every 2 hours"),
        ("0,30 8-18 * * SAT,SUN", "every 30 minutes of hour 8 to 18 on Sunday and Saturday"),
        ("0,20 8-18 * * *", "at minute 0 and 20 of hour 8 to 18"),
        ("0 3 */2 * *", "at 03:00 on day 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29 and 31 of the month"),
    ])
    func cronInWords(_ expression: String, _ words: String) throws {
        #expect(try CronExpression(parsing: expression).words == words)
    }
}
