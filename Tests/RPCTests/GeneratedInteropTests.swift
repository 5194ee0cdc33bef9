import FaultlineProto
import FaultlineRPC
import Foundation
import Testing

/// `faultline.testing.v1.Echo` implemented over the generated types: the request itself says
/// how to behave (`fail_with_code` with `text` as the status message, `delay_ms`, `count` for
/// Expand), so a client generated elsewhere can provoke every path. `x-echo-*` metadata comes
/// back as in `EchoService`.
struct TypedEchoService: TestingV1.EchoService {
    let probe: Probe

    init(probe: Probe = Probe()) { self.probe = probe }

    func get(_ request: TestingV1.EchoRequest, context: ServerContext) async throws -> TestingV1.EchoResponse {
        try await observed {
            try await prologue(request, context)
            return TestingV1.EchoResponse(payload: request.payload, text: request.text)
        }
    }

    func expand(_ request: TestingV1.EchoRequest, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
        try await observed {
            try await prologue(request, context)
            for index in 0..<request.count {
                try await responses.write(TestingV1.EchoResponse(payload: request.payload, text: request.text, index: index))
            }
        }
    }

    func collect(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, context: ServerContext) async throws -> TestingV1.EchoResponse {
        try await observed {
            var all = TestingV1.EchoResponse()
            for try await request in requests {
                if all.index == 0 { try await prologue(request, context) }
                all.payload += request.payload
                all.text += request.text
                all.index += 1
            }
            return all
        }
    }

    func update(
        _ requests: RPCAsyncSequence<TestingV1.EchoRequest>, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext
    ) async throws {
        try await observed {
            var index: Int32 = 0
            for try await request in requests {
                if index == 0 { try await prologue(request, context) }
                try await responses.write(TestingV1.EchoResponse(payload: request.payload, text: request.text, index: index))
                index += 1
            }
        }
    }

    /// Counts a handler stopped by cancellation: its task cancelled (deadline), or its request
    /// stream failing CANCELLED because the client reset the stream.
    private func observed<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            if Task.isCancelled || (error as? RPCError)?.code == .cancelled { probe.cancelled() }
            throw error
        }
    }

    private func prologue(_ request: TestingV1.EchoRequest, _ context: ServerContext) async throws {
        probe.started(context.deadline)
        context.echoTestMetadata()
        if request.delayMs > 0 { try await Task.sleep(for: .milliseconds(Int(request.delayMs))) }
        if request.failWithCode != 0 {
            throw RPCError(RPCError.Code(rawValue: Int(request.failWithCode)) ?? .unknown, request.text)
        }
        probe.finished()
    }
}

/// The raw-bytes control calls of the peers in `peers/stub_*.py` (not part of the contract).
enum PeerControl {
    static let stats = MethodDescriptor(service: "faultline.testing.v1.Control", method: "Stats")
    /// `service=SERVING|NOT_SERVING`, or `shutdown`.
    static let setHealth = MethodDescriptor(service: "faultline.testing.v1.Control", method: "SetHealth")

    static func stats(_ client: RPCClient) async throws -> [String: Any] {
        let raw: RawMessage = try await client.unary(stats, RawMessage([]))
        return try JSONSerialization.jsonObject(with: Data(raw.bytes)) as? [String: Any] ?? [:]
    }

    static func setHealth(_ client: RPCClient, _ command: String) async throws {
        let _: RawMessage = try await client.unary(setHealth, RawMessage(command))
    }
}

/// Runs `body` with a client of a grpcio server built from stubs compiled at test time.
func withStubPeer<T: Sendable>(
    configuration: RPCClient.Configuration = .init(),
    _ body: @Sendable (RPCClient) async throws -> T
) async throws -> T {
    let peer = try await PythonPeer.Server("stub_server.py")
    do {
        let result = try await withClient(port: peer.port, configuration: configuration, body)
        await peer.stop()
        return result
    } catch {
        await peer.stop()
        throw error
    }
}

/// Interop where both sides use code generated from `protos/faultline/testing/v1/echo.proto`:
/// the Swift contract on one side, grpcio stubs compiled by grpcio-tools at test time on the
/// other, so field numbers, types and method paths are checked, not only the wire format.
@Suite("grpcio interop, generated stubs")
struct GeneratedInteropTests {
    static let unicodeMessage = "100% kaputt: Grüße, 日本語 🚀 %41 %%"

    // MARK: grpcio stub client → Faultline server

    @Test func stubUnaryWithMetadata() async throws {
        try await withServer(services: [TypedEchoService()]) { _, port in
            let out = try await PythonPeer.run("stub_client.py", ["\(port)", "unary"])
            #expect(out["code"] as? Int == 0)
            let response = out["response"] as? [String: Any]
            #expect(response?["payload"] as? String == "00ff10")
            #expect(response?["text"] as? String == "hello from a grpcio stub ✓")
            let initial = out["initial"] as? [String: [String]]
            #expect(initial?["x-echo-who"] == ["grpcio-stub"])
            #expect(initial?["x-echo-raw-bin"] == ["bin:00ff10"])
            let trailing = out["trailing"] as? [String: [String]]
            #expect(trailing?["x-trailer-echo-who"] == ["grpcio-stub"])
        }
    }

