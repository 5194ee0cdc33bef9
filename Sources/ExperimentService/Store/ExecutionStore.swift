import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Executions, their user state, scores and retention. State changes are checked against the
/// Domain transition table under a row lock and announced on the events channel in the same
/// transaction, so watchers on any replica see them once they are committed.
struct ExecutionStore {
    let database: PostgresClient

    static let notFound = RPCError(.notFound, "no such execution")

    func create(_ org: OrganizationID, _ request: ExperimentsV1.CreateExecutionRequest, by actor: CommonV1.Actor) async throws -> (ExperimentsV1.Execution, String) {
        let now = WallClock.nowMicros()
        let id = ResourceID.make(.execution, now: now)
        let requestID: String? = request.requestId.isEmpty ? nil : request.requestId
        let executionID: String = try await database.withTransaction { tx in
            if let requestID {
                let rows = try await tx.query("SELECT id FROM experiments.executions WHERE org = \(org.rawValue) AND request_id = \(requestID)")
                if let row = rows.first { return try row.decode(String.self, at: 0) }
            }
            let rows = try await tx.query("""
                SELECT latest_revision, deleted_us IS NOT NULL FROM experiments.experiments
                WHERE org = \(org.rawValue) AND id = \(request.experimentId) FOR SHARE
                """)
            guard let row = rows.first else { throw ExperimentStore.notFound }
            let (latest, deleted) = try row.decode((Int64, Bool).self)
            if deleted { throw RPCError(.failedPrecondition, "the experiment was deleted; it cannot run") }
            let revision = request.experimentRevision == 0 ? latest : request.experimentRevision
            guard (1...latest).contains(revision) else { throw RPCError(.notFound, "no such revision of the experiment") }
            // A concurrent retry with the same key loses the unique index race and reads the winner.
            let inserted = try await tx.query("""
                INSERT INTO experiments.executions (org, id, experiment_id, revision, state, plan_id, plan_run_id, runner_id, environment_id,
                                        integration_ids, max_duration_us, created_us, actor_kind, actor_id, request_id)
                VALUES (\(org.rawValue), \(id), \(request.experimentId), \(revision), \(ExperimentsV1.ExecutionState.pending.rawValue),
                        \(request.planId), \(request.planRunId), \(request.runnerId), \(request.environmentId), \(request.integrationIds),
                        \(request.maxDurationUs), \(now), \(actor.kind.rawValue), \(actor.id), \(requestID))
                ON CONFLICT (org, request_id) WHERE request_id IS NOT NULL DO NOTHING
                RETURNING id
                """)
            if inserted.isEmpty, let requestID {
                let rows = try await tx.query("SELECT id FROM experiments.executions WHERE org = \(org.rawValue) AND request_id = \(requestID)")
                if let row = rows.first { return try row.decode(String.self, at: 0) }
            }
            return id
        }
        guard let execution = try await get(org, executionID) else { throw Self.notFound }
        let rows = try await database.query("""
            SELECT definition_json FROM experiments.revisions
            WHERE org = \(org.rawValue) AND experiment_id = \(execution.experimentId) AND revision = \(execution.experimentRevision)
            """)
        return (execution, try rows.first?.decode(String.self, at: 0) ?? "")
    }

    func get(_ org: OrganizationID, _ id: String) async throws -> ExperimentsV1.Execution? {
        let rows = try await database.query("SELECT \(ExecutionRecord.columns) FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id)")
        return try rows.first.map(ExecutionRecord.execution)
    }

    func start(_ org: OrganizationID, _ id: String, runnerID: String, startedAt: Int64) async throws -> ExperimentsV1.Execution {
        try await database.withTransaction { tx in
            let current = try await lockedStatus(tx, org, id)
            if case .moved = try current.moving(to: .running) {
                try await tx.execute("""
                    UPDATE experiments.executions SET state = \(ExperimentsV1.ExecutionState.running.rawValue),
                        started_us = \(startedAt == 0 ? WallClock.nowMicros() : startedAt),
                        runner_id = CASE WHEN \(runnerID) = '' THEN runner_id ELSE \(runnerID) END
                    WHERE org = \(org.rawValue) AND id = \(id)
                    """)
                try await announce(tx, id)
            }
        }
        guard let execution = try await get(org, id) else { throw Self.notFound }
        return execution
    }

