import NIOCore
import Synchronization

/// Receives the streams that have work for the event loop, in batches.
protocol OutboxProcessor: AnyObject {
    func processOutbox(_ streams: [H2StreamIO])
}

/// Hands stream work from tasks to one connection's event loop. Streams queue themselves; the
/// first one schedules a single hop, which serves every stream queued by then and flushes once.
final class ConnectionOutbox: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<(streams: [H2StreamIO], scheduled: Bool)>(([], false))
    private let processor: NIOLoopBoundBox<(any OutboxProcessor)?>

    /// What happens to streams queued after the connection's handler went away (with this outbox).
    private let orphaned: @Sendable (H2StreamIO, ConnectionOutbox) -> Void

    init(eventLoop: any EventLoop, orphaned: @escaping @Sendable (H2StreamIO, ConnectionOutbox) -> Void = { stream, _ in
        stream.abort(RPCError(.unavailable, "the connection is closed"))
    }) {
        self.eventLoop = eventLoop
        self.orphaned = orphaned
        processor = .makeEmptyBox(valueType: (any OutboxProcessor).self, eventLoop: eventLoop)
    }

    /// Called on the event loop by the connection handler (and with nil when it goes away).
    func attach(_ processor: (any OutboxProcessor)?) { self.processor.value = processor }

    func enqueue(_ stream: H2StreamIO) {
        let schedule = pending.withLock { pending -> Bool in
            pending.streams.append(stream)
            if pending.scheduled { return false }
            pending.scheduled = true
            return true
        }
        guard schedule else { return }
        eventLoop.execute {
            let streams = self.pending.withLock { pending -> [H2StreamIO] in
                var taken: [H2StreamIO] = []
                swap(&taken, &pending.streams)
                pending.scheduled = false
                return taken
            }
            if let processor = self.processor.value {
                processor.processOutbox(streams)
            } else {
                for stream in streams where stream.outbox === self { self.orphaned(stream, self) }
            }
        }
    }
}

/// What the event loop must do for a stream, taken in one go by `takeWork`.
struct StreamWork {
    /// Client: the request headers of a stream not yet opened.
    var open: [HeaderField]?
    /// Client: the stream waits to be opened but this connection cannot open it (`canOpen` was
    /// false): it must move to another.
    var mustMove = false
    /// Bytes the handler consumed whose stream window can re-open.
    var releaseWindow = 0
    var hasData = false
    var ended = false
    /// Server: the handler finished, with this status (nil = OK), and these metadata.
    var finish: (status: RPCError?, initial: Metadata, trailing: Metadata)?
    /// Server: initial metadata to send with the response headers.
    var initialMetadata = Metadata()
    /// Client: the caller gave up; reset the stream.
    var reset = false
    /// The task side already ended the stream (cancelled, failed).
    var closed = false
}

/// The two ends of one stream's buffers: the event loop on one side, the task running the call
/// (a server handler, or a client caller) on the other. Inbound messages queue up to a bound
/// before the stream's flow-control window stops re-opening; outbound writes suspend while more
/// than a bound waits for the peer's window.
final class H2StreamIO: H2BodySource, Sendable {
    static let inboundHighWater = 64 * 1024
    static let inboundLowWater = 16 * 1024
    static let outboundHighWater = 64 * 1024
    static let outboundLowWater = 16 * 1024
    static let replayLimit = 64 * 1024

    private struct State {
        // inbound
        var messages = CircularBuffer<ByteBuffer>(initialCapacity: 2)
        var queuedBytes = 0
        var heldWindow = 0
        var inboundEnd: Result<Void, RPCError>?
        var reader: CheckedContinuation<ByteBuffer?, any Error>?
        // client: the response head
        var head: Result<Metadata, RPCError>?
        var headWaiter: CheckedContinuation<Metadata, any Error>?
        // outbound
        var chunks = CircularBuffer<ByteBuffer>(initialCapacity: 2)
        var outboundBytes = 0
        var writer: CheckedContinuation<Void, any Error>?
        var outboundEnded = false
        var trailers: [HeaderField]?
        /// Client: set while the stream waits to be opened (sent as a new stream), whichever
        /// connection it is on.
        var open: [HeaderField]?
        /// The connection this stream lives on. A client stream waiting to be opened can move to
        /// another connection (`rehome`); server streams never move. In this lock, so a move and
        /// an event loop taking the stream's work cannot interleave.
        var outbox: ConnectionOutbox
        /// Moves to another connection, and refusals replayed on the same one since the last move.
        var moves = 0
        var retriesInPlace = 0
        /// Client: what went on the wire so far, kept while the server has not answered, so a
        /// stream the server refused unprocessed can be replayed on another connection. Nil once
        /// replay is impossible (the server answered, or more than `replayLimit` was sent).
        var replay: [ByteBuffer]? = []
        var replayBytes = 0
        var requestHeaders: [HeaderField]?
        var finish: RPCError??
        var initialMetadata = Metadata()
        var trailingMetadata = Metadata()
        var resetRequested = false
        /// Both directions ended on the wire: the peer's END_STREAM arrived and ours was handed
        /// to nghttp2. Nothing is left to reset.
        var peerEnded = false
        var endSent = false
        // lifecycle
        var closed: RPCError?
        var queued = false
        var mustStop = false
        var stopWaiter: CheckedContinuation<Void, Never>?
    }

