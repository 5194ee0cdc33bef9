import ArgumentParser
import FaultlinePostgres
import Foundation
import Logging
import ScheduleService
import ServiceKit

/// `faultline schedule-service`: plans, plan runs, the runner registry, dispatch and the kill switch.
struct ScheduleServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule-service",
        abstract: "Serve ScheduleService over gRPC and dispatch due plans to runners (schema `schedules`).",
        discussion: """
            Runners register and heartbeat with `authorization: Bearer $FAULTLINE_RUNNER_CREDENTIAL` (unset: no runner \
            can register, so nothing is dispatched). Any number of replicas may share one database. \
            SKIPPED plan runs older than FAULTLINE_SCHEDULE_SKIPPED_RETENTION (30d, 12h; 0 or off: never; default 30d) are \
            deleted, except each plan's latest run.
            """
    )

    static let defaultPort = 7102

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let credential = environment["FAULTLINE_RUNNER_CREDENTIAL", default: ""]
        let configuration = try Self.configuration(environment)
        let host = try options.host(name: "schedule-service", environmentPrefix: "SCHEDULE", defaultPort: Self.defaultPort)
        if credential.isEmpty {
            host.logger.warning("FAULTLINE_RUNNER_CREDENTIAL is not set: no runner can register, so nothing will be dispatched")
        }
        try await host.run(prepare: { database in
            _ = try await ScheduleServer.migrations.apply(on: database)
        }, build: { database in
            let server = ScheduleServer(database: database, runner: RunnerCredential(credential), logger: host.logger,
                                         configuration: configuration)
            return .init(rpcServices: server.services, background: [server.dispatcher])
        })
    }

    /// The settings read from the environment; a malformed one stops the service at startup, named.
    static func configuration(_ environment: [String: String]) throws -> ScheduleServiceConfiguration {
        var configuration = ScheduleServiceConfiguration()
        if let text = environment[SkippedRetention.variable] {
            do {
                configuration.skippedRetention = try SkippedRetention.parse(text)
            } catch {
                throw ValidationError(error.description)
            }
        }
        return configuration
    }
}
