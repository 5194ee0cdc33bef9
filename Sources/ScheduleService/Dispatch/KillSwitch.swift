import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit

/// An execution a runner must stop, and how to reach that runner.
struct Cancellation: Sendable {
    let org: OrganizationID
    let runnerID: String
    let address: String
    let executionID: String

    /// Ends the given plan runs in `state` and returns the executions to stop. Each is also queued
    /// for its runner's next heartbeat, in case the direct CancelRun does not reach it.
    static func cancelRuns(ids: [String], state: SchedulesV1.PlanRunState, reason: String, now: Int64,
                           on tx: PostgresConnection) async throws -> [Cancellation] {
        try await PlanRunLocks.lock(ids, on: tx)
        return try await select(try await tx.query("""
            UPDATE schedules.plan_runs p SET state = \(state.rawValue), reason = \(reason), ended_us = \(now)
            FROM schedules.plan_runs old LEFT JOIN schedules.runners r ON r.id = old.runner_id
            WHERE p.id = ANY(\(ids)) AND old.org = p.org AND old.id = p.id AND p.state IN (1, 2, 3)
            RETURNING p.org, old.state, old.runner_id, COALESCE(r.address, ''), old.execution_id
            """), now: now, on: tx)
    }

    /// From rows (org, previous state, runner, address, execution): the dispatched ones, queued
    /// for heartbeat delivery.
    private static func select(_ rows: [Row], now: Int64, on tx: PostgresConnection) async throws -> [Cancellation] {
        var cancellations: [Cancellation] = []
        for row in rows {
            let (org, state, runner, address, execution) = try row.decode((String, Int32, String, String, String).self)
            guard state == SchedulesV1.PlanRunState.dispatched.rawValue, !execution.isEmpty, let org = OrganizationID(org) else { continue }
            cancellations.append(Cancellation(org: org, runnerID: runner, address: address, executionID: execution))
        }
        try await queue(cancellations, now: now, on: tx)
        return cancellations
    }

    static func queue(_ cancellations: [Cancellation], now: Int64, on tx: PostgresConnection) async throws {
        guard !cancellations.isEmpty else { return }
        try await tx.execute("""
            INSERT INTO schedules.cancellations (runner_id, execution_id, created_us)
            SELECT unnest(\(cancellations.map(\.runnerID))::text[]), unnest(\(cancellations.map(\.executionID))::text[]), \(now)
            ON CONFLICT DO NOTHING
            """)
    }

    /// CancelRun on each runner, concurrently; a runner that cannot be reached gets it with its
    /// next heartbeat. Answers the executions a runner confirmed.
    @discardableResult
    static func deliver(_ cancellations: [Cancellation], skipRollbacks: Bool, reason: String = "cancelled by ScheduleService",
                        connections: RunnerConnections, timeout: Duration, logger: Logger) async -> Int {
        guard !cancellations.isEmpty else { return 0 }
        return await withTaskGroup(of: Bool.self) { group in
            for cancellation in cancellations {
                group.addTask {
                    guard let runner = connections.runner(at: cancellation.address) else { return false }
                    do {
                        _ = try await runner.cancelRun(.init(executionId: cancellation.executionID, skipRollbacks: skipRollbacks, reason: reason),
                                                       options: .on(behalfOf: cancellation.org, timeout: timeout))
                        return true
                    } catch {
                        logger.notice("CancelRun did not reach the runner; it gets it with its next heartbeat", metadata: [
                            "runner": "\(cancellation.runnerID)", "execution": "\(cancellation.executionID)"])
                        return false
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}

/// The organisation kill switch: while an organisation is halted nothing of it is dispatched.
enum Halts {
    static func organizations(on tx: PostgresConnection) async throws -> Set<String> {
        Set(try await tx.query("SELECT org FROM schedules.halts").map { try $0.decode(String.self, at: 0) })
    }

    static func status(_ org: OrganizationID, database: PostgresClient) async throws -> SchedulesV1.HaltStatus {
        let rows = try await database.query("""
            SELECT halted_us, actor_kind, actor_id, reason, skip_rollbacks FROM schedules.halts WHERE org = \(org.rawValue)
            """)
        guard let row = rows.first else { return .init(halted: false) }
        let (at, kind, actor, reason, skip) = try row.decode((Int64, Int32, String, String, Bool).self)
        return .init(halted: true, haltedAtUs: at, haltedBy: .init(kind: .init(rawValue: kind), id: actor), reason: reason, skipRollbacks: skip)
    }

    /// Records the halt (keeping the first one's time), ends the organisation's open and
    /// dispatched plan runs, and answers what the runners must stop.
    static func halt(_ org: OrganizationID, _ request: SchedulesV1.HaltRequest, actor: CommonV1.Actor, now: Int64,
                     database: PostgresClient) async throws -> [Cancellation] {
        try await database.withTransaction { tx in
            try await tx.execute("""
                INSERT INTO schedules.halts (org, halted_us, actor_kind, actor_id, reason, skip_rollbacks)
                VALUES (\(org.rawValue), \(now), \(actor.kind.rawValue), \(actor.id), \(request.reason), \(request.skipRollbacks))
                ON CONFLICT (org) DO NOTHING
                """)
            // Plan runs are locked in id order wherever many are updated at once (see RunnerStore.loseRuns).
            try await tx.execute("""
                SELECT 1 FROM schedules.plan_runs WHERE org = \(org.rawValue) AND state IN (1, 2, 3) ORDER BY id FOR UPDATE
                """)
            try await tx.execute("""
                UPDATE schedules.plan_runs SET state = \(SchedulesV1.PlanRunState.skipped.rawValue), reason = \(SkipText.halted),
                    ended_us = \(now), runner_id = '', claim_until_us = 0
                WHERE org = \(org.rawValue) AND state IN (1, 2) AND NOT (runner_id <> '' AND claim_until_us >= \(now))
                """)
            let ids = try await tx.query("""
                SELECT id FROM schedules.plan_runs WHERE org = \(org.rawValue) AND state IN (1, 2, 3)
                """).map { try $0.decode(String.self, at: 0) }
            return try await Cancellation.cancelRuns(ids: ids, state: .cancelled, reason: "the organisation was halted", now: now, on: tx)
        }
    }

    static func resume(_ org: OrganizationID, database: PostgresClient) async throws {
        try await database.execute("DELETE FROM schedules.halts WHERE org = \(org.rawValue)")
    }
}
