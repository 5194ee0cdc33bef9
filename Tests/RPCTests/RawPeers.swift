@testable import FaultlineRPC
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A raw TCP peer: writes exactly the bytes a test gives it and records what comes back.
final class RawSocket: Sendable {
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLock { $0.bytes += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            received.withLock { $0.closed = true }
        }
    }

    private let channel: any Channel
    private let collector: Collector

    init(port: Int) async throws {
        let collector = Collector()
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(collector) }
            .connect(host: "127.0.0.1", port: port).get()
        self.collector = collector
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    var received: [UInt8] { collector.received.withLock { $0.bytes } }
    var isClosed: Bool { collector.received.withLock { $0.closed } }

    /// Polls until the server closed the connection (bounded; never asserts on time).
    func waitUntilClosed() async throws -> Bool {
        for _ in 0..<500 where !isClosed { try await Task.sleep(for: .milliseconds(20)) }
        return isClosed
    }

    func close() async { try? await channel.close() }

    /// The frame types in `received` (a best-effort walk over 9-byte HTTP/2 frame headers).
    var frameTypes: [UInt8] {
        let bytes = received
        var types: [UInt8] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            types.append(bytes[index + 3])
            index += 9 + length
        }
        return types
    }
}

/// Hand-built HTTP/2 frames, for input no well-behaved library would produce.
enum Frames {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let typeData: UInt8 = 0, typeHeaders: UInt8 = 1, typeRST: UInt8 = 3, typeSettings: UInt8 = 4, typeGoAway: UInt8 = 7

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
                UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// HPACK "literal header field without indexing, new name", no Huffman (lengths < 127).
    static func headerBlock(_ fields: [(String, String)]) -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0x00)
            block.append(UInt8(name.utf8.count))
            block += name.utf8
            block.append(UInt8(value.utf8.count))
            block += value.utf8
        }
        return block
    }

    static func grpcRequest(path: String) -> [(String, String)] {
        [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
         ("te", "trailers"), ("content-type", "application/grpc")]
    }

    static var clientStart: [UInt8] { preface + frame(type: typeSettings) }
}

/// An HTTP/2 client that is correct at the HTTP/2 level (nghttp2 frames it) but sends whatever
/// gRPC headers and body bytes a test wants, and reports the raw response.
final class RawH2Client: Sendable {
    struct Response: Sendable {
        var headers: [String: String] = [:]
        var trailers: [String: String] = [:]
        var body: [UInt8] = []
        var resetCode: UInt32?
        /// grpc-status from the trailers, or from a Trailers-Only response.
        var grpcStatus: Int? { (trailers["grpc-status"] ?? headers["grpc-status"]).flatMap(Int.init) }
        var grpcMessage: String? { trailers["grpc-message"] ?? headers["grpc-message"] }
    }

    private final class Body: H2BodySource {
        var bytes: [UInt8]
        let end: Bool
        init(_ bytes: [UInt8], end: Bool) { self.bytes = bytes; self.end = end }
        func readBody(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, end: Bool, trailers: [HeaderField]?)? {
            let n = min(buffer.count, bytes.count)
            buffer.copyBytes(from: bytes.prefix(n))
            bytes.removeFirst(n)
            if bytes.isEmpty && end { return (n, true, nil) }
            return n == 0 ? nil : (n, false, nil)
        }
    }

    private final class Handler: H2ChannelHandler {
        var responses: [Int32: Response] = [:]
        var waiters: [Int32: EventLoopPromise<Response>] = [:]
        var bodies: [Int32: Body] = [:]

        override func handle(_ event: H2Event) {
            switch event {
            case .headers(let stream, let fields, let initial, _):
                var response = responses[stream] ?? Response()
                for field in fields {
                    if initial { response.headers[field.name] = field.value } else { response.trailers[field.name] = field.value }
                }
                responses[stream] = response
            case .data(let stream, let chunk, _):
                h2.consumeConnection(chunk.readableBytes)
                h2.consumeStream(stream, chunk.readableBytes)
                responses[stream, default: Response()].body += chunk.readableBytesView
            case .streamClosed(let stream, let code):
                var response = responses.removeValue(forKey: stream) ?? Response()
                if code != 0 { response.resetCode = code }
                bodies[stream] = nil
                waiters.removeValue(forKey: stream)?.succeed(response)
            default:
                break
            }
        }

        func request(_ headers: [HeaderField], body: [UInt8], end: Bool, promise: EventLoopPromise<Response>) {
            let source = Body(body, end: end)
            guard let stream = h2.submitRequest(headers: headers, body: source) else {
                promise.fail(RPCError(.unavailable, "cannot open a stream"))
                return
            }
            bodies[stream] = source
            waiters[stream] = promise
            flush()
        }

        override func connectionClosed() {
            for (_, waiter) in waiters { waiter.fail(RPCError(.unavailable, "connection closed")) }
            waiters = [:]
        }
    }

    private let channel: any Channel
    private let handler: NIOLoopBound<Handler>

    init(port: Int) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let settings = H2Settings(maxConcurrentStreams: 100, initialWindowSize: 1 << 20, connectionWindowSize: 1 << 24, maxHeaderListSize: 1 << 16)
                    let handler = Handler(h2: try H2Connection(server: false, settings: settings),
                                          outbox: ConnectionOutbox(eventLoop: channel.eventLoop),
                                          timers: .init(keepaliveInterval: nil, keepaliveTimeout: .seconds(1), idleTimeout: nil),
                                          logger: testLogger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        self.channel = channel
        handler = try await channel.pipeline.handler(type: Handler.self).map { NIOLoopBound($0, eventLoop: channel.eventLoop) }.get()
    }

