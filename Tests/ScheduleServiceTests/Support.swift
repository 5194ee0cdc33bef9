import Foundation
@testable import ScheduleService

/// `2026-03-29T01:00:00Z` (or with seconds omitted: `2026-03-29T01:00Z`) as a Date.
func utc(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    if text.contains(".") { formatter.formatOptions.insert(.withFractionalSeconds) }
    let full = text.count == 17 ? String(text.dropLast()) + ":00Z" : text
    guard let date = formatter.date(from: full) else { fatalError("bad test date \(text)") }
    return date
}

func iso(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    return formatter.string(from: date)
}

func zone(_ id: String) -> TimeZone {
    guard let zone = TimeZone(identifier: id) else { fatalError("no zone \(id) in tzdata") }
    return zone
}

func cron(_ expression: String, _ zoneID: String) throws -> CronSchedule {
    try CronSchedule(parsing: expression, timeZoneIdentifier: zoneID)
}

func time(_ text: String) throws -> LocalTime { try LocalTime(parsing: text) }

/// The rule, evaluated the slow way: walk every real minute; a minute whose wall reading matches
/// fires if the job runs every hour or this is the reading's first occurrence; a transition
/// instant fires for a fixed-time job if some matching reading was jumped over.
func bruteForce(_ schedule: CronSchedule, from: Int64, to: Int64) -> [Int64] {
    let rules = schedule.zone
    let e = schedule.expression
    var fires: [Int64] = []
    var seenWalls = Set<Int64>()
    var previousWall: Int64?
    var instant = (from / 60 + 1) * 60
    while instant <= to {
        let wall = rules.wall(at: instant)
        var fire = false
        if let previousWall, wall > previousWall + 60, !e.runsEveryHour {
            var w = previousWall + 60
            while w < wall { if e.matches(wall: w) { fire = true }; w += 60 }
        }
        if e.matches(wall: wall), e.runsEveryHour || !seenWalls.contains(wall) { fire = true }
        if fire { fires.append(instant) }
        seenWalls.insert(wall)
        previousWall = wall
        instant += 60
    }
    return fires
}

/// Nil when equal; otherwise where two fire lists first part, short enough to read.
func firstDifference(_ got: [Int64], _ expected: [Int64]) -> String? {
    guard got != expected else { return nil }
    let i = zip(got, expected).prefix { $0 == $1 }.count
    let show = { (list: [Int64]) in i < list.count ? iso(Date(timeIntervalSince1970: Double(list[i]))) : "end" }
    return "fire #\(i): got \(show(got)), expected \(show(expected)) (\(got.count) vs \(expected.count) fires)"
}
