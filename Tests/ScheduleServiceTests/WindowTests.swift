import Foundation
import Testing
@testable import ScheduleService

@Suite struct WindowTests {
    static func window(_ days: Weekdays, _ from: String, _ to: String, _ zoneID: String) throws -> RunWindow {
        try RunWindow(days: days, from: time(from), to: time(to), timeZone: zone(zoneID))
    }

    /// Window → instants inside and outside. 2026-03-30 is a Monday.
    @Test func weekdaysOfficeHoursInParis() throws {
        let w = try Self.window(.weekdays, "09:00", "17:00", "Europe/Paris")
        #expect(w.contains(utc("2026-03-30T07:00Z")))  // Mon 09:00 CEST
        #expect(!w.contains(utc("2026-03-30T06:59:59Z")))
        #expect(w.contains(utc("2026-03-30T14:59:59Z")))
        #expect(!w.contains(utc("2026-03-30T15:00Z")))  // 17:00 is the end, excluded
        #expect(!w.contains(utc("2026-03-28T10:00Z")))  // Saturday
        #expect(w.contains(utc("2026-03-27T08:00Z")))  // Fri 09:00 CET, before the change
    }

    @Test func overnightWindowBelongsToTheDayItOpens() throws {
        let w = try Self.window(.friday, "22:00", "06:00", "UTC")  // 2026-05-01 is a Friday
        #expect(!w.contains(utc("2026-04-30T23:00Z")))  // Thursday night
        #expect(w.contains(utc("2026-05-01T22:00Z")))
        #expect(w.contains(utc("2026-05-02T05:59Z")))  // Saturday morning, still Friday's window
        #expect(!w.contains(utc("2026-05-02T06:00Z")))
        #expect(!w.contains(utc("2026-05-02T22:30Z")))  // Saturday night: not listed
        #expect(!w.contains(utc("2026-05-01T05:00Z")))  // Friday morning belongs to Thursday
    }

    @Test func wholeDayWindow() throws {
        let w = try Self.window(.sunday, "00:00", "24:00", "America/New_York")
        #expect(w.contains(utc("2026-05-03T04:00Z")))  // Sun 00:00 EDT
        #expect(w.contains(utc("2026-05-04T03:59:59Z")))  // Sun 23:59:59
        #expect(!w.contains(utc("2026-05-04T04:00Z")))
    }

    /// Across daylight saving the window follows the wall clock: shorter on spring-forward day,
    /// longer on fall-back day, gone when it lies wholly inside the gap.
    @Test func daylightSavingFollowsTheWallClock() throws {
        let night = try Self.window(.everyDay, "01:00", "04:00", "Europe/Paris")
        #expect(try openSeconds(night, from: utc("2026-03-28T22:00Z"), to: utc("2026-03-29T06:00Z")) == 2 * 3600)
        #expect(try openSeconds(night, from: utc("2026-10-24T22:00Z"), to: utc("2026-10-25T06:00Z")) == 4 * 3600)
        #expect(try openSeconds(night, from: utc("2026-05-01T22:00Z"), to: utc("2026-05-02T06:00Z")) == 3 * 3600)

        let inGap = try Self.window(.sunday, "02:00", "02:30", "Europe/Paris")
        #expect(try openSeconds(inGap, from: utc("2026-03-28T22:00Z"), to: utc("2026-03-29T06:00Z")) == 0)
        let availability = Availability(windows: [inGap])
        #expect(availability.nextAllowed(from: utc("2026-03-28T12:00Z")) == utc("2026-04-05T00:00Z"))

        // Opening inside the gap: the window is open from the first instant after it.
        let late = try Self.window(.everyDay, "02:30", "05:00", "Europe/Paris")
        #expect(Availability(windows: [late]).nextAllowed(from: utc("2026-03-28T23:00Z")) == utc("2026-03-29T01:00Z"))

        // Lord Howe's 30-minute change: 02:00-02:29 does not exist on 2026-10-04.
        let lh = try Self.window(.everyDay, "02:00", "03:00", "Australia/Lord_Howe")
        #expect(try openSeconds(lh, from: utc("2026-10-03T12:00Z"), to: utc("2026-10-03T20:00Z")) == 1800)
        #expect(Availability(windows: [lh]).nextAllowed(from: utc("2026-10-03T12:00Z")) == utc("2026-10-03T15:30Z"))
    }

