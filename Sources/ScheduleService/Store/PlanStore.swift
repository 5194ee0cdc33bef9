import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import ServiceKit

/// Plans of one organisation at a time: every query is scoped by `org`, so another
/// organisation's plan is simply not found.
struct PlanStore: Sendable {
    let database: PostgresClient

    private static let columns: SQL = """
        id, spec, state, COALESCE(next_fire_us, 0), created_us, updated_us, actor_kind, actor_id, version
        """

    func create(_ org: OrganizationID, _ definition: PlanDefinition, paused: Bool, requestID: String,
                actor: CommonV1.Actor, now: Date) async throws -> SchedulesV1.Plan {
        let id = PrefixedID.make(prefix: ScheduleIDs.plan, now: now.micros)
        let spec = try Array(buffer: definition.spec.serializedBytes())
        let next = paused ? nil : definition.planner(now).nextOccurrence(after: nil)?.due.micros
        let state: SchedulesV1.PlanState = paused ? .paused : (next == nil ? .finished : .active)
        let rows = try await database.query("""
            INSERT INTO schedules.plans (org, id, request_id, spec, experiment_id, state, active_since_us, next_fire_us,
                version, created_us, updated_us, actor_kind, actor_id)
            VALUES (\(org.rawValue), \(id), \(requestID), \(spec), \(definition.spec.experimentId), \(state.rawValue),
                \(now.micros), \(next), 1, \(now.micros), \(now.micros), \(actor.kind.rawValue), \(actor.id))
            ON CONFLICT DO NOTHING
            RETURNING \(Self.columns)
            """)
        if let row = rows.first { return try decode(row) }
        // An idempotent repeat: the plan the first call created.
        let existing = try await database.query("SELECT \(Self.columns) FROM schedules.plans WHERE org = \(org.rawValue) AND request_id = \(requestID)")
        guard let row = existing.first else { throw RPCError(.aborted, "a concurrent call with the same request_id; retry") }
        return try await withLastRuns(org, [try decode(row)])[0]
    }

    func require(_ org: OrganizationID, _ id: String) async throws -> SchedulesV1.Plan {
        let rows = try await database.query("SELECT \(Self.columns) FROM schedules.plans WHERE org = \(org.rawValue) AND id = \(id)")
        guard let row = rows.first else { throw RPCError(.notFound, "no plan '\(id)'") }
        return try await withLastRuns(org, [try decode(row)])[0]
    }

    func list(_ org: OrganizationID, _ request: SchedulesV1.ListPlansRequest) async throws -> SchedulesV1.ListPlansResponse {
        let size = try PageSize.resolve(request.pageSize)
        let states = request.states.map(\.rawValue).sorted()
        let filters = "\(request.experimentId)/\(states)"
        let cursor = try Cursor.decode(request.pageToken, filters: filters)
        var sql: SQL = "SELECT \(Self.columns) FROM schedules.plans WHERE org = \(org.rawValue)"
        if !request.experimentId.isEmpty { sql += " AND experiment_id = \(request.experimentId)" }
        if !states.isEmpty { sql += " AND state = ANY(\(states.map(String.init))::int[])" }
        if let cursor { sql += " AND id > \(cursor.id)" }
        sql += " ORDER BY id LIMIT \(size + 1)"
        var plans = try await database.query(sql).map(decode)
        var next = ""
        if plans.count > size {
            plans.removeLast()
            next = Cursor(key: 0, id: plans[plans.count - 1].id).encoded(filters: filters)
        }
        return .init(plans: try await withLastRuns(org, plans), nextPageToken: next)
    }

