import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Testing
@testable import ExperimentService

@Suite("ExperimentService: executions, user state, scores, retention, organisations", .serialized)
struct ServiceExecutionTests {
    static func journal(status: String = "completed", deviated: Bool = false, after: Bool = true, methodFailed: Bool = false) -> String {
        """
        {"chaoslib-version": "1.45.0", "status": "\(status)", "deviated": \(deviated),
         "steady_states": {"before": {"steady_state_met": true}, "after": {"steady_state_met": \(after)}, "during": []},
         "run": [{"activity": {"name": "a1", "type": "action", "provider": {"type": "python"}}, "status": "\(methodFailed ? "failed" : "succeeded")"}],
         "rollbacks": []}
        """
    }

    @Test("pending → running → completed from the journal; journal kept as sent; log capped with a marker")
    func lifecycle() async throws {
        var configuration = ExperimentServiceConfiguration()
        configuration.maximumLogBytes = 100
        try await ServiceHarness.with(database: "svc_lifecycle", configuration: configuration) { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            let created = try await h.service.createExecution(.init(experimentId: experiment.id, planId: "p1", requestId: "run-1"), context: ctx)
            let id = try #require(created.execution?.id)
            #expect(created.execution?.state == .pending && created.definitionJson == ServiceHarness.minimalExperiment)
            let retry = try await h.service.createExecution(.init(experimentId: experiment.id, planId: "p1", requestId: "run-1"), context: ctx)
            #expect(retry.execution?.id == id, "request_id makes create idempotent")
            let started = try await h.service.startExecution(.init(executionId: id, runnerId: "r-1"), context: ctx)
            #expect(started.execution?.state == .running && started.execution?.runnerId == "r-1" && (started.execution?.startedAtUs ?? 0) > 0)
            #expect(try await h.service.startExecution(.init(executionId: id), context: ctx).execution?.state == .running, "start again is a no-op")

            let journal = Self.journal()
            let log = String(repeating: "é", count: 200)  // 400 bytes, cut inside no character
            let request = ExperimentsV1.CompleteExecutionRequest(executionId: id, journalJson: journal, log: log, exit: .init(exitCode: 0))
            let done = try #require(try await h.service.completeExecution(request, context: ctx).execution)
            #expect(done.state == .completed && done.endedAtUs > 0)
            #expect(done.outcome?.hasJournal == true && done.outcome?.journalStatus == "completed")
            #expect(done.outcome?.steadyStateBefore == .met && done.outcome?.activitiesRun == 1 && done.outcome?.exit?.exitCode == 0)
            #expect(done.score?.value == 1 && done.score?.formula == ExecutionRecord.executionFormula)
            #expect(try await h.service.getExecutionJournal(.init(executionId: id), context: ctx).journalJson == journal)
            let stored = try await h.service.getExecutionLog(.init(executionId: id), context: ctx)
            #expect(stored.truncated && stored.originalSizeBytes == 400 && stored.log.utf8.count <= 100)
            #expect(stored.log.hasSuffix(Completion.truncationMarker) && stored.log.hasPrefix("éé"))

            #expect(try await h.service.completeExecution(request, context: ctx).execution == done, "the same completion again is a no-op")
            var other = request
            other.journalJson = Self.journal(deviated: true, after: false)
            await expectRPCError(.failedPrecondition, "a different completion") {
                try await h.service.completeExecution(other, context: ctx)
            }
            let listed = try await h.service.listExecutions(.init(experimentId: experiment.id, states: [.completed]), context: ctx)
            #expect(listed.executions.map(\.id) == [id])
            let filteredOut = try await h.service.listExecutions(.init(planId: "other"), context: ctx)
            #expect(filteredOut.executions.isEmpty)
        }
    }

