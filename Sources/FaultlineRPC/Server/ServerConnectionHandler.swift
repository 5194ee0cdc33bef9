import Logging
import NIOCore

/// A call accepted by a connection, handed to the connection's task to run its handler.
/// A class: it is captured by two tasks, and copying a context per capture costs.
final class ServerCall: Sendable {
    let io: H2StreamIO
    let method: RegisteredMethod
    let context: ServerContext

    init(io: H2StreamIO, method: RegisteredMethod, context: ServerContext) {
        self.io = io
        self.method = method
        self.context = context
    }

    /// Runs the handler in a child task so a reset, an expired deadline or a lost connection
    /// can cancel it; returns when the handler has returned.
    func run() async {
        let io = io, method = method, context = context
        await withDiscardingTaskGroup { group in
            group.addTask {
                let requests = RPCAsyncSequence<ByteBuffer>(wrapping: InboundMessages(io: io))
                let responses = RPCWriter<any RPCMessage> { try await io.write($0) }
                var status: RPCError?
                do {
                    try await RPCDeadline.$current.withValue(context.deadline) {
                        try await method.handle(requests, responses, context)
                    }
                } catch {
                    status = RPCError(from: error)
                }
                io.finishHandler(status: status)
            }
            await io.handlerMustStop()
            group.cancelAll()
        }
    }
}

/// One server connection on its event loop: nghttp2 in server mode, a gRPC state machine per
/// stream, handlers started through `calls` (the connection's task runs them).
final class ServerConnectionHandler: H2ChannelHandler {
    /// A class, so the hot path looks a stream up once and mutates it in place.
    private final class Slot {
        var machine: ServerStreamStateMachine
        let io: H2StreamIO?
        let method: MethodDescriptor?
        var deadlineTimer: Scheduled<Void>?

        init(machine: ServerStreamStateMachine, io: H2StreamIO?, method: MethodDescriptor?) {
            self.machine = machine
            self.io = io
            self.method = method
        }
    }

    private let methods: [String: RegisteredMethod]
    private let maxMessageSize: Int
    private let calls: AsyncStream<ServerCall>.Continuation
    private let gracePeriod: Duration
    private var streams: [Int32: Slot] = [:]
    private var draining = false
    private var finalGoAwaySent = false
    private var peer = "unknown"

    init(h2: H2Connection, outbox: ConnectionOutbox, methods: [String: RegisteredMethod], maxMessageSize: Int,
         timers: Timers, gracePeriod: Duration, calls: AsyncStream<ServerCall>.Continuation, logger: Logger) {
        self.methods = methods
        self.maxMessageSize = maxMessageSize
        self.calls = calls
        self.gracePeriod = gracePeriod
        super.init(h2: h2, outbox: outbox, timers: timers, logger: logger)
    }

    override var activeStreams: Int { streams.count }

    override func handlerAdded(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
        logger[metadataKey: "peer"] = "\(peer)"
        super.handlerAdded(context: context)
    }

    // MARK: events

    override func handle(_ event: H2Event) {
        switch event {
        case .headers(let stream, let fields, let initial, let endStream):
            if initial {
                openStream(stream, fields: fields, endStream: endStream)
            } else if endStream {
                endRequest(stream)  // request trailers carry nothing gRPC uses
            }
        case .data(let stream, let chunk, let endStream):
            receiveData(stream, chunk)
            if endStream { endRequest(stream) }
        case .streamClosed(let stream, let errorCode):
            guard let slot = streams.removeValue(forKey: stream) else { return }
            slot.deadlineTimer?.cancel()
            if let io = slot.io, io.abort(RPCError(.cancelled, "the client cancelled the call")), !slot.machine.isClosed {
                logger.debug("stream reset by the client", metadata: [
                    "rpc.method": "\(slot.method?.path ?? "?")", "h2.error": "\(errorCode)",
                ])
            }
            streamCountChanged()
            if finalGoAwaySent && streams.isEmpty { close() }
        case .pingAck:
            sendFinalGoAway()
        case .goAway, .remoteSettings:
            break
        }
    }