    /// Replaces the spec: the new schedule counts from now, so nothing of the old one fires.
    func update(_ org: OrganizationID, _ id: String, _ definition: PlanDefinition, expectedVersion: Int64, now: Date) async throws -> SchedulesV1.Plan {
        let spec = try Array(buffer: definition.spec.serializedBytes())
        let next = definition.planner(now).nextOccurrence(after: nil)?.due.micros
        try await database.withTransaction { tx in
            let current = try await lock(tx, org, id)
            guard expectedVersion == 0 || current.version == expectedVersion else {
                throw RPCError(.aborted, "plan '\(id)' is at version \(current.version), not \(expectedVersion)")
            }
            let state: SchedulesV1.PlanState = current.state == .paused ? .paused : (next == nil ? .finished : .active)
            try await tx.execute("""
                UPDATE schedules.plans SET spec = \(spec), experiment_id = \(definition.spec.experimentId), state = \(state.rawValue),
                    active_since_us = \(now.micros), handled_through_us = NULL,
                    next_fire_us = \(state == .active ? next : nil), version = version + 1, updated_us = \(now.micros)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
        }
        return try await require(org, id)
    }

    func delete(_ org: OrganizationID, _ id: String) async throws {
        let deleted = try await database.execute("DELETE FROM schedules.plans WHERE org = \(org.rawValue) AND id = \(id)")
        guard deleted > 0 else { throw RPCError(.notFound, "no plan '\(id)'") }
    }

    func pause(_ org: OrganizationID, _ id: String, now: Date) async throws -> SchedulesV1.Plan {
        try await database.withTransaction { tx in
            let current = try await lock(tx, org, id)
            guard current.state == .active else { return }
            try await tx.execute("""
                UPDATE schedules.plans SET state = \(SchedulesV1.PlanState.paused.rawValue), next_fire_us = NULL,
                    version = version + 1, updated_us = \(now.micros)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
        }
        return try await require(org, id)
    }

    /// Occurrences that fell due while paused follow the missed-fire policy at the next tick.
    func resume(_ org: OrganizationID, _ id: String, now: Date) async throws -> SchedulesV1.Plan {
        try await database.withTransaction { tx in
            let current = try await lock(tx, org, id)
            guard current.state == .paused else { return }
            let definition = try PlanDefinition(current.spec, activeSince: current.activeSince)
            let next = definition.planner(current.activeSince).nextOccurrence(after: current.handledThrough)?.due.micros
            let state: SchedulesV1.PlanState = next == nil ? .finished : .active
            try await tx.execute("""
                UPDATE schedules.plans SET state = \(state.rawValue), next_fire_us = \(next), version = version + 1, updated_us = \(now.micros)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
        }
        return try await require(org, id)
    }

    struct Locked {
        var spec: SchedulesV1.PlanSpec
        var state: SchedulesV1.PlanState
        var version: Int64
        var activeSince: Date
        var handledThrough: Date?
    }

    func lock(_ tx: PostgresConnection, _ org: OrganizationID, _ id: String) async throws -> Locked {
        let rows = try await tx.query("""
            SELECT spec, state, version, active_since_us, handled_through_us FROM schedules.plans
            WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE
            """)
        guard let row = rows.first else { throw RPCError(.notFound, "no plan '\(id)'") }
        let (spec, state, version, since, handled) = try row.decode(([UInt8], Int32, Int64, Int64, Int64?).self)
        return Locked(spec: try SchedulesV1.PlanSpec(serializedBytes: spec), state: .init(rawValue: state), version: version,
                      activeSince: Date(micros: since), handledThrough: handled.map(Date.init(micros:)))
    }

    private func decode(_ row: Row) throws -> SchedulesV1.Plan {
        let (id, spec, state, next, created, updated, actorKind, actorID, version) =
            try row.decode((String, [UInt8], Int32, Int64, Int64, Int64, Int32, String, Int64).self)
        return SchedulesV1.Plan(id: id, spec: try SchedulesV1.PlanSpec(serializedBytes: spec), state: .init(rawValue: state),
                                nextFireAtUs: next, createdAtUs: created, updatedAtUs: updated,
                                createdBy: CommonV1.Actor(kind: .init(rawValue: actorKind), id: actorID), version: version)
    }

    private func withLastRuns(_ org: OrganizationID, _ plans: [SchedulesV1.Plan]) async throws -> [SchedulesV1.Plan] {
        guard !plans.isEmpty else { return plans }
        let rows = try await database.query("""
            SELECT DISTINCT ON (plan_id) \(PlanRunRecord.columns) FROM schedules.plan_runs
            WHERE org = \(org.rawValue) AND plan_id = ANY(\(plans.map(\.id)))
            ORDER BY plan_id, due_us DESC, id DESC
            """)
        var last: [String: SchedulesV1.PlanRun] = [:]
        for row in rows {
            let run = try PlanRunRecord.decode(row)
            last[run.planId] = run
        }
        return plans.map { plan in
            var plan = plan
            plan.lastRun = last[plan.id]
            return plan
        }
    }
}