    @Test("the outcome comes from the journal, not the exit code; fallback rules; illegal transitions")
    func outcomesAndTransitions() async throws {
        try await ServiceHarness.with(database: "svc_transitions") { h in
            let ctx = ServiceHarness.context()
            func complete(_ request: ExperimentsV1.CompleteExecutionRequest) async throws -> ExperimentsV1.Execution {
                let running = try await h.runningExecution()
                var request = request
                request.executionId = running.id
                return try #require(try await h.service.completeExecution(request, context: ctx).execution)
            }
            let deviated = try await complete(.init(journalJson: Self.journal(deviated: true, after: false), exit: .init(exitCode: 1)))
            #expect(deviated.state == .deviated && deviated.deviated && deviated.score?.value == 0)
            let methodFailed = try await complete(.init(journalJson: Self.journal(methodFailed: true), exit: .init(exitCode: 0)))
            #expect(methodFailed.state == .failed, "exit 0 with a failed method activity is not completed")
            let timedOut = try await complete(.init(exit: .init(signal: 15), stopRequest: .timeLimit))
            #expect(timedOut.state == .timedOut, "without a journal, the runner's time limit decides")
            let noJournal = try await complete(.init(exit: .init(exitCode: 1)))
            #expect(noJournal.state == .failed && noJournal.outcome?.hasJournal == false)
            let interrupted = try await complete(.init(exit: .init(signal: 15), stopRequest: .cancelled))
            #expect(interrupted.state == .interrupted && interrupted.score == nil, "interrupted runs are not scored")
            let unreadable = try await complete(.init(journalJson: "{not json"))
            #expect(unreadable.state == .failed && unreadable.reason == "journal_unreadable")

            // Illegal moves are FAILED_PRECONDITION and change nothing.
            await expectRPCError(.failedPrecondition, "start a terminal execution") {
                try await h.service.startExecution(.init(executionId: deviated.id), context: ctx)
            }
            let experiment = try await h.createExperiment()
            let pending = try #require(try await h.service.createExecution(.init(experimentId: experiment.id), context: ctx).execution)
            await expectRPCError(.failedPrecondition, "pending cannot complete with a verdict") {
                try await h.service.completeExecution(.init(executionId: pending.id, journalJson: Self.journal()), context: ctx)
            }
            await expectRPCError(.failedPrecondition, "pending cannot time out") {
                try await h.service.completeExecution(.init(executionId: pending.id, exit: .init(signal: 15), stopRequest: .timeLimit), context: ctx)
            }
            #expect(try await h.service.getExecution(.init(executionId: pending.id), context: ctx).execution?.state == .pending)
            await expectRPCError(.invalidArgument, "unknown stop request number") {
                try await h.service.completeExecution(.init(executionId: pending.id, stopRequest: .unrecognized(99)), context: ctx)
            }
            let lost = try await h.service.completeExecution(.init(executionId: pending.id), context: ctx)
            #expect(lost.execution?.state == .lost, "pending may end as lost")
        }
    }

    @Test("pause, resume and terminate are stored, versioned and readable; refused once terminal")
    func userState() async throws {
        var configuration = ExperimentServiceConfiguration()
        configuration.maximumPauseUs = 60_000_000
        try await ServiceHarness.with(database: "svc_userstate", configuration: configuration) { h in
            let ctx = ServiceHarness.context()
            let run = try await h.runningExecution()
            let paused = try #require(try await h.service.pauseExecution(.init(executionId: run.id, maxDurationUs: 999_000_000, reason: "look"), context: ctx).execution)
            guard case .pause(let pause)? = paused.userState?.request else { Issue.record("not paused"); return }
            #expect(pause.maxDurationUs == 60_000_000, "clamped to the service maximum")
            #expect(pause.expiresAtUs == paused.userState!.requestedAtUs + 60_000_000)
            #expect(paused.userState?.version == 1 && paused.userState?.reason == "look" && paused.userState?.requestedBy?.id == "tester")
            let resumed = try await h.service.resumeExecution(.init(executionId: run.id), context: ctx)
            #expect(resumed.execution?.userState?.request == nil && resumed.execution?.userState?.version == 2)
            let again = try await h.service.resumeExecution(.init(executionId: run.id), context: ctx)
            #expect(again.execution?.userState?.version == 2, "resuming a run that is not paused changes nothing")
            _ = try await h.service.pauseExecution(.init(executionId: run.id), context: ctx)
            let terminated = try await h.service.terminateExecution(.init(executionId: run.id, skipRollbacks: true), context: ctx)
            #expect(terminated.execution?.userState?.request == .terminate(.init(skipRollbacks: true)))
            await expectRPCError(.failedPrecondition, "pause after terminate") {
                try await h.service.pauseExecution(.init(executionId: run.id), context: ctx)
            }
            let state = try await h.service.getUserState(.init(executionId: run.id), context: ctx)
            #expect(state.executionState == .running && state.userState?.version == 4)
            _ = try await h.service.completeExecution(.init(executionId: run.id, exit: .init(signal: 15), stopRequest: .cancelled), context: ctx)
            await expectRPCError(.failedPrecondition, "terminal") {
                try await h.service.terminateExecution(.init(executionId: run.id), context: ctx)
            }
            await expectRPCError(.invalidArgument, "negative pause") {
                try await h.service.pauseExecution(.init(executionId: run.id, maxDurationUs: -1), context: ctx)
            }
        }
    }

