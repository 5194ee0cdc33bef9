import FaultlineRPC
import Foundation
import NIOCore
import Testing

/// Interop with a gRPC implementation nobody here wrote: Python grpcio, using its generic API
/// over raw bytes (so only the wire format is shared).
@Suite("grpcio interop")
struct InteropTests {
    // MARK: grpcio client → Faultline server

    @Test func grpcioUnaryWithMetadata() async throws {
        try await withServer { _, port in
            let out = try await PythonPeer.run("grpcio_client.py", ["\(port)", "unary"])
            #expect(out["response"] as? String == "hello from grpcio")
            #expect(out["code"] as? Int == 0)
            let initial = out["initial"] as? [String: [String]]
            #expect(initial?["x-echo-who"] == ["grpcio"])
            #expect(initial?["x-echo-raw-bin"] == ["bin:00ff10"])
            let trailing = out["trailing"] as? [String: [String]]
            #expect(trailing?["x-trailer-echo-who"] == ["grpcio"])
        }
    }

    @Test func grpcioStreamingKinds() async throws {
        try await withServer { _, port in
            let server = try await PythonPeer.run("grpcio_client.py", ["\(port)", "server_streaming"])
            #expect(server["responses"] as? [String] == ["s#0", "s#1", "s#2", "s#3"])
            let client = try await PythonPeer.run("grpcio_client.py", ["\(port)", "client_streaming"])
            #expect(client["response"] as? String == "abc")
            let bidi = try await PythonPeer.run("grpcio_client.py", ["\(port)", "bidi"])
            #expect(bidi["responses"] as? [String] == (0..<50).map { "m\($0)" })
        }
    }

