import ArgumentParser
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Gateway
import Logging
import ServiceKit
import ServiceLifecycle
import UnixSignals

/// `faultline gateway`: the public JSON API over the services.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Serve the public JSON API (schema `gateway`: organisations and API tokens).",
        discussion: """
            Configured by the environment: FAULTLINE_HTTP_LISTEN (HOST:PORT, default 0.0.0.0:8080), \
            GATEWAY_DATABASE_URL or DATABASE_URL, FAULTLINE_EXPERIMENT_SERVICE and FAULTLINE_RUNNER_SERVICE \
            (HOST:PORT), FAULTLINE_OWNER_TOKEN_FILE (the owner token, written 0600 on first start), \
            FAULTLINE_CORS_ORIGINS (comma-separated), FAULTLINE_LOG_LEVEL.
            """
    )

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = GatewayConfiguration()
        (configuration.host, configuration.port) = try Self.address(environment["FAULTLINE_HTTP_LISTEN"] ?? "0.0.0.0:8080", name: "FAULTLINE_HTTP_LISTEN")
        configuration.ownerTokenFile = environment["FAULTLINE_OWNER_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.runnerCredential = environment["FAULTLINE_RUNNER_CREDENTIAL"].flatMap { $0.isEmpty ? nil : $0 }
        if let origins = environment["FAULTLINE_CORS_ORIGINS"] {
            configuration.allowedOrigins = Set(origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        guard let url = environment["GATEWAY_DATABASE_URL"] ?? environment["DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("gateway needs a database: set GATEWAY_DATABASE_URL or DATABASE_URL")
        }
        guard let database = try? PostgresConfiguration(url: url) else {
            throw ValidationError("the database URL is not a postgres:// URL")  // never echo it: it may hold a password
        }
        guard let experimentAddress = environment["FAULTLINE_EXPERIMENT_SERVICE"] else {
            throw ValidationError("set FAULTLINE_EXPERIMENT_SERVICE to ExperimentService's HOST:PORT")
        }
        var logger = Logger(label: "faultline.gateway")
        logger.logLevel = Logger.Level(rawValue: environment["FAULTLINE_LOG_LEVEL"] ?? "info") ?? .info

        let (experimentHost, experimentPort) = try Self.address(experimentAddress, name: "FAULTLINE_EXPERIMENT_SERVICE")
        let experiments = RPCClient(host: experimentHost, port: experimentPort, logger: logger)
        var clients = [experiments]
        var dependencies: [(name: String, caller: any RPCCaller)] = [("experiment-service", experiments)]
        // Optional services: unset, their routes answer 503 `<service>.not_configured`.
        func optional(_ variable: String, _ name: String) throws -> RPCClient? {
            guard let address = environment[variable], !address.isEmpty else { return nil }
            let (host, port) = try Self.address(address, name: variable)
            let client = RPCClient(host: host, port: port, logger: logger)
            clients.append(client)
            dependencies.append((name, client))
            return client
        }
        let runners = try optional("FAULTLINE_RUNNER_SERVICE", "runner-service").map(RunnersV1.RunnerClient.init)
        let secrets = try optional("FAULTLINE_SECRET_SERVICE", "secret-service").map(SecretsV1.SecretClient.init)
        let schedules = try optional("FAULTLINE_SCHEDULE_SERVICE", "schedule-service").map(SchedulesV1.ScheduleClient.init)

        let postgres = PostgresClient(configuration: database)
        let tokens = TokenStore(database: postgres)
        let gateway = Gateway(configuration: configuration, tokens: tokens, experiments: .init(experiments),
                              runners: runners, secrets: secrets, schedules: schedules,
                              dependencies: dependencies, logger: logger)
        // Prepared before serving (as ServiceHost does), so no request meets a missing table.
        _ = try await TokenStore.migrations.apply(on: postgres)
        _ = try await ReliablyIDs.migrations.apply(on: postgres)
        if let file = configuration.ownerTokenFile, try await tokens.bootstrap(ownerTokenFile: file) {
            logger.notice("created the default organisation; owner token written", metadata: ["file": "\(file)"])
        }
        let host = configuration.host
        let app = gateway.application { port in ServiceReadiness.announce(host: host, port: port) }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: postgres)] + clients.map { .init(service: $0) }
                + [.init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }

    static func address(_ text: String, name: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port), colon != text.startIndex else {
            throw ValidationError("\(name) must be HOST:PORT, got '\(text)'")
        }
        return (String(text[..<colon]), port)
    }
}
