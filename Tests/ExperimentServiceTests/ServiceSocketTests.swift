import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import Testing
@testable import ExperimentService

/// The same service over real sockets: RPCServer on a free port, the generated client.
@Suite("ExperimentService over RPC", .serialized)
struct ServiceSocketTests {
    static func options(_ org: String? = "org-a") -> CallOptions {
        var options = CallOptions(timeout: .seconds(60))
        if let org { options.metadata.addString(org, forKey: "x-faultline-org") }
        return options
    }

    static func withClient(database: String, _ body: @Sendable (ExperimentsV1.ExperimentClient) async throws -> Void) async throws {
        try await ServiceHarness.with(database: database) { h in
            var logger = Logger(label: "rpc")
            logger.logLevel = .critical
            let server = RPCServer(configuration: .init(), services: [h.service], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                let port = try await server.listeningPort
                let client = RPCClient(host: "127.0.0.1", port: port, logger: logger)
                do {
                    try await body(ExperimentsV1.ExperimentClient(client))
                } catch {
                    await client.close()
                    group.cancelAll()
                    throw error
                }
                await client.close()
                group.cancelAll()
            }
        }
    }

    @Test("import, validation trailer, runs, streamed events and a live watcher over the wire")
    func overTheWire() async throws {
        try await Self.withClient(database: "svc_rpc") { client in
            let bad = await expectRPCError(.invalidArgument, "invalid experiment") {
                try await client.createExperiment(.init(source: .init(text: #"{"title": "no method"}"#)), options: Self.options())
            }
            guard case .binary(let bytes)? = bad?.metadata["faultline-validation-bin"].first else {
                Issue.record("the validation report did not cross the wire: \(String(describing: bad))")
                return
            }
            #expect(try !ExperimentsV1.ValidationReport(serializedBytes: bytes).problems.isEmpty)

            let experiment = try #require(try await client.createExperiment(
                .init(source: .init(text: ServiceHarness.minimalExperiment)), options: Self.options()).experiment)
            let execution = try #require(try await client.createExecution(.init(experimentId: experiment.id), options: Self.options()).execution)
            _ = try await client.startExecution(.init(executionId: execution.id), options: Self.options())

            try await withThrowingTaskGroup(of: [Int64].self) { group in
                group.addTask {
                    try await client.watchExecution(.init(executionId: execution.id), options: Self.options()) { responses in
                        var seen: [Int64] = []
                        for try await response in responses {
                            if case .event(let e)? = response.item { seen.append(e.sequence) }
                        }
                        return seen
                    }
                }
                let report = try await client.reportEvents(options: Self.options()) { writer in
                    for start in stride(from: 1, through: 2_000, by: 200) {
                        let batch = (Int64(start)..<Int64(start + 200)).reversed().map { ServiceHarness.event(execution.id, $0) }
                        try await writer.write(.init(events: batch + [batch[0]]))
                    }
                }
                #expect(report.accepted == 2_000 && report.duplicates == 10)
                #expect(report.progress.map(\.contiguousSequence) == [2_000])
                _ = try await client.completeExecution(.init(executionId: execution.id, exit: .init(exitCode: 1), reason: "test"), options: Self.options())
                for try await seen in group { #expect(seen == Array(1...2_000)) }
            }

            await expectRPCError(.notFound, "another organisation") {
                try await client.getExecution(.init(executionId: execution.id), options: Self.options("org-b"))
            }
            await expectRPCError(.unauthenticated, "no organisation") {
                try await client.getExecution(.init(executionId: execution.id), options: Self.options(nil))
            }
            await expectRPCError(.invalidArgument, "malformed id") {
                try await client.getExecution(.init(executionId: "x"), options: Self.options())
            }
            let stored = try #require(try await client.getExecution(.init(executionId: execution.id), options: Self.options()).execution)
            #expect(stored.state == .failed && stored.eventsReceived == 2_000 && stored.reason == "test")
        }
    }
}
