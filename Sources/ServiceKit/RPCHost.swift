public import FaultlineRPC
public import Logging
public import ServiceLifecycle
import UnixSignals

/// Runs a database-less Faultline service as a process (e.g. the runner): its RPC services plus
/// `grpc.health.v1.Health`, readiness announced once bound, and on SIGTERM/SIGINT the same
/// ordered shutdown as `ServiceHost` — NOT_SERVING first, then the server drains, then the
/// background work stops.
public struct RPCHost: Sendable {
    public var name: String
    public var listen: RPCServer.Configuration
    public var logger: Logger

    public init(name: String, listen: RPCServer.Configuration, logger: Logger) {
        self.name = name
        self.listen = listen
        self.logger = logger
    }

    public func run(rpcServices: [any RPCService], background: [any Service] = []) async throws {
        var logger = self.logger
        logger[metadataKey: "service"] = "\(name)"
        let names = Set(rpcServices.flatMap { $0.methods.map(\.descriptor.service) })
        let health = HealthMonitor(serving: names.sorted())
        let server = RPCServer(configuration: listen, services: rpcServices + [HealthServer(monitor: health)], logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: background.map { .init(service: $0) }
                + [.init(service: server), .init(service: HostReadiness(server: server, health: health, host: listen.host))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}

private struct HostReadiness: Service {
    let server: RPCServer
    let health: HealthMonitor
    let host: String

    func run() async throws {
        let port = try await server.listeningPort
        ServiceReadiness.announce(host: host, port: port)
        try? await gracefulShutdown()
        health.shutDown()
    }
}
