public import FaultlinePostgres
import Foundation
public import Logging
public import ServiceKit

/// The caller a bearer token resolved to.
public struct Principal: Sendable, Equatable {
    public var organization: OrganizationID
    public var tokenID: String
    public var role: Role
    /// The token this one was minted from (a console session's API token), else its own id:
    /// what a session derived from this caller must stay tied to.
    public var sourceTokenID: String = ""
}

/// A token as listed: never its value, which exists only in the creation response.
public struct TokenInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    public var createdAtUs: Int64
    public var expiresAtUs: Int64?
    public var revokedAtUs: Int64?

    enum CodingKeys: String, CodingKey {
        case id, name, role
        case createdAtUs = "created_at_us"
        case expiresAtUs = "expires_at_us"
        case revokedAtUs = "revoked_at_us"
    }
}

/// Organisations and API tokens in schema `gateway`. A token is `flt_` + 43 base64url
/// characters (256 random bits); only its SHA-256 is stored, so a database dump reveals none.
public struct TokenStore: Sendable {
    public static let migrations = Migrations(schema: "gateway", [
        Migration(version: 1, name: "organisations and tokens", sql: """
            CREATE TABLE organizations (
                id         text   PRIMARY KEY,
                name       text   NOT NULL,
                created_us bigint NOT NULL
            );
            CREATE TABLE api_tokens (
                id         text   PRIMARY KEY,
                org        text   NOT NULL REFERENCES organizations (id),
                name       text   NOT NULL,
                role       text   NOT NULL CHECK (role IN ('owner', 'editor', 'viewer', 'runner')),
                sha256     bytea  NOT NULL UNIQUE,
                created_us bigint NOT NULL,
                expires_us bigint,
                revoked_us bigint
            );
            CREATE INDEX api_tokens_by_org ON api_tokens (org, created_us DESC, id DESC);
            """),
        // A console session is a token minted from an API token: it lives only while that one does.
        Migration(version: 2, name: "tokens minted from another token", sql: """
            ALTER TABLE api_tokens ADD COLUMN parent text REFERENCES api_tokens (id);
            CREATE INDEX api_tokens_by_parent ON api_tokens (parent) WHERE parent IS NOT NULL;
            """),
    ])

    public let database: PostgresClient
    /// Recently verified tokens (see `TokenCache` for its staleness bounds). One per store, so
    /// one per gateway.
    let cache: TokenCache

    /// The channel a revocation is announced on (payload: the token id), so every gateway
    /// replica drops the token from its cache at once.
    public static let revocationChannel = "faultline_gateway_token_revoked"

    /// - tokenCacheTTL: how long a verified token is trusted without asking Postgres again. It
    ///   bounds how long a token revoked through another gateway can still pass here, and only
    ///   while this gateway's notification connection is down; expiry is always exact.
    public init(database: PostgresClient, tokenCacheTTL: Duration = .seconds(10)) {
        self.init(database: database, cache: TokenCache(ttl: tokenCacheTTL))
    }

    init(database: PostgresClient, cache: TokenCache) {
        self.database = database
        self.cache = cache
    }

    public func createOrganization(name: String) async throws -> OrganizationID {
        let id = "org_" + Self.randomHex(bytes: 12)
        try await database.execute("""
            INSERT INTO gateway.organizations (id, name, created_us) VALUES (\(id), \(name), \(Self.nowUs()))
            """)
        return OrganizationID(id)!
    }

    /// Creates a token and returns its value: the only time it is ever known. A token with a
    /// `parent` authenticates only while the parent is live too (not revoked, not expired).
    public func createToken(in organization: OrganizationID, name: String, role: Role,
                            expiresAtUs: Int64? = nil, parent: String? = nil) async throws -> (info: TokenInfo, value: String) {
        let value = Self.randomTokenValue()
        let info = TokenInfo(id: "tok_" + Self.randomHex(bytes: 12), name: name, role: role,
                             createdAtUs: Self.nowUs(), expiresAtUs: expiresAtUs, revokedAtUs: nil)
        try await database.execute("""
            INSERT INTO gateway.api_tokens (id, org, name, role, sha256, created_us, expires_us, parent)
            VALUES (\(info.id), \(organization.rawValue), \(name), \(role.rawValue), \(Self.digest(value)),
                    \(info.createdAtUs), \(expiresAtUs), \(parent))
            """)
        return (info, value)
    }

    /// The principal of a live (not revoked, not expired) token, or nil. Answered from the
    /// cache when it can; `LookupGate.Overloaded` when too many uncached tokens wait for Postgres.
    public func authenticate(_ value: String) async throws -> Principal? {
        // Shape check first: garbage never reaches the cache or the database.
        guard value.hasPrefix("flt_"), value.utf8.count == 47 else { return nil }
        let digest = TokenDigest(value)
        switch cache.lookup(digest) {
        case .live(let principal): return principal
        case .refused: return nil
        case .unknown: break
        }
        return try await cache.gate.withTurn {
            // Another request may have verified it while this one waited for its turn.
            switch cache.lookup(digest) {
            case .live(let principal): return principal
            case .refused: return nil
            case .unknown: break
            }
            let verifiedAt = ContinuousClock.now
            let answer = try await lookUp(digest)
            cache.remember(digest, answer, verifiedAt: verifiedAt)
            return answer?.principal
        }
    }

