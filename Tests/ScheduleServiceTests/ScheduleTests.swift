import Foundation
import Testing
@testable import ScheduleService

@Suite struct ScheduleTests {
    @Test func onceAndNow() {
        let at = utc("2026-05-01T12:00Z")
        #expect(Schedule.once(at: at).nextFires(after: utc("2026-05-01T00:00Z"), count: 3) == [at])
        #expect(Schedule.once(at: at).nextFire(after: at) == nil)
        #expect(Schedule.now(requestedAt: at).nextFire(after: at.addingTimeInterval(-0.001)) == at)
    }

    @Test func intervalFromAnchor() throws {
        let anchor = utc("2026-03-29T00:30Z")
        let every90 = try IntervalSchedule(every: .seconds(90), anchor: anchor)
        #expect(every90.nextFire(after: utc("2026-01-01T00:00Z")) == anchor)
        #expect(every90.nextFire(after: anchor) == anchor.addingTimeInterval(90))
        #expect(every90.nextFire(after: anchor.addingTimeInterval(89.999)) == anchor.addingTimeInterval(90))
        // Real elapsed time: across Paris' spring change, still every 90 seconds.
        let fires = Schedule.interval(every90).nextFires(after: utc("2026-03-29T00:59Z"), count: 3)
        #expect(fires.map(iso) == ["2026-03-29T01:00:00Z", "2026-03-29T01:01:30Z", "2026-03-29T01:03:00Z"])
        let hourly = try IntervalSchedule(every: .seconds(3600), anchor: anchor)
        #expect(hourly.nextFire(after: utc("2027-03-29T00:29:59Z")) == utc("2027-03-29T00:30Z"))
    }

    @Test func intervalNeverRepeatsAFireThroughDoubleRounding() throws {
        let odd = try IntervalSchedule(every: .milliseconds(1_001), anchor: Date(timeIntervalSince1970: 1_774_000_000.123457))
        let fires = Schedule.interval(odd).nextFires(after: .distantPast, count: 2_000)
        #expect(fires.count == 2_000)
        #expect(zip(fires, fires.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test(arguments: [Duration.zero, .seconds(-5), .milliseconds(999), .seconds(3_661 * 86_400)])
    func invalidIntervals(_ every: Duration) {
        #expect { try IntervalSchedule(every: every, anchor: utc("2026-01-01T00:00Z")) } throws: {
            ($0 as? ScheduleError)?.code == .invalidInterval
        }
    }

    @Test func intervalEndsInsteadOfOverflowing() throws {
        let yearly = try IntervalSchedule(every: .seconds(3_660 * 86_400), anchor: utc("2026-01-01T00:00Z"))
        #expect(yearly.nextFire(after: Date(timeIntervalSince1970: 9e10)) != nil)  // year 4822
        #expect(yearly.nextFire(after: utc("9999-06-01T00:00Z")) == nil)
        #expect(yearly.nextFire(after: Date(timeIntervalSince1970: .nan)) == nil)
        #expect { try IntervalSchedule(every: .seconds(60), anchor: .init(timeIntervalSince1970: .infinity)) } throws: {
            ($0 as? ScheduleError)?.code == .invalidInterval
        }
    }

    @Test func manualClockIsDrivenByHand() async {
        let clock = ManualClock(utc("2026-05-01T12:00Z"))
        let source: any ScheduleClock = clock
        #expect(source.now() == utc("2026-05-01T12:00Z"))
        clock.advance(by: 90)
        #expect(source.now() == utc("2026-05-01T12:01:30Z"))
        clock.set(utc("2026-05-01T11:00Z"))  // clocks can be corrected backwards
        #expect(source.now() == utc("2026-05-01T11:00Z"))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<100 { group.addTask { clock.advance(by: 1) } }
        }
        #expect(source.now() == utc("2026-05-01T11:01:40Z"))
        #expect(SystemClock().now() > utc("2026-01-01T00:00Z"))
    }
}

@Suite struct ConcurrencyTests {
    static let t0 = utc("2026-05-01T12:00Z")
    static let a = RunInFlight(id: "a", startedAt: t0)
    static let b = RunInFlight(id: "b", startedAt: t0.addingTimeInterval(60))
    static let c = RunInFlight(id: "c", startedAt: t0.addingTimeInterval(60))

    @Test(arguments: [
        (ConcurrencyPolicy.allow, 1, [RunInFlight](), ConcurrencyDecision.start),
        (.allow, 1, [a], .skip(.maximumInFlight)),
        (.allow, 3, [a, b], .start),
        (.allow, 3, [a, b, c], .skip(.maximumInFlight)),
        (.forbid, 1, [], .start),
        (.forbid, 1, [a], .skip(.runInFlight)),
        (.forbid, 5, [a], .skip(.runInFlight)),  // forbid means one at a time whatever the maximum
        (.replace, 1, [], .start),
        (.replace, 1, [a], .startAfterCancelling(["a"])),
        (.replace, 1, [c, a, b], .startAfterCancelling(["a", "b", "c"])),  // oldest first, ties by id
        (.replace, 2, [c, b, a], .startAfterCancelling(["a", "b"])),
        (.replace, 3, [b, a], .start),
        (.replace, 3, [c, b, a], .startAfterCancelling(["a"])),
    ])
    func decisions(_ policy: ConcurrencyPolicy, _ maximum: Int, _ inFlight: [RunInFlight], _ expected: ConcurrencyDecision) throws {
        #expect(try ConcurrencyRule(policy, maximumInFlight: maximum).decide(inFlight: inFlight) == expected)
    }

    @Test(arguments: [0, -1, 1_001, Int.max])
    func invalidMaximum(_ maximum: Int) {
        #expect { try ConcurrencyRule(.allow, maximumInFlight: maximum) } throws: { ($0 as? ScheduleError)?.code == .invalidPolicy }
    }
}
