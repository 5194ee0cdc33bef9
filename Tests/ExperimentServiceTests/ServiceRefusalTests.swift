import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Testing
@testable import ExperimentService

/// Over real sockets and a real Postgres: what a deleted experiment still answers, and JSON that
/// parses but that Postgres cannot store (U+0000) refused as INVALID_ARGUMENT by every RPC that
/// stores JSON, with nothing stored.
@Suite("ExperimentService over RPC: deleted experiments and unstorable JSON", .serialized)
struct ServiceRefusalTests {
    static let options = ServiceSocketTests.options()

    /// A RUNNING execution of a new minimal experiment, made over the wire.
    static func runningExecution(_ client: ExperimentsV1.ExperimentClient) async throws -> ExperimentsV1.Execution {
        let experiment = try #require(try await client.createExperiment(.init(source: .init(text: ServiceHarness.minimalExperiment)), options: options).experiment)
        let execution = try #require(try await client.createExecution(.init(experimentId: experiment.id), options: options).execution)
        return try #require(try await client.startExecution(.init(executionId: execution.id), options: options).execution)
    }

    @Test("a deleted experiment's revisions and score are NOT_FOUND unless include_deleted asks for them; its executions stay")
    func deletedExperiment() async throws {
        try await ServiceSocketTests.withClient(database: "svc_rpc_deleted") { client in
            let o = Self.options
            let source = ExperimentsV1.ExperimentSource(text: ServiceHarness.minimalExperiment)
            let id = try #require(try await client.createExperiment(.init(source: source), options: o).experiment?.id)
            _ = try await client.updateExperiment(.init(experimentId: id, source: source), options: o)
            let execution = try #require(try await client.createExecution(.init(experimentId: id), options: o).execution)
            _ = try await client.startExecution(.init(executionId: execution.id), options: o)
            _ = try await client.completeExecution(.init(executionId: execution.id, journalJson: ServiceExecutionTests.journal()), options: o)

            func revision(_ number: Int64, includeDeleted: Bool = false, org: String = "org-a") async throws -> Int64? {
                try await client.getExperimentRevision(.init(experimentId: id, revision: number, includeDeleted: includeDeleted),
                                                       options: ServiceSocketTests.options(org)).revision?.revision
            }
            func revisions(includeDeleted: Bool = false, org: String = "org-a") async throws -> [Int64] {
                try await client.listExperimentRevisions(.init(experimentId: id, includeDeleted: includeDeleted),
                                                         options: ServiceSocketTests.options(org)).revisions.map(\.revision)
            }
            func score(includeDeleted: Bool = false, org: String = "org-a") async throws -> Double? {
                try await client.getExperimentScore(.init(experimentId: id, includeDeleted: includeDeleted),
                                                    options: ServiceSocketTests.options(org)).score?.value
            }
            // Before the delete, include_deleted changes nothing.
            for includeDeleted in [false, true] {
                #expect(try await revision(0, includeDeleted: includeDeleted) == 2)
                #expect(try await revision(1, includeDeleted: includeDeleted) == 1)
                #expect(try await revisions(includeDeleted: includeDeleted) == [2, 1])
                #expect(try await score(includeDeleted: includeDeleted) == 1)
            }

            _ = try await client.deleteExperiment(.init(experimentId: id), options: o)
            for number: Int64 in [0, 1, 2] {
                await expectRPCError(.notFound, "revision \(number)") { try await revision(number) }
            }
            await expectRPCError(.notFound, "revisions") { try await revisions() }
            await expectRPCError(.notFound, "score") { try await score() }
            // Asked for explicitly, they are still there: the executions that ran them stay.
            #expect(try await revision(0, includeDeleted: true) == 2)
            #expect(try await revision(1, includeDeleted: true) == 1)
            #expect(try await revisions(includeDeleted: true) == [2, 1])
            #expect(try await score(includeDeleted: true) == 1)
            #expect(try await client.getExecution(.init(executionId: execution.id), options: o).execution?.experimentId == id)
            // include_deleted never reaches past the organisation, nor to a revision that never was.
            await expectRPCError(.notFound, "another organisation") { try await revision(1, includeDeleted: true, org: "org-b") }
            await expectRPCError(.notFound, "another organisation") { try await revisions(includeDeleted: true, org: "org-b") }
            await expectRPCError(.notFound, "another organisation") { try await score(includeDeleted: true, org: "org-b") }
            await expectRPCError(.notFound, "revision 3") { try await revision(3, includeDeleted: true) }
        }
    }

