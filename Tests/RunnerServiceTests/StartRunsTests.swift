import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import ServiceKit
import Synchronization
import Testing
@testable import RunnerService

/// StartRuns against the real runner (real ExperimentService on Postgres, real sockets): each
/// request decided as StartRun decides it, answered by request id, on a stream the client keeps
/// open as long as it likes.
@Suite("RunnerService StartRuns stream", .serialized)
struct StartRunsTests {
    /// Bytes that are no StartRunRequest (field 1 as a varint of 10 bytes that never ends).
    struct Garbage: RPCMessage {
        init() {}
        init(serializedBytes: ByteBuffer) throws(RPCError) {}
        func serialize(into buffer: inout ByteBuffer) throws(RPCError) { buffer.writeBytes([0x0a, 0xff, 0xff, 0xff]) }
    }

    /// Sends each step's requests and reads as many answers before the next step, without
    /// half-closing in between; then half-closes and expects the stream to end. (The response side
    /// opens with the first answer, so the request side paces itself on a signal from it.)
    static func converse(_ platform: Platform, _ steps: [[RunnersV1.StartRunRequest]]) async throws -> [[RunnersV1.StartRunsResponse]] {
        let (stepsAnswered, stepAnswered) = AsyncStream.makeStream(of: Void.self)
        return try await platform.runner.startRuns(options: Platform.options, requests: { writer in
            var answered = stepsAnswered.makeAsyncIterator()
            for step in steps {
                try await writer.write(contentsOf: step)
                _ = await answered.next()
            }
        }, responses: { responses in
            var iterator = responses.makeAsyncIterator()
            var answers: [[RunnersV1.StartRunsResponse]] = []
            for step in steps {
                var got: [RunnersV1.StartRunsResponse] = []
                for _ in step { got.append(try #require(try await iterator.next())) }
                answers.append(got)
                stepAnswered.yield()
            }
            #expect(try await iterator.next() == nil)
            return answers
        })
    }

    static func code(_ answer: RunnersV1.StartRunsResponse) -> RPCError.Code? {
        if case .failure(let error) = answer.outcome { return error.code }
        return nil
    }

    @Test("each request as StartRun: repeats of a request_id give the same run, past capacity RESOURCE_EXHAUSTED, bad ones refused")
    func decidedAsStartRun() async throws {
        try await Platform.with(database: "runner_streams", configure: { $0.capacity = 2 }) { platform in
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(RunnerTests.sleep("3120"))]"))
            func request(_ key: String, experiment: String? = nil) -> RunnersV1.StartRunRequest {
                .init(experimentId: experiment ?? id, planRunId: key, requestId: key)
            }
            let answers = try await Self.converse(platform, [
                [request("r1")],
                [request("r1")],
                // At once: a repeat (no slot taken) and four new runs for the one slot left.
                [request("r1"), request("r2"), request("r3"), request("r4"), request("r5")],
                [request("r6", experiment: ""), request("r7", experiment: "missing"), .init(experimentId: id)],
            ])
            let first = try #require(try answers[0][0].outcome.get().run)
            #expect(answers[0][0].requestId == "r1")
            #expect(try answers[1][0].outcome.get().run?.executionId == first.executionId)

            let batch = Dictionary(uniqueKeysWithValues: answers[2].map { ($0.requestId, $0) })
            #expect(batch.keys.sorted() == ["r1", "r2", "r3", "r4", "r5"])
            #expect(try batch["r1"]?.outcome.get().run?.executionId == first.executionId)
            let fresh = ["r2", "r3", "r4", "r5"].compactMap { batch[$0] }
            let started = fresh.compactMap { try? $0.outcome.get().run }
            #expect(started.count == 1)
            #expect(fresh.compactMap(Self.code) == [RPCError.Code](repeating: .resourceExhausted, count: 3))
            // Unary StartRun gives the same code for the same state.
            await expectCode(.resourceExhausted) { _ = try await platform.start(id) { $0.requestId = "r8" } }

            let bad = Dictionary(uniqueKeysWithValues: answers[3].map { ($0.requestId, $0) })
            #expect(bad.keys.sorted() == ["", "r6", "r7"])
            #expect(bad[""].flatMap(Self.code) == .invalidArgument, "no request_id")
            #expect(bad["r6"].flatMap(Self.code) == .invalidArgument, "no experiment_id")
            // An unknown experiment, with the runner full: what StartRun says to the same request.
            var unary: RPCError.Code?
            do { _ = try await platform.start("missing") { $0.requestId = "r9" } } catch { unary = RPCError(from: error).code }
            #expect(unary != nil && bad["r7"].flatMap(Self.code) == unary)

            for run in [first] + started {
                _ = try await platform.runner.cancelRun(.init(executionId: run.executionId, skipRollbacks: true), options: Platform.options)
                #expect(try await platform.waitUntilTerminal(run.executionId).state == .interrupted)
            }
        }
    }

    @Test("a malformed message ends the stream INVALID_ARGUMENT after the requests before it are answered; no organisation is refused")
    func malformedAndUnauthenticated() async throws {
        try await Platform.with(database: "runner_streams_bad") { platform in
            let answered = Mutex<[RunnersV1.StartRunsResponse]>([])
            await expectCode(.invalidArgument) {
                try await platform.runner.caller.call(RunnersV1.RunnerMethods.startRuns, options: Platform.options, requests: { writer in
                    try await writer.write(RunnersV1.StartRunRequest(experimentId: "", requestId: "before"))
                    try await writer.write(Garbage())
                    try await writer.write(RunnersV1.StartRunRequest(experimentId: "", requestId: "after"))
                }, responses: { response in
                    for try await bytes in response.messages {
                        let answer = try RunnersV1.StartRunsResponse(serializedBytes: bytes)
                        answered.withLock { $0.append(answer) }
                    }
                })
            }
            #expect(answered.withLock { $0.map(\.requestId) } == ["before"])

            await expectCode(.unauthenticated) {
                try await platform.runner.startRuns(options: CallOptions(timeout: .seconds(30)), requests: { writer in
                    try await writer.write(.init(experimentId: "x", requestId: "k"))
                }, responses: { responses in
                    for try await _ in responses {}
                })
            }
        }
    }

    @Test("a client that never half-closes gets its answers; abandoning the stream leaves the runner serving")
    func neverHalfCloses() async throws {
        try await Platform.with(database: "runner_streams_open") { platform in
            let (answered, answer) = AsyncStream.makeStream(of: String.self)
            let abandoned = Task {
                try await platform.runner.startRuns(options: Platform.options, requests: { writer in
                    try await writer.write(.init(experimentId: "", requestId: "open"))
                    // Never half-closes.
                    try await Task.sleep(for: .seconds(3600))
                }, responses: { responses in
                    for try await response in responses { answer.yield(response.requestId) }
                })
            }
            var answers = answered.makeAsyncIterator()
            #expect(await answers.next() == "open")
            abandoned.cancel()
            _ = await abandoned.result
            // The runner still serves streams and single calls.
            let later = try await Self.converse(platform, [[.init(experimentId: "", requestId: "later")]])
            #expect(later[0].map(\.requestId) == ["later"])
            #expect(Self.code(later[0][0]) == .invalidArgument)
            #expect(try await platform.runner.listRuns(.init(), options: Platform.options).runs.isEmpty)
        }
    }
}

private func expectCode(_ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
    } catch {
        #expect(RPCError(from: error).code == code, sourceLocation: sourceLocation)
    }
}
