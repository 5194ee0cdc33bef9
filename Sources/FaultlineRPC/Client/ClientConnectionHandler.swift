import Logging
import NIOCore
import Synchronization

/// One client connection on its event loop: nghttp2 in client mode, many calls multiplexed.
final class ClientConnectionHandler: H2ChannelHandler {
    /// A class, so the hot path looks a stream up once and mutates it in place.
    private final class Slot {
        var machine: ClientStreamStateMachine
        let io: H2StreamIO

        init(machine: ClientStreamStateMachine, io: H2StreamIO) {
            self.machine = machine
            self.io = io
        }
    }

    private let maxMessageSize: Int
    private let connection: ClientConnection
    private var streams: [Int32: Slot] = [:]
    private var goingAway = false
    /// The channel went inactive. Until the handler is removed (a later event-loop tick) the
    /// outbox still serves it, and nothing may open or wait here then.
    private var closed = false
    /// Streams wait for the server's SETTINGS so they respect its concurrency limit from the
    /// start rather than being refused.
    private var settingsReceived = false
    private var waitingForSettings: [H2StreamIO] = []
    /// A peer that accepts the connection but never sends SETTINGS (not an HTTP/2 server, or a
    /// stuck one) would hold those streams forever: after this long the connection is given up,
    /// and its streams move to another one (or fail once they have moved too often).
    private let settingsTimeout: Duration
    private var settingsTimer: Scheduled<Void>?

    init(h2: H2Connection, outbox: ConnectionOutbox, connection: ClientConnection, maxMessageSize: Int, settingsTimeout: Duration,
         timers: Timers, logger: Logger) {
        self.connection = connection
        self.maxMessageSize = maxMessageSize
        self.settingsTimeout = settingsTimeout
        super.init(h2: h2, outbox: outbox, timers: timers, logger: logger)
    }

    override func channelActive(context: ChannelHandlerContext) {
        settingsTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(settingsTimeout)) { [weak self] in
            guard let self, !self.settingsReceived else { return }
            self.logger.debug("closing connection: the server sent no SETTINGS")
            self.close()
        }
        super.channelActive(context: context)
    }

    override var activeStreams: Int { streams.count }

    override func serve(_ ios: [H2StreamIO]) {
        guard settingsReceived || closed else {
            waitingForSettings += ios
            return
        }
        let canOpen = !goingAway && !closed && context != nil
        for io in ios {
            guard let work = io.takeWork(for: outbox, canOpen: canOpen) else { continue }
            if work.mustMove {
                if !work.closed { connection.orphaned(io) }
                continue
            }
            if let headers = work.open {
                if work.closed { continue }  // cancelled before it could open
                guard let stream = h2.submitRequest(headers: headers, body: io) else {
                    io.abort(RPCError(.unavailable, "no stream can be opened on this connection"))
                    continue
                }
                io.streamID = stream
                // The call's deadline timer (RPCClient) runs from before the stream opened.
                streams[stream] = Slot(machine: ClientStreamStateMachine(maxMessageSize: maxMessageSize), io: io)
                streamCountChanged()
            }
            let stream = io.streamID
            guard stream > 0, streams[stream]?.io === io else { continue }
            if work.reset {
                h2.resetStream(stream, errorCode: H2ErrorCode.cancel)
                continue
            }
            h2.consumeStream(stream, work.releaseWindow)
            if work.hasData || work.ended { h2.resumeData(stream: stream) }
        }
    }

    override func handle(_ event: H2Event) {
        switch event {
        case .headers(let stream, let fields, let initial, let endStream):
            guard let slot = streams[stream] else { return }
            if initial {
                switch slot.machine.receiveHead(fields, endStream: endStream) {
                case .head(let metadata):
                    slot.io.receiveHead(metadata)
                case .trailersOnly(let status):
                    slot.io.receiveHead([:])
                    slot.io.finishInbound(status)
                case .fail(let error):
                    slot.io.abort(error)
                    h2.resetStream(stream, errorCode: H2ErrorCode.cancel)
                }
            } else {
                slot.io.finishInbound(slot.machine.receiveTrailers(fields))
            }
        case .data(let stream, let chunk, _):
            let bytes = chunk.readableBytes
            h2.consumeConnection(bytes)
            guard bytes > 0 else { return }
            guard let slot = streams[stream] else {
                h2.consumeStream(stream, bytes)
                return
            }
            var messages: [ByteBuffer] = []
            do {
                try slot.machine.receiveData(chunk, into: &messages)
                h2.consumeStream(stream, slot.io.receive(messages, wireBytes: bytes))
            } catch {
                h2.consumeStream(stream, bytes)
                slot.io.abort(error)
                h2.resetStream(stream, errorCode: H2ErrorCode.cancel)
            }
        case .streamClosed(let stream, let errorCode):
            guard let slot = streams.removeValue(forKey: stream) else { return }
            streamCountChanged()
            // Refused unprocessed (RFC 9113 §8.7): safe to send again, on another connection.
            // (After a GOAWAY this connection is already unusable, so it goes to a new one.)
            if errorCode == H2ErrorCode.refusedStream, slot.io.rewindForReplay() {
                connection.orphaned(slot.io)
                if goingAway && streams.isEmpty { close() }
                return
            }
            let error: RPCError
            switch errorCode {
            case H2ErrorCode.noError: error = RPCError(.internalError, "the server closed the stream without a status")
            case H2ErrorCode.refusedStream: error = RPCError(.unavailable, "the server refused the stream")
            case H2ErrorCode.cancel: error = RPCError(.cancelled, "the stream was cancelled")
            case H2ErrorCode.enhanceYourCalm: error = RPCError(.resourceExhausted, "the server asked to slow down")
            default: error = RPCError(.internalError, "the stream was reset with HTTP/2 error \(errorCode)")
            }
            if slot.io.inboundFinished {
                slot.io.abort(RPCError(.cancelled, "the call is over"))
            } else {
                slot.io.abort(error)
            }
            if goingAway && streams.isEmpty { close() }
        case .goAway:
            goingAway = true
            connection.markUnusable()
            if streams.isEmpty { close() }
        case .pingAck:
            break
        case .remoteSettings:
            guard !settingsReceived else { return }
            settingsReceived = true
            settingsTimer?.cancel()
            settingsTimer = nil
            let waiting = waitingForSettings
            waitingForSettings = []
            serve(waiting)
        }
    }

    override func connectionClosed() {
        closed = true
        settingsTimer?.cancel()
        connection.markUnusable()
        let error = RPCError(.unavailable, "the connection to the server was lost")
        for (_, slot) in streams { slot.io.abort(error) }
        streams.removeAll()
        // These were never sent: another connection may still carry them.
        for io in waitingForSettings { connection.orphaned(io) }
        waitingForSettings = []
        connection.closed()
    }

    /// Client idle timeout: just close; the next call reconnects.
    override func idleTimedOut() {
        goingAway = true
        connection.markUnusable()
        h2.submitGoAway()
        flush()
        close()
    }

    func shutdown() {
        goingAway = true
        connection.markUnusable()
        if streams.isEmpty { close() }
    }
}

