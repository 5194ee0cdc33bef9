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
