import FaultlineRPC
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// A message that is just bytes: lets the runtime be tested without generated protobuf types.
struct RawMessage: RPCMessage, Equatable {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ string: String) { self.bytes = Array(string.utf8) }
    init(serializedBytes: ByteBuffer) throws(RPCError) { bytes = Array(serializedBytes.readableBytesView) }
    func serialize(into buffer: inout ByteBuffer) throws(RPCError) { buffer.writeBytes(bytes) }
    var string: String { String(decoding: bytes, as: UTF8.self) }
}

enum Echo {
    static let get = MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Get")
    static let expand = MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Expand")
    static let collect = MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Collect")
    static let update = MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Update")
}

/// What the test echo service observed, for assertions on the server side.
final class Probe: Sendable {
    private let state = Mutex<(started: Int, cancelled: Int, finished: Int, deadlines: [ContinuousClock.Instant?])>((0, 0, 0, []))
    func started(_ deadline: ContinuousClock.Instant?) { state.withLock { $0.started += 1; $0.deadlines.append(deadline) } }
    func cancelled() { state.withLock { $0.cancelled += 1 } }
    func finished() { state.withLock { $0.finished += 1 } }
    var started: Int { state.withLock { $0.started } }
    var cancelledCount: Int { state.withLock { $0.cancelled } }
    var finishedCount: Int { state.withLock { $0.finished } }
    var lastDeadline: ContinuousClock.Instant?? { state.withLock { $0.deadlines.last } }

    /// Polls until `condition` holds (bounded number of tries; never asserts on time).
    func wait(until condition: @Sendable (Probe) -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition(self) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition(self)
    }
}

/// The echo service every test uses, driven by request metadata so any client can provoke it:
/// `x-fail-code`/`x-fail-message` fail the call, `x-delay-ms` sleeps first (cancellably),
/// `x-count` sets how many responses Expand sends; `x-echo-*` metadata comes back in the
/// response headers and, prefixed `x-trailer-`, in the trailers.
struct EchoService: RPCService {
    let probe: Probe

    init(probe: Probe = Probe()) { self.probe = probe }

    var methods: [RegisteredMethod] {
        [
            .unary(Echo.get) { (request: RawMessage, context) -> RawMessage in
                try await prologue(context)
                return request
            },
            .serverStreaming(Echo.expand) { (request: RawMessage, writer: RPCWriter<RawMessage>, context) in
                try await prologue(context)
                let count = Int(context.metadata[stringValue: "x-count"] ?? "3") ?? 3
                for index in 0..<count { try await writer.write(RawMessage(request.bytes + Array("#\(index)".utf8))) }
            },
            .clientStreaming(Echo.collect) { (requests: RPCAsyncSequence<RawMessage>, context) -> RawMessage in
                try await prologue(context)
                var all: [UInt8] = []
                for try await request in requests { all += request.bytes }
                return RawMessage(all)
            },
            .bidirectional(Echo.update) { (requests: RPCAsyncSequence<RawMessage>, writer: RPCWriter<RawMessage>, context) in
                try await prologue(context)
                for try await request in requests { try await writer.write(request) }
            },
        ]
    }

    private func prologue(_ context: ServerContext) async throws {
        probe.started(context.deadline)
        context.echoTestMetadata()
        if let delay = context.metadata[stringValue: "x-delay-ms"].flatMap(Int.init) {
            do {
                try await Task.sleep(for: .milliseconds(delay))
            } catch {
                probe.cancelled()
                throw error
            }
        }
        if let code = context.metadata[stringValue: "x-fail-code"].flatMap(Int.init).flatMap(RPCError.Code.init(rawValue:)) {
            throw RPCError(code, context.metadata[stringValue: "x-fail-message"].map { TestText.decode($0) } ?? "failed on request")
        }
        probe.finished()
    }
}

extension ServerContext {
    /// Sends request metadata named `x-echo-*` back in the response headers and, prefixed
    /// `x-trailer-`, in the trailers: how the test services show what arrived.
    func echoTestMetadata() {
        var echoed = Metadata()
        var trailing = Metadata()
        for (key, value) in metadata where key.hasPrefix("x-echo-") {
            echoed.append(key, value)
            trailing.append("x-trailer-" + key.dropFirst(2), value)
        }
        addInitialMetadata(echoed)
        addTrailingMetadata(trailing)
    }
}

extension Metadata {
    mutating func append(_ key: some StringProtocol, _ value: Value) {
        switch value {
        case .string(let string): addString(string, forKey: String(key))
        case .binary(let bytes): addBinary(bytes, forKey: String(key))
        }
    }
}

/// Test-side helper: metadata values are ASCII, so non-ASCII failure messages travel
/// percent-encoded in `x-fail-message`.
enum TestText {
    static func decode(_ value: String) -> String { value.removingPercentEncoding ?? value }
}

var testLogger: Logger {
    var logger = Logger(label: "rpc-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["RPC_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}

/// Runs `body` against a server on a free port; the server stops when `body` returns.
func withServer<T: Sendable>(
    _ configuration: RPCServer.Configuration = .init(),
    services: [any RPCService] = [EchoService()],
    _ body: @Sendable (RPCServer, Int) async throws -> T
) async throws -> T {
    let server = RPCServer(configuration: configuration, services: services, logger: testLogger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        defer { group.cancelAll() }
        let port = try await server.listeningPort
        return try await body(server, port)
    }
}

/// Runs `body` with a client of `port`, closed afterwards.
func withClient<T: Sendable>(
    port: Int, configuration: RPCClient.Configuration = .init(),
    _ body: @Sendable (RPCClient) async throws -> T
) async throws -> T {
    let client = RPCClient(host: "127.0.0.1", port: port, configuration: configuration, logger: testLogger)
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

func expectStatus(_ code: RPCError.Code, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected \(code), the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
