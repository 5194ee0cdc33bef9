import FaultlineRPC
import Foundation
import NIOCore
import Synchronization
import Testing

/// Counts what a handler managed to do, so tests can see back-pressure hold it.
final class Counter: Sendable {
    private let value = Mutex(0)
    @discardableResult func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    var count: Int { value.withLock { $0 } }
}

/// `Flood` writes 64 KiB responses until cancelled; `Sink` never reads its requests.
struct PressureService: RPCService {
    static let flood = MethodDescriptor(service: "faultline.testing.v1.Pressure", method: "Flood")
    static let sink = MethodDescriptor(service: "faultline.testing.v1.Pressure", method: "Sink")
    let written: Counter

    var methods: [RegisteredMethod] {
        let written = written
        return [
            .serverStreaming(Self.flood) { (_: RawMessage, writer: RPCWriter<RawMessage>, _) in
                let chunk = RawMessage([UInt8](repeating: 0x42, count: 64 * 1024))
                while true {
                    try await writer.write(chunk)
                    written.increment()
                }
            },
            .clientStreaming(Self.sink) { (_: RPCAsyncSequence<RawMessage>, _) -> RawMessage in
                try await Task.sleep(for: .seconds(3600))
                return RawMessage([])
            },
        ]
    }
}

@Suite("flow control and connection management")
struct FlowControlTests {
    @Test func handlerWritesStallWhenThePeerDoesNotRead() async throws {
        let written = Counter()
        try await withServer(services: [EchoService(), PressureService(written: written)]) { _, port in
            let outcome = try await whileWellBehavedClientRuns(port: port) {
                // A peer that asks for a stream of 64 KiB messages and never opens its window.
                let socket = try await RawSocket(port: port)
                let headers = Frames.headerBlock(Frames.grpcRequest(path: PressureService.flood.path))
                try await socket.send(Frames.clientStart
                    + Frames.frame(type: Frames.typeHeaders, flags: 4, stream: 1, payload: headers)
                    + Frames.frame(type: Frames.typeData, flags: 1, stream: 1, payload: grpcFrame(Array("go".utf8))))
                for _ in 0..<100 where written.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
                try await Task.sleep(for: .milliseconds(500))
                // 64 KiB of window plus one buffered message: the handler is held after a few writes
                // instead of queueing without bound.
                #expect(written.count >= 1)
                #expect(written.count <= 4, "the handler wrote \(written.count) messages into a closed window")
                #expect(socket.received.count < 200 * 1024)
                await socket.close()
            }
            #expect(outcome.failed.isEmpty, "\(outcome.failed)")
        }
    }

    @Test func clientWritesStallWhenTheHandlerDoesNotRead() async throws {
        try await withServer(services: [PressureService(written: Counter())]) { _, port in
            try await withClient(port: port) { client in
                let sent = Counter()
                let call = Task {
                    let _: RawMessage = try await client.clientStreaming(PressureService.sink) { (writer: RPCWriter<RawMessage>) in
                        let chunk = RawMessage([UInt8](repeating: 1, count: 64 * 1024))
                        while true {
                            try await writer.write(chunk)
                            sent.increment()
                        }
                    }
                }
                for _ in 0..<100 where sent.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
                try await Task.sleep(for: .milliseconds(500))
                // The server's stream window (256 KiB), its bounded queue and the client's own
                // buffer hold a handful of messages; then writes suspend.
                #expect(sent.count >= 1)
                #expect(sent.count <= 12, "the client wrote \(sent.count) messages to a handler that reads nothing")
                call.cancel()
                _ = await call.result
            }
        }
    }

    @Test func keepalivePingsAndTimeout() async throws {
        var configuration = RPCServer.Configuration()
        configuration.keepaliveInterval = .milliseconds(100)
        configuration.keepaliveTimeout = .milliseconds(300)
        try await withServer(configuration) { _, port in
            // A peer that never acknowledges PINGs is disconnected.
            let socket = try await RawSocket(port: port)
            // Under load the server may already have closed the connection: same outcome.
            try? await socket.send(Frames.clientStart)
            let closed = try await socket.waitUntilClosed()
            #expect(closed)
            #expect(socket.frameTypes.contains(6), "expected a PING, got frames \(socket.frameTypes)")
            await socket.close()
        }
        // A peer that acknowledges (nghttp2 does so by itself) keeps its call through many pings.
        // The timeout is generous here only so a loaded test machine cannot delay an ack past it.
        configuration.keepaliveTimeout = .seconds(10)
        try await withServer(configuration) { _, port in
            try await withClient(port: port) { client in
                let response: RawMessage = try await client.unary(Echo.get, RawMessage("patient"), options: CallOptions(metadata: ["x-delay-ms": "1000"]))
                #expect(response.string == "patient")
            }
        }
    }

    @Test func idleConnectionsAreClosedAndClientsReconnect() async throws {
        var configuration = RPCServer.Configuration()
        configuration.idleTimeout = .milliseconds(200)
        try await withServer(configuration) { _, port in
            let socket = try await RawSocket(port: port)
            // Under load the server may already have closed the connection: same outcome.
            try? await socket.send(Frames.clientStart)
            let closed = try await socket.waitUntilClosed()
            #expect(closed)
            #expect(socket.frameTypes.contains(Frames.typeGoAway), "expected GOAWAY, got frames \(socket.frameTypes)")
            await socket.close()
        }
        // A client whose connection the server closed for idleness reconnects by itself. (A
        // longer timeout here: a call racing the server's final GOAWAY is refused by HTTP/2, and
        // a loaded machine must not make the first call lose that race.)
        configuration.idleTimeout = .milliseconds(500)
        try await withServer(configuration) { _, port in
            try await withClient(port: port) { client in
                let first: RawMessage = try await client.unary(Echo.get, RawMessage("one"))
                #expect(first.string == "one")
                try await Task.sleep(for: .milliseconds(2500))  // the server closes the idle connection
                let second: RawMessage = try await client.unary(Echo.get, RawMessage("two"))
                #expect(second.string == "two")
            }
        }
    }
}