    var outbox: ConnectionOutbox { state.withLock { $0.outbox } }
    let isServer: Bool
    let maxMessageSize: Int
    private let state: Mutex<State>
    /// The HTTP/2 stream id. Event-loop confined: written when the stream opens, read only there.
    nonisolated(unsafe) var streamID: Int32

    init(server: Bool, streamID: Int32, outbox: ConnectionOutbox, maxMessageSize: Int, openWith headers: [HeaderField]? = nil) {
        isServer = server
        self.streamID = streamID
        self.maxMessageSize = maxMessageSize
        var initial = State(outbox: outbox)
        if let headers {
            initial.open = headers
            initial.requestHeaders = headers
            initial.queued = true
        }
        state = Mutex(initial)
        if headers != nil { outbox.enqueue(self) }
    }

    // MARK: task side

    /// The next inbound message; nil at the end of a successful stream.
    func next() async throws -> ByteBuffer? {
        enum Step { case message(ByteBuffer, release: Bool), end(Result<Void, RPCError>), wait }
        let step = state.withLock { s -> Step in
            if let message = s.messages.popFirst() {
                s.queuedBytes -= message.readableBytes
                return .message(message, release: releaseIfDrained(&s))
            }
            if let end = s.inboundEnd { return .end(end) }
            return .wait
        }
        switch step {
        case .message(let message, let release):
            if release { outbox.enqueue(self) }
            return message
        case .end(let end):
            try end.get()
            return nil
        case .wait:
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, any Error>) in
                    let step = state.withLock { s -> Step in
                        if let message = s.messages.popFirst() {
                            s.queuedBytes -= message.readableBytes
                            return .message(message, release: releaseIfDrained(&s))
                        }
                        if let end = s.inboundEnd { return .end(end) }
                        if Task.isCancelled { return .end(.failure(RPCError(.cancelled, "the call was cancelled"))) }
                        s.reader = continuation
                        return .wait
                    }
                    switch step {
                    case .message(let message, let release):
                        if release { outbox.enqueue(self) }
                        continuation.resume(returning: message)
                    case .end(.success): continuation.resume(returning: nil)
                    case .end(.failure(let error)): continuation.resume(throwing: error)
                    case .wait: break
                    }
                }
            } onCancel: {
                let reader = state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
                    defer { s.reader = nil }
                    return s.reader
                }
                reader?.resume(throwing: CancellationError())
            }
        }
    }

    /// Re-opens the window once a backlog that held it has drained. Returns true to enqueue.
    private func releaseIfDrained(_ s: inout State) -> Bool {
        guard s.heldWindow > 0, s.queuedBytes <= Self.inboundLowWater, !s.queued else { return false }
        s.queued = true
        return true
    }

    /// Frames and queues one message; suspends while too much waits for the peer's window.
    func write(_ message: any RPCMessage) async throws {
        let framed = try Wire.frame(message, maxSize: maxMessageSize)
        let (enqueue, wait) = try state.withLock { s throws(RPCError) -> (Bool, Bool) in
            if let closed = s.closed { throw closed }
            guard !s.outboundEnded else { throw RPCError(.internalError, "a message was written after the stream ended") }
            s.chunks.append(framed)
            s.outboundBytes += framed.readableBytes
            let enqueue = !s.queued
            s.queued = true
            return (enqueue, s.outboundBytes > Self.outboundHighWater)
        }
        if enqueue { outbox.enqueue(self) }
        if wait { try await waitForDrain() }
    }

    private func waitForDrain() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { s -> Result<Bool, any Error> in
                    if let closed = s.closed { return .failure(closed) }
                    if s.outboundBytes <= Self.outboundLowWater { return .success(true) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.writer = continuation
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let writer = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                defer { s.writer = nil }
                return s.writer
            }
            writer?.resume(throwing: CancellationError())
        }
    }

    /// Client: no more requests (half-close).
    func endOutbound() {
        let enqueue = state.withLock { s -> Bool in
            guard s.closed == nil, !s.outboundEnded else { return false }
            s.outboundEnded = true
            defer { s.queued = true }
            return !s.queued
        }
        if enqueue { outbox.enqueue(self) }
    }

    /// Server: the handler returned (status nil) or threw.
    func finishHandler(status: RPCError?) {
        var stopWaiter: CheckedContinuation<Void, Never>?
        let enqueue = state.withLock { s -> Bool in
            s.mustStop = true
            stopWaiter = s.stopWaiter
            s.stopWaiter = nil
            guard s.closed == nil, !s.outboundEnded else { return false }
            s.outboundEnded = true
            s.finish = .some(status)
            defer { s.queued = true }
            return !s.queued
        }
        stopWaiter?.resume()
        if enqueue { outbox.enqueue(self) }
    }

    /// Server: returns once the handler finished or must be cancelled (reset, deadline, loss).
    func handlerMustStop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.mustStop { return true }
                s.stopWaiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    func addInitialMetadata(_ metadata: Metadata) {
        state.withLock { s in for (key, value) in metadata { s.initialMetadata.append(key, value) } }
    }

    func addTrailingMetadata(_ metadata: Metadata) {
        state.withLock { s in for (key, value) in metadata { s.trailingMetadata.append(key, value) } }
    }

    /// Client: the response headers, or the failure that came first.
    func responseHead() async throws -> Metadata {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Metadata, any Error>) in
                let head = state.withLock { s -> Result<Metadata, RPCError>? in
                    if let head = s.head { return head }
                    if Task.isCancelled { return .failure(RPCError(.cancelled, "the call was cancelled")) }
                    s.headWaiter = continuation
                    return nil
                }
                if let head { continuation.resume(with: head) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Metadata, any Error>? in
                defer { s.headWaiter = nil }
                return s.headWaiter
            }
            waiter?.resume(throwing: RPCError(.cancelled, "the call was cancelled"))
        }
    }

    /// Client: the caller is done (cancelled, failed, or returned early). Resets the stream if
    /// it is still open; returns true if this ended the call.
    @discardableResult
    func cancelFromCaller(_ error: RPCError = RPCError(.cancelled, "the call was cancelled")) -> Bool {
        abort(error, reset: true)
    }

    // MARK: event-loop side

    enum Rehoming {
        case moved
        /// Nothing to do: the stream already left `from`, or is no longer waiting to be opened
        /// (an earlier move got it opened).
        case stale
        /// The call is over.
        case over
        /// The stream was refused or moved too often.
        case exhausted
    }

    /// Bounds on replaying one stream, each with its own count: a connection that keeps refusing
    /// it while it stays current (RST_STREAM REFUSED_STREAM) gets `maxRetriesInPlace` more tries;
    /// connections that go away under it (GOAWAY, lost, no SETTINGS) or refuse it while going
    /// away cost a move each, up to `maxMoves`. A refusal on a still-current connection used to
    /// cost a move too, so one unlucky stream could spend the budget on a single reconnect.
    static let maxMoves = 5
    static let maxRetriesInPlace = 3

    /// Client: the stream could not open on the connection of `from` (it went away before the
    /// stream was sent, or refused it unprocessed), so nothing reached the server: send it again
    /// on `to`, the client's current connection (which may be `from` itself). Several requests to
    /// move one stream may race; only the one still naming the stream's connection acts.
    func rehome(from: ConnectionOutbox, to: ConnectionOutbox) -> Rehoming {
        let outcome = state.withLock { s -> Rehoming in
            guard s.closed == nil else { return .over }
            guard s.outbox === from, s.open != nil else { return .stale }
            if to === from {
                guard s.retriesInPlace < Self.maxRetriesInPlace else { return .exhausted }
                s.retriesInPlace += 1
            } else {
                guard s.moves < Self.maxMoves else { return .exhausted }
                s.moves += 1
                s.retriesInPlace = 0
            }
            s.outbox = to
            s.queued = true
            return .moved
        }
        if outcome == .moved { to.enqueue(self) }
        return outcome
    }

    /// Client: a move found no connection to go to. Fails the stream only if it is still waiting
    /// to be opened on `from`'s connection: a stale request must not end a call that moved on.
    func abortIfWaiting(on from: ConnectionOutbox, _ error: RPCError) {
        let waiting = state.withLock { $0.outbox === from && $0.open != nil }
        if waiting { abort(error) }
    }

    /// The work for `outbox`'s event loop; nil if the stream has since moved to another one. A
    /// connection that cannot open streams any more passes `canOpen: false`: a stream waiting to
    /// be opened then keeps its headers and is marked `mustMove`.
    func takeWork(for outbox: ConnectionOutbox, canOpen: Bool = true) -> StreamWork? {
        state.withLock { s in
            guard s.outbox === outbox else { return nil }
            var work = StreamWork()
            s.queued = false
            if canOpen {
                work.open = s.open
                s.open = nil
            } else {
                work.mustMove = s.open != nil
            }
            if s.queuedBytes <= Self.inboundLowWater || s.closed != nil {
                work.releaseWindow = s.heldWindow
                s.heldWindow = 0
            }
            work.hasData = !s.chunks.isEmpty
            work.ended = s.outboundEnded
            if let status = s.finish {
                work.finish = (status, s.initialMetadata, s.trailingMetadata)
                s.finish = nil
            }
            work.initialMetadata = s.initialMetadata
            work.reset = s.resetRequested
            s.resetRequested = false
            work.closed = s.closed != nil
            return work
        }
    }

    /// Queues received messages. Returns how many stream-window bytes may be acknowledged now.
    func receive(_ messages: [ByteBuffer], wireBytes: Int) -> Int {
        var reader: CheckedContinuation<ByteBuffer?, any Error>?
        var first: ByteBuffer?
        let ack = state.withLock { s -> Int in
            guard s.closed == nil, s.inboundEnd == nil else { return wireBytes }
            var index = messages.startIndex
            if let waiting = s.reader, index < messages.endIndex {
                reader = waiting
                s.reader = nil
                first = messages[index]
                index += 1
            }
            while index < messages.endIndex {
                s.messages.append(messages[index])
                s.queuedBytes += messages[index].readableBytes
                index += 1
            }
            if s.queuedBytes <= Self.inboundHighWater {
                defer { s.heldWindow = 0 }
                return wireBytes + s.heldWindow
            }
            s.heldWindow += wireBytes
            return 0
        }
        reader?.resume(returning: first)
        return ack
    }

    /// Client: the server refused the stream without processing it (RST_STREAM REFUSED_STREAM,
    /// or a GOAWAY that excludes it). If everything sent is still at hand and the server said
    /// nothing, rewinds the stream to waiting to be opened, so it can be sent again (`rehome`);
    /// returns false if it cannot be replayed.
    func rewindForReplay() -> Bool {
        state.withLock { s -> Bool in
            guard s.closed == nil, s.head == nil, s.inboundEnd == nil, let replay = s.replay, let headers = s.requestHeaders else { return false }
            var chunks = CircularBuffer<ByteBuffer>(initialCapacity: replay.count + s.chunks.count)
            chunks.append(contentsOf: replay)
            chunks.append(contentsOf: s.chunks)
            s.chunks = chunks
            s.outboundBytes += s.replayBytes
            s.replay = []
            s.replayBytes = 0
            s.endSent = false
            s.heldWindow = 0
            s.open = headers
            return true
        }
    }

    /// The peer half-closed (server) or the trailers carried this status (client).
    func finishInbound(_ result: Result<Void, RPCError>) {
        let reader = state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
            s.peerEnded = true
            guard s.inboundEnd == nil else { return nil }
            s.inboundEnd = result
            defer { s.reader = nil }
            return s.messages.isEmpty ? s.reader : nil
        }
        switch result {
        case .success: reader?.resume(returning: nil)
        case .failure(let error): reader?.resume(throwing: error)
        }
    }

    /// Client: the response headers arrived.
    func receiveHead(_ metadata: Metadata) {
        let waiter = state.withLock { s -> CheckedContinuation<Metadata, any Error>? in
            s.replay = nil
            guard s.head == nil else { return nil }
            s.head = .success(metadata)
            defer { s.headWaiter = nil }
            return s.headWaiter
        }
        waiter?.resume(returning: metadata)
    }

    /// Server: the trailers that end the body; the data source sends them after the last byte.
    func setTrailers(_ trailers: [HeaderField]) {
        state.withLock { $0.trailers = trailers }
    }

    /// Ends the stream for the task side: pending reads, writes and the head fail with `error`,
    /// queued output is dropped, and a server handler is told to stop. Returns true if the
    /// stream was still open.
    @discardableResult
    func abort(_ error: RPCError, reset: Bool = false) -> Bool {
        var reader: CheckedContinuation<ByteBuffer?, any Error>?
        var headWaiter: CheckedContinuation<Metadata, any Error>?
        var writer: CheckedContinuation<Void, any Error>?
        var stopWaiter: CheckedContinuation<Void, Never>?
        let (wasOpen, enqueue) = state.withLock { s -> (Bool, Bool) in
            guard s.closed == nil else { return (false, false) }
            s.closed = error
            if s.inboundEnd == nil {
                s.inboundEnd = .failure(error)
                s.messages.removeAll()
                s.queuedBytes = 0
                reader = s.reader
                s.reader = nil
            }
            if s.head == nil {
                s.head = .failure(error)
                headWaiter = s.headWaiter
                s.headWaiter = nil
            }
            writer = s.writer
            s.writer = nil
            s.chunks.removeAll()
            s.outboundBytes = 0
            s.mustStop = true
            stopWaiter = s.stopWaiter
            s.stopWaiter = nil
            // A finished call needs no RST_STREAM (and no extra event-loop hop to skip one).
            guard reset, !(s.peerEnded && s.endSent) else { return (true, false) }
            s.resetRequested = true
            defer { s.queued = true }
            return (true, !s.queued)
        }
        reader?.resume(throwing: error)
        headWaiter?.resume(throwing: error)
        writer?.resume(throwing: error)
        stopWaiter?.resume()
        if enqueue { outbox.enqueue(self) }
        return wasOpen
    }

    /// True once the inbound side ended (successfully or not).
    var inboundFinished: Bool { state.withLock { $0.inboundEnd != nil } }

    func readBody(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, end: Bool, trailers: [HeaderField]?)? {
        var writer: CheckedContinuation<Void, any Error>?
        let result = state.withLock { s -> (count: Int, end: Bool, trailers: [HeaderField]?)? in
            var written = 0
            while written < buffer.count, let index = s.chunks.indices.first {
                let n = min(buffer.count - written, s.chunks[index].readableBytes)
                s.chunks[index].withUnsafeReadableBytes { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[written..<(written + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
                }
                if !isServer, s.replay != nil {
                    if s.replayBytes + n <= Self.replayLimit, let sent = s.chunks[index].getSlice(at: s.chunks[index].readerIndex, length: n) {
                        s.replay!.append(sent)
                        s.replayBytes += n
                    } else {
                        s.replay = nil
                    }
                }
                s.chunks[index].moveReaderIndex(forwardBy: n)
                if s.chunks[index].readableBytes == 0 { s.chunks.removeFirst() }
                written += n
            }
            s.outboundBytes -= written
            if s.writer != nil, s.outboundBytes <= Self.outboundLowWater {
                writer = s.writer
                s.writer = nil
            }
            let end = s.chunks.isEmpty && (isServer ? s.trailers != nil : s.outboundEnded && s.closed == nil)
            if written == 0 && !end { return nil }
            if end { s.endSent = true }
            return (written, end, end ? s.trailers : nil)
        }
        writer?.resume()
        return result
    }
}

/// The inbound messages of a stream as the handler (server) or the caller (client) reads them.
struct InboundMessages: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let io: H2StreamIO

    func makeAsyncIterator() -> Iterator { Iterator(io: io) }

    struct Iterator: AsyncIteratorProtocol {
        let io: H2StreamIO
        mutating func next() async throws -> ByteBuffer? { try await io.next() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> ByteBuffer? { try await io.next() }
    }
}

extension Metadata {
    mutating func append(_ key: String, _ value: Value) {
        switch value {
        case .string(let string): addString(string, forKey: key)
        case .binary(let bytes): addBinary(bytes, forKey: key)
        }
    }
}