    /// Sends a request and waits for the stream to close.
    func request(_ headers: [(String, String)], body: [UInt8] = [], end: Bool = true) async throws -> Response {
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let handler = handler
        let fields = headers.map { HeaderField(name: $0.0, value: $0.1) }
        channel.eventLoop.execute { handler.value.request(fields, body: body, end: end, promise: promise) }
        return try await promise.futureResult.get()
    }

    func close() async { try? await channel.close() }
}

/// gRPC framing for raw bodies.
func grpcFrame(_ payload: [UInt8], flag: UInt8 = 0, length: UInt32? = nil) -> [UInt8] {
    let length = length ?? UInt32(payload.count)
    return [flag, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload
}

/// The resident set size of this process (the server runs in it), in bytes.
func residentMemory() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return kilobytes * 1024
    }
    return 0
}

/// A front door for a real server: its first `refusingConnections` connections are answered by a
/// server that refuses every stream unprocessed (see `Refuser`); later connections are relayed
/// byte for byte to `upstream`.
final class RefusingFrontDoor: Sendable {
    /// Relays bytes to the partner channel, holding what arrives before the partner is connected.
    /// (Reads are never paused for that: a `read()` issued before the accepted channel is
    /// registered marks a read pending that is never carried out, and the relay goes silent.)
    /// Both channels share one event loop, so this is only touched there.
    private final class Relay: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private var partner: (any Channel)?
        private var held: [ByteBuffer] = []
        private var closed = false

        func connect(to partner: any Channel) {
            guard !closed else { return partner.close(promise: nil) }
            self.partner = partner
            for data in held { partner.write(data, promise: nil) }
            held = []
            partner.flush()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            if let partner { partner.writeAndFlush(bytes, promise: nil) } else { held.append(bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed = true
            partner?.close(promise: nil)
        }
    }

    /// Refuses every stream unprocessed: the first `resets` with RST_STREAM REFUSED_STREAM (the
    /// connection stays usable), then all with one GOAWAY naming last stream 0.
    private final class Refuser: H2ChannelHandler {
        let refused: Counter
        private var resets: Int
        private var goneAway = false
        init(refused: Counter, resets: Int, maxConcurrentStreams: UInt32, eventLoop: any EventLoop) throws {
            self.refused = refused
            self.resets = resets
            let settings = H2Settings(
                maxConcurrentStreams: maxConcurrentStreams, initialWindowSize: 65_535, connectionWindowSize: 65_535, maxHeaderListSize: 1 << 16)
            super.init(h2: try H2Connection(server: true, settings: settings), outbox: ConnectionOutbox(eventLoop: eventLoop),
                       timers: .init(keepaliveInterval: nil, keepaliveTimeout: .seconds(1), idleTimeout: nil), logger: testLogger)
        }
        override func handle(_ event: H2Event) {
            switch event {
            case .headers(let stream, _, true, _):
                refused.increment()
                if resets > 0 {
                    resets -= 1
                    h2.resetStream(stream, errorCode: H2ErrorCode.refusedStream)
                } else if !goneAway {
                    goneAway = true
                    h2.submitGoAway(lastStreamID: 0)
                }
            case .data(let stream, let chunk, _):
                h2.consumeConnection(chunk.readableBytes)
                h2.consumeStream(stream, chunk.readableBytes)
            default:
                break
            }
        }
    }

    let port: Int
    let refused = Counter()
    private let listener: any Channel

    /// `resets` and `maxConcurrentStreams` shape each refusing connection (see `Refuser`).
    init(upstream: Int, resets: Int = 0, maxConcurrentStreams: UInt32 = 100, refusingConnections: Int = 1) async throws {
        let accepted = Counter()
        let refused = refused
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if accepted.increment() <= refusingConnections {
                        try channel.pipeline.syncOperations.addHandler(Refuser(
                            refused: refused, resets: resets, maxConcurrentStreams: maxConcurrentStreams, eventLoop: channel.eventLoop))
                        return
                    }
                    let inbound = Relay()
                    try channel.pipeline.syncOperations.addHandler(inbound)
                    ClientBootstrap(group: channel.eventLoop)
                        .channelInitializer { upstream in
                            let outbound = Relay()
                            outbound.connect(to: channel)
                            return upstream.pipeline.addHandler(outbound)
                        }
                        .connect(host: "127.0.0.1", port: upstream)
                        .whenComplete { result in
                            switch result {
                            case .success(let upstream): inbound.connect(to: upstream)
                            case .failure: channel.close(promise: nil)
                            }
                        }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = listener.localAddress?.port ?? 0
    }

    func close() async { try? await listener.close() }
}

/// Runs `body` with the port of a peer that accepts connections and never says anything.
func withSilentServer(_ body: (Int) async throws -> Void) async throws {
    let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
        .bind(host: "127.0.0.1", port: 0).get()
    do {
        try await body(try #require(silent.localAddress?.port))
    } catch {
        try? await silent.close()
        throw error
    }
    try await silent.close()
}

/// Runs `body` with the port of a listener whose accept queue is full and never drained: Linux
/// drops further SYNs, so a connect to it neither succeeds nor fails until it times out.
func withUnansweredListener(_ body: (Int) async throws -> Void) async throws {
    func socketTo(_ address: inout sockaddr_in, listen: Bool) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                if listen {
                    _ = bind(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size))
                } else {
                    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
                    _ = connect(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return fd
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let listener = socketTo(&address, listen: true)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    #expect(listen(listener, 0) == 0)
    // Backlog 0 holds one connection; a second one is already left waiting.
    let fillers = (0..<2).map { _ in socketTo(&address, listen: false) }
    defer { (fillers + [listener]).forEach { close($0) } }
    try await body(Int(UInt16(bigEndian: address.sin_port)))
}
