// SecretServer: the entry point of the `faultline secret-service` command.
//
// ```swift
// try await SecretServer.migrations.apply(on: database)            // schema `secrets`
// let server = SecretServer(database: database, keyring: try MasterKeyring.fromEnvironment(),
//                           runner: RunnerCredential(env["FAULTLINE_RUNNER_CREDENTIAL"]), logger: logger)
// // serve `server.services` with an RPCServer
// ```
public import FaultlinePostgres
public import FaultlineRPC
public import Logging
public import ServiceKit

/// Limits of the SecretService; the defaults suit production.
public struct SecretServiceConfiguration: Sendable {
    /// One secret's value; larger is RESOURCE_EXHAUSTED.
    public var maximumSecretBytes = 64 << 10
    /// Secrets per environment (after an update); more is RESOURCE_EXHAUSTED.
    public var maximumSecrets = 200
    /// Plain variables per environment, and the bytes of one value.
    public var maximumVariables = 500
    public var maximumVariableBytes = 32 << 10
    /// Integrations per RenderControls call.
    public var maximumRenderedIntegrations = 50

    public init() {}
}

/// The SecretService of one replica. Stateless apart from the keyring and the credential: any
/// number of replicas may serve the same database, and all share the same master keys.
public struct SecretServer: Sendable {
    /// The `secrets` schema; apply before serving.
    public static let migrations: Migrations = SecretSchema.migrations

    let handlers: SecretRPCService

    public init(database: PostgresClient, keyring: MasterKeyring, runner: RunnerCredential, logger: Logger,
                configuration: SecretServiceConfiguration = .init()) {
        handlers = SecretRPCService(database: database, keyring: keyring, runner: runner, logger: logger, configuration: configuration)
    }

    public var services: [any RPCService] { [handlers] }
}