    /// New York, 2026-11-01: 00:30-01:30 EDT, then the clock falls back to 01:00 and the window
    /// reopens mid-range, without the wall clock passing its start time again.
    @Test func fallBackReopensAWindow() throws {
        let w = try Self.window(.everyDay, "00:30", "01:30", "America/New_York")
        let availability = Availability(windows: [w])
        #expect(availability.isAllowed(at: utc("2026-11-01T05:00Z")))  // 01:00 EDT
        #expect(!availability.isAllowed(at: utc("2026-11-01T05:40Z")))  // 01:40 EDT
        #expect(availability.nextAllowed(from: utc("2026-11-01T05:40Z")) == utc("2026-11-01T06:00Z"))  // 01:00 EST
        #expect(availability.isAllowed(at: utc("2026-11-01T06:29Z")))
        #expect(!availability.isAllowed(at: utc("2026-11-01T06:30Z")))
        #expect(availability.nextAllowed(from: utc("2026-11-01T06:30Z")) == utc("2026-11-02T05:30Z"))  // 00:30 EST
    }

    @Test func blackouts() throws {
        let office = try Self.window(.weekdays, "09:00", "17:00", "Europe/Paris")
        let freeze = try Blackout.period(from: utc("2026-03-30T00:00Z"), to: utc("2026-03-31T12:00Z"))
        let fridays = Blackout.recurring(try Self.window(.friday, "12:00", "24:00", "Europe/Paris"))
        let availability = Availability(windows: [office], blackouts: [freeze, fridays])
        #expect(!availability.isAllowed(at: utc("2026-03-30T10:00Z")))  // Monday, frozen
        #expect(availability.nextAllowed(from: utc("2026-03-30T06:00Z")) == utc("2026-03-31T12:00Z"))  // Tue 14:00
        #expect(freeze.contains(utc("2026-03-30T00:00Z")) && !freeze.contains(utc("2026-03-31T12:00Z")))
        #expect(availability.isAllowed(at: utc("2026-04-03T09:59Z")))  // Fri 11:59 CEST
        #expect(!availability.isAllowed(at: utc("2026-04-03T10:00Z")))  // Fri 12:00 blackout
        #expect(availability.nextAllowed(from: utc("2026-04-03T10:00Z")) == utc("2026-04-06T07:00Z"))  // Mon 09:00
        // With no windows and no blackouts, everything is allowed.
        #expect(Availability.always.nextAllowed(from: utc("2026-04-03T10:00:00.5Z")) == utc("2026-04-03T10:00:00.5Z"))
    }

    @Test func neverAllowed() throws {
        let office = try Self.window(.weekdays, "09:00", "17:00", "UTC")
        let weekdaysOff = Blackout.recurring(try Self.window(.weekdays, "08:00", "18:00", "UTC"))
        #expect(Availability(windows: [office], blackouts: [weekdaysOff]).nextAllowed(from: utc("2026-04-03T10:00Z")) == nil)
        let always = Blackout.recurring(try Self.window(.everyDay, "00:00", "24:00", "Asia/Kolkata"))
        #expect(Availability(blackouts: [always]).nextAllowed(from: utc("2026-04-03T10:00Z")) == nil)
    }

    @Test(arguments: ["9:00", "24:01", "12:60", "ab:cd", "", "12:00:00", "１２:００", "-1:00", "12-00"])
    func badLocalTimes(_ text: String) {
        #expect { try LocalTime(parsing: text) } throws: { ($0 as? ScheduleError)?.code == .invalidLocalTime }
    }

    @Test func badWindowsAndBlackouts() throws {
        #expect { try Self.window([], "09:00", "17:00", "UTC") } throws: { ($0 as? ScheduleError)?.code == .invalidWindow }
        #expect { try Self.window(.monday, "09:00", "09:00", "UTC") } throws: { ($0 as? ScheduleError)?.code == .invalidWindow }
        #expect { try Self.window(.monday, "24:00", "09:00", "UTC") } throws: { ($0 as? ScheduleError)?.code == .invalidWindow }
        #expect { try Blackout.period(from: utc("2026-01-02T00:00Z"), to: utc("2026-01-01T00:00Z")) } throws: {
            ($0 as? ScheduleError)?.code == .invalidBlackout
        }
        #expect { try Blackout.period(from: utc("2026-01-02T00:00Z"), to: utc("2026-01-02T00:00Z")) } throws: {
            ($0 as? ScheduleError)?.code == .invalidBlackout
        }
        #expect { try RunWindow(days: .monday, from: time("09:00"), to: time("17:00"), timeZoneIdentifier: "GMT+2") } throws: {
            ($0 as? ScheduleError)?.code == .unknownTimeZone
        }
        let paris = try RunWindow(days: .monday, from: time("09:00"), to: time("17:00"), timeZoneIdentifier: "Europe/Paris")
        #expect(paris.timeZone.identifier == "Europe/Paris")
        #expect(try LocalTime(parsing: "24:00").description == "24:00")
        #expect(try LocalTime(parsing: "07:05").description == "07:05")
    }
}

/// Seconds the window is open in [from, to), counted minute by minute.
private func openSeconds(_ window: RunWindow, from: Date, to: Date) throws -> Int {
    stride(from: from.timeIntervalSince1970, to: to.timeIntervalSince1970, by: 60)
        .filter { window.contains(Date(timeIntervalSince1970: $0)) }.count * 60
}
