import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// Environments and their secrets. Values are sealed here, just before the INSERT, and opened
/// only by `reveal`; every other read returns names and delivery.
struct EnvironmentStore {
    let database: PostgresClient
    let keys: DataKeys

    static let notFound = RPCError(.notFound, "no such environment")

    // MARK: writes

    func create(_ org: OrganizationID, _ request: SecretsV1.CreateEnvironmentRequest, audit: AuditStore.Entry) async throws -> SecretsV1.Environment {
        let now = WallClock.nowMicros()
        let id = ResourceID.make(.environment, now: now)
        try await database.withTransaction { tx in
            try await tx.execute("""
                INSERT INTO secrets.environments (org, id, name, description, variables, version, created_us, updated_us)
                VALUES (\(org.rawValue), \(id), \(request.name), \(request.description), \(try JSONB(encoding: request.variables)), 1, \(now), \(now))
                """)
            if !request.secrets.isEmpty {
                let key = try await keys.active(tx, org)
                for secret in request.secrets { try await upsert(tx, org, id, secret, key, now) }
            }
            var entry = audit
            entry.environmentID = id
            entry.secretNames = request.secrets.map(\.name).sorted()
            try await AuditStore.append(tx, org, .createEnvironment, entry)
        }
        return try await require(org, id)
    }

    func update(_ org: OrganizationID, _ request: SecretsV1.UpdateEnvironmentRequest, maximumSecrets: Int,
                audit: AuditStore.Entry) async throws -> SecretsV1.Environment {
        let now = WallClock.nowMicros()
        let id = request.environmentId
        try await database.withTransaction { tx in
            guard let row = try await tx.query("""
                SELECT version, variables FROM secrets.environments WHERE org = \(org.rawValue) AND id = \(id) FOR UPDATE
                """).first else { throw Self.notFound }
            let (version, stored) = try row.decode((Int64, JSONB).self)
            if request.expectedVersion != 0, request.expectedVersion != version {
                throw RPCError(.aborted, "expected version \(request.expectedVersion) but the environment is at \(version)")
            }
            var variables = request.replaceVariables ? [:] : try stored.decode([String: String].self)
            variables.merge(request.variables) { $1 }
            try await tx.execute("""
                UPDATE secrets.environments SET
                    name = COALESCE(\(request.name?.value), name), description = COALESCE(\(request.description?.value), description),
                    variables = \(try JSONB(encoding: variables)), version = version + 1, updated_us = \(now)
                WHERE org = \(org.rawValue) AND id = \(id)
                """)
            // The data key before any secret row: a rotation locks keys then secrets, so the same
            // order here can wait for one but never deadlock with it.
            let key = request.setSecrets.isEmpty ? nil : try await keys.active(tx, org)
            if !request.deleteSecrets.isEmpty {
                try await tx.execute("""
                    DELETE FROM secrets.secrets WHERE org = \(org.rawValue) AND environment_id = \(id) AND name = ANY(\(request.deleteSecrets))
                    """)
            }
            if let key {
                for secret in request.setSecrets { try await upsert(tx, org, id, secret, key, now) }
                let count = try await tx.query("SELECT count(*) FROM secrets.secrets WHERE org = \(org.rawValue) AND environment_id = \(id)")
                    .first?.decode(Int64.self, at: 0) ?? 0
                guard count <= maximumSecrets else {
                    throw RPCError(.resourceExhausted, "the environment would hold \(count) secrets; the limit is \(maximumSecrets)")
                }
            }
            var entry = audit
            entry.environmentID = id
            entry.secretNames = Array(Set(request.setSecrets.map(\.name) + request.deleteSecrets)).sorted()
            try await AuditStore.append(tx, org, .updateEnvironment, entry)
        }
        return try await require(org, id)
    }

    func delete(_ org: OrganizationID, _ id: String, audit: AuditStore.Entry) async throws {
        try await database.withTransaction { tx in
            let users = try await tx.query("""
                SELECT name FROM secrets.integrations WHERE org = \(org.rawValue) AND environment_id = \(id) ORDER BY name LIMIT 5
                """).map { try $0.decode(String.self, at: 0) }
            if !users.isEmpty {
                throw RPCError(.failedPrecondition, "the environment is used by integration(s) \(users.joined(separator: ", "))")
            }
            guard try await tx.execute("DELETE FROM secrets.environments WHERE org = \(org.rawValue) AND id = \(id)") == 1 else {
                throw Self.notFound
            }
            var entry = audit
            entry.environmentID = id
            try await AuditStore.append(tx, org, .deleteEnvironment, entry)
        }
    }

    private func upsert(_ tx: PostgresConnection, _ org: OrganizationID, _ environmentID: String,
                        _ secret: SecretsV1.SecretInput, _ key: DataKeys.Unwrapped, _ now: Int64) async throws {
        let delivery = StoredDelivery(secret.delivery)
        let sealed = try SecretCipher.seal(secret.value, key: key.key, binding: .secret(
            org: org.rawValue, environmentID: environmentID, name: secret.name, dataKeyID: key.id))
        try await tx.execute("""
            INSERT INTO secrets.secrets (org, environment_id, name, delivery_kind, env_var, file_path, path_env_var, ciphertext, data_key_id, updated_us)
            VALUES (\(org.rawValue), \(environmentID), \(secret.name), \(delivery.kind), \(delivery.envVar), \(delivery.filePath),
                    \(delivery.pathEnvVar), \(sealed), \(key.id), \(now))
            ON CONFLICT (org, environment_id, name) DO UPDATE SET
                delivery_kind = EXCLUDED.delivery_kind, env_var = EXCLUDED.env_var, file_path = EXCLUDED.file_path,
                path_env_var = EXCLUDED.path_env_var, ciphertext = EXCLUDED.ciphertext, data_key_id = EXCLUDED.data_key_id,
                updated_us = EXCLUDED.updated_us
            """)
    }

