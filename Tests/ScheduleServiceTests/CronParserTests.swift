import Foundation
import Testing
@testable import ScheduleService
import FaultlineRPC

@Suite struct CronParserTests {
    /// Expression → the minutes, hours, days of month, months and weekdays it selects.
    @Test(arguments: [
        ("* * * * *", "0-59", "0-23", "1-31", "1-12", "0-6"),
        ("*/15 9-17 * * MON-FRI", "0,15,30,45", "9-17", "1-31", "1-12", "1-5"),
        ("0,30 */6 1,15 jan,Jul *", "0,30", "0,6,12,18", "1,15", "1,7", "0-6"),
        ("0 0 * * 7", "0", "0", "1-31", "1-12", "0"),
        ("0 0 * * 5-7", "0", "0", "1-31", "1-12", "0,5,6"),
        ("0 0 * * 0-7", "0", "0", "1-31", "1-12", "0-6"),
        ("10-20/5 1-23/11 2-31/10 FEB-DEC/3 sat", "10,15,20", "1,12,23", "2,12,22", "2,5,8,11", "6"),
        ("59 23 31 12 SUN", "59", "23", "31", "12", "0"),
        ("*/60 */24 */31 */12 */7", "0", "0", "1", "1", "0"),
        ("\t0\t 12  *  *  * ", "0", "12", "1-31", "1-12", "0-6"),
        ("@hourly", "0", "0-23", "1-31", "1-12", "0-6"),
        ("@DAILY", "0", "0", "1-31", "1-12", "0-6"),
        ("@midnight", "0", "0", "1-31", "1-12", "0-6"),
        ("@weekly", "0", "0", "1-31", "1-12", "0"),
        ("@monthly", "0", "0", "1", "1-12", "0-6"),
        ("@yearly", "0", "0", "1", "1", "0-6"),
        ("@annually", "0", "0", "1", "1", "0-6"),
    ])
    func accepts(_ text: String, _ minutes: String, _ hours: String, _ doms: String, _ months: String, _ dows: String) throws {
        let e = try CronExpression(parsing: text)
        #expect(describe(e.minutes, 0...59) == minutes)
        #expect(describe(e.hours, 0...23) == hours)
        #expect(describe(e.daysOfMonth, 1...31) == doms)
        #expect(describe(e.months, 1...12) == months)
        #expect(describe(e.daysOfWeek, 0...7) == dows)
    }

    @Test func starFlagsFollowVixie() throws {
        let restricted = try CronExpression(parsing: "0 0 1 * 1")
        #expect(!restricted.dayOfMonthStar && !restricted.dayOfWeekStar)
        let stepped = try CronExpression(parsing: "0 0 */2 * 1")
        #expect(stepped.dayOfMonthStar && !stepped.dayOfWeekStar)
        #expect(try CronExpression(parsing: "0 * * * *").runsEveryHour)
        #expect(try CronExpression(parsing: "0 0-23 * * *").runsEveryHour)
        #expect(try !CronExpression(parsing: "0 */2 * * *").runsEveryHour)
    }

