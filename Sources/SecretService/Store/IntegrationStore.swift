import FaultlinePostgres
import NIOCore
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Integrations: a validated configuration stored as its serialized message (it names secrets,
/// it never holds them) and an optional environment of their own.
struct IntegrationStore {
    let database: PostgresClient

    static let notFound = RPCError(.notFound, "no such integration")

    func create(_ org: OrganizationID, _ request: SecretsV1.CreateIntegrationRequest) async throws -> SecretsV1.Integration {
        let now = WallClock.nowMicros()
        let id = ResourceID.make(.integration, now: now)
        let config = try Array(buffer: (request.config ?? .init()).serializedBytes())
        try await database.withTransaction { tx in
            try await requireEnvironment(tx, org, request.environmentId)
            try await tx.execute("""
                INSERT INTO secrets.integrations (org, id, name, description, config, environment_id, version, created_us, updated_us)
                VALUES (\(org.rawValue), \(id), \(request.name), \(request.description), \(config),
                        \(request.environmentId.isEmpty ? nil : request.environmentId), 1, \(now), \(now))
                """)
        }
        return try await require(org, id)
    }

    func update(_ org: OrganizationID, _ request: SecretsV1.UpdateIntegrationRequest) async throws -> SecretsV1.Integration {
        let config = try Array(buffer: (request.config ?? .init()).serializedBytes())
        let id = request.integrationId
        try await database.withTransaction { tx in
            guard let row = try await tx.query("SELECT version FROM secrets.integrations WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE").first else {
                throw Self.notFound
            }
            let version = try row.decode(Int64.self, at: 0)
            if request.expectedVersion != 0, request.expectedVersion != version {
                throw RPCError(.aborted, "expected version \(request.expectedVersion) but the integration is at \(version)")
            }
            try await requireEnvironment(tx, org, request.environmentId)
            try await tx.execute("""
                UPDATE secrets.integrations SET name = \(request.name), description = \(request.description), config = \(config),
                    environment_id = \(request.environmentId.isEmpty ? nil : request.environmentId), version = version + 1,
                    updated_us = \(WallClock.nowMicros())
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
        }
        return try await require(org, id)
    }

    func delete(_ org: OrganizationID, _ id: String) async throws {
        guard try await database.execute("DELETE FROM secrets.integrations WHERE org = \(org.rawValue) AND id = \(id)") == 1 else {
            throw Self.notFound
        }
    }

    func get(_ org: OrganizationID, _ id: String) async throws -> SecretsV1.Integration? {
        try await database.query(Self.select + " WHERE org = \(org.rawValue) AND id = \(id)").first.map(Self.integration)
    }

    func require(_ org: OrganizationID, _ id: String) async throws -> SecretsV1.Integration {
        guard let integration = try await get(org, id) else { throw Self.notFound }
        return integration
    }

    func list(_ org: OrganizationID, _ request: SecretsV1.ListIntegrationsRequest) async throws -> SecretsV1.ListIntegrationsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        var sql = Self.select + " WHERE org = \(org.rawValue)"
        if let after = try PageToken.decode(request.pageToken, filters: "integrations") {
            sql = sql + " AND (name, id) > (\(after.key), \(after.id))"
        }
        let rows = try await database.query(sql + " ORDER BY name, id LIMIT \(size + 1)")
        var response = SecretsV1.ListIntegrationsResponse(integrations: try rows.prefix(size).map(Self.integration))
        if rows.count > size, let last = response.integrations.last {
            response.nextPageToken = PageToken(key: last.name, id: last.id).encoded(filters: "integrations")
        }
        return response
    }

    private func requireEnvironment(_ tx: PostgresConnection, _ org: OrganizationID, _ id: String) async throws {
        guard !id.isEmpty else { return }
        guard try await tx.query("SELECT 1 FROM secrets.environments WHERE org = \(org.rawValue) AND id = \(id) FOR SHARE").first != nil else {
            throw EnvironmentStore.notFound
        }
    }

    private static let select: SQL = """
        SELECT id, name, description, config, COALESCE(environment_id, ''), version, created_us, updated_us FROM secrets.integrations
        """

    private static func integration(_ row: Row) throws -> SecretsV1.Integration {
        let (id, name, description, config, environmentID, version, created, updated) =
            try row.decode((String, String, String, [UInt8], String, Int64, Int64, Int64).self)
        return SecretsV1.Integration(id: id, name: name, description: description, config: try SecretsV1.IntegrationConfig(serializedBytes: config),
                                     environmentId: environmentID, createdAtUs: created, updatedAtUs: updated, version: version)
    }
}
