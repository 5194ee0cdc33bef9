public import FaultlinePostgres
import Foundation
public import ServiceKit

/// The only state of the Reliably layer: which UUIDv4 a Reliably client uses for each Faultline
/// organisation, experiment, execution, plan, integration and environment, and (per execution)
/// the Faultline user-state version the client has already seen. Experiments, executions and
/// everything else stay in their own services; nothing here is a copy of them.
///
/// Schema `gateway_reliably`, owned by the Gateway beside `gateway` (its own migration history,
/// so neither set of migrations has to know about the other). UUIDs are stored lower-case, as
/// text, after `UUID(uuidString:)` parsed them.
public struct ReliablyIDs: Sendable {
    public static let migrations = Migrations(schema: "gateway_reliably", [
        Migration(version: 1, name: "reliably id mapping", sql: """
            CREATE TABLE organizations (
                org        text   PRIMARY KEY,
                uuid       text   NOT NULL UNIQUE,
                created_us bigint NOT NULL
            );
            CREATE TABLE ids (
                org          text   NOT NULL,
                kind         text   NOT NULL CHECK (kind IN ('experiment', 'execution', 'plan', 'integration', 'environment')),
                uuid         text   NOT NULL,
                faultline_id text   NOT NULL,
                -- executions: the Faultline user-state version the client acknowledged by
                -- reporting its own state (so a resume is shown once, not forever)
                seen_version bigint NOT NULL DEFAULT 0,
                created_us   bigint NOT NULL,
                PRIMARY KEY (org, kind, uuid),
                UNIQUE (org, kind, faultline_id)
            );
            """),
    ])

    public enum Kind: String, Sendable, CaseIterable {
        case experiment, execution, plan, integration, environment
    }

    let database: PostgresClient

    public init(database: PostgresClient) {
        self.database = database
    }

    /// The organisation's Reliably UUID, made on first use.
    public func organizationUUID(_ org: OrganizationID) async throws -> String {
        // Read first: every Reliably request asks, and only the first one writes.
        if let row = try await database.query("SELECT uuid FROM gateway_reliably.organizations WHERE org = \(org.rawValue)").first {
            return try row.decode(String.self, at: 0)
        }
        try await database.execute("""
            INSERT INTO gateway_reliably.organizations (org, uuid, created_us)
            VALUES (\(org.rawValue), \(Self.newUUID()), \(WallClock.nowMicros())) ON CONFLICT (org) DO NOTHING
            """)
        let rows = try await database.query("SELECT uuid FROM gateway_reliably.organizations WHERE org = \(org.rawValue)")
        return try rows[0].decode(String.self, at: 0)
    }

    /// The UUID of a Faultline id, made on first use. The caller checked that the id exists.
    public func uuid(of faultlineID: String, _ kind: Kind, in org: OrganizationID) async throws -> String {
        try await database.execute("""
            INSERT INTO gateway_reliably.ids (org, kind, uuid, faultline_id, created_us)
            VALUES (\(org.rawValue), \(kind.rawValue), \(Self.newUUID()), \(faultlineID), \(WallClock.nowMicros()))
            ON CONFLICT (org, kind, faultline_id) DO NOTHING
            """)
        let rows = try await database.query("""
            SELECT uuid FROM gateway_reliably.ids WHERE org = \(org.rawValue) AND kind = \(kind.rawValue) AND faultline_id = \(faultlineID)
            """)
        return try rows[0].decode(String.self, at: 0)
    }

    /// The UUID of a Faultline id when one was made, without making one.
    public func existingUUID(of faultlineID: String, _ kind: Kind, in org: OrganizationID) async throws -> String? {
        try await database.query("""
            SELECT uuid FROM gateway_reliably.ids WHERE org = \(org.rawValue) AND kind = \(kind.rawValue) AND faultline_id = \(faultlineID)
            """).first?.decode(String.self, at: 0)
    }

    /// The Faultline id a UUID names in `org`; nil for an unknown one (or another organisation's).
    public func faultlineID(of uuid: String, _ kind: Kind, in org: OrganizationID) async throws -> String? {
        try await database.query("""
            SELECT faultline_id FROM gateway_reliably.ids WHERE org = \(org.rawValue) AND kind = \(kind.rawValue) AND uuid = \(uuid)
            """).first?.decode(String.self, at: 0)
    }

    /// The user-state version the client of an execution has seen.
    func seenVersion(of uuid: String, in org: OrganizationID) async throws -> Int64 {
        try await database.query("""
            SELECT seen_version FROM gateway_reliably.ids WHERE org = \(org.rawValue) AND kind = 'execution' AND uuid = \(uuid)
            """).first?.decode(Int64.self, at: 0) ?? 0
    }

    /// Records that the client reported its state while the user state was at `version`.
    func markSeen(_ version: Int64, uuid: String, in org: OrganizationID) async throws {
        try await database.execute("""
            UPDATE gateway_reliably.ids SET seen_version = GREATEST(seen_version, \(version))
            WHERE org = \(org.rawValue) AND kind = 'execution' AND uuid = \(uuid)
            """)
    }

    /// Random (version 4) UUIDs: what Reliably's clients accept.
    static func newUUID() -> String { UUID().uuidString.lowercased() }

    /// The canonical form of a path UUID, or nil when it is not one.
    static func canonical(_ text: String?) -> String? {
        guard let text, text.utf8.count == 36, let uuid = UUID(uuidString: text) else { return nil }
        return uuid.uuidString.lowercased()
    }
}
