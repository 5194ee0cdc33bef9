import FaultlineProto
import FaultlineRPC
import Logging
import Synchronization

/// One RPC client per runner address, made on first use and kept: the runners a dispatcher talks
/// to are few and long-lived. Connections are lazy, so a runner that is down costs nothing until
/// a call is made to it (and then fails fast with UNAVAILABLE).
final class RunnerConnections: Sendable {
    private let clients = Mutex<[String: RPCClient]>([:])
    private let logger: Logger
    private let configuration: RPCClient.Configuration

    init(logger: Logger, connectTimeout: Duration) {
        self.logger = logger
        var configuration = RPCClient.Configuration()
        configuration.connectTimeout = connectTimeout
        // A runner that was down is tried again soon: it may be back with its next heartbeat.
        configuration.backoff = .init(initial: .milliseconds(200), maximum: .seconds(5))
        self.configuration = configuration
    }

    static func isAddress(_ address: String) -> Bool { split(address) != nil }

    private static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (1...65535).contains(port), colon > address.startIndex else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// nil for an address that is not `host:port`.
    func runner(at address: String) -> RunnersV1.RunnerClient? {
        guard let (host, port) = Self.split(address) else { return nil }
        let client = clients.withLock { clients in
            if let existing = clients[address] { return existing }
            let client = RPCClient(host: host, port: port, configuration: configuration, logger: logger)
            clients[address] = client
            return client
        }
        return RunnersV1.RunnerClient(client)
    }

    func closeAll() async {
        let all = clients.withLock { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in all { await client.close() }
    }
}