    private func openStream(_ stream: Int32, fields: [HeaderField], endStream: Bool) {
        var machine = ServerStreamStateMachine(maxMessageSize: maxMessageSize)
        switch machine.receiveHead(fields) {
        case .rejectHTTP(let status):
            logger.debug("rejected a non-gRPC request", metadata: ["http.status": "\(status)"])
            _ = h2.submitResponse(stream: stream, headers: ServerStreamStateMachine.httpRejection(status: status), body: nil)
        case .reject(let error, let extra):
            logger.debug("rejected a request", metadata: ["grpc.status": "\(error.code)", "error": "\(error.message)"])
            _ = h2.submitResponse(stream: stream, headers: machine.trailersOnly(status: error, metadata: [:], extra: extra), body: nil)
        case .accept(let head):
            guard let method = methods[head.path] else {
                let error = RPCError(.unimplemented, "method \(head.path.prefix(256)) is not implemented")
                logger.debug("unknown method", metadata: ["rpc.method": "\(head.path.prefix(256))", "grpc.status": "\(error.code)"])
                _ = h2.submitResponse(stream: stream, headers: machine.trailersOnly(status: error, metadata: [:]), body: nil)
                return
            }
            let deadline = head.timeout.map { ContinuousClock.now + $0 }
            let io = H2StreamIO(server: true, streamID: stream, outbox: outbox, maxMessageSize: maxMessageSize)
            var callLogger = logger
            callLogger[metadataKey: "rpc.method"] = "\(head.path)"
            var context = ServerContext(
                method: method.descriptor, metadata: head.metadata, deadline: deadline, peer: peer, logger: callLogger)
            context.io = io
            let slot = Slot(machine: machine, io: io, method: method.descriptor)
            if let deadline, let at = NIODeadline.at(deadline), let eventLoop = self.context?.eventLoop {
                slot.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(deadline: at) { [weak self] in
                    self?.fail(stream, RPCError(.deadlineExceeded, "the deadline expired"))
                    self?.flush()
                }
            }
            streams[stream] = slot
            streamCountChanged()
            if endStream { endRequest(stream) }
            calls.yield(ServerCall(io: io, method: method, context: context))
        }
    }

    private func receiveData(_ stream: Int32, _ chunk: ByteBuffer) {
        let bytes = chunk.readableBytes
        h2.consumeConnection(bytes)
        guard bytes > 0 else { return }
        guard let slot = streams[stream], let io = slot.io, !slot.machine.isClosed else {
            h2.consumeStream(stream, bytes)  // the call is over: discard, but keep the peer flowing
            return
        }
        var messages: [ByteBuffer] = []
        do {
            try slot.machine.receiveData(chunk, into: &messages)
        } catch {
            h2.consumeStream(stream, bytes)
            fail(stream, error)
            return
        }
        h2.consumeStream(stream, io.receive(messages, wireBytes: bytes))
    }

    private func endRequest(_ stream: Int32) {
        guard let slot = streams[stream], let io = slot.io, !slot.machine.isClosed else { return }
        do {
            try slot.machine.receiveEnd()
            io.finishInbound(.success(()))
        } catch {
            fail(stream, error)
        }
    }

    /// Ends a call from the server side with `error`: stops the handler and sends the status.
    private func fail(_ stream: Int32, _ error: RPCError) {
        guard let slot = streams[stream], !slot.machine.isClosed else { return }
        slot.deadlineTimer?.cancel()
        slot.deadlineTimer = nil
        slot.io?.abort(error)
        logger.debug("call failed", metadata: ["rpc.method": "\(slot.method?.path ?? "?")", "grpc.status": "\(error.code)", "error": "\(error.message)"])
        if slot.machine.hasResponded {
            slot.io?.setTrailers(slot.machine.trailers(status: error, metadata: [:]))
            h2.resumeData(stream: stream)
        } else {
            _ = h2.submitResponse(stream: stream, headers: slot.machine.trailersOnly(status: error, metadata: [:]), body: nil)
        }
    }

