public import Logging
public import NIOCore
public import ServiceLifecycle
import NIOPosix
import Synchronization

/// A client of one server: a single multiplexed HTTP/2 connection, opened lazily by the first
/// call, re-opened after it is lost (failed attempts back off exponentially; calls made while
/// backing off fail fast with UNAVAILABLE).
///
/// Calls work without `run()`: they connect on demand. `run()` exists so the client can join a
/// `ServiceGroup`: it waits for graceful shutdown (or cancellation) and then closes the client,
/// letting calls in flight finish. `close()` does the same directly.
public final class RPCClient: RPCCaller, Service, Sendable {
    public struct Backoff: Sendable {
        public var initial: Duration
        public var maximum: Duration
        public var multiplier: Double
        /// Each delay is randomised by ± this fraction.
        public var jitter: Double

        public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(120), multiplier: Double = 1.6, jitter: Double = 0.2) {
            self.initial = initial
            self.maximum = maximum
            self.multiplier = multiplier
            self.jitter = jitter
        }

        func delay(afterFailures failures: Int) -> Duration {
            var delay = initial
            for _ in 1..<max(failures, 1) where delay < maximum { delay = delay * multiplier }
            delay = min(delay, maximum)
            return delay * Double.random(in: (1 - jitter)...(1 + jitter))
        }
    }

    public struct Configuration: Sendable {
        /// The largest request or response message, in bytes.
        public var maxMessageSize: Int = 4 * 1024 * 1024
        /// Bounds the TCP connect, and then the wait for the server's HTTP/2 SETTINGS.
        public var connectTimeout: Duration = .seconds(10)
        public var backoff = Backoff()
        /// How often to PING the server; nil (the default, as in gRPC) disables keepalive.
        public var keepaliveInterval: Duration? = nil
        public var keepaliveTimeout: Duration = .seconds(20)
        /// Close the connection after this long without calls; nil keeps it open.
        public var idleTimeout: Duration? = nil
        /// How long `close()` lets calls in flight finish before it closes the connection anyway.
        public var closeGrace: Duration = .seconds(10)
        public var initialWindowSize: Int = 256 * 1024
        public var connectionWindowSize: Int = 1024 * 1024
        public var maxHeaderListSize: Int = 16 * 1024
        /// nil shares NIO's singleton event-loop group.
        public var eventLoopGroup: (any EventLoopGroup)? = nil

        public init() {}
    }

    private enum State {
        case idle(failures: Int)
        case connecting(EventLoopFuture<ClientConnection>, failures: Int)
        case ready(ClientConnection)
        case backingOff(until: ContinuousClock.Instant, failures: Int, reason: String)
        case closed
    }

    public let host: String
    public let port: Int
    private let configuration: Configuration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let authority: String
    private let state = Mutex<State>(.idle(failures: 0))

    public init(host: String, port: Int, configuration: Configuration = .init(), logger: Logger = Logger(label: "faultline.rpc.client")) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.logger = logger
        group = configuration.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Waits for graceful shutdown or cancellation, then closes the client.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Stops new calls (they fail with UNAVAILABLE), lets calls in flight finish for
    /// `configuration.closeGrace` (none when the closing task is cancelled), then closes the
    /// connection under those still running (they fail with UNAVAILABLE).
    public func close() async {
        let current = state.withLock { state -> ClientConnection? in
            defer { state = .closed }
            if case .ready(let connection) = state { return connection }
            return nil
        }
        guard let current else { return }
        current.shutdownGracefully()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await current.waitUntilClosed() }
            group.addTask { [grace = configuration.closeGrace] in
                do { try await Task.sleep(for: grace) } catch {}
                current.close()
            }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: calls

    public func call<Result: Sendable>(
        _ method: MethodDescriptor,
        options: CallOptions,
        requests: @escaping @Sendable (RPCWriter<any RPCMessage>) async throws -> Void,
        responses: @escaping @Sendable (ClientResponse) async throws -> Result
    ) async throws -> Result {
        var deadline = options.timeout.map { ContinuousClock.now + $0 }
        if let inherited = RPCDeadline.current { deadline = min(deadline ?? inherited, inherited) }
        if let deadline, deadline <= .now {
            throw RPCError(.deadlineExceeded, "the deadline expired before \(method) started")
        }
        try Task.checkCancellation()
        let connection = try await connection(deadline: deadline, method: method)

        var headers: [HeaderField] = [
            (":method", "POST"), (":scheme", "http"), (":path", method.path), (":authority", authority),
            ("te", "trailers"), ("content-type", "application/grpc"),
        ]
        if let deadline { headers.append(("grpc-timeout", Wire.encodeTimeout(ContinuousClock.now.duration(to: deadline)))) }
        headers.append(("user-agent", "faultline-rpc"))
        Wire.append(options.metadata, to: &headers)

        let io = connection.openStream(headers: headers)
        // From now, not from when the stream opens: it may wait for the server's SETTINGS, or move
        // between connections (each with its connect timeout) first. Once open, the reset that
        // the abort queues tells the server too.
        let expiry = deadline.flatMap(NIODeadline.at).map { at in
            io.outbox.eventLoop.scheduleTask(deadline: at) {
                io.abort(RPCError(.deadlineExceeded, "the deadline expired"), reset: true)
            }
        }
        defer { expiry?.cancel() }
        let requestFailure = ErrorBox()
        return try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await requests(RPCWriter { try await io.write($0) })
                        io.endOutbound()
                    } catch {
                        // Only an error that ended the call is the call's error; a write that
                        // failed because the call was already over is not.
                        if io.cancelFromCaller(RPCError(from: error)) { requestFailure.set(error) }
                    }
                }
                let outcome: Swift.Result<Result, any Error>
                do {
                    let head = try await io.responseHead()
                    let messages = RPCAsyncSequence<ByteBuffer>(wrapping: InboundMessages(io: io))
                    outcome = .success(try await responses(ClientResponse(metadata: head, messages: messages)))
                } catch {
                    outcome = .failure(error)
                }
                // Resets the stream if the server has not ended it; stops the request side, also
                // one that waits on something other than a write.
                io.cancelFromCaller()
                group.cancelAll()
                try? await group.waitForAll()
                switch outcome {
                case .success(let result): return result
                case .failure(let error): throw requestFailure.value ?? error
                }
            }
        } onCancel: {
            io.cancelFromCaller()
        }
    }

    // MARK: the connection

    private enum Step {
        case use(ClientConnection)
        case wait(EventLoopFuture<ClientConnection>)
        case connect(EventLoopPromise<ClientConnection>, failures: Int)
        case fail(RPCError)
    }

    /// The connection to use, waiting for one being set up at most until `deadline` (or the
    /// call's cancellation); the connect timeout bounds it otherwise.
    private func connection(deadline: ContinuousClock.Instant?, method: MethodDescriptor) async throws -> ClientConnection {
        // The common case, without a hop or a timer: the connection is up.
        let ready = state.withLock { state -> ClientConnection? in
            if case .ready(let connection) = state, connection.isUsable { return connection }
            return nil
        }
        if let ready { return ready }
        let future = try connectionFuture()
        let waiter = OneShot<ClientConnection>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiter.set(continuation)
                let expiry = deadline.flatMap(NIODeadline.at).map { at in
                    future.eventLoop.scheduleTask(deadline: at) {
                        waiter.resume(with: .failure(RPCError(.deadlineExceeded, "the deadline expired before \(method) reached \(self.authority)")))
                    }
                }
                future.whenComplete { result in
                    expiry?.cancel()
                    waiter.resume(with: result)
                }
            }
        } onCancel: {
            waiter.resume(with: .failure(RPCError(.cancelled, "the call was cancelled")))
        }
    }

    private func connectionFuture() throws(RPCError) -> EventLoopFuture<ClientConnection> {
        let step = state.withLock { state -> Step in
            let failures: Int
            switch state {
            case .ready(let connection) where connection.isUsable:
                return .use(connection)
            case .ready:
                failures = 0
            case .idle(let count):
                failures = count
            case .connecting(let future, _):
                return .wait(future)
            case .backingOff(let until, let count, let reason):
                if ContinuousClock.now < until {
                    return .fail(RPCError(.unavailable, "cannot reach \(authority) (\(reason)); retrying after a backoff"))
                }
                failures = count
            case .closed:
                return .fail(RPCError(.unavailable, "the client is closed"))
            }
            let promise = group.next().makePromise(of: ClientConnection.self)
            state = .connecting(promise.futureResult, failures: failures)
            return .connect(promise, failures: failures)
        }
        switch step {
        case .use(let connection):
            return connection.outbox.eventLoop.makeSucceededFuture(connection)
        case .fail(let error):
            throw error
        case .wait(let future):
            return future
        case .connect(let promise, let failures):
            connect(promise, failures: failures)
            return promise.futureResult
        }
    }

    /// Moves a stream that never reached the server (its connection went away first, or refused
    /// it unprocessed) from `outbox`'s connection to the current one, so a call does not fail for
    /// a race it could not see.
    private func rehome(_ io: H2StreamIO, from outbox: ConnectionOutbox) {
        let future: EventLoopFuture<ClientConnection>
        do {
            future = try connectionFuture()
        } catch {
            io.abortIfWaiting(on: outbox, error)
            return
        }
        future.whenComplete { result in
            switch result {
            case .success(let connection):
                if io.rehome(from: outbox, to: connection.outbox) == .exhausted {
                    io.abort(RPCError(.unavailable, "the call could not start: \(self.authority) refused it, or its connections went away, too often"))
                }
            case .failure(let error):
                io.abortIfWaiting(on: outbox, error as? RPCError ?? RPCError(.unavailable, "cannot connect to \(self.authority)", cause: error))
            }
        }
    }

    private func connect(_ promise: EventLoopPromise<ClientConnection>, failures: Int) {
        let eventLoop = promise.futureResult.eventLoop
        let connection = ClientConnection(
            eventLoop: eventLoop, maxMessageSize: configuration.maxMessageSize,
            onClose: { [weak self] closed in self?.connectionClosed(closed) },
            onOrphan: { [weak self] io, outbox in
                if let self { self.rehome(io, from: outbox) } else { io.abort(RPCError(.unavailable, "the client is gone")) }
            })
        let configuration = configuration
        let logger = logger
        let settings = H2Settings(
            maxConcurrentStreams: 100,
            initialWindowSize: UInt32(configuration.initialWindowSize),
            connectionWindowSize: Int32(configuration.connectionWindowSize),
            maxHeaderListSize: UInt32(configuration.maxHeaderListSize))
        ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let h2 = try H2Connection(server: false, settings: settings)
                    let handler = ClientConnectionHandler(
                        h2: h2, outbox: connection.outbox, connection: connection, maxMessageSize: configuration.maxMessageSize,
                        settingsTimeout: configuration.connectTimeout,
                        timers: .init(keepaliveInterval: configuration.keepaliveInterval, keepaliveTimeout: configuration.keepaliveTimeout,
                                      idleTimeout: configuration.idleTimeout),
                        logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
                    connection.attach(channel: channel, shutdown: { bound.value.shutdown() })
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success:
                    let keep = self.state.withLock { state -> Bool in
                        guard case .connecting(let future, _) = state, future === promise.futureResult else { return false }
                        state = .ready(connection)
                        return true
                    }
                    if keep {
                        promise.succeed(connection)
                    } else {
                        connection.close()
                        promise.fail(RPCError(.unavailable, "the client is closed"))
                    }
                case .failure(let error):
                    connection.abandon()
                    let count = failures + 1
                    let delay = configuration.backoff.delay(afterFailures: count)
                    self.state.withLock { state in
                        guard case .connecting(let future, _) = state, future === promise.futureResult else { return }
                        state = .backingOff(until: .now + delay, failures: count, reason: "\(error)")
                    }
                    logger.debug("connect failed", metadata: ["peer": "\(self.authority)", "error": "\(error)", "retry.after": "\(delay)"])
                    promise.fail(RPCError(.unavailable, "cannot connect to \(self.authority)", cause: error))
                }
            }
    }

    private func connectionClosed(_ connection: ClientConnection) {
        state.withLock { state in
            if case .ready(let current) = state, current === connection { state = .idle(failures: 0) }
        }
    }
}

/// A continuation resumed by whichever of several racing events comes first (connected, the
/// deadline, cancellation); a resume before the continuation is set is kept for it.
private final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Value, any Error>?, early: Result<Value, any Error>?, done: Bool)>((nil, nil, false))

    func set(_ continuation: CheckedContinuation<Value, any Error>) {
        let early = state.withLock { s -> Result<Value, any Error>? in
            if let early = s.early { return early }
            s.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<Value, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<Value, any Error>? in
            guard !s.done else { return nil }
            s.done = true
            guard let continuation = s.continuation else {
                s.early = result
                return nil
            }
            s.continuation = nil
            return continuation
        }
        continuation?.resume(with: result)
    }
}

/// The first error of a call's request side, shared with the task that records it.
private final class ErrorBox: Sendable {
    private let error = Mutex<(any Error)?>(nil)
    func set(_ value: any Error) { error.withLock { $0 = $0 ?? value } }
    var value: (any Error)? { error.withLock { $0 } }
}