    @Test func grpcioDeadline() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            let out = try await PythonPeer.run("grpcio_client.py", ["\(port)", "deadline"])
            #expect(out["code"] as? Int == RPCError.Code.deadlineExceeded.rawValue)
            // The server saw grpcio's grpc-timeout and stopped the handler.
            let stopped = try await probe.wait { $0.cancelledCount == 1 }
            #expect(stopped)
            let deadline = try #require(probe.lastDeadline ?? nil)
            #expect(deadline < ContinuousClock.now + .seconds(5))
        }
    }

    @Test func grpcioCancellation() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            let out = try await PythonPeer.run("grpcio_client.py", ["\(port)", "cancel", "0.5"])
            #expect(out["cancelled"] as? Bool == true)
            #expect(out["after"] as? String == "after")
            let cancelled = try await probe.wait { $0.cancelledCount == 1 }
            #expect(cancelled)
        }
    }

    @Test func grpcioLargeMessages() async throws {
        try await withServer { _, port in
            let out = try await PythonPeer.run("grpcio_client.py", ["\(port)", "big"])
            #expect(out["length"] as? Int == 3 * 1024 * 1024)
            #expect(out["same"] as? Bool == true)
            let over = out["over"] as? [String: Any]
            #expect(over?["code"] as? Int == RPCError.Code.resourceExhausted.rawValue)
            #expect(out["after"] as? String == "still fine")
        }
    }

    @Test func grpcioErrorStatuses() async throws {
        try await withServer { _, port in
            let out = try await PythonPeer.run("grpcio_client.py", ["\(port)", "errors"])
            let message = out["message"] as? String
            let results = try #require(out["results"] as? [[String: Any]])
            #expect(results.map { $0["code"] as? Int } == [3, 5, 9, 13, 16, 12])
            for result in results.prefix(5) { #expect(result["details"] as? String == message) }
        }
    }

    // MARK: Faultline client → grpcio server

    @Test func faultlineClientAgainstGrpcio() async throws {
        let peer = try await PythonPeer.Server()
        do {
            try await withClient(port: peer.port) { client in
                // unary with metadata both ways
                var metadata: Metadata = ["x-echo-who": "faultline"]
                metadata.addBinary([0, 255, 16], forKey: "x-echo-raw-bin")
                let (head, body) = try await client.call(Echo.get, options: CallOptions(metadata: metadata)) { writer in
                    try await writer.write(RawMessage("hello grpcio"))
                } responses: { response in
                    (response.metadata, try await response.messages.singleElement(of: Echo.get))
                }
                #expect(String(buffer: body) == "hello grpcio")
                #expect(head[stringValue: "x-echo-who"] == "faultline")
                #expect(head["x-echo-raw-bin"] == [.binary([0, 255, 16])])

                // server streaming
                let expanded = try await client.serverStreaming(
                    Echo.expand, RawMessage("e"), options: CallOptions(metadata: ["x-count": "3"])
                ) { (stream: RPCAsyncSequence<RawMessage>) in try await stream.reduce(into: [String]()) { $0.append($1.string) } }
                #expect(expanded == ["e#0", "e#1", "e#2"])

                // client streaming
                let collected: RawMessage = try await client.clientStreaming(Echo.collect) { writer in
                    for part in ["x", "y", "z"] { try await writer.write(RawMessage(part)) }
                }
                #expect(collected.string == "xyz")

                // bidirectional
                let echoed = try await client.bidirectional(Echo.update) { (writer: RPCWriter<RawMessage>) in
                    for index in 0..<50 { try await writer.write(RawMessage("b\(index)")) }
                } responses: { (stream: RPCAsyncSequence<RawMessage>) in
                    try await stream.reduce(into: [String]()) { $0.append($1.string) }
                }
                #expect(echoed == (0..<50).map { "b\($0)" })

                // 3 MiB both ways
                let big = RawMessage((0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
                let bigEcho: RawMessage = try await client.unary(Echo.get, big, options: CallOptions(timeout: .seconds(60)))
                #expect(bigEcho == big)
                // over grpcio's 4 MiB receive limit
                var lenient = RPCClient.Configuration()
                lenient.maxMessageSize = 8 * 1024 * 1024
                try await withClient(port: peer.port, configuration: lenient) { client in
                    _ = await expectStatus(.resourceExhausted) {
                        let _: RawMessage = try await client.unary(Echo.get, RawMessage([UInt8](repeating: 1, count: 5 * 1024 * 1024)))
                    }
                }

                // error statuses with percent-encoded messages
                let message = "100% kaputt: Grüße, 日本語 🚀"
                let encoded = message.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                for code in [3, 5, 9, 13, 16] {
                    let error = await expectStatus(RPCError.Code(rawValue: code)!) {
                        let _: RawMessage = try await client.unary(
                            Echo.get, RawMessage("x"),
                            options: CallOptions(metadata: ["x-fail-code": .string("\(code)"), "x-fail-message": .string(encoded)]))
                    }
                    #expect(error?.message == message)
                }
                _ = await expectStatus(.unimplemented) {
                    let _: RawMessage = try await client.unary(MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Missing"), RawMessage("x"))
                }

                // deadline: propagated as grpc-timeout, and enforced
                _ = await expectStatus(.deadlineExceeded) {
                    let _: RawMessage = try await client.unary(
                        Echo.get, RawMessage("x"), options: CallOptions(timeout: .milliseconds(300), metadata: ["x-delay-ms": "60000"]))
                }
                let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(timeout: .seconds(20)))
                let stats = try await Self.stats(client)
                let remaining = try #require(stats["last_time_remaining"] as? Double)
                #expect(remaining > 1 && remaining <= 20)

                // cancellation: the grpcio handler sees its call cancelled
                let before = try await Self.stats(client)["cancelled"] as? Int ?? 0
                let call = Task {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(metadata: ["x-delay-ms": "60000"]))
                }
                for _ in 0..<200 {
                    if (try await Self.stats(client)["started"] as? Int ?? 0) >= (stats["started"] as? Int ?? 0) + 1 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                call.cancel()
                _ = await call.result
                var cancelled = false
                for _ in 0..<300 where !cancelled {
                    cancelled = (try await Self.stats(client)["cancelled"] as? Int ?? 0) > before
                    if !cancelled { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(cancelled)
            }
        } catch {
            await peer.stop()
            throw error
        }
        await peer.stop()
    }

    private static func stats(_ client: RPCClient) async throws -> [String: Any] {
        let raw: RawMessage = try await client.unary(MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Stats"), RawMessage([]))
        return try JSONSerialization.jsonObject(with: Data(raw.bytes)) as? [String: Any] ?? [:]
    }
}
