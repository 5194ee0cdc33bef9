import FaultlineProto
import FaultlineRPC
import Testing
@testable import ExperimentService

@Suite("External completion: one CompleteExecution ends a run that no runner owns")
struct ExternalCompletionTests {
    static let pairs = ExecutionStatus.allCases.flatMap { from in ExecutionStatus.allCases.map { (from, $0) } }

    /// Written out independently: external completions pass through running from pending; every
    /// other case is the plain transition table.
    @Test(arguments: pairs)
    func completingMove(_ from: ExecutionStatus, _ to: ExecutionStatus) throws {
        let viaRunning: Set<ExecutionStatus> = [.completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut]
        if from == .pending, viaRunning.contains(to) {
            #expect(try from.completing(to: to, external: true) == .startedAndMoved(to: to))
        } else if from == .pending, to == .running {
            #expect(throws: IllegalTransition(from: .pending, to: .running)) { try from.completing(to: to, external: true) }
        } else {
            #expect((try? from.completing(to: to, external: true)) == (try? from.completing(to: to, external: false)))
        }
        // A runner's completion is exactly the transition table.
        switch Result(catching: { () throws(IllegalTransition) in try from.transition(to: to) }) {
        case .success(.moved(let next)): #expect(try from.completing(to: to, external: false) == .moved(to: next))
        case .success(.unchanged): #expect(try from.completing(to: to, external: false) == .unchanged)
        case .failure(let error): #expect(throws: error) { try from.completing(to: to, external: false) }
        }
    }

    static let journal = ServiceExecutionTests.journal()

    @Test("pending external run: started and completed in one call; repeats idempotent; another journal, terminal or runner-owned refused")
    func externalCompletion() async throws {
        try await ServiceHarness.with(database: "svc_external_complete") { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            let pending = try #require(try await h.service.createExecution(.init(experimentId: experiment.id, external: true), context: ctx).execution)
            #expect(pending.state == .pending && pending.startedAtUs == 0)

            var request = ExperimentsV1.CompleteExecutionRequest(executionId: pending.id, journalJson: Self.journal, log: "log")
            // Without `external` a verdict cannot follow pending: the runner's rule is unchanged.
            await expectRPCError(.failedPrecondition, "a runner's completion of a pending run with a verdict") {
                try await h.service.completeExecution(request, context: ctx)
            }
            request.external = true
            let done = try #require(try await h.service.completeExecution(request, context: ctx).execution)
            #expect(done.state == .completed && done.startedAtUs > 0 && done.startedAtUs == done.endedAtUs)
            #expect(done.score?.value == 1)
            #expect(try await h.service.completeExecution(request, context: ctx).execution == done, "a retry is a no-op")

            // Out of order: another journal once terminal, or a start after the end.
            var other = request
            other.journalJson = ServiceExecutionTests.journal(deviated: true, after: false)
            await expectRPCError(.failedPrecondition, "completing twice with another journal") {
                try await h.service.completeExecution(other, context: ctx)
            }
            await expectRPCError(.failedPrecondition, "starting a completed run") {
                try await h.service.startExecution(.init(executionId: pending.id), context: ctx)
            }
            #expect(try await h.service.getExecution(.init(executionId: pending.id), context: ctx).execution == done)

            // Already running (its first events said so): a plain move.
            let running = try #require(try await h.service.createExecution(.init(experimentId: experiment.id, external: true), context: ctx).execution)
            let startedAt = try #require(try await h.service.startExecution(.init(executionId: running.id), context: ctx).execution?.startedAtUs)
            other.executionId = running.id
            let deviated = try #require(try await h.service.completeExecution(other, context: ctx).execution)
            #expect(deviated.state == .deviated && deviated.startedAtUs == startedAt)

            // Unknown and malformed ids.
            await expectRPCError(.notFound, "unknown execution") {
                try await h.service.completeExecution(.init(executionId: ResourceID.make(.execution, now: 1), journalJson: Self.journal, external: true), context: ctx)
            }
            await expectRPCError(.notFound, "another organisation's execution") {
                try await h.service.completeExecution(request, context: ServiceHarness.context("org-b"))
            }
        }
    }

    @Test("a runner's execution is completed by its runner only, whatever its state")
    func runnerOwned() async throws {
        try await ServiceHarness.with(database: "svc_external_runner") { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            // Owned from creation (pending) and from its start (running).
            let pending = try #require(try await h.service.createExecution(.init(experimentId: experiment.id, runnerId: "r-9"), context: ctx).execution)
            let running = try await h.runningExecution()
            for execution in [pending, running] {
                await expectRPCError(.permissionDenied, "external completion of a runner's run") {
                    try await h.service.completeExecution(.init(executionId: execution.id, journalJson: Self.journal, external: true), context: ctx)
                }
                #expect(try await h.service.getExecution(.init(executionId: execution.id), context: ctx).execution == execution, "nothing changed")
            }
            // The runner itself still completes it.
            let done = try #require(try await h.service.completeExecution(.init(executionId: running.id, journalJson: Self.journal, exit: .init(exitCode: 0)), context: ctx).execution)
            #expect(done.state == .completed)
            // Even the same request, once the runner ended it: still not the external reporter's.
            await expectRPCError(.permissionDenied, "external completion of a runner's ended run") {
                try await h.service.completeExecution(.init(executionId: running.id, journalJson: Self.journal, exit: .init(exitCode: 0), external: true), context: ctx)
            }
        }
    }

    @Test("terminate then complete: the run ends from its journal; once lost, a late journal is refused")
    func afterTerminate() async throws {
        try await ServiceHarness.with(database: "svc_external_terminate") { h in
            let ctx = ServiceHarness.context()
            let experiment = try await h.createExperiment()
            let created = try #require(try await h.service.createExecution(.init(experimentId: experiment.id, external: true), context: ctx).execution)
            // A terminate request is asked of the run, which ends itself; it is not an end yet.
            let asked = try #require(try await h.service.terminateExecution(.init(executionId: created.id, reason: "stop"), context: ctx).execution)
            #expect(asked.state == .pending)
            let interrupted = ServiceExecutionTests.journal(status: "interrupted")
            let ended = try #require(try await h.service.completeExecution(
                .init(executionId: created.id, journalJson: interrupted, external: true), context: ctx).execution)
            #expect(ended.state == .interrupted)
            await expectRPCError(.failedPrecondition, "terminate once ended") {
                try await h.service.terminateExecution(.init(executionId: created.id), context: ctx)
            }

            // Ended as lost (no journal, no exit), then the journal arrives late: refused, kept lost.
            let late = try #require(try await h.service.createExecution(.init(experimentId: experiment.id, external: true), context: ctx).execution)
            let lost = try #require(try await h.service.completeExecution(.init(executionId: late.id), context: ctx).execution)
            #expect(lost.state == .lost)
            await expectRPCError(.failedPrecondition, "a journal after the run was declared lost") {
                try await h.service.completeExecution(.init(executionId: late.id, journalJson: Self.journal, external: true), context: ctx)
            }
            #expect(try await h.service.getExecution(.init(executionId: late.id), context: ctx).execution?.state == .lost)
        }
    }
}
