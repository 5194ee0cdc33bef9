import Foundation
import Testing
@testable import ScheduleService

@Suite struct FirePlannerTests {
    static func planner(_ expression: String, _ zoneID: String = "UTC", windows: [RunWindow] = [], blackouts: [Blackout] = [],
                        missed: MissedFirePolicy = .skip, outside: OutsideWindowPolicy = .skip,
                        activeSince: String = "2026-05-01T00:00Z") throws -> FirePlanner {
        try FirePlanner(schedule: .cron(cron(expression, zoneID)), availability: Availability(windows: windows, blackouts: blackouts),
                        policy: FirePolicy(missedFire: missed, outsideWindow: outside), activeSince: utc(activeSince))
    }

    static func office() throws -> RunWindow {
        try RunWindow(days: .weekdays, from: time("09:00"), to: time("17:00"), timeZone: zone("UTC"))
    }

    @Test func onTimeFireAndWaiting() throws {
        let p = try Self.planner("0 * * * *")  // 2026-05-04 is a Monday
        let waiting = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T10:30Z"))
        #expect(waiting.fire == nil && waiting.handledThrough == utc("2026-05-04T10:00Z"))
        #expect(waiting.next == Occurrence(scheduled: utc("2026-05-04T11:00Z"), due: utc("2026-05-04T11:00Z")))

        let due = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T11:00:00.3Z"))
        #expect(due.fire == Fire(occurrence: utc("2026-05-04T11:00Z"), kind: .onTime))
        #expect(due.handledThrough == utc("2026-05-04T11:00Z") && due.missed == 0)
        #expect(due.next?.scheduled == utc("2026-05-04T12:00Z"))

        // Deciding again with the stored watermark does not fire the same occurrence twice.
        let again = p.decide(handledThrough: due.handledThrough, now: utc("2026-05-04T11:00:01Z"))
        #expect(again.fire == nil)
    }

