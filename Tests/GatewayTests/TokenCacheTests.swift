import FaultlinePostgres
import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceKit
import Testing

@Suite("Token cache: bounds on staleness, expiry and memory")
struct TokenCacheTests {
    static let principal = Principal(organization: OrganizationID("org_0123456789abcdef01234567")!, tokenID: "tok_1", role: .viewer)

    static func digest(_ n: Int) -> TokenDigest { TokenDigest("token-\(n)") }

    @Test("a verified token is trusted for the TTL, then verified again")
    func ttl() {
        var state = TokenCacheState(ttl: .seconds(10), capacity: 8, refusedCapacity: 8)
        let t0 = ContinuousClock.now
        #expect(state.lookup(Self.digest(1), nowUs: 0, now: t0) == .unknown)
        state.remember(Self.digest(1), (Self.principal, nil), at: t0)
        #expect(state.lookup(Self.digest(1), nowUs: 0, now: t0 + .seconds(9)) == .live(Self.principal))
        #expect(state.lookup(Self.digest(1), nowUs: 0, now: t0 + .seconds(10)) == .unknown)
        #expect(state.liveCount == 0, "an entry too old to trust is dropped")
    }

    @Test("expiry is exact: refused from its microsecond on, however fresh the entry")
    func expiry() {
        var state = TokenCacheState(ttl: .seconds(3600), capacity: 8, refusedCapacity: 8)
        let t0 = ContinuousClock.now
        state.remember(Self.digest(1), (Self.principal, 1_000_000), at: t0)
        #expect(state.lookup(Self.digest(1), nowUs: 999_999, now: t0) == .live(Self.principal))
        #expect(state.lookup(Self.digest(1), nowUs: 1_000_000, now: t0) == .refused)
        #expect(state.lookup(Self.digest(1), nowUs: 0, now: t0) == .refused, "expired stays refused")
    }

    @Test("revocation by id drops the token; only that token")
    func revoke() {
        var state = TokenCacheState(ttl: .seconds(3600), capacity: 8, refusedCapacity: 8)
        let t0 = ContinuousClock.now
        var other = Self.principal
        other.tokenID = "tok_2"
        state.remember(Self.digest(1), (Self.principal, nil), at: t0)
        state.remember(Self.digest(2), (other, nil), at: t0)
        state.revoke(tokenID: "tok_1")
        #expect(state.lookup(Self.digest(1), nowUs: 0, now: t0) == .unknown)
        #expect(state.lookup(Self.digest(2), nowUs: 0, now: t0) == .live(other))
        state.forgetLive()
        #expect(state.lookup(Self.digest(2), nowUs: 0, now: t0) == .unknown)
    }

    @Test("both maps stay within their capacity; recently used entries survive eviction")
    func bounded() {
        var state = TokenCacheState(ttl: .seconds(3600), capacity: 100, refusedCapacity: 50)
        let t0 = ContinuousClock.now
        state.remember(Self.digest(-1), (Self.principal, nil), at: t0)
        for n in 0..<10_000 {
            state.remember(Self.digest(n), nil, at: t0)
            state.remember(Self.digest(n + 1_000_000), (Self.principal, nil), at: t0)
            // Used all along: never evicted.
            #expect(state.lookup(Self.digest(-1), nowUs: 0, now: t0) == .live(Self.principal))
        }
        #expect(state.refusedCount <= 50 && state.liveCount <= 100)
        #expect(state.lookup(Self.digest(9_999), nowUs: 0, now: t0) == .refused, "the latest refusal is kept")
        #expect(state.lookup(Self.digest(0), nowUs: 0, now: t0) == .unknown, "the oldest was dropped")
    }

    /// A turn held until `release` finishes.
    struct Held {
        let task: Task<Void, any Error>
        let release: AsyncStream<Void>.Continuation
    }

