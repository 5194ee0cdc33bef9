import ArgumentParser
import FaultlinePostgres
import Foundation
import Logging
import SecretService
import ServiceKit

/// `faultline secret-service`: environments, secrets, integrations and the reveal audit trail.
struct SecretServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret-service",
        abstract: "Serve SecretService over gRPC (schema `secrets`).",
        discussion: """
            Master key: FAULTLINE_MASTER_KEY (base64 of 32 bytes) or FAULTLINE_MASTER_KEY_FILE; keys being \
            rotated out: FAULTLINE_MASTER_KEY_PREVIOUS (comma-separated base64) or FAULTLINE_MASTER_KEY_PREVIOUS_FILE. \
            Runners authenticate with `authorization: Bearer $FAULTLINE_RUNNER_CREDENTIAL` (unset: nobody can reveal).
            """
    )

    static let defaultPort = 7103

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let keyring: MasterKeyring
        do {
            keyring = try MasterKeyring.fromEnvironment(environment)
        } catch {
            throw ValidationError(error.description)
        }
        let runner = RunnerCredential(environment["FAULTLINE_RUNNER_CREDENTIAL"])
        let host = try options.host(name: "secret-service", environmentPrefix: "SECRET", defaultPort: Self.defaultPort)
        if environment["FAULTLINE_RUNNER_CREDENTIAL", default: ""].isEmpty {
            host.logger.warning("FAULTLINE_RUNNER_CREDENTIAL is not set: RevealEnvironment and RenderControls will refuse every caller")
        }
        host.logger.info("master key loaded", metadata: ["master_key_id": "\(keyring.currentID)"])
        try await host.run(prepare: { database in
            _ = try await SecretServer.migrations.apply(on: database)
        }, build: { database in
            let server = SecretServer(database: database, keyring: keyring, runner: runner, logger: host.logger)
            return .init(rpcServices: server.services, background: [])
        })
    }
}
