import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Synchronization
import Testing
@testable import RunnerService

/// What the runner sends ExperimentService when a run reports what Postgres cannot store (NUL),
/// and what it does with the service's final answers: recorded, nothing else lost, no endless retry.
@Suite("RunnerService delivery: NUL and final answers", .serialized)
struct DeliveryTests {
    /// A process probe printing a NUL byte (`printf 'a\0b'`), and one printing the text `x\u0000`.
    static let nulProbe = #"{"type": "probe", "name": "nul", "provider": {"type": "process", "path": "printf", "arguments": ["a\\0b"]}}"#
    static let textProbe = #"{"type": "probe", "name": "text", "provider": {"type": "process", "path": "printf", "arguments": ["%s", "x\\u0000"]}}"#

    @Test("a run whose probe prints NUL ends completed, its journal and events stored with U+FFFD for the NUL")
    func nulOutput() async throws {
        try await Platform.with(database: "runner_nul") { platform in
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(Self.nulProbe), \(Self.textProbe)]"))
            let run = try await platform.start(id)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")

            let text = try await platform.experiments.getExecutionJournal(.init(executionId: run.executionId), options: Platform.options).journalJson
            let journal = try await platform.journal(run.executionId)
            let outputs = try #require(journal["run"] as? [[String: Any]]).map { ($0["output"] as? [String: Any])?["stdout"] as? String }
            #expect(outputs == ["a\u{FFFD}b", #"x\u0000"#])
            // The escaped backslash went through as chaos wrote it.
            #expect(text.contains(#""x\\u0000""#))

            let faultline = try #require(journal["faultline"] as? [String: Any])
            let lastSeq = try #require(faultline["last_seq"] as? Int)
            let events = try await platform.events(run.executionId)
            #expect(events.map(\.sequence) == Array(1...Int64(lastSeq)))
            let after = try #require(events.first { $0.type == "activity-after" && $0.activityName == "nul" })
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(after.payloadJson.utf8)) as? [String: Any])
            #expect((payload["output"] as? [String: Any])?["stdout"] as? String == "a\u{FFFD}b")

            let notices = platform.logs.all.filter { $0.contains("replaced \\u0000") }
            #expect(notices.count == 1, "\(notices)")
            #expect(notices.first?.contains("journal=1") == true, "\(notices)")
            #expect(notices.first?.contains("events=0") == false, "\(notices)")
        }
    }

    @Test("events the service refuses for good are dropped alone; the run and every other event are recorded")
    func refusedEvents() async throws {
        // ExperimentService refuses an activity_name over 1000 characters (INVALID_ARGUMENT).
        let name = String(repeating: "n", count: 1100)
        let long = #"{"type": "action", "name": "\#(name)", "provider": {"type": "python", "module": "os", "func": "getcwd"}}"#
        try await Platform.with(database: "runner_refused_events") { platform in
            let method = "[\(RunnerTests.getcwd), \(long), \(RunnerTests.getcwd)]"
            let id = try await platform.createExperiment(RunnerTests.experiment(method: method))
            let run = try await platform.start(id)
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")
            let faultline = try #require(try await platform.journal(run.executionId)["faultline"] as? [String: Any])
            let lastSeq = try #require(faultline["last_seq"] as? Int)
            let stored = Set(try await platform.events(run.executionId).map(\.sequence))
            let missing = Set(1...Int64(lastSeq)).subtracting(stored)
            #expect(!missing.isEmpty)
            let dropped = platform.logs.all.filter { $0.contains("refused events; dropped") }
            // Each refused event was found and dropped alone, with the service's status.
            #expect(dropped.count == missing.count, "\(dropped)")
            #expect(dropped.allSatisfy { $0.contains("count=1") && $0.contains("grpc.status=INVALID_ARGUMENT") }, "\(dropped)")
            #expect(Set(dropped.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("seq=") }.map { Int64($0.split(separator: ".").last!)! } }) == missing)
            #expect(try await platform.events(run.executionId).last?.type == "experiment-after")
        }
    }

    @Test("a restarted runner replays a spool holding \\u0000: stored with U+FFFD, an escaped backslash as it was")
    func replayedSpool() async throws {
        try await Platform.with(database: "runner_nul_spool") { platform in
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(RunnerTests.getcwd)]"))
            let created = try await platform.experiments.createExecution(.init(experimentId: id), options: Platform.options)
            let executionID = try #require(created.execution?.id)
            _ = try await platform.experiments.startExecution(.init(executionId: executionID, runnerId: "runner-test"), options: Platform.options)
            let state = try StateDirectory(platform.stateDirectory)
            try state.save(RunRecord(executionID: executionID, organization: Platform.org.rawValue, pid: 0,
                                     runDirectory: platform.stateDirectory.appendingPathComponent("r/gone").path))
            let spool = [ControlEvent(seq: 1, type: "loading-before", tsUs: 1, payloadJSON: #"{"out":"a\u0000b"}"#, activityName: ""),
                         ControlEvent(seq: 2, type: "loading-after", tsUs: 2, payloadJSON: #"{"path":"C:\\u0000"}"#, activityName: "")]
            try spool.map { try JSONEncoder().encode($0) + Data("\n".utf8) }.reduce(Data(), +).write(to: state.spoolFile(executionID))

            await platform.runnerServer.recoverLeftoverRuns()
            #expect(try await platform.execution(executionID).state == .lost)
            let payloads = try await platform.events(executionID).map { event in
                try JSONSerialization.jsonObject(with: Data(event.payloadJson.utf8)) as? [String: String]
            }
            #expect(payloads == [["out": "a\u{FFFD}b"], ["path": #"C:\u0000"#]])
            #expect(platform.logs.all.contains { $0.contains("replaced \\u0000") && $0.contains("events=1") })
        }
    }

    static func journal(_ stdout: String) -> String {
        #"{"status": "completed", "deviated": false, "run": [{"status": "succeeded", "output": {"stdout": "\#(stdout)"}}]}"#
    }

    @Test("CompleteExecution: the journal goes with NUL escapes replaced, every other byte as it was, the file untouched")
    func journalSent() async throws {
        let raw = Self.journal(#"a\u0000b \\u0000 \\\u0000 é\u00001"#)
        try await StandIn.with(answers: [nil]) { standIn in
            let (handle, directory) = (standIn.handle, standIn.runDirectory)
            try Data(raw.utf8).write(to: directory.appendingPathComponent("journal.json"))
            #expect(await handle.complete(runDirectory: directory, exit: .exited(0), reason: "", endedAt: 1))
            let sent = standIn.received.map(\.journalJson)
            #expect(sent.map { Array($0.utf8) } == [Array(Self.journal(#"a\ufffdb \\u0000 \\\ufffd é\ufffd1"#).utf8)])
            #expect(try Data(contentsOf: directory.appendingPathComponent("journal.json")) == Data(raw.utf8))
        }
    }

    @Test("CompleteExecution refused for its journal (invalid, too large): sent once more without it, then never again", arguments: [
        ([RPCError(.invalidArgument, "journal_json is bad"), RPCError(.invalidArgument, "still bad")], 2),
        (Array(repeating: RPCError(.resourceExhausted, "journal_json is bad"), count: Delivery.exhaustedAttempts) + [nil], 1),
    ])
    func journalRefused(_ answers: [RPCError?], refusals expected: Int) async throws {
        try await StandIn.with(answers: answers) { standIn in
            let (handle, directory) = (standIn.handle, standIn.runDirectory)
            try Data(Self.journal("x").utf8).write(to: directory.appendingPathComponent("journal.json"))
            #expect(await handle.complete(runDirectory: directory, exit: .exited(0), reason: "", endedAt: 1))
            let received = standIn.received
            #expect(received.map(\.journalJson.isEmpty) == Array(repeating: false, count: answers.count - 1) + [true])
            #expect(received.last?.reason.contains("the service refused the journal: journal_json is bad") == true)
            let refusals = standIn.logs.all.filter { $0.contains("refused CompleteExecution") }
            #expect(refusals.count == expected)
            #expect(refusals.first?.contains("grpc.status=\(answers[0]!.code)") == true)
            #expect(refusals.first?.contains("error=journal_json is bad") == true)
        }
    }

    @Test("CompleteExecution: a final answer is not retried, a retryable one is", arguments: [
        ([RPCError(.notFound, "no such execution")], 1),
        ([RPCError(.failedPrecondition, "already ended")], 1),
        ([RPCError(.permissionDenied, "not yours")], 1),
        ([RPCError(.unavailable, "down"), RPCError(.deadlineExceeded, "slow"), RPCError(.resourceExhausted, "busy"), nil], 4),
        ([RPCError(.aborted, "conflict"), RPCError(.internalError, "oops"), nil], 3),
        // Exhausted that many times in a row: a size limit, not a peer asking to slow down.
        (Array(repeating: RPCError(.resourceExhausted, "too large"), count: Delivery.exhaustedAttempts + 2), Delivery.exhaustedAttempts),
    ])
    func completionRetries(_ answers: [RPCError?], calls: Int) async throws {
        try await StandIn.with(answers: answers) { standIn in
            let (handle, directory) = (standIn.handle, standIn.runDirectory)
            #expect(await handle.complete(runDirectory: directory, exit: .exited(1), reason: "", endedAt: 1))
            #expect(standIn.received.count == calls)
            #expect(standIn.logs.all.filter { $0.contains("not delivered yet; retrying") }.count == calls - 1)
        }
    }

    @Test("a restarted runner forgets a leftover run the service refuses to end, and retries one it cannot reach", arguments: [
        ([RPCError(.notFound, "no such execution")], 1, "refused to end a leftover run"),
        ([RPCError(.unavailable, "down"), nil], 2, "leftover run ended as lost"),
    ])
    func leftoverRefused(_ answers: [RPCError?], calls: Int, logged: String) async throws {
        try await StandIn.with(answers: answers) { standIn in
            let state = try StateDirectory(standIn.stateDirectory)
            try state.save(RunRecord(executionID: "exe-leftover", organization: Platform.org.rawValue, pid: 0,
                                     runDirectory: standIn.stateDirectory.appendingPathComponent("r/gone").path))
            let server = try RunnerServer(configuration: RunnerConfiguration(runnerID: "runner-test", venv: Env.venv, stateDirectory: standIn.stateDirectory),
                                          experiments: standIn.client, secrets: nil, logger: standIn.logs.logger("runner"))
            await server.recoverLeftoverRuns()
            #expect(standIn.received.count == calls)
            #expect(state.records().isEmpty)
            #expect(standIn.logs.all.contains { $0.contains(logged) }, "\(standIn.logs.all)")
        }
    }
}

/// ExperimentService's CompleteExecution alone, over a real socket, answering from a script
/// (nil: success) and keeping every request.
final class CompletionScript: RPCService, Sendable {
    private let answers: Mutex<[RPCError?]>
    private let requests = Mutex<[ExperimentsV1.CompleteExecutionRequest]>([])

    init(_ answers: [RPCError?]) {
        self.answers = Mutex(answers)
    }

    var received: [ExperimentsV1.CompleteExecutionRequest] { requests.withLock { $0 } }

    var methods: [RegisteredMethod] {
        [
            .unary(ExperimentsV1.ExperimentMethods.completeExecution) { [self] (request: ExperimentsV1.CompleteExecutionRequest, _) in
                requests.withLock { $0.append(request) }
                if let failure = answers.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw failure }
                var execution = ExperimentsV1.Execution()
                execution.id = request.executionId
                execution.state = .completed
                return ExperimentsV1.CompleteExecutionResponse(execution: execution)
            },
        ]
    }
}

/// A `CompletionScript` served, a client on it, and a run handle using that client.
struct StandIn: Sendable {
    let script: CompletionScript
    let client: ExperimentsV1.ExperimentClient
    let logs: LogCapture
    let handle: RunHandle
    let stateDirectory: URL
    /// An empty run directory for `handle.complete`.
    let runDirectory: URL

    var received: [ExperimentsV1.CompleteExecutionRequest] { script.received }

    static func with(answers: [RPCError?], _ body: (StandIn) async throws -> Void) async throws {
        let root = try Env.temporaryDirectory("dl")
        defer { try? FileManager.default.removeItem(at: root) }
        let script = CompletionScript(answers)
        let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), services: [script], logger: ExperimentEndpoint.quiet)
        let serving = Task { try await rpc.run() }
        var failure: (any Error)?
        do {
            let connection = RPCClient(host: "127.0.0.1", port: try await rpc.listeningPort, logger: ExperimentEndpoint.quiet)
            let client = ExperimentsV1.ExperimentClient(connection)
            let state = root.appendingPathComponent("state"), runDirectory = root.appendingPathComponent("run")
            try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
            var execution = ExperimentsV1.Execution()
            execution.id = "exe-standin"
            let logs = LogCapture()
            let handle = RunHandle(execution: execution, definitionJSON: "{}", request: .init(experimentId: "exp-standin"),
                                   organization: Platform.org,
                                   configuration: RunnerConfiguration(runnerID: "runner-test", venv: Env.venv, stateDirectory: state),
                                   stateDirectory: try StateDirectory(state), client: client, secrets: nil, logger: logs.logger("run"))
            do {
                try await body(StandIn(script: script, client: client, logs: logs, handle: handle, stateDirectory: state, runDirectory: runDirectory))
            } catch {
                failure = error
            }
            await connection.close()
        } catch {
            failure = error
        }
        serving.cancel()
        _ = await serving.result
        if let failure { throw failure }
    }
}