    // MARK: reads

    func get(_ org: OrganizationID, _ id: String) async throws -> SecretsV1.Environment? {
        guard let row = try await database.query(Self.select + " WHERE org = \(org.rawValue) AND id = \(id)").first else { return nil }
        var environment = try Self.environment(row)
        environment.secrets = try await database.query("""
            SELECT name, delivery_kind, env_var, file_path, path_env_var, updated_us FROM secrets.secrets
            WHERE org = \(org.rawValue) AND environment_id = \(id) ORDER BY name
            """).map { row in
            let (name, kind, envVar, path, pathEnv, updated) = try row.decode((String, Int32, String, String, String, Int64).self)
            return SecretsV1.SecretInfo(name: name, delivery: StoredDelivery(kind: kind, envVar: envVar, filePath: path, pathEnvVar: pathEnv).proto,
                                        updatedAtUs: updated)
        }
        return environment
    }

    func require(_ org: OrganizationID, _ id: String) async throws -> SecretsV1.Environment {
        guard let environment = try await get(org, id) else { throw Self.notFound }
        return environment
    }

    func list(_ org: OrganizationID, _ request: SecretsV1.ListEnvironmentsRequest) async throws -> SecretsV1.ListEnvironmentsResponse {
        let size = try PageToken.pageSize(request.pageSize)
        var sql = Self.select + " WHERE org = \(org.rawValue)"
        if let after = try PageToken.decode(request.pageToken, filters: "environments") {
            sql = sql + " AND (name, id) > (\(after.key), \(after.id))"
        }
        let rows = try await database.query(sql + " ORDER BY name, id LIMIT \(size + 1)")
        var response = SecretsV1.ListEnvironmentsResponse()
        for row in rows.prefix(size) {
            let id = try row.decode(String.self, at: 0)
            if let environment = try await get(org, id) { response.environments.append(environment) }
        }
        if rows.count > size, let last = response.environments.last {
            response.nextPageToken = PageToken(key: last.name, id: last.id).encoded(filters: "environments")
        }
        return response
    }

    /// The environment in the clear, for a runner. Opens every secret; a ciphertext that does not
    /// open under its binding is DATA_LOSS and reveals nothing.
    func reveal(_ org: OrganizationID, _ id: String) async throws -> SecretsV1.RevealedEnvironment {
        try await database.withTransaction(isolation: .repeatableRead) { tx in
            guard let row = try await tx.query("SELECT variables FROM secrets.environments WHERE org = \(org.rawValue) AND id = \(id)").first else {
                throw Self.notFound
            }
            var revealed = SecretsV1.RevealedEnvironment(variables: try row.decode(JSONB.self, at: 0).decode([String: String].self))
            let rows = try await tx.query("""
                SELECT name, delivery_kind, env_var, file_path, path_env_var, ciphertext, data_key_id FROM secrets.secrets
                WHERE org = \(org.rawValue) AND environment_id = \(id) ORDER BY name
                """)
            guard !rows.isEmpty else { return revealed }
            let dataKeys = try await keys.all(tx, org)
            for row in rows {
                let (name, kind, envVar, path, pathEnv, sealed, keyID) = try row.decode((String, Int32, String, String, String, [UInt8], String).self)
                guard let key = dataKeys[keyID] else { throw SecretCipher.tampered }
                let value = try SecretCipher.open(sealed, key: key, binding: .secret(org: org.rawValue, environmentID: id, name: name, dataKeyID: keyID))
                revealed.secrets.append(.init(name: name, delivery: StoredDelivery(kind: kind, envVar: envVar, filePath: path, pathEnvVar: pathEnv).proto,
                                              value: value))
            }
            return revealed
        }
    }

    private static let select: SQL = "SELECT id, name, description, variables, version, created_us, updated_us FROM secrets.environments"

    private static func environment(_ row: Row) throws -> SecretsV1.Environment {
        let (id, name, description, variables, version, created, updated) = try row.decode((String, String, String, JSONB, Int64, Int64, Int64).self)
        return SecretsV1.Environment(id: id, name: name, description: description, variables: try variables.decode([String: String].self),
                                     secrets: [], createdAtUs: created, updatedAtUs: updated, version: version)
    }
}

/// A delivery as the `secrets` table's columns hold it.
struct StoredDelivery {
    var kind: Int32
    var envVar = ""
    var filePath = ""
    var pathEnvVar = ""

    init(kind: Int32, envVar: String, filePath: String, pathEnvVar: String) {
        (self.kind, self.envVar, self.filePath, self.pathEnvVar) = (kind, envVar, filePath, pathEnvVar)
    }

    /// Requests are validated first; an absent delivery means an env var named like the secret.
    init(_ delivery: SecretsV1.SecretDelivery?) {
        switch delivery?.target {
        case .file(let file): self.init(kind: 2, envVar: "", filePath: file.path, pathEnvVar: file.pathEnvVar)
        case .envVar(let env): self.init(kind: 1, envVar: env.name, filePath: "", pathEnvVar: "")
        case nil: self.init(kind: 1, envVar: "", filePath: "", pathEnvVar: "")
        }
    }

    var proto: SecretsV1.SecretDelivery {
        kind == 2 ? .init(target: .file(.init(path: filePath, pathEnvVar: pathEnvVar)))
            : .init(target: .envVar(.init(name: envVar)))
    }
}