    @Test("experiment score over recent runs; retention by count and by age deletes events too")
    func scoresAndRetention() async throws {
        try await ServiceHarness.with(database: "svc_retention") { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            var ids: [String] = []
            for journal in [Self.journal(), Self.journal(deviated: true, after: false), Self.journal()] {
                let created = try #require(try await h.service.createExecution(.init(experimentId: experiment.id), context: ctx).execution)
                _ = try await h.service.startExecution(.init(executionId: created.id), context: ctx)
                _ = try await h.report([(1...5).map { ServiceHarness.event(created.id, $0) }])
                _ = try await h.service.completeExecution(.init(executionId: created.id, journalJson: journal), context: ctx)
                ids.append(created.id)
            }
            let running = try #require(try await h.service.createExecution(.init(experimentId: experiment.id), context: ctx).execution)
            let score = try #require(try await h.service.getExperimentScore(.init(experimentId: experiment.id), context: ctx).score)
            let expected = ExperimentScore(newestFirst: [1, 0, 1]).value!
            #expect(abs(score.value - expected) < 1e-9 && score.executions == 3 && score.window == 10)
            #expect(try await h.service.getExperiment(.init(experimentId: experiment.id), context: ctx).experiment?.score?.value == score.value)
            #expect(try await h.service.getExperiment(.init(experimentId: experiment.id), context: ctx).experiment?.lastExecution?.id == running.id)

            _ = try await h.service.setRetentionPolicy(.init(policy: .init(maxExecutionsPerExperiment: 2)), context: ctx)
            #expect(try await h.service.getRetentionPolicy(.init(), context: ctx).policy?.maxExecutionsPerExperiment == 2)
            let dry = try await h.service.applyRetention(.init(dryRun: true), context: ctx)
            #expect(dry.executionsDeleted == 2 && dry.eventsDeleted == 10)
            let applied = try await h.service.applyRetention(.init(), context: ctx)
            #expect(applied.executionsDeleted == 2 && applied.eventsDeleted == 10)
            await expectRPCError(.notFound) { try await h.service.getExecution(.init(executionId: ids[0]), context: ctx) }
            let left = try await h.database.query("SELECT count(*) FROM experiments.events")
            #expect(try left[0].decode(Int.self, at: 0) == 5)

            _ = try await h.service.setRetentionPolicy(.init(policy: .init(maxAgeUs: 1)), context: ctx)
            let byAge = try await h.service.applyRetention(.init(), context: ctx)
            #expect(byAge.executionsDeleted == 1, "the pending execution is never deleted")
            #expect(try await h.service.getExecution(.init(executionId: running.id), context: ctx).execution != nil)
            await expectRPCError(.invalidArgument) {
                try await h.service.setRetentionPolicy(.init(policy: .init(maxAgeUs: -5)), context: ctx)
            }
        }
    }

    @Test("another organisation's ids are NOT_FOUND on every RPC kind, and its data never shows")
    func crossOrganisation() async throws {
        try await ServiceHarness.with(database: "svc_orgs") { h in
            let run = try await h.runningExecution(org: "org-a")
            _ = try await h.report([[ServiceHarness.event(run.id, 1)]], org: "org-a")
            let exp = run.experimentId
            let b = ServiceHarness.context("org-b")
            let s = h.service
            await expectRPCError(.notFound, "GetExperiment") { try await s.getExperiment(.init(experimentId: exp, includeDeleted: true), context: b) }
            await expectRPCError(.notFound, "UpdateExperiment") { try await s.updateExperiment(.init(experimentId: exp, source: .init(text: ServiceHarness.minimalExperiment)), context: b) }
            await expectRPCError(.notFound, "DeleteExperiment") { try await s.deleteExperiment(.init(experimentId: exp), context: b) }
            await expectRPCError(.notFound, "GetExperimentRevision") { try await s.getExperimentRevision(.init(experimentId: exp), context: b) }
            await expectRPCError(.notFound, "ListExperimentRevisions") { try await s.listExperimentRevisions(.init(experimentId: exp), context: b) }
            await expectRPCError(.notFound, "GetExperimentScore") { try await s.getExperimentScore(.init(experimentId: exp), context: b) }
            await expectRPCError(.notFound, "CreateExecution") { try await s.createExecution(.init(experimentId: exp), context: b) }
            await expectRPCError(.notFound, "StartExecution") { try await s.startExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "CompleteExecution") { try await s.completeExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "GetExecution") { try await s.getExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "GetExecutionJournal") { try await s.getExecutionJournal(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "GetExecutionLog") { try await s.getExecutionLog(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "ListExecutionEvents") { try await s.listExecutionEvents(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "PauseExecution") { try await s.pauseExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "ResumeExecution") { try await s.resumeExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "TerminateExecution") { try await s.terminateExecution(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "GetUserState") { try await s.getUserState(.init(executionId: run.id), context: b) }
            await expectRPCError(.notFound, "ReportEvents") { try await h.report([[ServiceHarness.event(run.id, 2)]], org: "org-b") }
            await expectRPCError(.notFound, "WatchExecution") {
                try await s.watchExecution(.init(executionId: run.id), responses: RPCWriter { _ in }, context: b)
            }
            #expect(try await s.listExperiments(.init(includeDeleted: true), context: b).experiments.isEmpty)
            #expect(try await s.listExecutions(.init(), context: b).executions.isEmpty)
            #expect(try await s.listExecutions(.init(experimentId: exp), context: b).executions.isEmpty)
            #expect(try await s.applyRetention(.init(), context: b).executionsDeleted == 0)
            // Org A is untouched by all of that.
            let a = ServiceHarness.context("org-a")
            let still = try #require(try await s.getExecution(.init(executionId: run.id), context: a).execution)
            #expect(still.state == .running && still.eventsReceived == 1 && still.userState?.version == 0)
            #expect(try await s.getExperiment(.init(experimentId: exp), context: a).experiment?.deletedAtUs == 0)
        }
    }
}