    @Test("U+0000 in a definition: create, update and validate report it at its path, and nothing is stored")
    func nulInDefinitions() async throws {
        try await ServiceSocketTests.withClient(database: "svc_rpc_nul_definitions") { client in
            let o = Self.options
            let cases: [(String, ExperimentsV1.SourceFormat, String)] = [
                (#"{"title": "a\u0000b", "description": "d", "method": []}"#, .json, "$.title"),
                (#"{"title": "t", "description": "d", "method": [{"type": "action", "name": "a1", "provider": {"type": "python", "module": "os", "func": "getenv", "arguments": {"key": "\u0000"}}}]}"#,
                 .json, "$.method[0].provider.arguments.key"),
                (#"{"title": "t", "description": "d", "method": [], "x\u0000y": 1}"#, .json, #"$['x\u0000y']"#),
                ("title: \"nul\\0here\"\ndescription: d\nmethod: []\n", .yaml, "$.title"),
            ]
            for (text, format, path) in cases {
                let source = ExperimentsV1.ExperimentSource(text: text, format: format)
                let validated = try await client.validateExperiment(.init(source: source), options: o)
                let first = validated.problems.first
                #expect(first?.code == "document.nul" && first?.path == path && first?.severity == .error, "\(text): \(validated.problems)")

                let refused = await expectRPCError(.invalidArgument, "create \(path)") {
                    try await client.createExperiment(.init(source: source), options: o)
                }
                guard case .binary(let bytes)? = refused?.metadata["faultline-validation-bin"].first else {
                    Issue.record("no validation report for \(text): \(String(describing: refused))")
                    continue
                }
                let report = try ExperimentsV1.ValidationReport(serializedBytes: bytes)
                #expect(report.problems.first?.code == "document.nul" && report.problems.first?.path == path, "\(report.problems)")
                #expect(report.problems.allSatisfy { !$0.message.utf8.contains(0) && !$0.path.utf8.contains(0) })
                #expect(refused?.message.contains(path) == true, "\(refused?.message ?? "")")
            }
            #expect(try await client.listExperiments(.init(includeDeleted: true), options: o).experiments.isEmpty)

            let kept = try #require(try await client.createExperiment(.init(source: .init(text: ServiceHarness.minimalExperiment)), options: o).experiment)
            for (text, format, path) in cases {
                await expectRPCError(.invalidArgument, "update \(path)") {
                    try await client.updateExperiment(.init(experimentId: kept.id, source: .init(text: text, format: format)), options: o)
                }
            }
            #expect(try await client.getExperiment(.init(experimentId: kept.id), options: o).experiment?.latestRevision == 1)
            // A backslash followed by "u0000" is text, not NUL: stored and exported as sent.
            let escaped = ServiceHarness.minimalExperiment.replacingFirst(#""title": "minimal""#, with: #""title": "C:\\u0000dir""#)
            let created = try await client.createExperiment(.init(source: .init(text: escaped)), options: o)
            #expect(created.experiment?.title == #"C:\u0000dir"#)
            #expect(created.revision?.definitionJson == escaped)
        }
    }

    @Test("U+0000 in a journal: CompleteExecution is INVALID_ARGUMENT naming journal_json (Postgres' 22P05), the run stays as it was")
    func nulInJournals() async throws {
        try await ServiceSocketTests.withClient(database: "svc_rpc_nul_journal") { client in
            let o = Self.options
            let execution = try await Self.runningExecution(client)
            let journal = ServiceExecutionTests.journal()
            let bad = [
                journal.replacingFirst(#""status": "completed""#, with: #""status": "completed", "output": "bin\u0000ary""#),
                journal.replacingFirst(#""status": "completed""#, with: #""status": "completed", "k\u0000": 1"#),
                journal.replacingFirst(#""status": "completed""#, with: #""status": "completed", "interruption": {"reason": "\u0000"}"#),
            ]
            for text in bad {
                let refused = await expectRPCError(.invalidArgument, text) {
                    try await client.completeExecution(.init(executionId: execution.id, journalJson: text), options: o)
                }
                #expect(refused?.message.contains("journal_json contains \\u0000") == true, "\(refused?.message ?? "")")
            }
            // Nothing of the refused completions was stored.
            #expect(try await client.getExecution(.init(executionId: execution.id), options: o).execution?.state == .running)
            #expect(try await client.getExecutionJournal(.init(executionId: execution.id), options: o).journalJson.isEmpty)

            // An escaped backslash before "u0000" is text: stored, and read back byte for byte.
            let escaped = journal.replacingFirst(#""status": "completed""#, with: #""status": "completed", "path": "C:\\u0000dir""#)
            let completed = try await client.completeExecution(.init(executionId: execution.id, journalJson: escaped), options: o)
            #expect(completed.execution?.state == .completed)
            #expect(try await client.getExecutionJournal(.init(executionId: execution.id), options: o).journalJson == escaped)
        }
    }

    @Test("U+0000 in an event payload: ReportEvents is INVALID_ARGUMENT naming the event, and stores nothing of its message")
    func nulInEventPayloads() async throws {
        try await ServiceSocketTests.withClient(database: "svc_rpc_nul_events") { client in
            let o = Self.options
            let execution = try await Self.runningExecution(client)
            func report(_ payload: String) async throws -> ExperimentsV1.ReportEventsResponse {
                var event = ServiceHarness.event(execution.id, 2)
                event.payloadJson = payload
                let batch = ExperimentsV1.ReportEventsRequest(events: [ServiceHarness.event(execution.id, 1), event])
                return try await client.reportEvents(options: o) { writer in try await writer.write(batch) }
            }
            for payload in [#"{"a": "\u0000"}"#, #"{"\u0000": 1}"#, #"{"a": ["x", "\\\u0000"]}"#] {
                let refused = await expectRPCError(.invalidArgument, payload) { try await report(payload) }
                #expect(refused?.message.contains("events[1].payload_json contains \\u0000") == true, "\(refused?.message ?? "")")
            }
            #expect(try await client.listExecutionEvents(.init(executionId: execution.id), options: o).events.isEmpty)

            let escaped = #"{"path": "C:\\u0000dir"}"#
            #expect(try await report(escaped).accepted == 2)
            let stored = try await client.listExecutionEvents(.init(executionId: execution.id, afterSequence: 1), options: o).events
            #expect(stored.map(\.payloadJson).first.flatMap { try? JSONValue.parse(jsonBytes: Array($0.utf8)) }?["path"]?.stringValue == #"C:\u0000dir"#)
        }
    }
}

extension String {
    /// The text with the first occurrence of `target` replaced (tests build journals from one template).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
