import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// The runner registry: runners hold leases that heartbeats extend. A runner whose lease ran out
/// is LOST, and so are the plan runs it held (retried as their plan says).
struct RunnerStore: Sendable {
    let database: PostgresClient
    let lease: Duration
    let heartbeatInterval: Duration

    private static let columns: SQL = """
        id, name, address, labels::text, capacity, running, state, version, registered_us, heartbeat_us, lease_us, organizations
        """

    /// The runners `organization` may see and use: the shared ones and those dedicated to it.
    static func serves(_ organization: OrganizationID) -> SQL {
        "(cardinality(organizations) = 0 OR \(organization.rawValue) = ANY(organizations))"
    }

    /// Registers (or re-registers) a runner. A known id means the runner restarted: every run it
    /// still held is lost.
    func register(_ request: SchedulesV1.RegisterRunnerRequest, tenancy: RunnerTenancy, now: Int64) async throws -> SchedulesV1.Runner {
        let id = request.runnerId.isEmpty ? PrefixedID.make(prefix: "rnr", now: now) : request.runnerId
        let labels = try JSONB(encoding: request.labels)
        let leaseUntil = now + lease.micros
        return try await database.withTransaction { tx in
            let previous = try await tx.query("SELECT state FROM schedules.runners WHERE id = \(id) FOR UPDATE")
            if !previous.isEmpty {
                try await Self.loseRuns(of: [id], reason: "runner \(id) restarted", now: now, on: tx)
            }
            let rows = try await tx.query("""
                INSERT INTO schedules.runners (id, name, address, labels, capacity, running, state, version, registered_us, heartbeat_us, lease_us,
                    organizations)
                VALUES (\(id), \(request.name), \(request.address), \(labels), \(request.capacity), 0,
                    \(SchedulesV1.RunnerState.active.rawValue), \(request.version), \(now), \(now), \(leaseUntil), \(tenancy.organizations))
                ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, labels = EXCLUDED.labels,
                    capacity = EXCLUDED.capacity, running = 0, state = EXCLUDED.state, version = EXCLUDED.version,
                    registered_us = EXCLUDED.registered_us, heartbeat_us = EXCLUDED.heartbeat_us, lease_us = EXCLUDED.lease_us,
                    organizations = EXCLUDED.organizations
                RETURNING \(Self.columns)
                """)
            return try Self.decode(rows[0])
        }
    }

    /// Extends the lease; answers what the runner must stop. NOT_FOUND for an unknown or gone
    /// runner: it must register again.
    func heartbeat(_ request: SchedulesV1.HeartbeatRequest, now: Int64) async throws -> SchedulesV1.HeartbeatResponse {
        let leaseUntil = now + lease.micros
        let state: SchedulesV1.RunnerState = request.draining ? .draining : .active
        return try await database.withTransaction { tx in
            let updated = try await tx.execute("""
                UPDATE schedules.runners SET heartbeat_us = \(now), lease_us = \(leaseUntil), capacity = \(request.capacity),
                    running = \(Int32(request.executionIds.count)), state = \(state.rawValue)
                WHERE id = \(request.runnerId) AND state IN (1, 2)
                """)
            guard updated > 0 else { throw RPCError(.notFound, "no registered runner '\(request.runnerId)': register again") }
            let queued = try await tx.query("""
                DELETE FROM schedules.cancellations WHERE runner_id = \(request.runnerId) RETURNING execution_id
                """).map { try $0.decode(String.self, at: 0) }
            // Executions it still runs whose plan runs ended otherwise (cancelled, lost, halted).
            let stale = request.executionIds.isEmpty ? [] : try await tx.query("""
                SELECT execution_id FROM schedules.plan_runs
                WHERE execution_id = ANY(\(request.executionIds)) AND state IN (6, 7)
                """).map { try $0.decode(String.self, at: 0) }
            return SchedulesV1.HeartbeatResponse(leaseExpiresAtUs: leaseUntil, cancelExecutionIds: Array(Set(queued + stale)).sorted())
        }
    }

    func deregister(_ id: String, now: Int64) async throws {
        try await database.withTransaction { tx in
            let updated = try await tx.execute("""
                UPDATE schedules.runners SET state = \(SchedulesV1.RunnerState.deregistered.rawValue), lease_us = \(now)
                WHERE id = \(id) AND state IN (1, 2)
                """)
            guard updated > 0 else { throw RPCError(.notFound, "no registered runner '\(id)'") }
            // A runner drains before it leaves; what it still held did not end cleanly.
            try await Self.loseRuns(of: [id], reason: "runner \(id) deregistered", now: now, on: tx)
        }
    }

    /// NOT_FOUND too for a runner dedicated to other organisations.
    func require(_ id: String, visibleTo organization: OrganizationID) async throws -> SchedulesV1.Runner {
        let rows = try await database.query("SELECT \(Self.columns) FROM schedules.runners WHERE id = \(id) AND \(Self.serves(organization))")
        guard let row = rows.first else { throw RPCError(.notFound, "no runner '\(id)'") }
        return try Self.decode(row)
    }

