public import Logging
public import ServiceLifecycle
import NIOCore
import NIOPosix
import Synchronization

/// A gRPC-compatible server: HTTP/2 by nghttp2 on SwiftNIO, one task per connection running a
/// child task per call. A `Service`: `run()` binds, serves until cancelled or until graceful
/// shutdown (GOAWAY to every connection; calls in flight get `gracePeriod` to finish).
public final class RPCServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String = "127.0.0.1"
        /// 0 picks a free port; read it from `listeningPort`.
        public var port: Int = 0
        /// The largest request or response message, in bytes; larger ones fail the call with
        /// RESOURCE_EXHAUSTED.
        public var maxMessageSize: Int = 4 * 1024 * 1024
        /// SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused by HTTP/2.
        public var maxConcurrentStreams: Int = 100
        /// The flow-control window each stream starts with; bounds what one stream may buffer.
        public var initialWindowSize: Int = 256 * 1024
        /// The connection-level receive window.
        public var connectionWindowSize: Int = 1024 * 1024
        /// SETTINGS_MAX_HEADER_LIST_SIZE; larger header blocks reset their stream.
        public var maxHeaderListSize: Int = 16 * 1024
        /// How often to PING a connection; nil disables keepalive.
        public var keepaliveInterval: Duration? = .seconds(120)
        /// A PING not acknowledged within this closes the connection.
        public var keepaliveTimeout: Duration = .seconds(20)
        /// A connection without streams for this long is sent GOAWAY and closed; nil disables.
        public var idleTimeout: Duration? = .seconds(600)
        /// How long in-flight calls may run after graceful shutdown begins.
        public var gracePeriod: Duration = .seconds(10)
        /// Event-loop threads owned by this server; nil shares NIO's singleton group.
        public var eventLoopThreads: Int? = nil

        public init(host: String = "127.0.0.1", port: Int = 0) {
            self.host = host
            self.port = port
        }
    }

    private enum State {
        case idle([CheckedContinuation<Int, any Error>])
        case listening(port: Int, channel: any Channel)
        case stopped((any Error)?)
    }

    private let configuration: Configuration
    private let methods: [String: RegisteredMethod]
    private let logger: Logger
    private let state = Mutex<State>(.idle([]))
    /// Open connections, so graceful shutdown can reach them; once draining, new ones are told
    /// to drain as soon as they register.
    private let connections = Mutex<(open: [ObjectIdentifier: ServerConnection], draining: Bool)>(([:], false))

    public init(configuration: Configuration, services: [any RPCService], logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var methods: [String: RegisteredMethod] = [:]
        for service in services {
            for method in service.methods {
                if methods[method.descriptor.path] != nil {
                    logger.warning("method registered twice; the last one wins", metadata: ["rpc.method": "\(method.descriptor.path)"])
                }
                methods[method.descriptor.path] = method
            }
        }
        self.methods = methods
    }

    /// The bound port; waits until `run()` has bound (throws if binding failed or the server
    /// stopped).
    public var listeningPort: Int {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let result = state.withLock { state -> Result<Int, any Error>? in
                    switch state {
                    case .idle(var waiters):
                        waiters.append(continuation)
                        state = .idle(waiters)
                        return nil
                    case .listening(let port, _):
                        return .success(port)
                    case .stopped(let error):
                        return .failure(error ?? RPCError(.unavailable, "the server is not running"))
                    }
                }
                if let result { continuation.resume(with: result) }
            }
        }
    }

    public func run() async throws {
        var ownedGroup: MultiThreadedEventLoopGroup?
        let group: any EventLoopGroup
        if let threads = configuration.eventLoopThreads {
            ownedGroup = MultiThreadedEventLoopGroup(numberOfThreads: threads)
            group = ownedGroup!
        } else {
            group = MultiThreadedEventLoopGroup.singleton
        }
        do {
            try await serve(on: group)
            finish(nil)
        } catch {
            finish(error)
            try? await ownedGroup?.shutdownGracefully()
            throw error
        }
        try? await ownedGroup?.shutdownGracefully()
    }

    private func serve(on group: any EventLoopGroup) async throws {
        let listener: NIOAsyncChannel<ServerConnection, Never>
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture { try self.makeConnection(channel) }
                }
        } catch {
            throw RPCError(.unavailable, "cannot listen on \(configuration.host):\(configuration.port)", cause: error)
        }
        let port = listener.channel.localAddress?.port ?? configuration.port
        let waiters = state.withLock { state -> [CheckedContinuation<Int, any Error>] in
            guard case .idle(let waiters) = state else { return [] }
            state = .listening(port: port, channel: listener.channel)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
        logger.info("RPC server listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])

        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await listener.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in inbound {
                            let draining = self.connections.withLock { connections -> Bool in
                                connections.open[ObjectIdentifier(connection)] = connection
                                return connections.draining
                            }
                            if draining { connection.beginGracefulShutdown() }
                            group.addTask {
                                await connection.run()
                                self.connections.withLock { _ = $0.open.removeValue(forKey: ObjectIdentifier(connection)) }
                            }
                        }
                    }
                }
            } onGracefulShutdown: {
                self.beginGracefulShutdown(listener: listener.channel)
            }
        } onCancel: {
            listener.channel.close(promise: nil)
            for connection in self.connections.withLock({ Array($0.open.values) }) { connection.channel.close(promise: nil) }
        }
        logger.info("RPC server stopped")
    }

    private func beginGracefulShutdown(listener: any Channel) {
        logger.info("RPC server shutting down gracefully")
        listener.close(promise: nil)
        let open = connections.withLock { connections -> [ServerConnection] in
            connections.draining = true
            return Array(connections.open.values)
        }
        for connection in open { connection.beginGracefulShutdown() }
    }

    private func finish(_ error: (any Error)?) {
        let waiters = state.withLock { state -> [CheckedContinuation<Int, any Error>] in
            defer { state = .stopped(error) }
            if case .idle(let waiters) = state { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume(throwing: error ?? RPCError(.unavailable, "the server stopped")) }
    }

    /// Runs on the new channel's event loop.
    private func makeConnection(_ channel: any Channel) throws -> ServerConnection {
        let settings = H2Settings(
            maxConcurrentStreams: UInt32(configuration.maxConcurrentStreams),
            initialWindowSize: UInt32(configuration.initialWindowSize),
            connectionWindowSize: Int32(configuration.connectionWindowSize),
            maxHeaderListSize: UInt32(configuration.maxHeaderListSize))
        let h2 = try H2Connection(server: true, settings: settings)
        let outbox = ConnectionOutbox(eventLoop: channel.eventLoop)
        let (calls, continuation) = AsyncStream.makeStream(of: ServerCall.self)
        let handler = ServerConnectionHandler(
            h2: h2, outbox: outbox, methods: methods, maxMessageSize: configuration.maxMessageSize,
            timers: .init(keepaliveInterval: configuration.keepaliveInterval, keepaliveTimeout: configuration.keepaliveTimeout,
                          idleTimeout: configuration.idleTimeout),
            gracePeriod: configuration.gracePeriod, calls: continuation, logger: logger)
        try channel.pipeline.syncOperations.addHandler(handler)
        let shutdown = NIOLoopBound<ServerConnectionHandler>(handler, eventLoop: channel.eventLoop)
        return ServerConnection(channel: channel, calls: calls, beginShutdown: { shutdown.value.beginGracefulShutdown() })
    }
}

/// One accepted connection as its task sees it.
final class ServerConnection: Sendable {
    let channel: any Channel
    private let calls: AsyncStream<ServerCall>
    private let shutdown: @Sendable () -> Void

    init(channel: any Channel, calls: AsyncStream<ServerCall>, beginShutdown: @escaping @Sendable () -> Void) {
        self.channel = channel
        self.calls = calls
        self.shutdown = beginShutdown
    }

    /// Runs every call the connection accepts; returns when the connection closed and its
    /// handlers returned.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await call in calls {
                group.addTask { await call.run() }
            }
        }
    }

    func beginGracefulShutdown() {
        channel.eventLoop.execute { self.shutdown() }
    }
}
