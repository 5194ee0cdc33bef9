import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing
@testable import ExperimentService

/// A real ExperimentServer on a fresh database of its own, its handlers called directly with a
/// `ServerContext` as the RPC runtime would, its NOTIFY listener running.
struct ServiceHarness {
    let service: ExperimentRPCService
    let database: PostgresClient

    static func with(database name: String, configuration: ExperimentServiceConfiguration = .init(),
                     _ body: (ServiceHarness) async throws -> Void) async throws {
        try await TestPostgres.withClient(database: name, maximumConnections: 8) { client in
            try await ExperimentServer.migrations.apply(on: client)
            let server = ExperimentServer(database: client, logger: Logger(label: "test"), configuration: configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                do {
                    try await body(ServiceHarness(service: server.handlers, database: client))
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    static func context(_ org: String? = "org-a", method: String = "Test") -> ServerContext {
        var metadata = Metadata()
        if let org { metadata.addString(org, forKey: "x-faultline-org") }
        metadata.addString("tester", forKey: "x-faultline-actor")
        return ServerContext(method: MethodDescriptor(service: "faultline.experiments.v1.ExperimentService", method: method),
                             metadata: metadata, deadline: nil, peer: "test", logger: Logger(label: "test"))
    }

    // MARK: shortcuts

    static let minimalExperiment = """
        {"title": "minimal", "description": "d", "tags": ["t1"], "method": [
          {"type": "action", "name": "a1", "provider": {"type": "python", "module": "os", "func": "getcwd"}}]}
        """

    func createExperiment(_ text: String = Self.minimalExperiment, org: String = "org-a") async throws -> ExperimentsV1.Experiment {
        let response = try await service.createExperiment(
            .init(source: .init(text: text)), context: Self.context(org))
        return try #require(response.experiment)
    }

    func runningExecution(org: String = "org-a") async throws -> ExperimentsV1.Execution {
        let experiment = try await createExperiment(org: org)
        let created = try await service.createExecution(.init(experimentId: experiment.id), context: Self.context(org))
        let id = try #require(created.execution?.id)
        return try #require(try await service.startExecution(.init(executionId: id, runnerId: "r1"), context: Self.context(org)).execution)
    }

    func report(_ batches: [[ExperimentsV1.ExecutionEvent]], org: String = "org-a") async throws -> ExperimentsV1.ReportEventsResponse {
        let stream = AsyncThrowingStream<ExperimentsV1.ReportEventsRequest, any Error> { continuation in
            for batch in batches { continuation.yield(.init(events: batch)) }
            continuation.finish()
        }
        return try await service.reportEvents(RPCAsyncSequence(wrapping: stream), context: Self.context(org))
    }

    static func event(_ execution: String, _ sequence: Int64) -> ExperimentsV1.ExecutionEvent {
        ExperimentsV1.ExecutionEvent(executionId: execution, sequence: sequence, type: "log", occurredAtUs: sequence,
                                     payloadJson: #"{"n": \#(sequence), "text": "tab\there"}"#, activityName: "a1")
    }
}

/// Expects an `RPCError` with `code` from `body`.
@discardableResult
func expectRPCError<T>(_ code: RPCError.Code, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> T) async -> RPCError? {
    do {
        _ = try await body()
        Issue.record("\(what): expected \(code), the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(what): \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("\(what): expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Collects what a WatchExecution stream writes.
final class WatchCollector: Sendable {
    private let items = Mutex<[ExperimentsV1.WatchExecutionResponse.Item]>([])
    var all: [ExperimentsV1.WatchExecutionResponse.Item] { items.withLock { $0 } }
    var events: [Int64] {
        all.compactMap { if case .event(let e) = $0 { e.sequence } else { nil } }
    }
    func append(_ item: ExperimentsV1.WatchExecutionResponse.Item?) {
        if let item { items.withLock { $0.append(item) } }
    }
}

enum Fixtures {
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_SHARED"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent("fixtures/experiments")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures/experiments")
    }

    static func files(invalid: Bool) throws -> [URL] {
        let dir = invalid ? directory.appendingPathComponent("invalid") : directory
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { ["json", "yaml", "yml"].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}

/// Holds callers until opened (a client that stops reading).
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let proceed: Bool = state.withLock { s in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
    }

    func open() {
        for waiter in state.withLock({ s in s.open = true; defer { s.waiters = [] }; return s.waiters }) { waiter.resume() }
    }
}
