import Foundation
public import FaultlinePostgres
public import FaultlineRPC
public import Logging
public import ServiceLifecycle


/// Runs one Faultline service as a process: connects to its database and prepares it (the
/// service's migrations), serves its RPC services plus `grpc.health.v1.Health`, announces
/// readiness, and on SIGTERM/SIGINT shuts down in order — health says NOT_SERVING first, then the
/// server drains in-flight calls (GOAWAY), then the database pool closes.
public struct ServiceHost: Sendable {
    public var name: String
    public var listen: RPCServer.Configuration
    public var database: PostgresConfiguration
    public var logger: Logger

    public init(name: String, listen: RPCServer.Configuration, database: PostgresConfiguration, logger: Logger) {
        self.name = name
        self.listen = listen
        self.database = database
        self.logger = logger
    }

    /// What a service is made of once its database is ready.
    public struct Parts: Sendable {
        public var rpcServices: [any RPCService]
        /// Work the handlers rely on (listeners, periodic jobs), run beside the server.
        public var background: [any Service]

        public init(rpcServices: [any RPCService], background: [any Service] = []) {
            self.rpcServices = rpcServices
            self.background = background
        }
    }

    /// - Parameters:
    ///   - prepare: runs once before serving, e.g. migrations; retried while Postgres is not up yet.
    ///   - build: the service's parts over the prepared database.
    public func run(
        prepare: @escaping @Sendable (PostgresClient) async throws -> Void,
        build: (PostgresClient) -> Parts
    ) async throws {
        var logger = self.logger
        logger[metadataKey: "service"] = "\(name)"
        let postgres = PostgresClient(configuration: database)
        try await Self.retryingWhileUnavailable(logger: logger) { try await prepare(postgres) }

        let parts = build(postgres)
        // The pool goes first in the group, so it closes last, after the server has drained.
        try await RPCHost(name: name, listen: listen, logger: self.logger)
            .run(rpcServices: parts.rpcServices, background: [postgres] + parts.background)
    }

    /// A container may start before its database: retry UNAVAILABLE failures for a minute,
    /// fail at once on anything else (a bad password, a failed migration).
    static func retryingWhileUnavailable(logger: Logger, _ body: @Sendable () async throws -> Void) async throws {
        let giveUp = ContinuousClock.now + .seconds(60)
        var delay = Duration.milliseconds(200)
        while true {
            do {
                return try await body()
            } catch {
                let status = RPCError(from: error)
                guard status.code == .unavailable, ContinuousClock.now + delay < giveUp else { throw error }
                logger.warning("database not reachable yet; retrying", metadata: ["error": "\(status)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
