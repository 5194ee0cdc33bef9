import ArgumentParser
import ServiceKit
import Testing
@testable import faultline

/// `faultline runner`'s organisation setting, read at startup.
@Suite struct RunnerCommandTenancyTests {
    @Test func unsetIsSharedAndAListDedicates() throws {
        #expect(try RunnerCommand.tenancy(nil, [:]) == .shared)
        #expect(try RunnerCommand.tenancy(nil, ["FAULTLINE_RUNNER_ORGANIZATIONS": "org-a,org-b"]).organizations == ["org-a", "org-b"])
        // The flag wins over the environment.
        #expect(try RunnerCommand.tenancy("org-c", ["FAULTLINE_RUNNER_ORGANIZATIONS": "org-a"]).organizations == ["org-c"])
    }

    @Test(arguments: ["", " ", "org-a,,org-b", "bad org", "org-a,org-a"])
    func anEmptyOrMalformedListStopsTheRunnerWithItsName(text: String) {
        for (option, environment) in [(text, [:]), (nil, ["FAULTLINE_RUNNER_ORGANIZATIONS": text])] as [(String?, [String: String])] {
            do {
                _ = try RunnerCommand.tenancy(option, environment)
                Issue.record("'\(text)' was accepted")
            } catch {
                #expect(error is ValidationError)
                #expect("\(error)".contains("FAULTLINE_RUNNER_ORGANIZATIONS"), "\(error)")
            }
        }
    }
}