    @Test func firstDecisionStartsAtActivation() throws {
        let p = try Self.planner("0 0 * * *", activeSince: "2026-05-04T00:00Z")
        let d = p.decide(handledThrough: nil, now: utc("2026-05-04T00:00:02Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T00:00Z"), kind: .onTime))
        let before = p.decide(handledThrough: nil, now: utc("2026-05-03T23:00Z"))
        #expect(before.fire == nil && before.handledThrough == nil && before.next?.scheduled == utc("2026-05-04T00:00Z"))
    }

    /// Down from 10:00:30 to 14:30 with an hourly job: 11:00-14:00 are missed.
    @Test func missedFiresAfterDowntime() throws {
        let skip = try Self.planner("0 * * * *", missed: .skip)
        let dropped = skip.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:30Z"))
        #expect(dropped.fire == nil && dropped.missed == 4)
        #expect(dropped.handledThrough == utc("2026-05-04T14:00Z") && dropped.next?.scheduled == utc("2026-05-04T15:00Z"))

        // Back just in time for 14:00: that one is on time, the rest are dropped.
        let onTime = skip.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:00:20Z"))
        #expect(onTime.fire == Fire(occurrence: utc("2026-05-04T14:00Z"), kind: .onTime) && onTime.missed == 3)

        let runOnce = try Self.planner("0 * * * *", missed: .runOnce)
        let caughtUp = runOnce.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:30Z"))
        #expect(caughtUp.fire == Fire(occurrence: utc("2026-05-04T14:00Z"), kind: .catchUp) && caughtUp.missed == 3)
        #expect(caughtUp.handledThrough == utc("2026-05-04T14:00Z"))
        // ...and then continues with the schedule, without a second catch-up.
        let next = runOnce.decide(handledThrough: caughtUp.handledThrough, now: utc("2026-05-04T14:31Z"))
        #expect(next.fire == nil && next.next?.scheduled == utc("2026-05-04T15:00Z"))
    }

    @Test func outsideTheWindowSkipped() throws {
        let p = try Self.planner("0 * * * *", windows: [Self.office()], outside: .skip)
        let night = p.decide(handledThrough: utc("2026-05-04T19:00Z"), now: utc("2026-05-04T20:00:01Z"))
        #expect(night.fire == nil && night.skippedOutsideWindow == 1 && night.handledThrough == utc("2026-05-04T20:00Z"))
        #expect(night.next == Occurrence(scheduled: utc("2026-05-05T09:00Z"), due: utc("2026-05-05T09:00Z")))
        // Friday evening: next is Monday morning.
        let friday = p.decide(handledThrough: utc("2026-05-08T16:00Z"), now: utc("2026-05-08T16:30Z"))
        #expect(friday.next?.due == utc("2026-05-11T09:00Z"))
    }

    @Test func outsideTheWindowPostponedAndFolded() throws {
        // 08:30 daily is before the 09:00 window: it runs at 09:00.
        let p = try Self.planner("30 8 * * *", windows: [Self.office()], outside: .postpone)
        let early = p.decide(handledThrough: utc("2026-05-04T08:30Z"), now: utc("2026-05-05T08:30:01Z"))
        #expect(early.fire == nil && early.handledThrough == utc("2026-05-04T08:30Z"))
        #expect(early.next == Occurrence(scheduled: utc("2026-05-05T08:30Z"), due: utc("2026-05-05T09:00Z")))
        let opening = p.decide(handledThrough: early.handledThrough, now: utc("2026-05-05T09:00:05Z"))
        #expect(opening.fire == Fire(occurrence: utc("2026-05-05T08:30Z"), kind: .postponed))

        // Every hour overnight: sixteen postponed occurrences and 09:00 itself run once.
        let hourly = try Self.planner("0 * * * *", windows: [Self.office()], outside: .postpone)
        let morning = hourly.decide(handledThrough: utc("2026-05-04T16:00Z"), now: utc("2026-05-05T09:00:05Z"))
        #expect(morning.fire == Fire(occurrence: utc("2026-05-05T09:00Z"), kind: .onTime))
        #expect(morning.missed == 16 && morning.handledThrough == utc("2026-05-05T09:00Z"))

        // Down through the opening: the postponed occurrence is late like any other.
        let late = p.decide(handledThrough: utc("2026-05-04T08:30Z"), now: utc("2026-05-05T12:00Z"))
        #expect(late.fire == nil && late.missed == 1)
        let lateRunOnce = try Self.planner("30 8 * * *", windows: [Self.office()], missed: .runOnce, outside: .postpone)
        #expect(lateRunOnce.decide(handledThrough: utc("2026-05-04T08:30Z"), now: utc("2026-05-05T12:00Z")).fire
            == Fire(occurrence: utc("2026-05-05T08:30Z"), kind: .catchUp))
    }

    @Test func blackoutDropsOrPostpones() throws {
        let freeze = try Blackout.period(from: utc("2026-05-04T10:30Z"), to: utc("2026-05-04T13:15Z"))
        let skip = try Self.planner("0 * * * *", blackouts: [freeze], outside: .skip)
        #expect(skip.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T10:59Z")).next?.scheduled
            == utc("2026-05-04T14:00Z"))
        let postpone = try Self.planner("0 * * * *", blackouts: [freeze], outside: .postpone)
        let waiting = postpone.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T11:00:01Z"))
        #expect(waiting.fire == nil && waiting.next?.due == utc("2026-05-04T13:15Z"))
        let thaw = postpone.decide(handledThrough: waiting.handledThrough, now: utc("2026-05-04T13:15:30Z"))
        #expect(thaw.fire == Fire(occurrence: utc("2026-05-04T13:00Z"), kind: .postponed) && thaw.missed == 2)
    }

    @Test func catchUpRespectsTheWindows() throws {
        // Weekdays at noon; down from Thursday to Saturday: the catch-up for Friday waits for
        // Monday 09:00 under `postpone`, and is dropped under `skip`.
        let postpone = try Self.planner("0 12 * * 1-5", windows: [Self.office()], missed: .runOnce, outside: .postpone)
        let saturday = postpone.decide(handledThrough: utc("2026-05-07T12:00Z"), now: utc("2026-05-09T10:00Z"))
        #expect(saturday.fire == nil && saturday.missed == 0)
        #expect(saturday.next == Occurrence(scheduled: utc("2026-05-08T12:00Z"), due: utc("2026-05-11T09:00Z")))
        let monday = postpone.decide(handledThrough: saturday.handledThrough, now: utc("2026-05-11T09:00:10Z"))
        #expect(monday.fire == Fire(occurrence: utc("2026-05-08T12:00Z"), kind: .catchUp))
        #expect(monday.next?.scheduled == utc("2026-05-11T12:00Z"))
        #expect(postpone.decide(handledThrough: monday.handledThrough, now: utc("2026-05-11T09:00:20Z")).fire == nil)

        let skip = try Self.planner("0 12 * * 1-5", windows: [Self.office()], missed: .runOnce, outside: .skip)
        let dropped = skip.decide(handledThrough: utc("2026-05-07T12:00Z"), now: utc("2026-05-09T10:00Z"))
        #expect(dropped.fire == nil && dropped.missed == 1 && dropped.handledThrough == utc("2026-05-08T12:00Z"))

        // Daily at noon: Saturday's and Sunday's noon are postponed to Monday 09:00, which is on
        // time, so Monday runs once for Sunday's occurrence and Friday's missed one folds into it.
        let daily = try Self.planner("0 12 * * *", windows: [Self.office()], missed: .runOnce, outside: .postpone)
        let folded = daily.decide(handledThrough: utc("2026-05-07T12:00Z"), now: utc("2026-05-11T09:00:10Z"))
        #expect(folded.fire == Fire(occurrence: utc("2026-05-10T12:00Z"), kind: .postponed) && folded.missed == 2)
    }

    @Test func neverAllowedEndsTheSchedule() throws {
        let closed = Blackout.recurring(try RunWindow(days: .everyDay, from: time("00:00"), to: time("24:00"), timeZone: zone("UTC")))
        let p = try Self.planner("0 * * * *", blackouts: [closed], outside: .skip)
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T12:00:01Z"))
        #expect(d.fire == nil && d.next == nil && d.skippedOutsideWindow == 2)
    }

    @Test func nowIsNeverLateAndOnceCanBe() throws {
        let requested = utc("2026-05-04T10:00Z")
        let policy = try FirePolicy(missedFire: .skip)
        let now = FirePlanner(schedule: .now(requestedAt: requested), policy: policy, activeSince: requested)
        let first = now.decide(handledThrough: nil, now: requested.addingTimeInterval(7200))
        #expect(first.fire == Fire(occurrence: requested, kind: .onTime) && first.next == nil)
        #expect(now.decide(handledThrough: first.handledThrough, now: requested.addingTimeInterval(7201)).fire == nil)

        let once = FirePlanner(schedule: .once(at: requested), policy: policy, activeSince: utc("2026-05-01T00:00Z"))
        let late = once.decide(handledThrough: nil, now: requested.addingTimeInterval(7200))
        #expect(late.fire == nil && late.missed == 1 && late.next == nil)
        #expect(once.decide(handledThrough: nil, now: requested.addingTimeInterval(30)).fire?.kind == .onTime)
    }

    @Test func intervalSchedule() throws {
        let every = try IntervalSchedule(every: .seconds(300), anchor: utc("2026-05-04T10:00Z"))
        let p = FirePlanner(schedule: .interval(every), policy: try FirePolicy(missedFire: .runOnce, lateness: .seconds(10)),
                            activeSince: utc("2026-05-04T10:00Z"))
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T10:05:11Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T10:05Z"), kind: .catchUp))  // 11 s > 10 s lateness
    }

    /// Sixty days down with an every-minute job: beyond the walk bound the planner jumps close to
    /// now, still finds the occurrence postponed to this morning's opening, and stays exact.
    @Test func longDowntimeIsBoundedAndExact() throws {
        let monday = try RunWindow(days: .monday, from: time("09:00"), to: time("17:00"), timeZone: zone("UTC"))
        let p = try Self.planner("5-59 * * * *", windows: [monday], missed: .skip, outside: .postpone)
        let d = p.decide(handledThrough: utc("2026-03-09T10:00Z"), now: utc("2026-05-11T09:00:30Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-11T08:59Z"), kind: .postponed))
        #expect(d.handledThrough == utc("2026-05-11T08:59Z"))
        #expect(d.next == Occurrence(scheduled: utc("2026-05-11T09:05Z"), due: utc("2026-05-11T09:05Z")))

        let runOnce = FirePlanner(schedule: .cron(try cron("* * * * *", "UTC")),
                                  policy: try FirePolicy(missedFire: .runOnce, lateness: .seconds(1)), activeSince: utc("2026-03-01T00:00Z"))
        let caught = runOnce.decide(handledThrough: utc("2026-03-09T10:00Z"), now: utc("2026-05-11T08:59:30Z"))
        #expect(caught.fire == Fire(occurrence: utc("2026-05-11T08:59Z"), kind: .catchUp))
        #expect(caught.handledThrough == utc("2026-05-11T08:59Z") && caught.next?.scheduled == utc("2026-05-11T09:00Z"))
    }

    @Test func longDowntimeOfAnEverySecondJobStillFindsTheOnTimeOccurrence() throws {
        let every = try IntervalSchedule(every: .seconds(1), anchor: utc("2026-05-04T00:00Z"))
        let p = FirePlanner(schedule: .interval(every), policy: try FirePolicy(missedFire: .skip), activeSince: utc("2026-05-04T00:00Z"))
        let d = p.decide(handledThrough: utc("2026-05-04T00:00Z"), now: utc("2026-05-04T10:00:00.5Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T10:00Z"), kind: .onTime))
        #expect(d.handledThrough == utc("2026-05-04T10:00Z") && d.next?.scheduled == utc("2026-05-04T10:00:01Z"))
    }

    @Test func dstDoesNotDoubleFireThroughThePlanner() throws {
        // 02:30 Paris on fall-back day, decided at both occurrences of 02:30: one run only.
        let p = try Self.planner("30 2 * * *", "Europe/Paris")
        let first = p.decide(handledThrough: utc("2026-10-24T00:30Z"), now: utc("2026-10-25T00:30:01Z"))
        #expect(first.fire?.occurrence == utc("2026-10-25T00:30Z"))
        let second = p.decide(handledThrough: first.handledThrough, now: utc("2026-10-25T01:30:01Z"))
        #expect(second.fire == nil && second.next?.scheduled == utc("2026-10-26T01:30Z"))
    }

    @Test(arguments: [Duration.zero, .milliseconds(500), .seconds(86_401)])
    func invalidLateness(_ lateness: Duration) {
        #expect { try FirePolicy(lateness: lateness) } throws: { ($0 as? ScheduleError)?.code == .invalidPolicy }
    }
}

