import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Experiments and their revisions in Postgres. Every statement is scoped by organisation, so
/// another organisation's id reads exactly like an unknown one.
struct ExperimentStore {
    let database: PostgresClient
    /// How many scored executions the experiment score in `Experiment` covers.
    var scoreWindow = 10

    struct Writer {
        var actor: CommonV1.Actor
        var requestID: String
    }

    static let notFound = RPCError(.notFound, "no such experiment")

    // MARK: create and update

    func create(_ org: OrganizationID, _ imported: ImportedExperiment, by writer: Writer) async throws -> (ExperimentsV1.Experiment, ExperimentsV1.ExperimentRevision) {
        let now = WallClock.nowMicros()
        let id = ResourceID.make(.experiment, now: now)
        let requestID: String? = writer.requestID.isEmpty ? nil : writer.requestID
        let existing: String? = try await database.withTransaction { tx in
            if let requestID {
                // A key is honoured for 24 hours; an older one may be reused.
                try await tx.execute("""
                    UPDATE experiments.experiments SET request_id = NULL
                    WHERE org = \(org.rawValue) AND request_id = \(requestID) AND created_us < \(now - 86_400_000_000)
                    """)
                let rows = try await tx.query("SELECT id FROM experiments.experiments WHERE org = \(org.rawValue) AND request_id = \(requestID) FOR UPDATE")
                if let row = rows.first { return try row.decode(String.self, at: 0) }
            }
            // A concurrent retry with the same key loses the unique index race and reads the winner.
            let inserted = try await tx.query("""
                INSERT INTO experiments.experiments (org, id, title, description, tags, latest_revision, created_us, updated_us, actor_kind, actor_id, request_id)
                VALUES (\(org.rawValue), \(id), \(imported.title), \(imported.description), \(imported.tags), 1, \(now), \(now),
                        \(writer.actor.kind.rawValue), \(writer.actor.id), \(requestID))
                ON CONFLICT (org, request_id) WHERE request_id IS NOT NULL DO NOTHING
                RETURNING id
                """)
            if inserted.isEmpty, let requestID {
                let rows = try await tx.query("SELECT id FROM experiments.experiments WHERE org = \(org.rawValue) AND request_id = \(requestID)")
                if let row = rows.first { return try row.decode(String.self, at: 0) }
            }
            try await insertRevision(tx, org, id, 1, imported, writer.actor, now)
            return nil
        }
        let experimentId = existing ?? id
        guard let experiment = try await get(org, experimentId, includeDeleted: true),
              let revision = try await revision(org, experimentId, 1, includeDefinition: true, includeDeleted: true)
        else { throw Self.notFound }
        return (experiment, revision)
    }