    static func hold(_ gate: LookupGate) -> Held {
        let (stream, release) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await gate.withTurn { for await _ in stream {} }
        }
        return Held(task: task, release: release)
    }

    static func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test("the lookup gate lets `concurrent` through, queues `queued`, refuses the rest at once; a cancelled waiter leaves")
    func gate() async throws {
        let gate = LookupGate(concurrent: 1, queued: 1)
        let first = Self.hold(gate)
        await Self.until { gate.counts.running == 1 }
        let second = Self.hold(gate)
        await Self.until { gate.counts.waiting == 1 }
        await #expect(throws: LookupGate.Overloaded.self) { try await gate.withTurn {} }
        first.release.finish()
        try await first.task.value
        await Self.until { gate.counts.waiting == 0 }
        let third = Self.hold(gate)
        await Self.until { gate.counts.waiting == 1 }
        third.task.cancel()
        await #expect(throws: CancellationError.self) { try await third.task.value }
        #expect(gate.counts.waiting == 0)
        second.release.finish()
        try await second.task.value
        #expect(gate.counts.running == 0 && gate.counts.peak == 1)
    }

    static func randomToken() -> String { TokenStore.randomTokenValue() }

    @Test("a flood of made-up tokens: bounded memory, bounded Postgres checks, overflow refused at once, cached tokens unaffected")
    func flood() async throws {
        try await TestPostgres.withClient(database: "gw_token_flood") { database in
            _ = try await TokenStore.migrations.apply(on: database)
            let cache = TokenCache(ttl: .seconds(3600), capacity: 64, refusedCapacity: 64, concurrentLookups: 2, queuedLookups: 8)
            let store = TokenStore(database: database, cache: cache)
            let organization = try await store.createOrganization(name: "flood")
            let valid = try await store.createToken(in: organization, name: "ok", role: .viewer).value
            #expect(try await store.authenticate(valid)?.organization == organization)  // now cached
            let knownBad = Self.randomToken()
            #expect(try await store.authenticate(knownBad) == nil)  // now remembered as refused

            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<2_000 {
                    group.addTask {
                        do {
                            return try await store.authenticate(Self.randomToken()) == nil ? "refused" : "accepted"
                        } catch is LookupGate.Overloaded {
                            return "overloaded"
                        }
                    }
                }
                var counts: [String: Int] = [:]
                for try await outcome in group { counts[outcome, default: 0] += 1 }
                return counts
            }
            #expect(outcomes["accepted"] == nil && outcomes.values.reduce(0, +) == 2_000)
            #expect(cache.counts.refused <= 64 && cache.counts.live <= 64)
            #expect(cache.gate.counts.peak <= 2, "never more than two Postgres checks at once")

            // With every turn taken and the queue full, a new made-up token is refused at once,
            // while cached answers need no turn.
            let held = (0..<2).map { _ in Self.hold(cache.gate) }
            await Self.until { cache.gate.counts.running == 2 }
            let queued = (0..<8).map { _ in Self.hold(cache.gate) }
            await Self.until { cache.gate.counts.waiting == 8 }
            await #expect(throws: LookupGate.Overloaded.self) { try await store.authenticate(Self.randomToken()) }
            #expect(try await store.authenticate(valid)?.organization == organization)
            #expect(try await store.authenticate(knownBad) == nil)
            #expect(try await store.authenticate("flt_short") == nil, "the shape check comes first")
            for turn in held + queued { turn.release.finish() }
            for turn in held + queued { try await turn.task.value }
        }
    }

    @Test("a token minted from another (a console session) is dropped with its parent and carries the parent's expiry")
    func mintedTokens() async throws {
        try await TestPostgres.withClient(database: "gw_token_minted") { database in
            _ = try await TokenStore.migrations.apply(on: database)
            let store = TokenStore(database: database, cache: TokenCache(ttl: .seconds(3600)))
            let organization = try await store.createOrganization(name: "minted")
            let expiry = TokenStore.nowUs() + 3_600_000_000
            let parent = try await store.createToken(in: organization, name: "api", role: .editor, expiresAtUs: expiry)
            let child = try await store.createToken(in: organization, name: "session", role: .editor, parent: parent.info.id)
            #expect(try await store.authenticate(child.value)?.sourceTokenID == parent.info.id)  // cached now
            let digest = TokenDigest(child.value)
            #expect(store.cache.lookup(digest) != .unknown, "served from the cache")
            #expect(try await store.revokeToken(parent.info.id, in: organization))
            #expect(store.cache.lookup(digest) == .unknown, "dropped with its parent")
            #expect(try await store.authenticate(child.value) == nil)

            // The parent's expiry bounds the cached child, which has none of its own.
            let other = try await store.createToken(in: organization, name: "api2", role: .editor, expiresAtUs: expiry)
            let session = try await store.createToken(in: organization, name: "session2", role: .editor, parent: other.info.id)
            #expect(try await store.lookUp(TokenDigest(session.value))?.expiresAtUs == expiry)
        }
    }

    @Test("revocation: refused at once on the revoking gateway and, by NOTIFY, on another replica whose TTL is an hour")
    func revocationAcrossGateways() async throws {
        try await Harness.with("token-revocation") { h in
            let owner = h.token("a", .owner)
            let created = try await h.call(.post, "/api/v1/tokens", token: owner, body: #"{"name": "short-lived", "role": "viewer"}"#)
            let value = try #require(created.json["value"] as? String)
            let id = try #require((created.json["token"] as? [String: Any])?["id"] as? String)

            var logger = Logger(label: "second-gateway")
            logger.logLevel = .critical
            var configuration = GatewayConfiguration()
            configuration.port = 0
            // Only a notification can make this replica refuse the token before an hour is out.
            let replica = Gateway(configuration: configuration, tokens: TokenStore(database: h.database, tokenCacheTTL: .seconds(3600)),
                                  experiments: h.experiments, runners: nil, dependencies: [], logger: logger)
            try await replica.application().test(.live) { second in
                func status(_ client: some TestClientProtocol, _ token: String) async throws -> UInt16 {
                    var headers = HTTPFields()
                    headers[.authorization] = "Bearer \(token)"
                    return UInt16(try await client.execute(uri: "/api/v1/organization", method: .get, headers: headers).status.code)
                }
                #expect(try await status(h.client, value) == 200)
                #expect(try await status(second, value) == 200)  // cached on both now
                #expect(try await h.call(.delete, "/api/v1/tokens/\(id)", token: owner).status == 204)
                #expect(try await status(h.client, value) == 401, "refused at once where it was revoked")
                // Delivery is asynchronous: wait for it (a lost notification fails here, not later).
                var refused = false
                for _ in 0..<600 where !refused {
                    refused = try await status(second, value) == 401
                    if !refused { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(refused, "the replica dropped the revoked token on NOTIFY")
                #expect(try await status(second, owner) == 200, "other tokens unaffected")
            }
        }
    }

    @Test("an expired token is refused once its expiry passes, though cached")
    func expiredOverHTTP() async throws {
        try await Harness.with("token-expiry") { h in
            let organization = try #require(h.organizations["a"])
            let expiry = TokenStore.nowUs() + 1_500_000
            let value = try await h.tokens.createToken(in: organization, name: "brief", role: .viewer, expiresAtUs: expiry).value
            #expect(try await h.call(.get, "/api/v1/organization", token: value).status == 200)
            while TokenStore.nowUs() <= expiry { try await Task.sleep(for: .milliseconds(100)) }
            let after = try await h.call(.get, "/api/v1/organization", token: value)
            #expect(after.status == 401 && after.code == "auth.unauthenticated")
        }
    }
}
