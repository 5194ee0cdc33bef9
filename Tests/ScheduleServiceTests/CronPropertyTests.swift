import Foundation
import Testing
@testable import ScheduleService

/// SplitMix64: a fixed seed makes every run test the same cases.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct CronPropertyTests {
    static let zones = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

    /// Random valid expressions in random zones, from random starts near a 2026 transition:
    /// the fast search and the minute-by-minute evaluation of the rule must agree.
    @Test func randomExpressionsAgreeWithBruteForce() throws {
        var rng = SeededRandom(state: 7)
        var compared = 0
        for _ in 0..<150 {
            let text = [
                Self.field(0...59, names: nil, &rng), Self.field(0...23, names: nil, &rng), Self.field(1...31, names: nil, &rng),
                Self.field(1...12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], &rng),
                Self.field(0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], &rng),
            ].joined(separator: " ")
            let zoneID = Self.zones.randomElement(using: &rng)!
            let schedule = try cron(text, zoneID)
            let anchors = ["2026-03-29T01:00Z", "2026-10-25T01:00Z", "2026-03-08T07:00Z", "2026-11-01T06:00Z",
                           "2026-10-03T15:30Z", "2026-04-04T15:00Z", "2026-02-27T00:00Z"]
            let start = Int64(utc(anchors.randomElement(using: &rng)!).timeIntervalSince1970) - Int64.random(in: 0...(2 * 86_400), using: &rng)
            let end = start + 3 * 86_400
            let expected = bruteForce(schedule, from: start, to: end)
            var got: [Int64] = []
            var cursor = start
            while let next = schedule.nextFire(afterSecond: cursor), next <= end {
                got.append(next)
                cursor = next
            }
            #expect(firstDifference(got, expected) == nil, "\(text) in \(zoneID) from \(start)")
            compared += expected.count
        }
        #expect(compared > 1_000)  // the generator produces schedules that do fire
    }

    /// Random bytes from cron's alphabet, and mutations of valid expressions: the parser either
    /// accepts (and the schedule computes) or throws a `CronParseError`; it never traps.
    @Test func garbageNeverCrashes() {
        var rng = SeededRandom(state: 42)
        let alphabet = Array("0123456789*/-,@ \tJANMONSUNjan?#LW\u{0}\u{7F}é٣")
        let seeds = ["*/15 9-17 * * MON-FRI", "0 0 29 2 *", "@weekly", "5-10/2 1,2,3 */7 JAN-DEC/3 0-7"]
        var accepted = 0, rejected = 0
        for i in 0..<3_000 {
            var text: String
            if i % 2 == 0 {
                text = String((0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            } else {
                var chars = Array(seeds.randomElement(using: &rng)!)
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !chars.isEmpty {
                    chars[Int.random(in: 0..<chars.count, using: &rng)] = alphabet.randomElement(using: &rng)!
                }
                text = String(chars)
            }
            do {
                let e = try CronExpression(parsing: text)
                _ = CronSchedule(e, timeZone: zone("Europe/Paris")).nextFire(after: utc("2026-03-28T23:00Z"))
                accepted += 1
            } catch {
                #expect(!error.description.isEmpty && error.description.utf8.count < 300)
                rejected += 1
            }
        }
        #expect(accepted > 50 && rejected > 1_000)
    }

    static func field(_ range: ClosedRange<Int>, names: [String]?, _ rng: inout SeededRandom) -> String {
        func value(_ v: Int) -> String {
            // Names: JAN=1...DEC=12, SUN=0...SAT=6 (7 has no name of its own).
            if let names, v - range.lowerBound < names.count, Bool.random(using: &rng) { return names[v - range.lowerBound] }
            return String(v)
        }
        func element() -> String {
            let a = Int.random(in: range, using: &rng)
            let b = Int.random(in: a...range.upperBound, using: &rng)
            let step = Int.random(in: 1...max(1, range.count / 3), using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: return "*"
            case 1: return "*/\(step)"
            case 2: return value(a)
            case 3: return "\(value(a))-\(value(b))"
            case 4: return "\(a)-\(b)/\(step)"
            default: return "\(value(a)),\(value(b))"
            }
        }
        // Day fields lean towards `*` so that both OR and AND rules are exercised.
        if range.lowerBound == 1 && range.upperBound == 31 || range.upperBound == 7, Int.random(in: 0..<3, using: &rng) == 0 { return "*" }
        return (0..<Int.random(in: 1...2, using: &rng)).map { _ in element() }.joined(separator: ",")
    }
}