    /// The token's principal and the moment it stops being live: its own expiry or its parent's,
    /// whichever comes first (`LEAST` skips NULLs), so a cached session ends with its API token.
    func lookUp(_ digest: TokenDigest) async throws -> (principal: Principal, expiresAtUs: Int64?)? {
        let now = Self.nowUs()
        let rows = try await database.query("""
            SELECT t.org, t.id, t.role, COALESCE(t.parent, t.id), LEAST(t.expires_us, p.expires_us) FROM gateway.api_tokens t
            LEFT JOIN gateway.api_tokens p ON p.id = t.parent
            WHERE t.sha256 = \(digest.bytes) AND t.revoked_us IS NULL
              AND (t.expires_us IS NULL OR t.expires_us > \(now))
              AND (t.parent IS NULL OR (p.revoked_us IS NULL AND (p.expires_us IS NULL OR p.expires_us > \(now))))
            """)
        guard let row = rows.first else { return nil }
        let (org, id, role, source, expires) = try row.decode((String, String, String, String, Int64?).self)
        guard let organization = OrganizationID(org), let role = Role(rawValue: role) else { return nil }
        return (Principal(organization: organization, tokenID: id, role: role, sourceTokenID: source), expires)
    }

    public func listTokens(in organization: OrganizationID) async throws -> [TokenInfo] {
        try await database.query("""
            SELECT id, name, role, created_us, expires_us, revoked_us FROM gateway.api_tokens
            WHERE org = \(organization.rawValue) ORDER BY created_us DESC, id DESC
            """).map { row in
            let (id, name, role, created, expires, revoked) = try row.decode((String, String, String, Int64, Int64?, Int64?).self)
            return TokenInfo(id: id, name: name, role: Role(rawValue: role) ?? .viewer, createdAtUs: created,
                             expiresAtUs: expires, revokedAtUs: revoked)
        }
    }

    /// Revokes a token of `organization`; false when it has no such token. Revoking twice is a no-op.
    /// This gateway refuses the token from now on; the others when the notification, sent with
    /// the same statement's commit, reaches them (`revocationListener`).
    public func revokeToken(_ id: String, in organization: OrganizationID) async throws -> Bool {
        let rows = try await database.query("""
            WITH revoked AS (
                UPDATE gateway.api_tokens SET revoked_us = COALESCE(revoked_us, \(Self.nowUs()))
                WHERE id = \(id) AND org = \(organization.rawValue) RETURNING id
            )
            SELECT pg_notify(\(Self.revocationChannel), id) FROM revoked
            """)
        cache.revoke(tokenID: id)
        return !rows.isEmpty
    }

    /// Drops revoked tokens from this store's cache as other gateways revoke them; run it beside
    /// the HTTP server (`Gateway.application` does).
    public func revocationListener(logger: Logger) -> TokenRevocationListener {
        TokenRevocationListener(store: self, logger: logger)
    }

    /// When no organisation exists yet: a default one with an owner token, written to `path`
    /// (mode 0600, created exclusively). Returns whether it bootstrapped.
    public func bootstrap(ownerTokenFile path: String) async throws -> Bool {
        try await database.withTransaction { connection in
            // Serialises concurrent gateways starting on one empty database.
            try await connection.execute("LOCK TABLE gateway.organizations IN EXCLUSIVE MODE")
            guard try await connection.query("SELECT 1 FROM gateway.organizations LIMIT 1").isEmpty else { return false }
            return true
        } ? try await writeOwnerToken(to: path) : false
    }

    private func writeOwnerToken(to path: String) async throws -> Bool {
        let organization = try await createOrganization(name: "default")
        let (_, value) = try await createToken(in: organization, name: "bootstrap owner", role: .owner)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw BootstrapError(path: path, errno: errno) }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((value + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw BootstrapError(path: path, errno: errno) }
        return true
    }

    struct BootstrapError: Error, CustomStringConvertible {
        var path: String
        var errno: Int32
        var description: String { "cannot write the owner token file \(path) (errno \(errno))" }
    }

    static func digest(_ value: String) -> [UInt8] {  // as stored: bytea
        TokenDigest(value).bytes
    }

    static func nowUs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// `flt_` + 43 base64url characters: 256 random bits, so no value is ever made twice.
    static func randomTokenValue() -> String {
        "flt_" + randomBase64URL(bytes: 32)
    }

    static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2): cryptographically secure
        return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    static func randomBase64URL(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