    func list(_ request: SchedulesV1.ListRunnersRequest, visibleTo organization: OrganizationID) async throws -> SchedulesV1.ListRunnersResponse {
        let size = try PageSize.resolve(request.pageSize)
        let filters = request.includeGone ? "all" : "live"
        let cursor = try Cursor.decode(request.pageToken, filters: filters)
        var sql: SQL = "SELECT \(Self.columns) FROM schedules.runners WHERE \(Self.serves(organization))"
        if !request.includeGone { sql += " AND state IN (1, 2)" }
        if let cursor { sql += " AND id > \(cursor.id)" }
        sql += " ORDER BY id LIMIT \(size + 1)"
        var runners = try await database.query(sql).map(Self.decode)
        var next = ""
        if runners.count > size {
            runners.removeLast()
            next = Cursor(key: 0, id: runners[runners.count - 1].id).encoded(filters: filters)
        }
        return .init(runners: runners, nextPageToken: next)
    }

    /// Marks the runners whose lease ran out LOST, with their runs. Any number of replicas may
    /// sweep at once: each runner row is taken by one of them.
    func sweepExpired(now: Int64) async throws -> [String] {
        try await database.withTransaction { tx in
            let ids = try await tx.query("""
                UPDATE schedules.runners SET state = \(SchedulesV1.RunnerState.lost.rawValue)
                WHERE id IN (SELECT id FROM schedules.runners WHERE state IN (1, 2) AND lease_us < \(now) FOR UPDATE SKIP LOCKED)
                RETURNING id
                """).map { try $0.decode(String.self, at: 0) }
            if !ids.isEmpty { try await Self.loseRuns(of: ids, reason: "its runner stopped heartbeating", now: now, on: tx) }
            return ids
        }
    }

    /// The runs the runners held: dispatched ones become LOST (and are retried per their plan's
    /// policy, as new plan runs); assigned but not yet confirmed ones go back to the queue.
    /// Called with the runners' rows locked (lock order: runners, then plan runs, in id order).
    static func loseRuns(of runners: [String], reason: String, now: Int64, on tx: PostgresConnection) async throws {
        try await tx.execute("""
            SELECT 1 FROM schedules.plan_runs WHERE runner_id = ANY(\(runners)) AND state IN (1, 2, 3) ORDER BY id FOR UPDATE
            """)
        try await tx.execute("""
            UPDATE schedules.plan_runs SET runner_id = '', claim_until_us = 0, state = \(SchedulesV1.PlanRunState.queued.rawValue)
            WHERE runner_id = ANY(\(runners)) AND state IN (1, 2)
            """)
        let lost = try await tx.query("""
            UPDATE schedules.plan_runs SET state = \(SchedulesV1.PlanRunState.lost.rawValue), ended_us = \(now), reason = \(reason)
            WHERE runner_id = ANY(\(runners)) AND state = \(SchedulesV1.PlanRunState.dispatched.rawValue)
            RETURNING org, id, attempt, max_retries, retry_backoff_us
            """)
        var retries: [(String, String, Int32, Int64)] = []
        for row in lost {
            let (org, id, attempt, maxRetries, backoff) = try row.decode((String, String, Int32, Int32, Int64).self)
            if attempt <= maxRetries { retries.append((org, id, attempt + 1, now + backoff)) }
        }
        guard !retries.isEmpty else { return }
        struct Retry: Encodable { let org: String; let id: String; let of: String; let attempt: Int32; let not_before_us: Int64 }
        let rows = try JSONB(encoding: retries.map { Retry(org: $0.0, id: PrefixedID.make(prefix: ScheduleIDs.planRun, now: now),
                                                           of: $0.1, attempt: $0.2, not_before_us: $0.3) })
        try await tx.execute("""
            INSERT INTO schedules.plan_runs (org, id, plan_id, experiment_id, experiment_revision, environment_id, integration_ids,
                options, max_in_flight, max_retries, retry_backoff_us, state, trigger, occurrence_us, due_us, not_before_us,
                created_us, attempt, retry_of)
            SELECT p.org, x.id, p.plan_id, p.experiment_id, p.experiment_revision, p.environment_id, p.integration_ids,
                p.options, p.max_in_flight, p.max_retries, p.retry_backoff_us, \(SchedulesV1.PlanRunState.pending.rawValue),
                \(SchedulesV1.PlanRunTrigger.retry.rawValue), p.occurrence_us, x.not_before_us, x.not_before_us, \(now),
                x.attempt, p.id
            FROM jsonb_to_recordset(\(rows)) AS x(org text, id text, of text, attempt int, not_before_us bigint)
            JOIN schedules.plan_runs p ON p.org = x.org AND p.id = x.of
            """)
    }

    static func decode(_ row: Row) throws -> SchedulesV1.Runner {
        let (id, name, address, labels, capacity, running, state, version) =
            try row.decode((String, String, String, String, Int32, Int32, Int32, String).self)
        return SchedulesV1.Runner(
            id: id, name: name, address: address,
            labels: (try? JSONDecoder().decode([String: String].self, from: Data(labels.utf8))) ?? [:],
            capacity: capacity, running: running, state: .init(rawValue: state), version: version,
            registeredAtUs: try row.decode(at: 8), lastHeartbeatAtUs: try row.decode(at: 9), leaseExpiresAtUs: try row.decode(at: 10),
            organizations: try row.decode(at: 11))
    }
}

extension Duration {
    var micros: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