    // MARK: work from handlers

    override func serve(_ ios: [H2StreamIO]) {
        for io in ios {
            let stream = io.streamID
            guard let work = io.takeWork(for: outbox), let slot = streams[stream], slot.io === io else { continue }
            h2.consumeStream(stream, work.releaseWindow)
            guard !slot.machine.isClosed else { continue }
            if let finish = work.finish {
                slot.deadlineTimer?.cancel()
                slot.deadlineTimer = nil
                var trailing = finish.trailing
                log(finish.status, method: slot.method)
                if !slot.machine.hasResponded && !work.hasData {
                    for (key, value) in finish.initial { trailing.append(key, value) }
                    _ = h2.submitResponse(stream: stream, headers: slot.machine.trailersOnly(status: finish.status, metadata: trailing), body: nil)
                } else {
                    if !slot.machine.hasResponded {
                        _ = h2.submitResponse(stream: stream, headers: slot.machine.responseHead(metadata: finish.initial), body: io)
                    }
                    io.setTrailers(slot.machine.trailers(status: finish.status, metadata: trailing))
                    h2.resumeData(stream: stream)
                }
            } else if work.hasData {
                if !slot.machine.hasResponded {
                    _ = h2.submitResponse(stream: stream, headers: slot.machine.responseHead(metadata: work.initialMetadata), body: io)
                } else {
                    h2.resumeData(stream: stream)
                }
            }
        }
    }

    /// One line per finished call. A handler error that no one mapped to a status (UNKNOWN with
    /// a cause) is a bug in the service, so it is logged louder, with its cause.
    private func log(_ status: RPCError?, method: MethodDescriptor?) {
        let path = method?.path ?? "?"
        guard let status else {
            logger.debug("call finished", metadata: ["rpc.method": "\(path)", "grpc.status": "OK"])
            return
        }
        if status.code == .unknown, let cause = status.cause {
            logger.warning("handler failed with an unmapped error", metadata: [
                "rpc.method": "\(path)", "grpc.status": "\(status.code)", "error": "\(String(reflecting: cause))",
            ])
        } else {
            logger.debug("call failed", metadata: ["rpc.method": "\(path)", "grpc.status": "\(status.code)", "error": "\(status.message)"])
        }
    }

    // MARK: shutdown

    /// Two-phase GOAWAY (RFC 9113 §6.8): a notice first, so the client stops opening streams,
    /// then, one PING round trip later, the GOAWAY naming the last stream processed, so a stream
    /// already in flight is served instead of refused. Closes when no stream remains, or when
    /// the grace period runs out.
    func beginGracefulShutdown() {
        guard !draining, let context else { return }
        draining = true
        h2.submitShutdownNotice()
        h2.submitPing()
        flush()
        let eventLoop = context.eventLoop.assumeIsolated()
        eventLoop.scheduleTask(in: .seconds(1)) { [weak self] in self?.sendFinalGoAway() }
        eventLoop.scheduleTask(in: TimeAmount(gracePeriod)) { [weak self] in self?.close() }
    }

    private func sendFinalGoAway() {
        guard draining, !finalGoAwaySent else { return }
        finalGoAwaySent = true
        h2.submitGoAway()
        if streams.isEmpty { close() } else { flush() }
    }

    override func idleTimedOut() {
        beginGracefulShutdown()
    }

    override func connectionClosed() {
        let error = RPCError(.unavailable, "the connection was closed")
        for (_, slot) in streams {
            slot.deadlineTimer?.cancel()
            slot.io?.abort(error)
        }
        streams.removeAll()
        calls.finish()
    }
}
