import FaultlineRPC
import Foundation
import NIOCore
import Synchronization
import Testing

/// A decoder that refuses bytes that are not UTF-8: stands in for a protobuf message whose
/// bytes do not parse.
struct StrictText: RPCMessage {
    var text: String
    init(serializedBytes: ByteBuffer) throws(RPCError) {
        guard let text = String(validating: serializedBytes.readableBytesView, as: UTF8.self) else {
            throw RPCError(.invalidArgument, "the request is not a valid message")
        }
        self.text = text
    }
    func serialize(into buffer: inout ByteBuffer) throws(RPCError) { buffer.writeString(text) }
}

struct StrictService: RPCService {
    static let method = MethodDescriptor(service: "faultline.testing.v1.Strict", method: "Parse")
    var methods: [RegisteredMethod] {
        [.unary(Self.method) { (request: StrictText, _) -> StrictText in request }]
    }
}

final class Tally: Sendable {
    private let state = Mutex<(ok: Int, failed: [String])>((0, []))
    func withLock<T>(_ body: (inout (ok: Int, failed: [String])) -> T) -> T { state.withLock { body(&$0) } }
}

/// A well-behaved client making calls on its own connection for as long as `body` runs.
func whileWellBehavedClientRuns(port: Int, _ body: @Sendable () async throws -> Void) async throws -> (ok: Int, failed: [String]) {
    let results = Tally()
    try await withClient(port: port) { client in
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var index = 0
                while !Task.isCancelled {
                    index += 1
                    do {
                        let response: RawMessage = try await client.unary(Echo.get, RawMessage("good \(index)"))
                        if response.string == "good \(index)" {
                            results.withLock { $0.ok += 1 }
                        } else {
                            results.withLock { $0.failed.append("wrong answer \(response.string)") }
                        }
                    } catch {
                        if Task.isCancelled { break }
                        results.withLock { $0.failed.append("\(error)") }
                    }
                }
            }
            try await body()
            // At least a few calls after the hostile part, so "kept serving" is observed.
            let target = results.withLock { $0.ok } + 20
            for _ in 0..<1000 where results.withLock({ $0.ok }) < target { try await Task.sleep(for: .milliseconds(5)) }
            group.cancelAll()
        }
    }
    return results.withLock { $0 }
}