    /// Expression → error code, field, token, and a fragment of the reason.
    @Test(arguments: [
        ("", CronParseError.Code.empty, nil, nil, "empty"),
        ("   \t ", .empty, nil, nil, "empty"),
        ("* * * *", .wrongFieldCount, nil, nil, "found 4"),
        ("* * * * * *", .wrongFieldCount, nil, nil, "found 6"),
        ("0 0 * * * /bin/true", .wrongFieldCount, nil, nil, "found 6"),
        ("60 * * * *", .outOfRange, CronField.minute, "60", "60 is out of range 0-59"),
        ("* 24 * * *", .outOfRange, .hour, "24", "out of range 0-23"),
        ("* * 0 * *", .outOfRange, .dayOfMonth, "0", "out of range 1-31"),
        ("* * 32 * *", .outOfRange, .dayOfMonth, "32", "out of range 1-31"),
        ("* * * 13 *", .outOfRange, .month, "13", "out of range 1-12"),
        ("* * * 0 *", .outOfRange, .month, "0", "out of range 1-12"),
        ("* * * * 8", .outOfRange, .dayOfWeek, "8", "out of range 0-7"),
        ("*/0 * * * *", .zeroStep, .minute, "*/0", "at least 1"),
        ("0-30/0 * * * *", .zeroStep, .minute, "0-30/0", "at least 1"),
        ("*/61 * * * *", .outOfRange, .minute, "*/61", "larger than the field's span 60"),
        ("30-10 * * * *", .reversedRange, .minute, "30-10", "start 30 is after its end 10"),
        ("* * * * FRI-MON", .reversedRange, .dayOfWeek, "FRI-MON", "start 5 is after its end 1"),
        ("* * * DEC-JAN *", .reversedRange, .month, "DEC-JAN", "start 12 is after its end 1"),
        ("1,,2 * * * *", .emptyElement, .minute, "1,,2", "empty element"),
        (",1 * * * *", .emptyElement, .minute, ",1", "empty element"),
        ("* * * * 1,", .emptyElement, .dayOfWeek, "1,", "empty element"),
        ("5/15 * * * *", .stepWithoutRange, .minute, "5/15", "write 5-59/15 or */15"),
        ("*/5/2 * * * *", .invalidToken, .minute, "*/5/2", "more than one '/'"),
        ("1-2-3 * * * *", .invalidToken, .minute, "1-2-3", "range a-b"),
        ("-5 * * * *", .invalidToken, .minute, "-5", "range a-b"),
        ("5- * * * *", .invalidToken, .minute, "5-", "range a-b"),
        ("*/x * * * *", .invalidToken, .minute, "*/x", "step \"x\" is not a number"),
        ("+5 * * * *", .invalidToken, .minute, "+5", "not a number"),
        ("0x1 * * * *", .invalidToken, .minute, "0x1", "not a number"),
        ("00000001 * * * *", .outOfRange, .minute, "00000001", "out of range"),
        ("99999999999999999999 * * * *", .outOfRange, .minute, "99999999999999999999", "out of range"),
        ("* * * JANUARY *", .invalidToken, .month, "JANUARY", "unknown name"),
        ("* * * * MONDAY", .invalidToken, .dayOfWeek, "MONDAY", "unknown name"),
        ("MON * * * *", .invalidToken, .minute, "MON", "only allowed in the month and day-of-week"),
        ("* * L * *", .invalidToken, .dayOfMonth, "L", "only allowed in the month and day-of-week"),
        ("* * * * 5#3", .invalidToken, .dayOfWeek, "5#3", "not a number"),
        ("? * * * *", .invalidToken, .minute, "?", "not a number"),
        ("@reboot", .unknownAlias, nil, "@reboot", "unknown alias"),
        ("@daily 0", .unknownAlias, nil, "@daily 0", "unknown alias"),
        ("@", .unknownAlias, nil, "@", "unknown alias"),
        ("0 0 * * * é", .invalidCharacter, nil, nil, "U+E9 at position 10"),
        ("0\n0 * * *", .invalidCharacter, nil, nil, "U+A at position 1"),
        ("0 0 * * *\0", .invalidCharacter, nil, nil, "U+0 at position 9"),
    ] as [(String, CronParseError.Code, CronField?, String?, String)])
    func rejects(_ text: String, _ code: CronParseError.Code, _ field: CronField?, _ token: String?, _ reason: String) {
        #expect {
            try CronExpression(parsing: text)
        } throws: { error in
            guard let error = error as? CronParseError else { return false }
            return error.code == code && error.field == field && error.token == token && error.reason.contains(reason)
        }
    }

    @Test func messagesNameFieldTokenAndReason() {
        #expect {
            try CronExpression(parsing: "0 25 * * *")
        } throws: { error in
            "\(error)" == "hour field, token \"25\": 25 is out of range 0-23"
        }
        #expect {
            try CronSchedule(parsing: "*/0 * * * *", timeZoneIdentifier: "UTC")
        } throws: { error in
            guard let error = error as? ScheduleError else { return false }
            return error.code == .invalidCron && error.cron?.code == .zeroStep
                && error.message == "invalid cron expression: minute field, token \"*/0\": step must be at least 1"
        }
    }

    @Test func oversizedAndHostileInputIsRejectedBriefly() {
        let long = String(repeating: "1,", count: 300) + "1 * * * *"
        #expect {
            try CronExpression(parsing: long)
        } throws: { ($0 as? CronParseError)?.code == .tooLong }
        // Just under the cap: a long but valid list is fine.
        let list = (0..<60).map(String.init).joined(separator: ",") + " * * * *"
        #expect(throws: Never.self) { try CronExpression(parsing: list) }
        // A long garbage token is clipped in the error, not echoed whole.
        let garbage = String(repeating: "x", count: 400) + " * * * *"
        #expect {
            try CronExpression(parsing: garbage)
        } throws: { error in
            guard let error = error as? CronParseError, let token = error.token else { return false }
            return token.count == 35 && "\(error)".count < 200
        }
    }

    @Test(arguments: ["UTC", "Etc/UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Europe/Kyiv"])
    func knownZonesResolve(_ id: String) throws {
        _ = try CronSchedule(parsing: "@daily", timeZoneIdentifier: id)
    }

    @Test(arguments: ["", "Mars/Olympus", "CEST", "GMT+2", "utc", "europe/paris", "Europe/Paris ", "Europe/Paris/../../etc/passwd",
                      "Europe/Par\u{0}is", "Europe/Pärïs", String(repeating: "A", count: 300)])
    func unknownZonesAreRejected(_ id: String) {
        #expect {
            try CronSchedule(parsing: "@daily", timeZoneIdentifier: id)
        } throws: { error in
            // Only a plausible identifier is echoed back; hostile bytes are not.
            guard let error = error as? ScheduleError, error.code == .unknownTimeZone else { return false }
            return error.message.utf8.count < 120 && error.message.unicodeScalars.allSatisfy { $0.isASCII && $0.value >= 0x20 }
        }
    }
}

private func describe(_ set: FieldSet, _ range: ClosedRange<Int>) -> String {
    let values = range.filter { set.contains($0) }
    if values.count > 2, values == Array(values.first!...values.last!) { return "\(values.first!)-\(values.last!)" }
    return values.map(String.init).joined(separator: ",")
}

@Suite struct ScheduleErrorRPCTests {
    @Test func errorsSurfaceAsInvalidArgument() {
        do {
            _ = try CronSchedule(parsing: "0 0 * * 8", timeZoneIdentifier: "UTC")
            Issue.record("accepted")
        } catch {
            let status = RPCError(from: error)
            #expect(status.code == .invalidArgument)
            #expect(status.message == "invalid cron expression: day-of-week field, token \"8\": 8 is out of range 0-7")
        }
        do {
            _ = try CronExpression(parsing: "@reboot")
            Issue.record("accepted")
        } catch {
            #expect(RPCError(from: error).code == .invalidArgument)
        }
    }
}
