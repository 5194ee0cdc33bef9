import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Testing
@testable import ExperimentService

@Suite("ExperimentService: experiments and revisions", .serialized)
struct ServiceExperimentTests {
    static func report(_ error: RPCError?) throws -> ExperimentsV1.ValidationReport {
        let error = try #require(error)
        guard case .binary(let bytes)? = error.metadata["faultline-validation-bin"].first else {
            Issue.record("no faultline-validation-bin trailer")
            return ExperimentsV1.ValidationReport()
        }
        return try ExperimentsV1.ValidationReport(serializedBytes: bytes)
    }

    @Test("every valid fixture round-trips as JSON and as YAML; invalid ones are rejected with the reason")
    func fixturesRoundTrip() async throws {
        try await ServiceHarness.with(database: "svc_fixtures") { h in
            let ctx = ServiceHarness.context()
            let valid = try Fixtures.files(invalid: false)
            #expect(valid.count >= 5)
            for file in valid {
                let text = try String(contentsOf: file, encoding: .utf8)
                let original = try JSONValue.parse(jsonBytes: Array(text.utf8))
                for source in [ExperimentsV1.ExperimentSource(text: text, fileName: file.lastPathComponent),
                               ExperimentsV1.ExperimentSource(text: original.yamlText(), format: .yaml)] {
                    let created = try await h.service.createExperiment(.init(source: source), context: ctx)
                    let id = try #require(created.experiment?.id)
                    let exported = try #require(try await h.service.getExperimentRevision(.init(experimentId: id), context: ctx).revision)
                    let back = try JSONValue.parse(jsonBytes: Array(exported.definitionJson.utf8))
                    #expect(back == original, "\(file.lastPathComponent) as \(source.format)")
                    #expect(exported.sourceFormat == (source.format == .yaml ? .yaml : .json))
                    #expect(exported.sha256.count == 64)
                    if source.format != .yaml { #expect(exported.definitionJson == text, "JSON export is the text as imported") }
                }
            }
            let invalid = try Fixtures.files(invalid: true)
            #expect(!invalid.isEmpty)
            for file in invalid {
                let text = try String(contentsOf: file, encoding: .utf8)
                let error = await expectRPCError(.invalidArgument, file.lastPathComponent) {
                    try await h.service.createExperiment(.init(source: .init(text: text, fileName: file.lastPathComponent)), context: ctx)
                }
                let problems = try Self.report(error).problems.filter { $0.severity == .error }
                #expect(!problems.isEmpty, "\(file.lastPathComponent) names its reason")
                #expect(problems.allSatisfy { $0.path.hasPrefix("$") && !$0.code.isEmpty && !$0.message.isEmpty })
            }
            let listed = try await h.service.listExperiments(.init(pageSize: 500), context: ctx)
            #expect(listed.experiments.count == valid.count * 2, "nothing invalid was stored")
        }
    }

    @Test("every problem is reported at once, with its JSON path, by Validate and by Create")
    func allProblemsAtOnce() async throws {
        try await ServiceHarness.with(database: "svc_validation") { h in
            let ctx = ServiceHarness.context()
            let text = """
                {"title": "x", "description": "d", "method": [
                  {"type": "action", "name": "a", "provider": {"type": "python", "module": "m", "func": "f"}},
                  {"type": "action", "name": "a", "provider": {"type": "python"}}],
                 "rollbacks": [{"ref": "nowhere"}]}
                """
            let validated = try await h.service.validateExperiment(.init(source: .init(text: text)), context: ctx)
            let errors = validated.problems.filter { $0.severity == .error }
            #expect(errors.count >= 3, "\(validated.problems)")
            #expect(Set(errors.map(\.path)).count >= 2)
            #expect(!validated.definitionJson.isEmpty)
            let error = await expectRPCError(.invalidArgument) {
                try await h.service.createExperiment(.init(source: .init(text: text)), context: ctx)
            }
            #expect(try Self.report(error).problems == validated.problems)

            let unparsable = try await h.service.validateExperiment(.init(source: .init(text: "{\"title\": ")), context: ctx)
            #expect(unparsable.problems.count == 1 && unparsable.problems[0].severity == .error)
            #expect(unparsable.definitionJson.isEmpty)
        }
    }

    @Test("updates add revisions; expected_revision guards; executions record their revision")
    func revisions() async throws {
        try await ServiceHarness.with(database: "svc_revisions") { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            let second = ServiceHarness.minimalExperiment.replacingOccurrences(of: "minimal", with: "second")
            let updated = try await h.service.updateExperiment(
                .init(experimentId: experiment.id, source: .init(text: second), expectedRevision: 1), context: ctx)
            #expect(updated.revision?.revision == 2)
            #expect(updated.experiment?.title == "second" && updated.experiment?.latestRevision == 2)
            await expectRPCError(.aborted, "stale expected_revision") {
                try await h.service.updateExperiment(.init(experimentId: experiment.id, source: .init(text: second), expectedRevision: 1), context: ctx)
            }
            let first = try await h.service.getExperimentRevision(.init(experimentId: experiment.id, revision: 1), context: ctx)
            #expect(first.revision?.title == "minimal" && first.revision?.definitionJson == ServiceHarness.minimalExperiment)
            let run = try await h.service.createExecution(.init(experimentId: experiment.id, experimentRevision: 1), context: ctx)
            #expect(run.execution?.experimentRevision == 1 && run.definitionJson == ServiceHarness.minimalExperiment)
            let latest = try await h.service.createExecution(.init(experimentId: experiment.id), context: ctx)
            #expect(latest.execution?.experimentRevision == 2)
            await expectRPCError(.notFound, "revision 3") {
                try await h.service.createExecution(.init(experimentId: experiment.id, experimentRevision: 3), context: ctx)
            }
            let page1 = try await h.service.listExperimentRevisions(.init(experimentId: experiment.id, pageSize: 1), context: ctx)
            #expect(page1.revisions.map(\.revision) == [2] && page1.revisions[0].definitionJson.isEmpty)
            let page2 = try await h.service.listExperimentRevisions(
                .init(experimentId: experiment.id, pageSize: 1, pageToken: page1.nextPageToken, includeDefinition: true), context: ctx)
            #expect(page2.revisions.map(\.revision) == [1] && !page2.revisions[0].definitionJson.isEmpty)
            #expect(page2.nextPageToken.isEmpty)
        }
    }

    @Test("list: title and tag search, cursor pages stable while rows are inserted, soft delete")
    func listing() async throws {
        try await ServiceHarness.with(database: "svc_listing") { h in
            let ctx = ServiceHarness.context()
            var created: [String] = []
            for i in 0..<25 {
                let text = """
                    {"title": "Payment \(i)", "description": "d", "tags": ["team-\(i % 3)", "all"], "method": []}
                    """
                created.append(try await h.createExperiment(text).id)
            }
            var seen: [String] = []
            var token = ""
            var round = 0
            repeat {
                let page = try await h.service.listExperiments(.init(pageSize: 10, pageToken: token, tags: ["all"]), context: ctx)
                seen += page.experiments.map(\.id)
                token = page.nextPageToken
                // Inserted between pages: newer than the cursor, so never in a later page.
                for j in 0..<3 {
                    _ = try await h.createExperiment("""
                        {"title": "Late \(round)-\(j)", "description": "d", "tags": ["all"], "method": []}
                        """)
                }
                round += 1
            } while !token.isEmpty
            #expect(seen == created.reversed(), "every row once, newest first, none of the late ones")

            let byTitle = try await h.service.listExperiments(.init(titleQuery: "PAYMENT 1"), context: ctx)
            #expect(Set(byTitle.experiments.map(\.title)) == Set(["Payment 1"] + (10...19).map { "Payment \($0)" }))
            let byTags = try await h.service.listExperiments(.init(pageSize: 100, tags: ["team-1", "all"]), context: ctx)
            #expect(byTags.experiments.count == 8 && byTags.experiments.allSatisfy { $0.tags.contains("team-1") })

            let deleted = try await h.service.deleteExperiment(.init(experimentId: created[0]), context: ctx)
            #expect(deleted.experiment?.deletedAtUs ?? 0 > 0)
            let afterDelete = try await h.service.listExperiments(.init(pageSize: 500), context: ctx)
            #expect(!afterDelete.experiments.map(\.id).contains(created[0]))
            let withDeleted = try await h.service.listExperiments(.init(pageSize: 500, includeDeleted: true), context: ctx)
            #expect(withDeleted.experiments.map(\.id).contains(created[0]))
            await expectRPCError(.notFound) { try await h.service.getExperiment(.init(experimentId: created[0]), context: ctx) }
            #expect(try await h.service.getExperiment(.init(experimentId: created[0], includeDeleted: true), context: ctx).experiment != nil)
            await expectRPCError(.failedPrecondition, "a deleted experiment cannot run") {
                try await h.service.createExecution(.init(experimentId: created[0]), context: ctx)
            }
            await expectRPCError(.failedPrecondition, "a deleted experiment cannot change") {
                try await h.service.updateExperiment(.init(experimentId: created[0], source: .init(text: ServiceHarness.minimalExperiment)), context: ctx)
            }
        }
    }

    @Test("idempotent create with request_id")
    func idempotentCreate() async throws {
        try await ServiceHarness.with(database: "svc_idempotent") { h in
            let ctx = ServiceHarness.context()
            let request = ExperimentsV1.CreateExperimentRequest(source: .init(text: ServiceHarness.minimalExperiment), requestId: "k-1")
            let first = try await h.service.createExperiment(request, context: ctx)
            let again = try await h.service.createExperiment(request, context: ctx)
            #expect(first.experiment?.id == again.experiment?.id)
            let other = try await h.service.createExperiment(request, context: ServiceHarness.context("org-b"))
            #expect(other.experiment?.id != first.experiment?.id, "keys are per organisation")
        }
    }

    @Test("hostile input: malformed ids and tokens, oversized and hostile documents, missing organisation")
    func hostileInput() async throws {
        var configuration = ExperimentServiceConfiguration()
        configuration.documentLimits = DocumentLimits(maxBytes: 64 << 10, maxDepth: 32, maxExpandedBytes: 256 << 10)
        try await ServiceHarness.with(database: "svc_hostile", configuration: configuration) { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            for bad in ["", "exp_", "exp_XYZ", "exe_0193a0d0e0f0a0b0c0d0e0f0a0b0c0d0", "'; DROP TABLE experiments; --",
                        String(repeating: "a", count: 10_000), "exp_0193a0d0e0f0a0b0c0d0e0f0a0b0c0d\u{0}"] {
                await expectRPCError(.invalidArgument, "id \(bad.prefix(20))") {
                    try await h.service.getExperiment(.init(experimentId: bad), context: ctx)
                }
            }
            await expectRPCError(.notFound, "well-formed unknown id") {
                try await h.service.getExperiment(.init(experimentId: "exp_0193a0d0e0f07000800000000000dead"), context: ctx)
            }
            for token in ["garbage", "!!!!", String(repeating: "A", count: 600), PageToken(time: 1, id: "x", filters: 1).encoded] {
                await expectRPCError(.invalidArgument, "token \(token.prefix(10))") {
                    try await h.service.listExperiments(.init(pageToken: token), context: ctx)
                }
            }
            let page = try await h.service.listExperiments(.init(pageSize: 1, titleQuery: "min"), context: ctx)
            _ = page
            await expectRPCError(.invalidArgument, "negative page size") {
                try await h.service.listExperiments(.init(pageSize: -1), context: ctx)
            }
            await expectRPCError(.invalidArgument, "NUL in a tag") {
                try await h.service.listExperiments(.init(tags: ["a\u{0}b"]), context: ctx)
            }
            let huge = "{\"title\": \"" + String(repeating: "x", count: 100_000) + "\", \"description\": \"d\", \"method\": []}"
            let tooLarge = await expectRPCError(.invalidArgument, "oversized document") {
                try await h.service.createExperiment(.init(source: .init(text: huge)), context: ctx)
            }
            #expect(try Self.report(tooLarge).problems.first?.code == DocumentError.Code.tooLarge.rawValue)
            let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
            await expectRPCError(.invalidArgument, "deep nesting") {
                try await h.service.createExperiment(.init(source: .init(text: "{\"title\": \(deep)}")), context: ctx)
            }
            let laughs = (1...12).map { "l\($0): &l\($0) [*l\($0 - 1), *l\($0 - 1), *l\($0 - 1), *l\($0 - 1)]" }
            let bomb = "l0: &l0 \"lol\"\n" + laughs.joined(separator: "\n") + "\ntitle: x\n"
            await expectRPCError(.invalidArgument, "billion laughs") {
                try await h.service.createExperiment(.init(source: .init(text: bomb, format: .yaml)), context: ctx)
            }
            for text in ["", "[]", "\"just a string\"", "\u{FF}\u{FE}", "title: [unclosed"] {
                await expectRPCError(.invalidArgument, "document \(text.prefix(10))") {
                    try await h.service.createExperiment(.init(source: .init(text: text)), context: ctx)
                }
            }
            await expectRPCError(.invalidArgument, "no source") {
                try await h.service.createExperiment(.init(), context: ctx)
            }
            await expectRPCError(.unauthenticated, "no organisation") {
                try await h.service.getExperiment(.init(experimentId: experiment.id), context: ServiceHarness.context(nil))
            }
            await expectRPCError(.unauthenticated, "malformed organisation") {
                try await h.service.getExperiment(.init(experimentId: experiment.id), context: ServiceHarness.context("bad org!"))
            }
            // Still serving, nothing lost.
            #expect(try await h.service.getExperiment(.init(experimentId: experiment.id), context: ctx).experiment?.title == "minimal")
        }
    }
}
