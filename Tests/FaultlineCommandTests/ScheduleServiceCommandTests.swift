import ArgumentParser
import ScheduleService
import Testing
@testable import faultline

/// `faultline schedule-service`'s retention setting, read at startup.
@Suite struct ScheduleServiceCommandTests {
    @Test func unsetKeepsThirtyDaysAndTheVariableSetsOrDisablesIt() throws {
        #expect(try ScheduleServiceCommand.configuration([:]).skippedRetention == .seconds(30 * 86_400))
        #expect(try ScheduleServiceCommand.configuration(["FAULTLINE_SCHEDULE_SKIPPED_RETENTION": "12h"]).skippedRetention == .seconds(12 * 3600))
        #expect(try ScheduleServiceCommand.configuration(["FAULTLINE_SCHEDULE_SKIPPED_RETENTION": "off"]).skippedRetention == nil)
    }

    @Test(arguments: ["", "30", "thirty days", "-1d", "30d\u{1B}[31m"])
    func aMalformedRetentionStopsTheServiceWithItsName(text: String) {
        do {
            _ = try ScheduleServiceCommand.configuration(["FAULTLINE_SCHEDULE_SKIPPED_RETENTION": text])
            Issue.record("'\(text)' was accepted")
        } catch {
            #expect(error is ValidationError)
            #expect("\(error)".contains("FAULTLINE_SCHEDULE_SKIPPED_RETENTION"), "\(error)")
            #expect(!"\(error)".contains("\u{1B}"), "control characters are escaped, not echoed")
        }
    }
}
