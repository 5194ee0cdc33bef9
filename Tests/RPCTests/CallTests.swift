@testable import FaultlineRPC
import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing

@Suite("Faultline client ↔ Faultline server")
struct CallTests {
    @Test func unary() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let response: RawMessage = try await client.unary(Echo.get, RawMessage("hello"))
                #expect(response.string == "hello")
                let empty: RawMessage = try await client.unary(Echo.get, RawMessage([]))
                #expect(empty.bytes.isEmpty)
            }
        }
    }

    @Test func serverStreaming() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let responses = try await client.serverStreaming(
                    Echo.expand, RawMessage("m"), options: CallOptions(metadata: ["x-count": "5"])
                ) { (stream: RPCAsyncSequence<RawMessage>) in
                    try await stream.reduce(into: [String]()) { $0.append($1.string) }
                }
                #expect(responses == ["m#0", "m#1", "m#2", "m#3", "m#4"])
                let none = try await client.serverStreaming(
                    Echo.expand, RawMessage("m"), options: CallOptions(metadata: ["x-count": "0"])
                ) { (stream: RPCAsyncSequence<RawMessage>) in try await stream.reduce(0) { n, _ in n + 1 } }
                #expect(none == 0)
            }
        }
    }

    @Test func clientStreaming() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let response: RawMessage = try await client.clientStreaming(Echo.collect) { writer in
                    for part in ["a", "b", "c"] { try await writer.write(RawMessage(part)) }
                }
                #expect(response.string == "abc")
            }
        }
    }

    @Test func bidirectional() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let echoed = try await client.bidirectional(Echo.update) { (writer: RPCWriter<RawMessage>) in
                    for index in 0..<100 { try await writer.write(RawMessage("message \(index)")) }
                } responses: { (stream: RPCAsyncSequence<RawMessage>) in
                    try await stream.reduce(into: [String]()) { $0.append($1.string) }
                }
                #expect(echoed == (0..<100).map { "message \($0)" })
            }
        }
    }

    @Test func bidirectionalPingPong() async throws {
        // Each request is written only after the previous response arrived: proves messages
        // flow both ways while the stream stays open.
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let (signals, signal) = AsyncStream.makeStream(of: Void.self)
                let count = try await client.bidirectional(Echo.update) { (writer: RPCWriter<RawMessage>) in
                    var iterator = signals.makeAsyncIterator()
                    for index in 0..<10 {
                        try await writer.write(RawMessage("ping \(index)"))
                        _ = await iterator.next()
                    }
                } responses: { (stream: RPCAsyncSequence<RawMessage>) in
                    var count = 0
                    for try await message in stream {
                        #expect(message.string == "ping \(count)")
                        count += 1
                        signal.yield()
                    }
                    return count
                }
                #expect(count == 10)
            }
        }
    }

    @Test func metadataBothWays() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                var metadata: Metadata = ["x-echo-name": "faultline"]
                metadata.addBinary([0, 1, 2, 255], forKey: "x-echo-blob-bin")
                let head = try await client.call(Echo.get, options: CallOptions(metadata: metadata)) { writer in
                    try await writer.write(RawMessage("x"))
                } responses: { response in
                    _ = try await response.messages.singleElement(of: Echo.get)
                    return response.metadata
                }
                #expect(head[stringValue: "x-echo-name"] == "faultline")
                #expect(head["x-echo-blob-bin"] == [.binary([0, 1, 2, 255])])

                // Trailing metadata reaches the client with a failure status.
                metadata.addString("13", forKey: "x-fail-code")
                let error = await expectStatus(.internalError) {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(metadata: metadata))
                }
                #expect(error?.metadata[stringValue: "x-trailer-echo-name"] == "faultline")
                #expect(error?.metadata["x-trailer-echo-blob-bin"] == [.binary([0, 1, 2, 255])])
            }
        }
    }

    @Test func errorStatusAndPercentEncodedMessage() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let message = "100% kaputt: Grüße, 日本語, emoji 🚀, newline\nend"
                let encoded = message.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let error = await expectStatus(.failedPrecondition) {
                    let _: RawMessage = try await client.unary(
                        Echo.get, RawMessage("x"),
                        options: CallOptions(metadata: ["x-fail-code": "9", "x-fail-message": .string(encoded)]))
                }
                #expect(error?.message == message)
                for code in [1, 2, 3, 5, 7, 8, 12, 14, 16] {
                    let error = await expectStatus(RPCError.Code(rawValue: code)!) {
                        try await client.serverStreaming(
                            Echo.expand, RawMessage("x"), options: CallOptions(metadata: ["x-fail-code": .string("\(code)")])
                        ) { (stream: RPCAsyncSequence<RawMessage>) in for try await _ in stream {} }
                    }
                    #expect(error?.message == "failed on request")
                }
            }
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                _ = await expectStatus(.unimplemented) {
                    let _: RawMessage = try await client.unary(MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Nope"), RawMessage("x"))
                }
            }
        }
    }

    @Test func serverEnforcesDeadline() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            try await withClient(port: port) { client in
                // The deadline runs from the call's start, so the connection is set up first: on a
                // loaded machine its set-up alone could outlast the deadline, and then the server
                // never sees the call. Collect runs its prologue (and the sleep) before reading any
                // request, so the handler starts once the request arrives.
                let _: RawMessage = try await client.unary(Echo.get, RawMessage("warm-up"))
                _ = await expectStatus(.deadlineExceeded) {
                    let _: RawMessage = try await client.clientStreaming(
                        Echo.collect, options: CallOptions(timeout: .seconds(1), metadata: ["x-delay-ms": "60000"])
                    ) { (writer: RPCWriter<RawMessage>) in try await writer.write(RawMessage("slow")) }
                }
                // The handler was cancelled when its deadline expired.
                let check1 = try await probe.wait { $0.cancelledCount == 1 && $0.started == 2 }
                #expect(check1, "started \(probe.started), cancelled \(probe.cancelledCount)")
            }
        }
    }

    @Test func clientPropagatesDeadlineFromTaskLocal() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            try await withClient(port: port) { client in
                let outer = ContinuousClock.now + .seconds(30)
                let _: RawMessage = try await RPCDeadline.$current.withValue(outer) {
                    // The tighter of the task-local deadline and the option wins: here the task-local one.
                    try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(timeout: .seconds(3600)))
                }
                let seen = try #require(probe.lastDeadline ?? nil)
                // grpc-timeout rounds up and the server starts its clock on arrival: allow slack,
                // but far less than the hour the option asked for.
                #expect(seen < outer + .seconds(5))
                #expect(seen > outer - .seconds(10))

                let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"))
                #expect(probe.lastDeadline! == nil)
                // An already expired deadline fails without a round trip.
                _ = await expectStatus(.deadlineExceeded) {
                    let _: RawMessage = try await RPCDeadline.$current.withValue(.now - .seconds(1)) {
                        try await client.unary(Echo.get, RawMessage("x"))
                    }
                }
            }
        }
    }

    @Test func cancellingTheCallerCancelsTheHandler() async throws {
        let probe = Probe()
        try await withServer(services: [EchoService(probe: probe)]) { _, port in
            try await withClient(port: port) { client in
                let call = Task {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(metadata: ["x-delay-ms": "60000"]))
                }
                let check2 = try await probe.wait { $0.started == 1 }
                #expect(check2)
                call.cancel()
                let result = await call.result
                #expect(throws: (any Error).self) { try result.get() }
                let check3 = try await probe.wait { $0.cancelledCount == 1 }
                #expect(check3)
                // The connection is still good.
                let response: RawMessage = try await client.unary(Echo.get, RawMessage("after"))
                #expect(response.string == "after")
            }
        }
    }

    @Test func largeMessagesAndTheLimit() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let big = RawMessage((0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                let echoed: RawMessage = try await client.unary(Echo.get, big)
                #expect(echoed == big)
                let streamed = try await client.bidirectional(Echo.update) { (writer: RPCWriter<RawMessage>) in
                    for _ in 0..<3 { try await writer.write(big) }
                } responses: { (stream: RPCAsyncSequence<RawMessage>) in
                    try await stream.reduce(0) { total, message in
                        #expect(message == big)
                        return total + 1
                    }
                }
                #expect(streamed == 3)
            }
            // A client that allows bigger messages than the server: the server refuses.
            var lenient = RPCClient.Configuration()
            lenient.maxMessageSize = 16 * 1024 * 1024
            try await withClient(port: port, configuration: lenient) { client in
                _ = await expectStatus(.resourceExhausted) {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage([UInt8](repeating: 7, count: 5 * 1024 * 1024)))
                }
                let ok: RawMessage = try await client.unary(Echo.get, RawMessage("still fine"))
                #expect(ok.string == "still fine")
            }
            // The client refuses to send over its own limit.
            try await withClient(port: port) { client in
                _ = await expectStatus(.resourceExhausted) {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage([UInt8](repeating: 7, count: 5 * 1024 * 1024)))
                }
            }
        }
    }

    @Test func responsesOverTheLimitFailTheCall() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maxMessageSize = 1024 * 1024
        try await withServer(configuration) { _, port in
            try await withClient(port: port) { client in
                // Each request fits; the concatenated response does not.
                let part = RawMessage([UInt8](repeating: 3, count: 900 * 1024))
                _ = await expectStatus(.resourceExhausted) {
                    let _: RawMessage = try await client.clientStreaming(Echo.collect) { writer in
                        try await writer.write(part)
                        try await writer.write(part)
                    }
                }
                let fits: RawMessage = try await client.clientStreaming(Echo.collect) { writer in try await writer.write(part) }
                #expect(fits == part)
            }
        }
    }

    @Test func maxConcurrentStreams() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maxConcurrentStreams = 4
        let probe = Probe()
        try await withServer(configuration, services: [EchoService(probe: probe)]) { _, port in
            try await withClient(port: port) { client in
                // 20 slow calls on one connection: never more than 4 run at once, all complete.
                let results = try await withThrowingTaskGroup(of: String.self) { group in
                    for index in 0..<20 {
                        group.addTask {
                            let response: RawMessage = try await client.unary(
                                Echo.get, RawMessage("call \(index)"), options: CallOptions(metadata: ["x-delay-ms": "50"]))
                            return response.string
                        }
                    }
                    var seen: [String] = []
                    for try await result in group { seen.append(result) }
                    return seen
                }
                #expect(Set(results) == Set((0..<20).map { "call \($0)" }))
            }
        }
        #expect(probe.started == 20)
    }

    @Test func concurrentStreamsLimitIsHonoured() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maxConcurrentStreams = 3
        let gauge = Gauge()
        let service = GaugeService(gauge: gauge)
        try await withServer(configuration, services: [service]) { _, port in
            try await withClient(port: port) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<15 {
                        group.addTask { let _: RawMessage = try await client.unary(GaugeService.method, RawMessage("x")) }
                    }
                    try await group.waitForAll()
                }
            }
        }
        #expect(gauge.peak <= 3)
        #expect(gauge.peak >= 1)
    }

    @Test func gracefulShutdownDrainsCallsInFlight() async throws {
        let probe = Probe()
        let server = RPCServer(configuration: .init(), services: [EchoService(probe: probe)], logger: testLogger)
        let group = ServiceGroup(services: [server], logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningPort
            try await withClient(port: port) { client in
                let slow = Task {
                    let response: RawMessage = try await client.unary(Echo.get, RawMessage("drained"), options: CallOptions(metadata: ["x-delay-ms": "300"]))
                    return response.string
                }
                let check4 = try await probe.wait { $0.started == 1 }
                #expect(check4)
                await group.triggerGracefulShutdown()
                // The call in flight completes normally…
                let check5 = try await slow.value == "drained"
                #expect(check5)
            }
            // …and the server stops by itself.
            try await tasks.next()
            // New calls now fail: nothing listens.
            try await withClient(port: port) { client in
                _ = await expectStatus(.unavailable) {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"))
                }
            }
        }
        #expect(probe.cancelledCount == 0)
    }

    @Test func clientReconnectsAfterServerRestart() async throws {
        var configuration = RPCClient.Configuration()
        configuration.backoff = .init(initial: .milliseconds(20), maximum: .milliseconds(100))
        let firstPort = try await withServer { _, port in port }
        let client = RPCClient(host: "127.0.0.1", port: firstPort, configuration: configuration, logger: testLogger)
        // Nothing listens on the port now: UNAVAILABLE.
        _ = await expectStatus(.unavailable) {
            let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"))
        }
        // A server comes up on that port; the client reconnects (after its backoff).
        try await withServer(.init(port: firstPort)) { _, _ in
            let response = try await retryUnavailable { () -> RawMessage in try await client.unary(Echo.get, RawMessage("one")) }
            #expect(response.string == "one")
        }
        // Restart it again while the client holds a (now dead) connection.
        try await withServer(.init(port: firstPort)) { _, _ in
            let response = try await retryUnavailable { () -> RawMessage in try await client.unary(Echo.get, RawMessage("two")) }
            #expect(response.string == "two")
        }
        await client.close()
    }

    @Test func refusedStreamsAreReplayedOnANewConnection() async throws {
        try await withServer { _, port in
            let front = try await RefusingFrontDoor(upstream: port)
            try await withClient(port: front.port) { client in
                // The first connection refuses the stream unprocessed (GOAWAY, last stream 0):
                // the client sends it again on a new connection, messages and all.
                let response: RawMessage = try await client.clientStreaming(Echo.collect) { writer in
                    for part in ["re", "play", "ed"] { try await writer.write(RawMessage(part)) }
                }
                #expect(response.string == "replayed")
                let again: RawMessage = try await client.unary(Echo.get, RawMessage("steady"))
                #expect(again.string == "steady")
            }
            #expect(front.refused.count == 1)
            await front.close()
        }
    }

    /// Many calls at once on a connection that allows two streams and refuses every one (some by
    /// RST_STREAM, the rest by GOAWAY): each is replayed, some twice, on other connections, while
    /// its caller is still writing. Several clients, so several connections race their set-up.
    @Test func manyConcurrentRefusedStreamsAreAllReplayed() async throws {
        try await withServer { _, port in
            try await withThrowingTaskGroup(of: Int.self) { clients in
                for clientIndex in 0..<6 {
                    clients.addTask {
                        let front = try await RefusingFrontDoor(upstream: port, resets: 3, maxConcurrentStreams: 2)
                        try await withClient(port: front.port) { client in
                            try await withThrowingTaskGroup(of: Void.self) { calls in
                                for index in 0..<24 {
                                    calls.addTask {
                                        // A bound, so a lost stream fails the test instead of hanging it.
                                        let options = CallOptions(timeout: .seconds(60))
                                        let tag = "c\(clientIndex)-\(index)"
                                        if index.isMultiple(of: 2) {
                                            let response: RawMessage = try await client.unary(Echo.get, RawMessage(tag), options: options)
                                            #expect(response.string == tag)
                                        } else {
                                            let response: RawMessage = try await client.clientStreaming(Echo.collect, options: options) { writer in
                                                for part in [tag, "/", "x"] {
                                                    try await writer.write(RawMessage(part))
                                                    await Task.yield()
                                                }
                                            }
                                            #expect(response.string == tag + "/x")
                                        }
                                    }
                                }
                                try await calls.waitForAll()
                            }
                        }
                        await front.close()
                        return front.refused.count
                    }
                }
                for try await refused in clients { #expect(refused >= 4) }
            }
        }
    }

    /// Three connections in a row refuse the stream twice in place (RST_STREAM REFUSED_STREAM)
    /// and then go away (GOAWAY): nine refusals, but only three moves, so the call still goes
    /// through on the fourth connection. (Counting refusals in place as moves failed it.)
    @Test func refusalsInPlaceDoNotUseUpTheMovesOfAReconnect() async throws {
        try await withServer { _, port in
            let front = try await RefusingFrontDoor(upstream: port, resets: 2, refusingConnections: 3)
            try await withClient(port: front.port) { client in
                let response: RawMessage = try await client.unary(Echo.get, RawMessage("through"), options: CallOptions(timeout: .seconds(60)))
                #expect(response.string == "through")
            }
            #expect(front.refused.count == 9)
            await front.close()
        }
    }

    /// A connection that refuses every stream in place and never goes away: the call fails
    /// UNAVAILABLE after its bounded retries instead of looping on it.
    @Test func aConnectionThatAlwaysRefusesFailsTheCallAfterBoundedRetries() async throws {
        try await withServer { _, port in
            let front = try await RefusingFrontDoor(upstream: port, resets: .max)
            try await withClient(port: front.port) { client in
                let error = await expectStatus(.unavailable) {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(timeout: .seconds(60)))
                }
                #expect(error?.message.contains("refused") == true, "\(String(describing: error))")
            }
            #expect(front.refused.count == 1 + H2StreamIO.maxRetriesInPlace)
            await front.close()
        }
    }

    /// A call's deadline holds while its stream waits to be opened: here for SETTINGS from a peer
    /// that never sends them, with a connect timeout far longer than the test's bound.
    @Test func theDeadlineHoldsWhileTheStreamWaitsForSettings() async throws {
        try await withSilentServer { port in
            var configuration = RPCClient.Configuration()
            configuration.connectTimeout = .seconds(3600)
            try await withClient(port: port, configuration: configuration) { client in
                let call = Task {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(timeout: .milliseconds(200)))
                }
                // A bound, not an assertion: without the deadline the call would wait an hour.
                let bound = Task { try await Task.sleep(for: .seconds(60)); call.cancel() }
                defer { bound.cancel() }
                _ = await expectStatus(.deadlineExceeded) { try await call.value }
            }
        }
    }

    /// …and while the call waits for its connection to be set up at all.
    @Test func theDeadlineHoldsWhileConnecting() async throws {
        try await withUnansweredListener { port in
            var configuration = RPCClient.Configuration()
            configuration.connectTimeout = .seconds(3600)
            try await withClient(port: port, configuration: configuration) { client in
                let call = Task {
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"), options: CallOptions(timeout: .milliseconds(200)))
                }
                let bound = Task { try await Task.sleep(for: .seconds(60)); call.cancel() }
                defer { bound.cancel() }
                let error = await expectStatus(.deadlineExceeded) { try await call.value }
                #expect(error?.message.contains("before") == true, "ended while connecting: \(String(describing: error))")
                // Cancelled while connecting (a connect is still pending), a call ends at once too.
                let (entered, enter) = AsyncStream.makeStream(of: Void.self)
                let cancelled = Task {
                    enter.yield()
                    let _: RawMessage = try await client.unary(Echo.get, RawMessage("y"))
                }
                var iterator = entered.makeAsyncIterator()
                _ = await iterator.next()
                cancelled.cancel()
                do {
                    _ = try await cancelled.value
                    Issue.record("a cancelled call succeeded")
                } catch let error as RPCError {
                    #expect(error.code == .cancelled, "\(error)")
                } catch {
                    #expect(error is CancellationError, "\(error)")  // cancelled before it began
                }
            }
        }
    }

    /// `close()` lets calls in flight finish for its grace period, then ends them UNAVAILABLE:
    /// a stream that never ends cannot hold a shutdown for ever.
    @Test func closeEndsCallsStillRunningAfterItsGracePeriod() async throws {
        try await withServer { _, port in
            var configuration = RPCClient.Configuration()
            configuration.closeGrace = .milliseconds(100)
            let client = RPCClient(host: "127.0.0.1", port: port, configuration: configuration, logger: testLogger)
            let (echoes, echoed) = AsyncStream.makeStream(of: Void.self)
            let call = Task {
                try await client.bidirectional(Echo.update) { (writer: RPCWriter<RawMessage>) in
                    try await writer.write(RawMessage("hold"))
                    try await Task.sleep(for: .seconds(3600))  // never half-closes
                } responses: { (stream: RPCAsyncSequence<RawMessage>) in
                    for try await _ in stream { echoed.yield() }
                }
            }
            var iterator = echoes.makeAsyncIterator()
            _ = await iterator.next()  // the stream is open both ways
            let closing = Task { await client.close() }
            let bound = Task {
                try await Task.sleep(for: .seconds(60))
                Issue.record("close() did not return")
                call.cancel()
            }
            await closing.value
            bound.cancel()
            _ = await expectStatus(.unavailable) { try await call.value }
            _ = await expectStatus(.unavailable) {
                let _: RawMessage = try await client.unary(Echo.get, RawMessage("after"))
            }
        }
    }

    /// A peer that accepts connections but never speaks HTTP/2: a call without a deadline still
    /// ends (the client gives each connection up after `connectTimeout` without SETTINGS).
    @Test func aServerThatNeverSendsSettingsFailsCallsUnavailable() async throws {
        try await withSilentServer { port in
            var configuration = RPCClient.Configuration()
            configuration.connectTimeout = .milliseconds(100)
            try await withClient(port: port, configuration: configuration) { client in
                let call = Task { let _: RawMessage = try await client.unary(Echo.get, RawMessage("x")) }
                // A bound, not an assertion: without the SETTINGS timeout the call would never end.
                let bound = Task { try await Task.sleep(for: .seconds(60)); call.cancel() }
                defer { bound.cancel() }
                _ = await expectStatus(.unavailable) { try await call.value }
            }
        }
    }

    @Test func clientWithoutServerFailsUnavailable() async throws {
        let port = try await withServer { _, port in port }
        try await withClient(port: port) { client in
            _ = await expectStatus(.unavailable) {
                let _: RawMessage = try await client.unary(Echo.get, RawMessage("x"))
            }
        }
    }

    @Test func manyConcurrentCallsOnOneConnection() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<500 {
                        group.addTask {
                            let response: RawMessage = try await client.unary(Echo.get, RawMessage("n\(index)"))
                            #expect(response.string == "n\(index)")
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}

/// Retries while the client is UNAVAILABLE (reconnecting/backing off), a bounded number of times.
func retryUnavailable<T>(_ body: () async throws -> T) async throws -> T {
    for _ in 0..<200 {
        do {
            return try await body()
        } catch let error as RPCError where error.code == .unavailable {
            try await Task.sleep(for: .milliseconds(25))
        }
    }
    return try await body()
}

/// Counts handlers running at once.
final class Gauge: Sendable {
    private let state = Mutex<(now: Int, peak: Int)>((0, 0))
    func enter() { state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
}

struct GaugeService: RPCService {
    static let method = MethodDescriptor(service: "faultline.testing.v1.Gauge", method: "Hold")
    let gauge: Gauge

    var methods: [RegisteredMethod] {
        let gauge = gauge
        return [
            .unary(Self.method) { (request: RawMessage, _) -> RawMessage in
                gauge.enter()
                try? await Task.sleep(for: .milliseconds(30))
                gauge.leave()
                return request
            }
        ]
    }
}