    @Test func stubStreamingKinds() async throws {
        try await withServer(services: [TypedEchoService()]) { _, port in
            let server = try await PythonPeer.run("stub_client.py", ["\(port)", "server_streaming"])
            let expanded = try #require(server["responses"] as? [[String: Any]])
            #expect(expanded.map { $0["index"] as? Int } == [0, 1, 2, 3])
            #expect(expanded.allSatisfy { $0["text"] as? String == "s" && $0["payload"] as? String == "01" })

            let client = try await PythonPeer.run("stub_client.py", ["\(port)", "client_streaming"])
            let collected = client["response"] as? [String: Any]
            #expect(collected?["payload"] as? String == "00010203")
            #expect(collected?["text"] as? String == "abc")
            #expect(collected?["index"] as? Int == 4)

            let bidi = try await PythonPeer.run("stub_client.py", ["\(port)", "bidi"])
            let updates = try #require(bidi["responses"] as? [[String: Any]])
            #expect(updates.map { $0["text"] as? String } == (0..<50).map { "m\($0)" })
            #expect(updates.map { $0["index"] as? Int } == Array(0..<50))
            #expect(updates.map { $0["payload"] as? String } == (0..<50).map { String(format: "%02x", $0) })
        }
    }

    @Test func stubDeadline() async throws {
        let probe = Probe()
        try await withServer(services: [TypedEchoService(probe: probe)]) { _, port in
            let out = try await PythonPeer.run("stub_client.py", ["\(port)", "deadline"])
            #expect(out["code"] as? Int == RPCError.Code.deadlineExceeded.rawValue)
            // The server took grpcio's grpc-timeout and cancelled the handler when it expired
            // (waited for: on a loaded machine the handler may still be starting when grpcio gives up).
            #expect(try await probe.wait { $0.cancelledCount == 1 })
            let deadline = try #require(probe.lastDeadline ?? nil)
            #expect(deadline < ContinuousClock.now + .seconds(5))
        }
    }

    @Test func stubCancellation() async throws {
        let probe = Probe()
        try await withServer(services: [TypedEchoService(probe: probe)]) { _, port in
            let out = try await PythonPeer.run("stub_client.py", ["\(port)", "cancel"])
            #expect(out["first"] as? String == "first")
            #expect(out["cancelled"] as? Bool == true)
            #expect(out["code"] as? Int == RPCError.Code.cancelled.rawValue)
            #expect(out["after"] as? String == "after")
            #expect(try await probe.wait { $0.cancelledCount == 1 })
        }
    }

    @Test func stubLargeMessages() async throws {
        try await withServer(services: [TypedEchoService()]) { _, port in
            let out = try await PythonPeer.run("stub_client.py", ["\(port)", "big"])
            #expect(out["length"] as? Int == 3 * 1024 * 1024)
            #expect(out["same"] as? Bool == true)
            #expect(out["text"] as? String == "big")
            let over = out["over"] as? [String: Any]
            #expect(over?["code"] as? Int == RPCError.Code.resourceExhausted.rawValue)
            #expect(out["after"] as? String == "still fine")
        }
    }

