import Logging
import NIOCore

/// What both ends of a connection share: bytes in and out of the `H2Connection`, one flush per
/// read burst or outbox batch, keepalive pings and the idle timer. Subclasses handle events.
class H2ChannelHandler: ChannelInboundHandler, OutboxProcessor {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Timers {
        var keepaliveInterval: Duration?
        var keepaliveTimeout: Duration
        var idleTimeout: Duration?
    }

    let h2: H2Connection
    let outbox: ConnectionOutbox
    var logger: Logger
    private let timers: Timers
    private(set) var context: ChannelHandlerContext?
    private var started = false
    private var keepaliveTask: Scheduled<Void>?
    private var pingTimeout: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    private var inRead = false
    private var closeRequested = false

    init(h2: H2Connection, outbox: ConnectionOutbox, timers: Timers, logger: Logger) {
        self.h2 = h2
        self.outbox = outbox
        self.timers = timers
        self.logger = logger
    }

    // MARK: subclass hooks

    func handle(_ event: H2Event) {}
    func serve(_ streams: [H2StreamIO]) {}
    func connectionClosed() {}
    /// The number of open streams, for the idle timer.
    var activeStreams: Int { 0 }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbox.attach(self)
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        outbox.attach(nil)
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        scheduleKeepalive()
        streamCountChanged()
        flush()  // the client preface / server SETTINGS
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let events: [H2Event]
        do {
            events = try h2.receive(unwrapInboundIn(data))
        } catch {
            logger.debug("closing connection after an HTTP/2 error", metadata: ["error": "\(error)"])
            flush()  // a GOAWAY nghttp2 queued, if any
            context.close(promise: nil)
            return
        }
        inRead = true
        for event in events {
            if case .pingAck = event {
                pingTimeout?.cancel()
                pingTimeout = nil
            }
            handle(event)
        }
        inRead = false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flush() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
        pingTimeout?.cancel()
        idleTimer?.cancel()
        connectionClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func processOutbox(_ streams: [H2StreamIO]) {
        serve(streams)
        flush()
    }

    /// Writes whatever nghttp2 has ready in one buffer. While the socket is not writable nothing
    /// is pulled from stream bodies, so a peer that does not read cannot grow our buffers.
    func flush() {
        guard let context, !inRead else { return }
        defer { if closeRequested { context.close(promise: nil) } }
        var out: ByteBuffer?
        // Sending may close streams (their events are handled here), which may queue more frames.
        for _ in 0..<8 {
            guard context.channel.isWritable, h2.wantsWrite else { break }
            if out == nil { out = context.channel.allocator.buffer(capacity: 16_384) }
            do {
                try h2.drain(into: &out!)
            } catch {
                logger.debug("closing connection after an HTTP/2 error", metadata: ["error": "\(error)"])
                context.close(promise: nil)
                return
            }
            let events = h2.takeEvents()
            if events.isEmpty { break }
            inRead = true
            for event in events { handle(event) }
            inRead = false
        }
        if let out, out.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(out), promise: nil) }
        if !h2.isActive { context.close(promise: nil) }
    }

    /// Closes the connection after writing whatever is queued (trailers, GOAWAY). Inside event
    /// handling, the close waits for the flush that ends it.
    func close() {
        closeRequested = true
        if !inRead { flush() }
    }

    // MARK: timers

    private func scheduleKeepalive() {
        guard let interval = timers.keepaliveInterval, let context else { return }
        keepaliveTask = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(interval)) { [weak self] in
            self?.sendKeepalive()
            self?.scheduleKeepalive()
        }
    }

    private func sendKeepalive() {
        guard let context, pingTimeout == nil else { return }
        h2.submitPing()
        pingTimeout = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timers.keepaliveTimeout)) { [weak self] in
            guard let self else { return }
            self.logger.debug("closing connection: keepalive ping not acknowledged")
            self.close()
        }
        flush()
    }

    /// Call whenever the number of open streams changes.
    func streamCountChanged() {
        guard let idle = timers.idleTimeout, let context else { return }
        if activeStreams > 0 {
            idleTimer?.cancel()
            idleTimer = nil
        } else if idleTimer == nil {
            idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(idle)) { [weak self] in
                guard let self else { return }
                self.idleTimer = nil
                guard self.activeStreams == 0 else { return }
                self.logger.debug("closing idle connection")
                self.idleTimedOut()
            }
        }
    }

    /// Default: GOAWAY and close.
    func idleTimedOut() {
        h2.submitGoAway()
        flush()
        close()
    }
}

extension TimeAmount {
    /// Saturates instead of overflowing: `grpc-timeout` allows 99,999,999 hours.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (nanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { self = .nanoseconds(seconds < 0 ? 0 : Int64.max / 2); return }
        let (total, overflow2) = nanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(overflow2 ? Int64.max / 2 : max(total, 0))
    }
}

extension NIODeadline {
    /// The NIO deadline at a `ContinuousClock` instant; nil when it is too far away to be worth a
    /// timer (over a year), which also keeps the arithmetic far from overflow.
    static func at(_ instant: ContinuousClock.Instant) -> NIODeadline? {
        let remaining = ContinuousClock.now.duration(to: instant)
        guard remaining < .seconds(365 * 24 * 3600) else { return nil }
        return .now() + TimeAmount(remaining)
    }
}