/// The loop the dispatcher will run, driven by a manual clock: wake at the next due time (a few
/// seconds late), decide, record the run, store the watermark.
@Suite struct DispatchLoopTests {
    static func run(_ planner: FirePlanner, clock: ManualClock, until end: Date, downtime: ClosedRange<Date>? = nil,
                    rng: inout SeededRandom) -> [Fire] {
        var fires: [Fire] = []
        var watermark: Date?
        for _ in 0..<10_000 {
            let decision = planner.decide(handledThrough: watermark, now: clock.now())
            if let fire = decision.fire { fires.append(fire) }
            watermark = decision.handledThrough
            guard let next = decision.next, next.due < end else { break }
            var wake = max(next.due, clock.now()).addingTimeInterval(Double.random(in: 0...20, using: &rng))
            if let downtime, downtime.contains(wake) { wake = downtime.upperBound }
            clock.set(wake)
        }
        return fires
    }

    @Test(arguments: [("30 1 * * *", "America/New_York"), ("0 * * * *", "America/New_York"), ("*/20 2 * * *", "Europe/Paris"),
                      ("45 1 * * *", "Australia/Lord_Howe"), ("0 2 * * *", "Australia/Lord_Howe")])
    func runsEveryOccurrenceOnceAcrossDaylightSaving(_ expression: String, _ zoneID: String) throws {
        var rng = SeededRandom(state: 3)
        let schedule = try cron(expression, zoneID)
        for start in [utc("2026-03-06T00:00Z"), utc("2026-03-27T00:00Z"), utc("2026-10-23T00:00Z"), utc("2026-10-29T00:00Z"),
                      utc("2026-04-02T00:00Z"), utc("2026-10-01T00:00Z")] {
            let end = start.addingTimeInterval(5 * 86_400)
            let planner = FirePlanner(schedule: .cron(schedule), policy: try FirePolicy(), activeSince: start)
            let fires = Self.run(planner, clock: ManualClock(start), until: end, rng: &rng)
            let expected = Array(schedule.fires(after: start.addingTimeInterval(-1)).prefix { $0 < end })
            #expect(fires.map(\.occurrence) == expected)
            #expect(fires.allSatisfy { $0.kind == .onTime })
        }
    }