    func update(_ org: OrganizationID, _ id: String, _ imported: ImportedExperiment, expectedRevision: Int64,
                by actor: CommonV1.Actor) async throws -> (ExperimentsV1.Experiment, ExperimentsV1.ExperimentRevision) {
        let now = WallClock.nowMicros()
        let next: Int64 = try await database.withTransaction { tx in
            let rows = try await tx.query("""
                SELECT latest_revision, deleted_us IS NOT NULL FROM experiments.experiments WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE
                """)
            guard let row = rows.first else { throw Self.notFound }
            let (latest, deleted) = try row.decode((Int64, Bool).self)
            if deleted { throw RPCError(.failedPrecondition, "the experiment was deleted") }
            if expectedRevision != 0, expectedRevision != latest {
                throw RPCError(.aborted, "expected revision \(expectedRevision) but the latest is \(latest)")
            }
            let next = latest + 1
            try await insertRevision(tx, org, id, next, imported, actor, now)
            try await tx.execute("""
                UPDATE experiments.experiments SET latest_revision = \(next), title = \(imported.title), description = \(imported.description),
                    tags = \(imported.tags), updated_us = \(now)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
            return next
        }
        guard let experiment = try await get(org, id, includeDeleted: true),
              let revision = try await revision(org, id, next, includeDefinition: true, includeDeleted: true)
        else { throw Self.notFound }
        return (experiment, revision)
    }

    private func insertRevision(_ tx: PostgresConnection, _ org: OrganizationID, _ id: String, _ number: Int64,
                                _ imported: ImportedExperiment, _ actor: CommonV1.Actor, _ now: Int64) async throws {
        let warnings = imported.warnings.map(StoredProblem.init)
        try await tx.execute("""
            INSERT INTO experiments.revisions (org, experiment_id, revision, original_text, definition_json, definition, source_format, sha256,
                                   title, description, tags, warnings, created_us, actor_kind, actor_id)
            VALUES (\(org.rawValue), \(id), \(number), \(imported.document.originalText), \(imported.definitionJSON),
                    \(JSONB(imported.document.value.serialized())), \(imported.format.rawValue),
                    encode(sha256(convert_to(\(imported.definitionJSON), 'UTF8')), 'hex'),
                    \(imported.title), \(imported.description), \(imported.tags), \(try JSONB(encoding: warnings)),
                    \(now), \(actor.kind.rawValue), \(actor.id))
            """)
    }

    // MARK: reads

    func get(_ org: OrganizationID, _ id: String, includeDeleted: Bool) async throws -> ExperimentsV1.Experiment? {
        let rows = try await database.query(Self.select + """
             WHERE e.org = \(org.rawValue) AND e.id = \(id) AND (\(includeDeleted) OR e.deleted_us IS NULL)
            """)
        return try rows.first.map(experiment)
    }

    func list(_ org: OrganizationID, _ request: ExperimentsV1.ListExperimentsRequest) async throws -> ExperimentsV1.ListExperimentsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        let tags = request.tags.filter { !$0.isEmpty }
        let filters = PageToken.fingerprint(["experiments", request.titleQuery, String(request.includeDeleted)] + tags)
        let after = try PageToken.decode(request.pageToken, filters: filters)
        var sql = Self.select + " WHERE e.org = \(org.rawValue) AND (\(request.includeDeleted) OR e.deleted_us IS NULL)"
        if !request.titleQuery.isEmpty {
            sql = sql + " AND strpos(lower(e.title), lower(\(request.titleQuery))) > 0"
        }
        if !tags.isEmpty { sql = sql + " AND e.tags @> \(tags)" }
        if let after { sql = sql + " AND (e.created_us, e.id) < (\(after.time), \(after.id))" }
        sql = sql + " ORDER BY e.created_us DESC, e.id DESC LIMIT \(size + 1)"
        let rows = try await database.query(sql)
        var response = ExperimentsV1.ListExperimentsResponse()
        response.experiments = try rows.prefix(size).map(experiment)
        if rows.count > size, let last = response.experiments.last {
            response.nextPageToken = PageToken(time: last.createdAtUs, id: last.id, filters: filters).encoded
        }
        return response
    }

    func delete(_ org: OrganizationID, _ id: String) async throws -> ExperimentsV1.Experiment {
        try await database.execute("""
            UPDATE experiments.experiments SET deleted_us = \(WallClock.nowMicros())
            WHERE org = \(org.rawValue) AND id = \(id) AND deleted_us IS NULL
            """)
        guard let experiment = try await get(org, id, includeDeleted: true) else { throw Self.notFound }
        return experiment
    }

    /// Revision `number` (0 = the latest) of an experiment; nil when either is unknown, or the
    /// experiment was deleted and `includeDeleted` is false.
    func revision(_ org: OrganizationID, _ id: String, _ number: Int64, includeDefinition: Bool,
                  includeDeleted: Bool) async throws -> ExperimentsV1.ExperimentRevision? {
        let rows = try await database.query("""
            SELECT \(unescaped: Self.revisionColumns) FROM experiments.revisions r
            JOIN experiments.experiments e ON e.org = r.org AND e.id = r.experiment_id
            WHERE r.org = \(org.rawValue) AND r.experiment_id = \(id) AND (\(includeDeleted) OR e.deleted_us IS NULL)
              AND r.revision = CASE WHEN \(number) = 0 THEN e.latest_revision ELSE \(number) END
            """)
        return try rows.first.map { try revision($0, includeDefinition: includeDefinition) }
    }

    func revisions(_ org: OrganizationID, _ request: ExperimentsV1.ListExperimentRevisionsRequest) async throws -> ExperimentsV1.ListExperimentRevisionsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        let filters = PageToken.fingerprint(["revisions", request.experimentId])
        let after = try PageToken.decode(request.pageToken, filters: filters)
        try await requireExisting(org, request.experimentId, includeDeleted: request.includeDeleted)
        let rows = try await database.query("""
            SELECT \(unescaped: Self.revisionColumns) FROM experiments.revisions r
            WHERE r.org = \(org.rawValue) AND r.experiment_id = \(request.experimentId) AND r.revision < \(after?.time ?? Int64.max)
            ORDER BY r.revision DESC LIMIT \(size + 1)
            """)
        var response = ExperimentsV1.ListExperimentRevisionsResponse()
        response.revisions = try rows.prefix(size).map { try revision($0, includeDefinition: request.includeDefinition) }
        if rows.count > size, let last = response.revisions.last {
            response.nextPageToken = PageToken(time: last.revision, id: "", filters: filters).encoded
        }
        return response
    }

    /// NOT_FOUND unless the experiment exists (and is not deleted, unless `includeDeleted`): a
    /// deleted experiment's revisions and score go with it.
    func requireExisting(_ org: OrganizationID, _ id: String, includeDeleted: Bool) async throws {
        let found = try await database.query("""
            SELECT 1 FROM experiments.experiments WHERE org = \(org.rawValue) AND id = \(id) AND (\(includeDeleted) OR deleted_us IS NULL)
            """)
        guard !found.isEmpty else { throw Self.notFound }
    }

    // MARK: rows

    private static let select = SQL(unescaped: """
        SELECT e.id, e.title, e.description, e.tags, e.latest_revision, e.created_us, e.updated_us, coalesce(e.deleted_us, 0) AS deleted_us,
               e.actor_kind, e.actor_id,
               x.id AS x_id, x.state AS x_state, x.created_us AS x_created, x.ended_us AS x_ended, x.score AS x_score, x.score_parts::text AS x_parts,
               (SELECT array_agg(s.score::text ORDER BY s.created_us DESC, s.id DESC) FROM (
                   SELECT score, created_us, id FROM experiments.executions s
                   WHERE s.org = e.org AND s.experiment_id = e.id AND s.score IS NOT NULL
                   ORDER BY created_us DESC, id DESC LIMIT 10) s) AS scores
        FROM experiments.experiments e
        LEFT JOIN LATERAL (SELECT * FROM experiments.executions x WHERE x.org = e.org AND x.experiment_id = e.id
                           ORDER BY x.created_us DESC, x.id DESC LIMIT 1) x ON true
        """)

    private func experiment(_ row: Row) throws -> ExperimentsV1.Experiment {
        var e = ExperimentsV1.Experiment()
        e.id = try row.decode(column: "id")
        e.title = try row.decode(column: "title")
        e.description = try row.decode(column: "description")
        e.tags = try row.decode(column: "tags")
        e.latestRevision = try row.decode(column: "latest_revision")
        e.createdAtUs = try row.decode(column: "created_us")
        e.updatedAtUs = try row.decode(column: "updated_us")
        e.deletedAtUs = try row.decode(column: "deleted_us")
        e.createdBy = try actor(row, kind: "actor_kind", id: "actor_id")
        if let executionID = try row.decode(String?.self, column: "x_id") {
            var last = ExperimentsV1.ExecutionSummary()
            last.id = executionID
            last.state = ExperimentsV1.ExecutionState(rawValue: try row.decode(Int32.self, column: "x_state"))
            last.createdAtUs = try row.decode(column: "x_created")
            last.endedAtUs = try row.decode(column: "x_ended")
            last.score = try ExecutionRecord.score(value: row.decode(column: "x_score"), parts: row.decode(column: "x_parts"))
            e.lastExecution = last
        }
        let scores = try row.decode([String]?.self, column: "scores") ?? []
        e.score = Self.experimentScore(scores.compactMap(Double.init), window: scoreWindow)
        return e
    }

    static func experimentScore(_ newestFirst: [Double], window: Int) -> ExperimentsV1.ExperimentScore? {
        let score = ExperimentScore(newestFirst: newestFirst, policy: ScoringPolicy(window: window))
        guard let value = score.value else { return nil }
        return ExperimentsV1.ExperimentScore(value: value, executions: Int32(score.scoredExecutions), window: Int32(window),
                                             computedAtUs: WallClock.nowMicros(), formula: ExecutionRecord.experimentFormula)
    }

    private static let revisionColumns = """
        r.experiment_id, r.revision, r.definition_json, r.source_format, r.sha256, r.title, r.description, r.tags,
        r.created_us, r.actor_kind, r.actor_id, r.warnings::text AS warnings
        """

    private func revision(_ row: Row, includeDefinition: Bool) throws -> ExperimentsV1.ExperimentRevision {
        var r = ExperimentsV1.ExperimentRevision()
        r.experimentId = try row.decode(column: "experiment_id")
        r.revision = try row.decode(column: "revision")
        if includeDefinition { r.definitionJson = try row.decode(column: "definition_json") }
        r.sourceFormat = ExperimentsV1.SourceFormat(rawValue: try row.decode(Int32.self, column: "source_format"))
        r.sha256 = try row.decode(column: "sha256")
        r.title = try row.decode(column: "title")
        r.description = try row.decode(column: "description")
        r.tags = try row.decode(column: "tags")
        r.createdAtUs = try row.decode(column: "created_us")
        r.createdBy = try actor(row, kind: "actor_kind", id: "actor_id")
        r.warnings = try JSONB(try row.decode(String.self, column: "warnings")).decode([StoredProblem].self).map(\.proto)
        return r
    }
}

func actor(_ row: Row, kind: String, id: String) throws -> CommonV1.Actor? {
    let actorID: String = try row.decode(column: id)
    guard !actorID.isEmpty else { return nil }
    return CommonV1.Actor(kind: CommonV1.Actor.Kind(rawValue: try row.decode(Int32.self, column: kind)), id: actorID)
}

/// A validation warning as kept in `revisions.warnings`.
struct StoredProblem: Codable {
    var path: String
    var code: String
    var message: String

    init(_ problem: ExperimentsV1.ValidationProblem) {
        path = problem.path
        code = problem.code
        message = problem.message
    }

    var proto: ExperimentsV1.ValidationProblem {
        ExperimentsV1.ValidationProblem(path: path, severity: .warning, code: code, message: message)
    }
}
