import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// Plan runs: manual ones (TriggerPlan, RunExperiment), history, and what runners report.
struct PlanRunStore: Sendable {
    let database: PostgresClient
    let plans: PlanStore

    /// A manual run of a plan: subject to the halt and (unless ignored) the plan's windows, then
    /// dispatched like any other. Concurrency limits apply at dispatch (max_in_flight).
    func trigger(_ org: OrganizationID, _ request: SchedulesV1.TriggerPlanRequest, now: Date) async throws -> SchedulesV1.PlanRun {
        if let existing = try await byRequest(org, request.requestId) { return existing }
        let plan = try await plans.require(org, request.planId)
        let definition = try PlanDefinition(plan.spec ?? .init(), activeSince: Date(micros: plan.createdAtUs))
        var state: SchedulesV1.PlanRunState = .pending
        var reason = ""
        if try await Halts.status(org, database: database).halted {
            state = .skipped
            reason = SkipText.halted
        } else if !request.ignoreWindows, let closure = definition.availability.closure(at: now) {
            state = .skipped
            reason = SkipText.reason(closure, policy: definition.policy)
        }
        var run = try NewPlanRun(org: org, planID: plan.id, definition: definition, spec: RunSpec(definition.spec), state: state,
                                 trigger: .manual, occurrence: now.micros, due: now.micros, now: now.micros)
        run.request_id = request.requestId
        run.reason = reason
        return try await insertOne(org, run)
    }

    func runExperiment(_ org: OrganizationID, _ request: SchedulesV1.RunExperimentRequest, now: Date) async throws -> SchedulesV1.PlanRun {
        if let existing = try await byRequest(org, request.requestId) { return existing }
        let halted = try await Halts.status(org, database: database).halted
        var run = try NewPlanRun(org: org, planID: "", definition: nil, spec: RunSpec(request), state: halted ? .skipped : .pending,
                                 trigger: .manual, occurrence: now.micros, due: now.micros, now: now.micros)
        run.request_id = request.requestId
        run.reason = halted ? SkipText.halted : ""
        return try await insertOne(org, run)
    }

    private func insertOne(_ org: OrganizationID, _ run: NewPlanRun) async throws -> SchedulesV1.PlanRun {
        let inserted = try await database.withConnection { try await NewPlanRun.insert([run], on: $0) }
        if let first = inserted.first { return first }
        // Lost a race with a concurrent call carrying the same request id.
        guard let existing = try await byRequest(org, run.request_id) else { throw RPCError(.aborted, "a concurrent call with the same request_id; retry") }
        return existing
    }

    private func byRequest(_ org: OrganizationID, _ requestID: String) async throws -> SchedulesV1.PlanRun? {
        guard !requestID.isEmpty else { return nil }
        return try await database.query("""
            SELECT \(PlanRunRecord.columns) FROM schedules.plan_runs WHERE org = \(org.rawValue) AND request_id = \(requestID)
            """).first.map(PlanRunRecord.decode)
    }

    func require(_ org: OrganizationID, _ id: String) async throws -> SchedulesV1.PlanRun {
        let rows = try await database.query("SELECT \(PlanRunRecord.columns) FROM schedules.plan_runs WHERE org = \(org.rawValue) AND id = \(id)")
        guard let row = rows.first else { throw RPCError(.notFound, "no plan run '\(id)'") }
        return try PlanRunRecord.decode(row)
    }

    /// Newest first by due time.
    func list(_ org: OrganizationID, _ request: SchedulesV1.ListPlanRunsRequest) async throws -> SchedulesV1.ListPlanRunsResponse {
        let size = try PageSize.resolve(request.pageSize)
        let states = request.states.map(\.rawValue).sorted()
        let filters = "\(request.planId)/\(states)"
        let cursor = try Cursor.decode(request.pageToken, filters: filters)
        var sql: SQL = "SELECT \(PlanRunRecord.columns) FROM schedules.plan_runs WHERE org = \(org.rawValue)"
        if !request.planId.isEmpty { sql += " AND plan_id = \(request.planId)" }
        if !states.isEmpty { sql += " AND state = ANY(\(states.map(String.init))::int[])" }
        if let cursor { sql += " AND (due_us, id) < (\(cursor.key), \(cursor.id))" }
        sql += " ORDER BY due_us DESC, id DESC LIMIT \(size + 1)"
        var runs = try await database.query(sql).map(PlanRunRecord.decode)
        var next = ""
        if runs.count > size {
            runs.removeLast()
            next = Cursor(key: runs[runs.count - 1].dueAtUs, id: runs[runs.count - 1].id).encoded(filters: filters)
        }
        return .init(runs: runs, nextPageToken: next)
    }

    /// The runner says an execution ended. A run already ended otherwise (cancelled, lost) keeps
    /// its state and learns the execution's; a report for a run it does not hold is NOT_FOUND.
    func reportEnded(_ request: SchedulesV1.ReportRunEndedRequest, now: Int64) async throws {
        let updated = try await database.execute("""
            UPDATE schedules.plan_runs SET
                state = CASE WHEN state IN (1, 2, 3) THEN \(SchedulesV1.PlanRunState.ended.rawValue) ELSE state END,
                execution_state = \(request.executionState.rawValue),
                ended_us = CASE WHEN state IN (1, 2, 3) THEN \(now) ELSE ended_us END,
                execution_id = CASE WHEN execution_id = '' THEN \(request.executionId) ELSE execution_id END,
                claim_until_us = 0
            WHERE id = \(request.planRunId) AND runner_id = \(request.runnerId)
            """)
        guard updated > 0 else { throw RPCError(.notFound, "runner '\(request.runnerId)' holds no plan run '\(request.planRunId)'") }
    }
}