    @Test func downtimeWithRunOnceCatchesUpOnceThenContinues() throws {
        var rng = SeededRandom(state: 5)
        let start = utc("2026-05-04T00:00Z")
        let planner = try FirePlannerTests.planner("0 * * * *", missed: .runOnce, activeSince: "2026-05-04T00:00Z")
        let down = utc("2026-05-04T05:30Z")...utc("2026-05-04T09:40Z")
        let fires = Self.run(planner, clock: ManualClock(start), until: utc("2026-05-04T12:30Z"), downtime: down, rng: &rng)
        #expect(fires.map(\.occurrence).map(iso) == [
            "2026-05-04T00:00:00Z", "2026-05-04T01:00:00Z", "2026-05-04T02:00:00Z", "2026-05-04T03:00:00Z", "2026-05-04T04:00:00Z",
            "2026-05-04T05:00:00Z", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z", "2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z",
        ])
        #expect(fires.filter { $0.kind == .catchUp }.map(\.occurrence) == [utc("2026-05-04T09:00Z")])
    }

    @Test func clockMovingBackwardsNeverRefires() throws {
        let p = try FirePlannerTests.planner("0 * * * *")
        let d = p.decide(handledThrough: utc("2026-05-04T12:00Z"), now: utc("2026-05-04T11:00Z"))
        #expect(d.fire == nil && d.handledThrough == utc("2026-05-04T12:00Z") && d.next?.scheduled == utc("2026-05-04T13:00Z"))
    }
}
