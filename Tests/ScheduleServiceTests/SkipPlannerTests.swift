import Foundation
import Testing
@testable import ScheduleService

/// Every occurrence a decision consumes without a run of its own comes back as a skip with its
/// cause: the planner's side of "every skipped occurrence is a SKIPPED plan run".
@Suite struct SkipPlannerTests {
    typealias P = FirePlannerTests

    static func times(_ skips: [SkippedOccurrence]) -> [String] { skips.map { iso($0.scheduled) } }

    @Test func missedUnderSkipAreEachListed() throws {
        let p = try P.planner("0 * * * *", missed: .skip)
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:30Z"))
        #expect(Self.times(d.skips) == ["2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z", "2026-05-04T13:00:00Z", "2026-05-04T14:00:00Z"])
        #expect(d.skips.allSatisfy { $0.cause == .missed } && d.unlisted == nil)
        // Deciding again from the stored watermark lists nothing again.
        #expect(p.decide(handledThrough: d.handledThrough, now: utc("2026-05-04T14:40Z")).skips.isEmpty)

        // Back in time for 14:00: it runs, the three before it are listed as missed.
        let onTime = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:00:20Z"))
        #expect(onTime.fire?.occurrence == utc("2026-05-04T14:00Z"))
        #expect(Self.times(onTime.skips) == ["2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z", "2026-05-04T13:00:00Z"])
    }

    @Test func missedUnderRunOnceAreCoveredByTheCatchUp() throws {
        let p = try P.planner("0 * * * *", missed: .runOnce)
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T14:30Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T14:00Z"), kind: .catchUp))
        #expect(Self.times(d.skips) == ["2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z", "2026-05-04T13:00:00Z"])
        #expect(d.skips.allSatisfy { $0.cause == .caughtUp(by: utc("2026-05-04T14:00Z")) })

        // A catch-up that waits for the windows (postpone) already stands for the others; its own
        // occurrence is not a skip, it runs when the window opens.
        let office = try P.office()
        let waiting = try P.planner("0 12 * * *", windows: [office], missed: .runOnce, outside: .postpone)
        let saturday = waiting.decide(handledThrough: utc("2026-05-06T12:00Z"), now: utc("2026-05-09T10:00Z"))
        #expect(saturday.fire == nil && saturday.next?.scheduled == utc("2026-05-08T12:00Z"))
        #expect(Self.times(saturday.skips) == ["2026-05-07T12:00:00Z"])
        #expect(saturday.skips.first?.cause == .caughtUp(by: utc("2026-05-08T12:00Z")))
    }

    @Test func occurrencesDueTogetherFoldIntoTheLatest() throws {
        let every = try IntervalSchedule(every: .seconds(10), anchor: utc("2026-05-04T10:00Z"))
        let p = FirePlanner(schedule: .interval(every), policy: try FirePolicy(missedFire: .skip), activeSince: utc("2026-05-04T10:00Z"))
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T10:00:35Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T10:00:30Z"), kind: .onTime))
        #expect(Self.times(d.skips) == ["2026-05-04T10:00:10Z", "2026-05-04T10:00:20Z"])
        #expect(d.skips.allSatisfy { $0.cause == .folded(into: utc("2026-05-04T10:00:30Z")) })
    }

    @Test func outsideWindowsAndBlackoutsSayWhich() throws {
        let freeze = try Blackout.period(from: utc("2026-05-04T10:30Z"), to: utc("2026-05-04T13:15Z"), reason: "release freeze")
        let p = try P.planner("0 * * * *", windows: [P.office()], blackouts: [freeze], outside: .skip)
        let d = p.decide(handledThrough: utc("2026-05-04T10:00Z"), now: utc("2026-05-04T20:00:10Z"))
        let causes = Dictionary(uniqueKeysWithValues: d.skips.map { (iso($0.scheduled), $0.cause) })
        #expect(causes["2026-05-04T11:00:00Z"] == .blackout(reason: "release freeze"))
        #expect(causes["2026-05-04T13:00:00Z"] == .blackout(reason: "release freeze"))
        #expect(causes["2026-05-04T17:00:00Z"] == .outsideWindows)
        #expect(causes["2026-05-04T20:00:00Z"] == .outsideWindows)
        // 14:00, 15:00 and 16:00 were inside the window: missed (late), not closed.
        #expect(causes["2026-05-04T14:00:00Z"] == .missed)
        #expect(d.skips.count == 10 && d.fire == nil)
    }

    /// Three days down with an every-minute job: the one still on time runs, the latest 100
    /// missed are listed, 4,219 summed up.
    @Test func aLongOutageIsListedBoundedAndSummedUp() throws {
        let p = try P.planner("* * * * *", missed: .skip)
        let d = p.decide(handledThrough: utc("2026-05-04T00:00Z"), now: utc("2026-05-07T00:00:30Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-07T00:00Z"), kind: .onTime))
        #expect(d.skips.count == SkipLedger.limit && d.skips.allSatisfy { $0.cause == .missed })
        #expect(d.skips.last?.scheduled == utc("2026-05-06T23:59Z"))
        #expect(d.skips.first?.scheduled == utc("2026-05-06T22:20Z"))
        let summary = try #require(d.unlisted)
        #expect(summary.exact && summary.count == 3 * 1440 - 101 && summary.missed == summary.count)
        #expect(summary.first == utc("2026-05-04T00:01Z") && summary.last == utc("2026-05-06T22:19Z"))
        #expect(summary.count + d.skips.count == d.missed)