    /// Ends an execution. `external`: the caller is no runner (see `CompleteExecutionRequest.external`),
    /// so a runner-owned execution is refused and a pending one is started on the way.
    func complete(_ org: OrganizationID, _ id: String, _ completion: Completion, digestSource: String, endedAt: Int64,
                  external: Bool) async throws -> ExperimentsV1.Execution {
        try await database.withTransaction { tx in
            let rows = try await tx.query("""
                SELECT state, complete_digest, encode(sha256(convert_to(\(digestSource), 'UTF8')), 'hex'), runner_id
                FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE
                """)
            guard let row = rows.first else { throw Self.notFound }
            let (state, previous, digest, runnerID) = try row.decode((Int32, String?, String, String).self)
            // Whatever its state: a runner's run is never the external reporter's to end.
            if external, !runnerID.isEmpty {
                throw RPCError(.permissionDenied, "runner \(runnerID) owns this execution; only it completes the execution")
            }
            let current = ExecutionStatus(ExperimentsV1.ExecutionState(rawValue: state)) ?? .pending
            if current.isTerminal {
                guard previous == digest else {
                    throw RPCError(.failedPrecondition, "execution is already \(current.rawValue); it was completed with another request")
                }
                return  // a retry of the request that completed it
            }
            let ended = endedAt == 0 ? WallClock.nowMicros() : endedAt
            let startsNow = try current.completingMove(to: completion.status, external: external) == .startedAndMoved(to: completion.status)
            try await tx.execute("""
                UPDATE experiments.executions SET state = \(completion.status.proto.rawValue), deviated = \(completion.outcome.deviated),
                    started_us = CASE WHEN \(startsNow) THEN \(ended) ELSE started_us END,
                    ended_us = \(ended), reason = \(completion.reason),
                    outcome = \(try JSONB(encoding: StoredOutcome(completion.outcome))),
                    journal_text = \(completion.journalText), journal = \(completion.journalCompact.map(JSONB.init)),
                    log = \(completion.log), log_truncated = \(completion.logTruncated), log_size = \(completion.logSize),
                    score = \(completion.score), score_parts = \(try completion.scoreParts.map { try JSONB(encoding: $0) }),
                    complete_digest = \(digest)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
            try await announce(tx, id)
        }
        guard let execution = try await get(org, id) else { throw Self.notFound }
        return execution
    }

    func list(_ org: OrganizationID, _ request: ExperimentsV1.ListExecutionsRequest) async throws -> ExperimentsV1.ListExecutionsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        let states = request.states.map(\.rawValue)
        let filters = PageToken.fingerprint(["executions", request.experimentId, request.planId, request.planRunId,
                                             states.map(String.init).joined(separator: ","),
                                             String(request.createdAfterUs), String(request.createdBeforeUs)])
        let after = try PageToken.decode(request.pageToken, filters: filters)
        var sql: SQL = "SELECT \(ExecutionRecord.columns) FROM experiments.executions WHERE org = \(org.rawValue)"
        if !request.experimentId.isEmpty { sql = sql + " AND experiment_id = \(request.experimentId)" }
        if !request.planId.isEmpty { sql = sql + " AND plan_id = \(request.planId)" }
        if !request.planRunId.isEmpty { sql = sql + " AND plan_run_id = \(request.planRunId)" }
        if !states.isEmpty { sql = sql + " AND state = ANY(\(states.map(String.init))::int[])" }
        if request.createdAfterUs != 0 { sql = sql + " AND created_us >= \(request.createdAfterUs)" }
        if request.createdBeforeUs != 0 { sql = sql + " AND created_us < \(request.createdBeforeUs)" }
        if let after { sql = sql + " AND (created_us, id) < (\(after.time), \(after.id))" }
        sql = sql + " ORDER BY created_us DESC, id DESC LIMIT \(size + 1)"
        let rows = try await database.query(sql)
        var response = ExperimentsV1.ListExecutionsResponse()
        response.executions = try rows.prefix(size).map(ExecutionRecord.execution)
        if rows.count > size, let last = response.executions.last {
            response.nextPageToken = PageToken(time: last.createdAtUs, id: last.id, filters: filters).encoded
        }
        return response
    }

    func journal(_ org: OrganizationID, _ id: String) async throws -> String {
        let rows = try await database.query("SELECT coalesce(journal_text, '') FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id)")
        guard let row = rows.first else { throw Self.notFound }
        return try row.decode(String.self, at: 0)
    }

    func log(_ org: OrganizationID, _ id: String) async throws -> ExperimentsV1.GetExecutionLogResponse {
        let rows = try await database.query("SELECT log, log_truncated, log_size FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id)")
        guard let row = rows.first else { throw Self.notFound }
        let (log, truncated, size) = try row.decode((String, Bool, Int64).self)
        return ExperimentsV1.GetExecutionLogResponse(log: log, truncated: truncated, originalSizeBytes: size)
    }

    // MARK: user state

    enum UserRequest {
        case pause(maxDurationUs: Int64)
        case resume
        case terminate(skipRollbacks: Bool)
    }

    func change(_ org: OrganizationID, _ id: String, _ request: UserRequest, reason: String, by actor: CommonV1.Actor) async throws -> ExperimentsV1.Execution {
        try await database.withTransaction { tx in
            let rows = try await tx.query("""
                SELECT state, user_request, skip_rollbacks FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE
                """)
            guard let row = rows.first else { throw Self.notFound }
            let (state, inForce, skipping) = try row.decode((Int32, String?, Bool).self)
            let status = ExecutionStatus(ExperimentsV1.ExecutionState(rawValue: state)) ?? .pending
            if status.isTerminal { throw RPCError(.failedPrecondition, "execution is already \(status.rawValue)") }
            let now = WallClock.nowMicros()
            let update: SQL
            switch request {
            case .pause(let maxDuration):
                if inForce == "terminate" { throw RPCError(.failedPrecondition, "a terminate request is in force") }
                update = "user_request = 'pause', pause_max_us = \(maxDuration), pause_expires_us = \(now + maxDuration)"
            case .resume:
                if inForce == "terminate" { throw RPCError(.failedPrecondition, "a terminate request is in force") }
                if inForce == nil { return }  // nothing to resume: not a change
                update = "user_request = NULL, pause_max_us = 0, pause_expires_us = 0"
            case .terminate(let skip):
                if inForce == "terminate", skipping == skip { return }
                update = "user_request = 'terminate', skip_rollbacks = \(skip), pause_max_us = 0, pause_expires_us = 0"
            }
            try await tx.execute("""
                UPDATE experiments.executions SET \(update), user_version = user_version + 1, user_at_us = \(now),
                    user_actor_kind = \(actor.kind.rawValue), user_actor_id = \(actor.id), user_reason = \(reason)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
            try await announce(tx, id)
        }
        guard let execution = try await get(org, id) else { throw Self.notFound }
        return execution
    }

    // MARK: scores and retention

    /// The score over an experiment's newest `window` scored executions (the caller checks the experiment exists).
    func experimentScore(_ org: OrganizationID, _ experimentID: String, window: Int) async throws -> ExperimentsV1.ExperimentScore? {
        let rows = try await database.query("""
            SELECT score FROM experiments.executions WHERE org = \(org.rawValue) AND experiment_id = \(experimentID) AND score IS NOT NULL
            ORDER BY created_us DESC, id DESC LIMIT \(window)
            """)
        return ExperimentStore.experimentScore(try rows.map { try $0.decode(Double.self, at: 0) }, window: window)
    }

    func retentionPolicy(_ org: OrganizationID) async throws -> ExperimentsV1.RetentionPolicy {
        let rows = try await database.query("SELECT max_age_us, max_per_experiment FROM experiments.retention_policies WHERE org = \(org.rawValue)")
        guard let row = rows.first else { return ExperimentsV1.RetentionPolicy() }
        let (age, count) = try row.decode((Int64, Int32).self)
        return ExperimentsV1.RetentionPolicy(maxAgeUs: age, maxExecutionsPerExperiment: count)
    }

    func setRetentionPolicy(_ org: OrganizationID, _ policy: ExperimentsV1.RetentionPolicy) async throws {
        try await database.execute("""
            INSERT INTO experiments.retention_policies (org, max_age_us, max_per_experiment)
            VALUES (\(org.rawValue), \(policy.maxAgeUs), \(policy.maxExecutionsPerExperiment))
            ON CONFLICT (org) DO UPDATE SET max_age_us = excluded.max_age_us, max_per_experiment = excluded.max_per_experiment
            """)
    }

    /// Deletes (or counts) the terminal executions the organisation's policy no longer keeps,
    /// with their events. PENDING and RUNNING executions are never deleted.
    func applyRetention(_ org: OrganizationID, dryRun: Bool, now: Int64 = WallClock.nowMicros()) async throws -> (executions: Int64, events: Int64) {
        let doomed: SQL = """
            WITH policy AS (SELECT max_age_us, max_per_experiment FROM experiments.retention_policies WHERE org = \(org.rawValue)),
            ranked AS (SELECT id, created_us, state,
                              row_number() OVER (PARTITION BY experiment_id ORDER BY created_us DESC, id DESC) AS rank
                       FROM experiments.executions WHERE org = \(org.rawValue)),
            doomed AS (SELECT r.id FROM ranked r, policy p
                       WHERE r.state NOT IN (1, 2)
                         AND ((p.max_age_us > 0 AND r.created_us < \(now) - p.max_age_us)
                              OR (p.max_per_experiment > 0 AND r.rank > p.max_per_experiment)))
            """
        let counting: SQL = dryRun
            ? " SELECT (SELECT count(*) FROM doomed), (SELECT count(*) FROM experiments.events WHERE execution_id IN (SELECT id FROM doomed))"
            : """
               , gone_events AS (DELETE FROM experiments.events WHERE execution_id IN (SELECT id FROM doomed) RETURNING 1),
                 gone AS (DELETE FROM experiments.executions WHERE org = \(org.rawValue) AND id IN (SELECT id FROM doomed) RETURNING 1)
               SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_events)
               """
        let rows = try await database.query(doomed + counting)
        return try rows.first?.decode((Int64, Int64).self) ?? (0, 0)
    }

    /// Organisations with a policy, for the periodic sweep.
    func organizationsWithRetention() async throws -> [OrganizationID] {
        try await database.query("SELECT org FROM experiments.retention_policies WHERE max_age_us > 0 OR max_per_experiment > 0")
            .compactMap { OrganizationID(try $0.decode(String.self, at: 0)) }
    }

    // MARK: helpers

    private func lockedStatus(_ tx: PostgresConnection, _ org: OrganizationID, _ id: String) async throws -> ExecutionStatus {
        let rows = try await tx.query("SELECT state FROM experiments.executions WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE")
        guard let row = rows.first else { throw Self.notFound }
        return ExecutionStatus(ExperimentsV1.ExecutionState(rawValue: try row.decode(Int32.self, at: 0))) ?? .pending
    }

    /// Wakes watchers on every replica once the transaction commits.
    private func announce(_ tx: PostgresConnection, _ id: String) async throws {
        try await tx.execute("SELECT pg_notify(\(ExperimentSchema.channel), \(id + ":0"))")
    }
}