    @Test func stubErrorStatuses() async throws {
        try await withServer(services: [TypedEchoService()]) { _, port in
            let out = try await PythonPeer.run("stub_client.py", ["\(port)", "errors", Self.unicodeMessage])
            let results = try #require(out["results"] as? [[String: Any]])
            #expect(results.map { $0["code"] as? Int } == [3, 5, 9, 13, 16])
            for result in results { #expect(result["details"] as? String == Self.unicodeMessage) }
        }
    }

    // MARK: Faultline generated client → grpcio stub server

    @Test func faultlineUnaryWithMetadata() async throws {
        try await withStubPeer { client in
            var metadata: Metadata = ["x-echo-who": "faultline"]
            metadata.addBinary([0, 255, 16], forKey: "x-echo-raw-bin")
            let request = TestingV1.EchoRequest(payload: [0, 255, 16], text: "hello grpcio ✓")
            let (head, reply) = try await client.call(TestingV1.EchoMethods.get, options: CallOptions(metadata: metadata)) { writer in
                try await writer.write(request)
            } responses: { response in
                (response.metadata, try TestingV1.EchoResponse(serializedBytes: try await response.messages.singleElement(of: TestingV1.EchoMethods.get)))
            }
            #expect(reply == TestingV1.EchoResponse(payload: [0, 255, 16], text: "hello grpcio ✓"))
            #expect(head[stringValue: "x-echo-who"] == "faultline")
            #expect(head["x-echo-raw-bin"] == [.binary([0, 255, 16])])

            // Trailing metadata arrives with a failed call's status.
            let echo = TestingV1.EchoClient(client)
            let error = await expectStatus(.notFound) {
                _ = try await echo.get(TestingV1.EchoRequest(text: "gone", failWithCode: 5), options: CallOptions(metadata: metadata))
            }
            #expect(error?.message == "gone")
            #expect(error?.metadata[stringValue: "x-trailer-echo-who"] == "faultline")
        }
    }

    @Test func faultlineStreamingKinds() async throws {
        try await withStubPeer { client in
            let echo = TestingV1.EchoClient(client)
            let expanded = try await echo.expand(TestingV1.EchoRequest(payload: [1], text: "e", count: 3)) { stream in
                try await stream.reduce(into: [TestingV1.EchoResponse]()) { $0.append($1) }
            }
            #expect(expanded == (0..<3).map { TestingV1.EchoResponse(payload: [1], text: "e", index: $0) })

            let collected = try await echo.collect { writer in
                for (index, text) in ["x", "y", "", "z"].enumerated() {
                    try await writer.write(TestingV1.EchoRequest(payload: [UInt8(index)], text: text))
                }
            }
            #expect(collected == TestingV1.EchoResponse(payload: [0, 1, 2, 3], text: "xyz", index: 4))

            let updated = try await echo.update { writer in
                for index in 0..<50 { try await writer.write(TestingV1.EchoRequest(payload: [UInt8(index)], text: "b\(index)")) }
            } responses: { stream in
                try await stream.reduce(into: [TestingV1.EchoResponse]()) { $0.append($1) }
            }
            #expect(updated == (0..<50).map { TestingV1.EchoResponse(payload: [UInt8($0)], text: "b\($0)", index: Int32($0)) })
        }
    }

    @Test func faultlineDeadlineAndCancellation() async throws {
        try await withStubPeer { client in
            let echo = TestingV1.EchoClient(client)
            // Propagated as grpc-timeout, enforced, and seen by the grpcio handler. The handler must
            // be running before the deadline passes (or grpcio never starts it, and never counts it
            // cancelled): the deadline leaves room for a loaded machine, and the handler's start is
            // awaited before the outcome.
            let before = try await PeerControl.stats(client)
            let slow = Task {
                _ = try await echo.get(TestingV1.EchoRequest(text: "slow", delayMs: 60000), options: CallOptions(timeout: .seconds(3)))
            }
            #expect(try await Self.waitForPeer(client) { ($0["started"] as? Int ?? 0) > (before["started"] as? Int ?? 0) })
            _ = await expectStatus(.deadlineExceeded) { try await slow.value }
            #expect(try await Self.waitForPeer(client) { ($0["cancelled"] as? Int ?? 0) > (before["cancelled"] as? Int ?? 0) })
            _ = try await echo.get(TestingV1.EchoRequest(text: "x"), options: CallOptions(timeout: .seconds(20)))
            let remaining = try #require(try await PeerControl.stats(client)["last_time_remaining"] as? Double)
            #expect(remaining > 1 && remaining <= 20)

            // Cancelling the calling task: the grpcio handler sees its call cancelled.
            let stats = try await PeerControl.stats(client)
            let started = stats["started"] as? Int ?? 0, cancelled = stats["cancelled"] as? Int ?? 0
            let call = Task { _ = try await echo.get(TestingV1.EchoRequest(text: "wait", delayMs: 60000)) }
            #expect(try await Self.waitForPeer(client) { ($0["started"] as? Int ?? 0) > started })
            call.cancel()
            #expect(await call.result.isFailure)
            #expect(try await Self.waitForPeer(client) { ($0["cancelled"] as? Int ?? 0) > cancelled })
            #expect(try await echo.get(TestingV1.EchoRequest(text: "after")).text == "after")
        }
    }

    @Test func faultlineLargeMessages() async throws {
        try await withStubPeer { client in
            let echo = TestingV1.EchoClient(client)
            let payload = (0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let reply = try await echo.get(TestingV1.EchoRequest(payload: payload, text: "big"), options: CallOptions(timeout: .seconds(120)))
            #expect(reply == TestingV1.EchoResponse(payload: payload, text: "big"))
        }
        // Past grpcio's 4 MiB receive limit (our client allows it, so grpcio is the one to refuse).
        var lenient = RPCClient.Configuration()
        lenient.maxMessageSize = 8 * 1024 * 1024
        try await withStubPeer(configuration: lenient) { client in
            let echo = TestingV1.EchoClient(client)
            _ = await expectStatus(.resourceExhausted) {
                _ = try await echo.get(TestingV1.EchoRequest(payload: [UInt8](repeating: 1, count: 5 * 1024 * 1024)))
            }
            let after = try await echo.get(TestingV1.EchoRequest(text: "still fine"))
            #expect(after.text == "still fine")
        }
    }

    @Test func faultlineErrorStatuses() async throws {
        try await withStubPeer { client in
            let echo = TestingV1.EchoClient(client)
            for code in [3, 5, 9, 13, 16] {
                let error = await expectStatus(try #require(RPCError.Code(rawValue: code))) {
                    _ = try await echo.get(TestingV1.EchoRequest(text: Self.unicodeMessage, failWithCode: Int32(code)))
                }
                #expect(error?.message == Self.unicodeMessage)
            }
        }
    }

    /// Polls the grpcio peer's counters until `condition` holds (bounded tries, no timing).
    static func waitForPeer(_ client: RPCClient, until condition: ([String: Any]) -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition(try await PeerControl.stats(client)) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

extension Result {
    var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}