@Suite("hostile input")
struct HostileTests {
    @Test func garbageInsteadOfPreface() async throws {
        try await withServer { _, port in
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                for garbage in [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), [UInt8](repeating: 0xFF, count: 4096), Array(Frames.preface.prefix(10)) + [0, 0, 0]] {
                    let socket = try await RawSocket(port: port)
                    try await socket.send(garbage)
                    let closed = try await socket.waitUntilClosed()
                    #expect(closed, "the server must drop a connection that does not start with the preface")
                    await socket.close()
                }
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
            #expect(outcome.ok >= 20)
        }
    }

    @Test func malformedFrames() async throws {
        try await withServer { _, port in
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                let malformed: [[UInt8]] = [
                    Frames.frame(type: Frames.typeSettings, payload: [0, 1, 0]),  // SETTINGS length not a multiple of 6
                    Frames.frame(type: Frames.typeData, flags: 1, stream: 0, payload: [1, 2, 3]),  // DATA on stream 0
                    Frames.frame(type: Frames.typeHeaders, flags: 5, stream: 2, payload: Frames.headerBlock(Frames.grpcRequest(path: "/x/y"))),  // even stream id from a client
                    Frames.frame(type: Frames.typeHeaders, flags: 5, stream: 1, payload: [0xFF, 0xFF, 0xFF, 0xFF]),  // undecodable HPACK
                    Frames.frame(type: Frames.typeRST, stream: 0, payload: [0, 0, 0, 8]),  // RST_STREAM on stream 0
                    Frames.frame(type: Frames.typeSettings, payload: [0, 4, 0xFF, 0xFF, 0xFF, 0xFF]),  // window size above 2^31-1
                ]
                for frame in malformed {
                    let socket = try await RawSocket(port: port)
                    try await socket.send(Frames.clientStart + frame)
                    let closed = try await socket.waitUntilClosed()
                    #expect(closed)
                    #expect(socket.frameTypes.contains(Frames.typeGoAway), "expected GOAWAY, got frames \(socket.frameTypes)")
                    await socket.close()
                }
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
        }
    }

    @Test func badGRPCRequests() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maxMessageSize = 64 * 1024
        try await withServer(configuration, services: [EchoService(), StrictService()]) { _, port in
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                let raw = try await RawH2Client(port: port)
                let get = Frames.grpcRequest(path: Echo.get.path)
                let hello = grpcFrame(Array("hello".utf8))

                // The raw client itself is right: a proper request works.
                let ok = try await raw.request(get, body: hello)
                #expect(ok.grpcStatus == 0)
                #expect(ok.body == hello)

                // Wrong content-type: HTTP 415, no gRPC status.
                var plain = get
                plain[5] = ("content-type", "text/plain")
                let unsupported = try await raw.request(plain, body: hello)
                #expect(unsupported.headers[":status"] == "415")
                var missing = get
                missing.remove(at: 5)
                #expect(try await raw.request(missing, body: hello).headers[":status"] == "415")

                // Unknown method: UNIMPLEMENTED, Trailers-Only.
                let unknown = try await raw.request(Frames.grpcRequest(path: "/faultline.testing.v1.Echo/Nope"), body: hello)
                #expect(unknown.grpcStatus == RPCError.Code.unimplemented.rawValue)
                #expect(unknown.headers[":status"] == "200" && unknown.trailers.isEmpty)

                // Not POST.
                var getMethod = get
                getMethod[0] = (":method", "PUT")
                #expect(try await raw.request(getMethod, body: hello).grpcStatus == RPCError.Code.internalError.rawValue)

                // Truncated length prefix, and a message cut short.
                #expect(try await raw.request(get, body: [0, 0, 0]).grpcStatus == RPCError.Code.internalError.rawValue)
                #expect(try await raw.request(get, body: grpcFrame(Array("hello".utf8), length: 50)).grpcStatus == RPCError.Code.internalError.rawValue)

                // A length prefix over the limit: RESOURCE_EXHAUSTED before the body arrives.
                let over = try await raw.request(get, body: grpcFrame([1, 2, 3], length: 0x7FFF_FFFF))
                #expect(over.grpcStatus == RPCError.Code.resourceExhausted.rawValue)
                let justOver = try await raw.request(get, body: grpcFrame([UInt8](repeating: 1, count: 64 * 1024 + 1)))
                #expect(justOver.grpcStatus == RPCError.Code.resourceExhausted.rawValue)

                // The compressed flag without a negotiated grpc-encoding; an unknown flag.
                #expect(try await raw.request(get, body: grpcFrame(Array("x".utf8), flag: 1)).grpcStatus == RPCError.Code.internalError.rawValue)
                #expect(try await raw.request(get, body: grpcFrame(Array("x".utf8), flag: 7)).grpcStatus == RPCError.Code.internalError.rawValue)
                // An encoding we do not support.
                var gzip = get
                gzip.append(("grpc-encoding", "gzip"))
                let compressed = try await raw.request(gzip, body: grpcFrame(Array("x".utf8), flag: 1))
                #expect(compressed.grpcStatus == RPCError.Code.unimplemented.rawValue)
                #expect(compressed.headers["grpc-accept-encoding"] == "identity")

                // Malformed grpc-timeout.
                var timeout = get
                timeout.append(("grpc-timeout", "soon"))
                #expect(try await raw.request(timeout, body: hello).grpcStatus == RPCError.Code.internalError.rawValue)

                // The longest timeout the format allows is fine (and must not overflow a timer).
                var forever = get
                forever.append(("grpc-timeout", "99999999H"))
                #expect(try await raw.request(forever, body: hello).grpcStatus == 0)
                forever[forever.count - 1] = ("grpc-timeout", "99999999S")
                #expect(try await raw.request(forever, body: hello).grpcStatus == 0)

                // Bytes the message type cannot decode: INVALID_ARGUMENT.
                let invalid = try await raw.request(Frames.grpcRequest(path: StrictService.method.path), body: grpcFrame([0xC3, 0x28, 0xFF]))
                #expect(invalid.grpcStatus == RPCError.Code.invalidArgument.rawValue)
                let valid = try await raw.request(Frames.grpcRequest(path: StrictService.method.path), body: grpcFrame(Array("ok".utf8)))
                #expect(valid.grpcStatus == 0)

                // Two messages to a unary method.
                let two = try await raw.request(get, body: hello + hello)
                #expect(two.grpcStatus != 0)

                // The server enforces grpc-timeout on its own (this client never gives up).
                var slow = Frames.grpcRequest(path: Echo.collect.path)
                slow.append(("grpc-timeout", "200m"))
                slow.append(("x-delay-ms", "60000"))
                let expired = try await raw.request(slow, body: hello)
                #expect(expired.grpcStatus == RPCError.Code.deadlineExceeded.rawValue)

                // Headers over the advertised limit reset the stream only.
                var huge = get
                for index in 0..<40 { huge.append(("x-big-\(index)", String(repeating: "v", count: 100))) }
                let reset = try await raw.request(huge + huge + huge + huge + huge, body: hello)
                #expect(reset.resetCode != nil && reset.grpcStatus == nil, "\(reset)")

                // And after all that, the same connection still serves.
                #expect(try await raw.request(get, body: hello).grpcStatus == 0)
                await raw.close()
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
        }
    }

    @Test func thousandStreamsOpenedAndReset() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            // Warm up so allocator growth from the first calls does not count.
            _ = try await whileWellBehavedClientRuns(port: port) {}
            let before = residentMemory()
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                for round in 0..<3 {
                    let socket = try await RawSocket(port: port)
                    var bytes = Frames.clientStart
                    let headers = Frames.headerBlock(Frames.grpcRequest(path: Echo.collect.path) + [("x-delay-ms", "60000")])
                    for index in 0..<1000 {
                        let stream = UInt32(2 * index + 1)
                        bytes += Frames.frame(type: Frames.typeHeaders, flags: 4, stream: stream, payload: headers)  // END_HEADERS
                        bytes += Frames.frame(type: Frames.typeData, stream: stream, payload: grpcFrame([UInt8](repeating: UInt8(round), count: 1000)))
                        bytes += Frames.frame(type: Frames.typeRST, stream: stream, payload: [0, 0, 0, 8])  // CANCEL
                    }
                    try await socket.send(bytes)
                    // Either the server processes every reset or it calls the flood off with GOAWAY;
                    // both are fine. It must not crash, hang, or keep the handlers.
                    for _ in 0..<200 where !socket.frameTypes.contains(Frames.typeGoAway) && !socket.isClosed {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    await socket.close()
                }
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
            // Every flood handler that started was cancelled; none is left running (the
            // well-behaved calls are the ones that finished).
            let drained = try await probe.wait { $0.started == $0.cancelledCount + $0.finishedCount }
            #expect(drained, "started \(probe.started), cancelled \(probe.cancelledCount), finished \(probe.finishedCount)")
            #expect(probe.cancelledCount > 0, "the flood never reached a handler")
            let after = residentMemory()
            #expect(after - before < 96 * 1024 * 1024, "RSS grew from \(before / 1024) KiB to \(after / 1024) KiB")
        }
    }

    @Test func oversizedMessagesFloodStaysBounded() async throws {
        // Many streams each announcing a maximal message and sending part of it: the server must
        // not reserve the announced size, and memory stays bounded.
        try await withServer { _, port in
            _ = try await whileWellBehavedClientRuns(port: port) {}
            let before = residentMemory()
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                let socket = try await RawSocket(port: port)
                var bytes = Frames.clientStart
                let headers = Frames.headerBlock(Frames.grpcRequest(path: Echo.collect.path))
                for index in 0..<100 {
                    let stream = UInt32(2 * index + 1)
                    bytes += Frames.frame(type: Frames.typeHeaders, flags: 4, stream: stream, payload: headers)
                    bytes += Frames.frame(type: Frames.typeData, stream: stream, payload: grpcFrame([UInt8](repeating: 9, count: 16_000), length: 4 * 1024 * 1024))
                }
                try await socket.send(bytes)
                try await Task.sleep(for: .milliseconds(200))
                await socket.close()
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
            let after = residentMemory()
            #expect(after - before < 96 * 1024 * 1024, "RSS grew from \(before / 1024) KiB to \(after / 1024) KiB")
        }
    }
}
