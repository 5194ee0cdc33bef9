import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// The audit trail: who touched or revealed which secrets, when, for which execution. Names only.
struct AuditStore {
    let database: PostgresClient

    /// What a handler knows about the call; the store fills in the rest.
    struct Entry: Sendable {
        var actor: CommonV1.Actor
        var peer: String
        var environmentID = ""
        var integrationIDs: [String] = []
        var secretNames: [String] = []
        var executionID = ""
    }

    static func append(_ tx: PostgresConnection, _ org: OrganizationID, _ action: SecretsV1.AuditAction, _ entry: Entry) async throws {
        let now = WallClock.nowMicros()
        try await tx.execute("""
            INSERT INTO secrets.audit_events (org, id, occurred_us, action, actor_kind, actor_id, peer, environment_id,
                                              integration_ids, secret_names, execution_id)
            VALUES (\(org.rawValue), \(ResourceID.make(.audit, now: now)), \(now), \(action.rawValue), \(entry.actor.kind.rawValue),
                    \(entry.actor.id), \(entry.peer), \(entry.environmentID), \(entry.integrationIDs), \(entry.secretNames), \(entry.executionID))
            """)
    }

    func append(_ org: OrganizationID, _ action: SecretsV1.AuditAction, _ entry: Entry) async throws {
        try await database.withTransaction { tx in try await Self.append(tx, org, action, entry) }
    }

    func list(_ org: OrganizationID, _ request: SecretsV1.ListAuditEventsRequest) async throws -> SecretsV1.ListAuditEventsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        let actions = request.actions.map(\.rawValue).map(Int64.init).sorted()
        let filters = "audit|\(request.environmentId)|\(request.executionId)|\(actions)|\(request.sinceUs)|\(request.untilUs)"
        var sql: SQL = """
            SELECT id, occurred_us, action, actor_kind, actor_id, peer, environment_id, integration_ids, secret_names, execution_id
            FROM secrets.audit_events WHERE org = \(org.rawValue)
            """
        if !request.environmentId.isEmpty { sql = sql + " AND environment_id = \(request.environmentId)" }
        if !request.executionId.isEmpty { sql = sql + " AND execution_id = \(request.executionId)" }
        if !actions.isEmpty { sql = sql + " AND action = ANY(\(actions.map(String.init))::int[])" }
        if request.sinceUs > 0 { sql = sql + " AND occurred_us >= \(request.sinceUs)" }
        if request.untilUs > 0 { sql = sql + " AND occurred_us < \(request.untilUs)" }
        if let after = try PageToken.decode(request.pageToken, filters: filters) {
            guard let time = Int64(after.key) else { throw RPCError(.invalidArgument, "page_token is malformed or belongs to another query") }
            sql = sql + " AND (occurred_us, id) < (\(time), \(after.id))"
        }
        let rows = try await database.query(sql + " ORDER BY occurred_us DESC, id DESC LIMIT \(size + 1)")
        var response = SecretsV1.ListAuditEventsResponse()
        response.events = try rows.prefix(size).map { row in
            let (id, occurred, action, actorKind, actorID, peer, environmentID, integrationIDs, secretNames, executionID) =
                try row.decode((String, Int64, Int32, Int32, String, String, String, [String], [String], String).self)
            return SecretsV1.AuditEvent(id: id, occurredAtUs: occurred, action: .init(rawValue: action),
                                        actor: CommonV1.Actor(kind: .init(rawValue: actorKind), id: actorID),
                                        peer: peer, environmentId: environmentID, integrationIds: integrationIDs,
                                        secretNames: secretNames, executionId: executionID)
        }
        if rows.count > size, let last = response.events.last {
            response.nextPageToken = PageToken(key: String(last.occurredAtUs), id: last.id).encoded(filters: filters)
        }
        return response
    }
}