        // Sixty days: the walk jumps, so the summary is a lower bound, and still at most 100 listed.
        let long = p.decide(handledThrough: utc("2026-03-01T00:00Z"), now: utc("2026-05-01T00:00:30Z"))
        #expect(long.skips.count == SkipLedger.limit && long.unlisted?.exact == false)
        #expect(long.skips.last?.scheduled == utc("2026-04-30T23:59Z"))
        #expect(Set(long.skips.map(\.scheduled)).count == long.skips.count)
    }

    /// The catch-up's occurrence was already summed up (more than 200 closed minutes after it):
    /// the summary moves its key off it, so the run and the summary never share one.
    @Test func aCatchUpTakenOutOfTheSummaryKeepsKeysApart() throws {
        let freeze = try Blackout.period(from: utc("2026-05-04T09:00Z"), to: utc("2026-05-04T12:30:30Z"))
        let p = try P.planner("* * * * *", blackouts: [freeze], missed: .runOnce)
        let d = p.decide(handledThrough: utc("2026-05-04T08:58Z"), now: utc("2026-05-04T12:30:40Z"))
        #expect(d.fire == Fire(occurrence: utc("2026-05-04T08:59Z"), kind: .catchUp))
        let summary = try #require(d.unlisted)
        #expect(summary.first > utc("2026-05-04T08:59Z") && summary.first < utc("2026-05-04T09:00Z"))
        #expect(d.skips.count == SkipLedger.limit && summary.count + d.skips.count == 211, "09:00 through 12:30")
        #expect(d.skips.allSatisfy { $0.cause == .blackout(reason: "") })
    }

    @Test func reasonsReadWellAndClipHostileBlackoutText() throws {
        let policy = try FirePolicy(missedFire: .skip)
        #expect(SkipText.reason(.missed, policy: policy).contains("within 60 s"))
        #expect(SkipText.reason(.outsideWindows, policy: policy) == "outside the plan's run windows")
        let hostile = String(repeating: "é\u{1B}[31m\n\u{0}", count: 300)
        let text = SkipText.reason(.blackout(reason: hostile), policy: policy)
        #expect(text.hasPrefix("in a blackout: é"))
        #expect(!text.unicodeScalars.contains { $0.properties.generalCategory == .control })
        #expect(text.count <= "in a blackout: ".count + 201)
        var summary = SkipSummary()
        summary.count = 5; summary.missed = 3; summary.closed = 2
        summary.first = utc("2026-05-04T00:01Z"); summary.last = utc("2026-05-04T00:05Z"); summary.exact = false
        #expect(SkipText.summary(summary).hasPrefix("at least 5 earlier occurrences from 2026-05-04T00:01:00Z to 2026-05-04T00:05:00Z"))
    }

    /// A random walk of decisions (late wake-ups, downtimes, a window, a blackout, both policies):
    /// every occurrence of the schedule is accounted for exactly once, as a run, a listed skip or
    /// a summary, and nothing is listed twice. Three weeks, every 7 minutes.
    @Test(arguments: [MissedFirePolicy.skip, .runOnce], [OutsideWindowPolicy.skip, .postpone])
    func everyOccurrenceIsRunOrSkippedExactlyOnce(_ missed: MissedFirePolicy, _ outside: OutsideWindowPolicy) throws {
        var rng = SeededRandom(state: 11)
        let start = utc("2026-05-04T00:00Z")
        let end = utc("2026-05-25T00:00Z")
        let freeze = try Blackout.period(from: utc("2026-05-06T03:00Z"), to: utc("2026-05-06T05:30Z"), reason: "freeze")
        let planner = try P.planner("*/7 * * * *", windows: [P.office()], blackouts: [freeze], missed: missed, outside: outside,
                                    activeSince: "2026-05-04T00:00Z")
        let clock = ManualClock(start)
        var watermark: Date?
        var ran: [Date] = [], listed: [Date] = [], summed = 0
        for _ in 0..<20_000 {
            let d = planner.decide(handledThrough: watermark, now: clock.now())
            ran += d.fire.map { [$0.occurrence] } ?? []
            listed += d.skips.map(\.scheduled)
            if let summary = d.unlisted {
                #expect(summary.exact)
                summed += summary.count
            }
            watermark = d.handledThrough
            guard let next = d.next, next.due < end else { break }
            // Mostly on time, sometimes a few minutes late, now and then down for hours.
            let late: Double = switch Int.random(in: 0..<20, using: &rng) {
            case 0: Double.random(in: 3600...200_000, using: &rng)  // up to two days: summaries too
            case 1...3: Double.random(in: 61...900, using: &rng)
            default: Double.random(in: 0...20, using: &rng)
            }
            clock.set(max(next.due, clock.now()).addingTimeInterval(late))
        }
        let handled = try #require(watermark)
        let expected = Array(try cron("*/7 * * * *", "UTC").fires(after: start.addingTimeInterval(-1)).prefix { $0 <= handled })
        let accounted = ran + listed
        #expect(Set(accounted).count == accounted.count, "nothing run or listed twice")
        #expect(Set(accounted).isSubset(of: Set(expected)))
        #expect(accounted.count + summed == expected.count, "every occurrence accounted for")
        #expect(!ran.isEmpty && !listed.isEmpty && summed > 0)
    }
}
