import ArgumentParser
import ExperimentService
import FaultlinePostgres
import ServiceKit

/// `faultline experiment-service`: experiments, executions, events, journals and scores.
struct ExperimentServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment-service",
        abstract: "Serve ExperimentService over gRPC (schema `experiments`)."
    )

    static let defaultPort = 7101

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let host = try options.host(name: "experiment-service", environmentPrefix: "EXPERIMENT", defaultPort: Self.defaultPort)
        try await host.run(prepare: { database in
            _ = try await ExperimentServer.migrations.apply(on: database)
        }, build: { database in
            let server = ExperimentServer(database: database, logger: host.logger)
            return .init(rpcServices: server.services, background: [server])
        })
    }
}