/// A client connection as calls see it: opens streams (without waiting for the event loop) and
/// says whether new calls may use it.
final class ClientConnection: Sendable {
    let outbox: ConnectionOutbox
    let maxMessageSize: Int
    private let usable = Atomic<Bool>(true)
    private let onClose: @Sendable (ClientConnection) -> Void
    private let channelBox = Mutex<(any Channel)?>(nil)
    private let handlerShutdown = Mutex<(@Sendable () -> Void)?>(nil)
    private let closedPromise: EventLoopPromise<Void>

    /// Moves a stream waiting to be opened off this connection (its outbox given).
    private let onOrphan: @Sendable (H2StreamIO, ConnectionOutbox) -> Void

    init(eventLoop: any EventLoop, maxMessageSize: Int, onClose: @escaping @Sendable (ClientConnection) -> Void,
         onOrphan: @escaping @Sendable (H2StreamIO, ConnectionOutbox) -> Void) {
        outbox = ConnectionOutbox(eventLoop: eventLoop, orphaned: onOrphan)
        self.maxMessageSize = maxMessageSize
        self.onClose = onClose
        self.onOrphan = onOrphan
        closedPromise = eventLoop.makePromise()
    }

    /// A stream waiting to be opened that this connection cannot open (it went away, or refused
    /// the stream unprocessed): the client moves it.
    func orphaned(_ io: H2StreamIO) {
        onOrphan(io, outbox)
    }

    func attach(channel: any Channel, shutdown: @escaping @Sendable () -> Void) {
        channelBox.withLock { $0 = channel }
        handlerShutdown.withLock { $0 = shutdown }
    }

    var isUsable: Bool { usable.load(ordering: .relaxed) }
    func markUnusable() { usable.store(false, ordering: .relaxed) }

    func closed() {
        markUnusable()
        // The handler and this object reference each other through these; let both go.
        channelBox.withLock { $0 = nil }
        handlerShutdown.withLock { $0 = nil }
        onClose(self)
        closedPromise.succeed()
    }

    /// The connection never came up: nothing will close it, so complete its promise here.
    func abandon() {
        markUnusable()
        closedPromise.succeed()
    }

    func openStream(headers: [HeaderField]) -> H2StreamIO {
        H2StreamIO(server: false, streamID: 0, outbox: outbox, maxMessageSize: maxMessageSize, openWith: headers)
    }

    /// Stops new calls; closes once the calls in flight finish.
    func shutdownGracefully() {
        markUnusable()
        if let shutdown = handlerShutdown.withLock({ $0 }) { outbox.eventLoop.execute { shutdown() } }
    }

    func close() {
        markUnusable()
        channelBox.withLock { $0 }?.close(promise: nil)
    }

    func waitUntilClosed() async {
        try? await closedPromise.futureResult.get()
    }
}
