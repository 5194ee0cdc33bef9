import Logging

/// One schema change. `sql` may hold several statements; it runs with `search_path` set to the
/// service's schema, so unqualified names land there.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// A service's schema and its ordered migrations, applied at start:
///
/// ```swift
/// let migrations = Migrations(schema: "experiments", [
///     Migration(version: 1, name: "experiments", sql: "CREATE TABLE experiments (id uuid PRIMARY KEY)"),
/// ])
/// try await migrations.apply(on: client)
/// ```
/// Replicas starting together serialise on `pg_advisory_lock`; each migration and its record in
/// `<schema>.schema_migrations` commit together, so a crash leaves nothing half-applied.
public struct Migrations: Sendable {
    public let schema: String
    public let migrations: [Migration]

    public init(schema: String, _ migrations: [Migration]) {
        self.schema = schema
        self.migrations = migrations
    }

    /// Applies what is missing; returns the versions applied by this call (empty when current).
    @discardableResult
    public func apply(on client: PostgresClient) async throws -> [Int] {
        try validate()
        return try await client.withConnection { connection in
            // A session-level lock, keyed by schema: released explicitly, or by the server if
            // this process dies holding it.
            try await connection.execute("SELECT pg_advisory_lock(hashtextextended(\("faultline.migrations." + schema), 0))")
            do {
                let applied = try await applyLocked(on: connection, logger: client.configuration.logger)
                try await unlock(connection)
                return applied
            } catch {
                _ = try? await connection.execute("ROLLBACK")
                _ = try? await unlock(connection)
                throw error
            }
        }
    }

    private func unlock(_ connection: PostgresConnection) async throws {
        try await connection.execute("SELECT pg_advisory_unlock(hashtextextended(\("faultline.migrations." + schema), 0))")
    }

    private func applyLocked(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        let table = SQL(unescaped: SQL.quoteIdentifier(schema) + ".schema_migrations")
        try await connection.execute("CREATE SCHEMA IF NOT EXISTS \(identifier: schema)")
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(table) (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """)
        var recorded: [Int: String] = [:]
        for row in try await connection.query("SELECT version, name FROM \(table)") {
            let (version, name) = try row.decode((Int, String).self)
            recorded[version] = name
        }
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0.name) })
        for (version, name) in recorded where known[version] != name {
            // The database is ahead of this binary, or history was edited: refuse to guess.
            throw DatabaseError(.invalidMigrations, reason: known[version] == nil
                ? "schema \(schema) has version \(version) (\(name)), which this program does not know"
                : "schema \(schema) version \(version) was applied as \"\(name)\", not \"\(known[version]!)\"")
        }
        var applied: [Int] = []
        for migration in migrations where recorded[migration.version] == nil {
            try await connection.execute("BEGIN")
            try await connection.execute("SET LOCAL search_path TO \(identifier: schema), public")
            try await connection.executeScript(migration.sql)
            try await connection.execute("INSERT INTO \(table) (version, name) VALUES (\(migration.version), \(migration.name))")
            try await connection.execute("COMMIT")
            logger.info("applied migration", metadata: ["db.schema": "\(schema)", "db.migration": "\(migration.version) \(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    private func validate() throws(DatabaseError) {
        guard !schema.isEmpty else { throw DatabaseError(.invalidMigrations, reason: "empty schema name") }
        var previous = Int.min
        for migration in migrations {
            guard migration.version > previous else {
                throw DatabaseError(.invalidMigrations, reason:
                    "versions must strictly increase (\(migration.version) follows \(previous))")
            }
            previous = migration.version
        }
    }
}
