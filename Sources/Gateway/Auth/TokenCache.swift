import Crypto
import Synchronization

/// What the gateway remembers about bearer tokens, so a request with a token seen recently costs
/// no Postgres round trip. Keys are the tokens' SHA-256 digests (the same the database stores),
/// never the values.
///
/// Staleness is bounded, and these are the bounds:
/// - **Expiry** is exact: a cached token carries its `expires_us` (or its parent's, when that
///   comes first) and is refused from that microsecond on, whatever its age in the cache.
/// - **Revocation through this gateway** drops the token, and those minted from it, at once
///   (`TokenStore.revokeToken`).
/// - **Revocation through another replica** arrives by Postgres `NOTIFY` on
///   `TokenStore.revocationChannel` and drops it at once too; only while the listening
///   connection is down (a notification sent then is lost) can a revoked token still pass, and
///   then for at most `ttl` after this gateway last verified it in Postgres.
///
/// Tokens that are not live (unknown, revoked or expired) are remembered too: token values are
/// 256 random bits and revocation and expiry are final, so "not live" can never become stale.
/// Both maps are bounded (`TokenGenerations`), so a flood of made-up tokens cannot grow memory;
/// `LookupGate` bounds what such a flood costs Postgres.
struct TokenCacheState: Sendable {
    struct Entry: Sendable {
        var principal: Principal
        var expiresAtUs: Int64?
        /// Monotonic time of the Postgres check this entry comes from.
        var verifiedAt: ContinuousClock.Instant
    }

    enum Lookup: Equatable, Sendable {
        case live(Principal)
        /// Known not to be live: refuse without asking Postgres.
        case refused
        /// Ask Postgres (and `remember` the answer).
        case unknown
    }

    let ttl: Duration
    private var live: TokenGenerations<Entry>
    private var dead: TokenGenerations<Void>

    init(ttl: Duration, capacity: Int, refusedCapacity: Int) {
        self.ttl = ttl
        live = TokenGenerations(capacity: capacity)
        dead = TokenGenerations(capacity: refusedCapacity)
    }

    mutating func lookup(_ digest: TokenDigest, nowUs: Int64, now: ContinuousClock.Instant) -> Lookup {
        if let entry = live[digest] {
            if let expiry = entry.expiresAtUs, nowUs >= expiry {
                live.remove(digest)
                dead[digest] = ()
                return .refused
            }
            if now - entry.verifiedAt < ttl { return .live(entry.principal) }
            live.remove(digest)  // too old to trust: verify again
            return .unknown
        }
        return dead[digest] != nil ? .refused : .unknown
    }

    /// Postgres' answer for `digest`: the token's principal and expiry, or nil when not live.
    mutating func remember(_ digest: TokenDigest, _ answer: (principal: Principal, expiresAtUs: Int64?)?,
                           at now: ContinuousClock.Instant) {
        if let answer {
            live[digest] = Entry(principal: answer.principal, expiresAtUs: answer.expiresAtUs, verifiedAt: now)
        } else {
            dead[digest] = ()
        }
    }

    /// A revoked token, and the tokens minted from it (console sessions): refused from now on.
    /// The digest is unknown to whoever revokes by id.
    mutating func revoke(tokenID: String) {
        live.removeAll { $0.principal.tokenID == tokenID || $0.principal.sourceTokenID == tokenID }
    }

    /// After notifications may have been lost: verify every live token again.
    mutating func forgetLive() {
        live.removeAll { _ in true }
    }

    var liveCount: Int { live.count }
    var refusedCount: Int { dead.count }
}

/// A bounded map with approximate least-recently-used eviction in O(1): entries go into
/// `current`; when it holds half the capacity it becomes `previous` and the old `previous` is
/// dropped whole. A hit in `previous` moves the entry back to `current`.
struct TokenGenerations<Value: Sendable>: Sendable {
    private let half: Int
    private var current: [TokenDigest: Value] = [:]
    private var previous: [TokenDigest: Value] = [:]

    init(capacity: Int) { half = max(1, capacity / 2) }

    var count: Int { current.count + previous.count }

    subscript(_ key: TokenDigest) -> Value? {
        mutating get {
            if let value = current[key] { return value }
            guard let value = previous.removeValue(forKey: key) else { return nil }
            self[key] = value
            return value
        }
        set {
            guard let newValue else { return remove(key) }
            previous.removeValue(forKey: key)
            if current[key] == nil, current.count >= half {
                previous = current
                current = [:]
            }
            current[key] = newValue
        }
    }

    mutating func remove(_ key: TokenDigest) {
        current.removeValue(forKey: key)
        previous.removeValue(forKey: key)
    }

    mutating func removeAll(where drop: (Value) -> Bool) {
        current = current.filter { !drop($0.value) }
        previous = previous.filter { !drop($0.value) }
    }
}

/// A token's SHA-256 (what `gateway.api_tokens.sha256` holds) as a cache key: 32 bytes inline.
struct TokenDigest: Hashable, Sendable {
    let words: SIMD4<UInt64>

    init(_ value: String) {
        words = SHA256.hash(data: Array(value.utf8)).withUnsafeBytes { $0.loadUnaligned(as: SIMD4<UInt64>.self) }
    }

    var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }
}

/// `TokenCacheState` behind a lock, on the real clocks.
final class TokenCache: Sendable {
    private let state: Mutex<TokenCacheState>
    let gate: LookupGate

    /// - ttl: how long a verified token is trusted without asking Postgres again, which bounds
    ///   revocation staleness only when a revocation notification was lost (see above).
    /// - capacity / refusedCapacity: entries kept of live / not-live tokens.
    /// - concurrentLookups / queuedLookups: Postgres checks of uncached tokens in flight / waiting
    ///   for their turn; past both, a request is answered 503 `auth.overloaded`.
    init(ttl: Duration = .seconds(10), capacity: Int = 10_000, refusedCapacity: Int = 10_000,
         concurrentLookups: Int = 2, queuedLookups: Int = 256) {
        state = Mutex(TokenCacheState(ttl: ttl, capacity: capacity, refusedCapacity: refusedCapacity))
        gate = LookupGate(concurrent: concurrentLookups, queued: queuedLookups)
    }

    func lookup(_ digest: TokenDigest) -> TokenCacheState.Lookup {
        let nowUs = TokenStore.nowUs(), now = ContinuousClock.now
        return state.withLock { $0.lookup(digest, nowUs: nowUs, now: now) }
    }

    /// `verifiedAt` is taken before the query was sent, so the TTL never outlasts the check.
    func remember(_ digest: TokenDigest, _ answer: (principal: Principal, expiresAtUs: Int64?)?,
                  verifiedAt: ContinuousClock.Instant) {
        state.withLock { $0.remember(digest, answer, at: verifiedAt) }
    }

    func revoke(tokenID: String) { state.withLock { $0.revoke(tokenID: tokenID) } }

    func forgetLive() { state.withLock { $0.forgetLive() } }

    var counts: (live: Int, refused: Int) { state.withLock { ($0.liveCount, $0.refusedCount) } }
}

/// At most `concurrent` Postgres checks of uncached tokens at once and `queued` waiting: a flood of
/// distinct made-up tokens costs Postgres a fixed number of connections, and the flood's
/// requests past the queue are refused at once instead of piling up. Cached tokens never pass
/// here, so they keep working through such a flood.
final class LookupGate: Sendable {
    private struct State {
        var running = 0
        /// The most turns ever taken at once: never above `concurrent`.
        var peak = 0
        var waiting: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID = 0
    }

    private let concurrent: Int, queued: Int
    private let state = Mutex(State())

    init(concurrent: Int, queued: Int) {
        self.concurrent = max(1, concurrent)
        self.queued = max(0, queued)
    }

    struct Overloaded: Error {}

    func withTurn<T>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async throws {
        let id = state.withLock { state -> Int? in
            if state.running < concurrent, state.waiting.isEmpty {
                state.running += 1
                state.peak = max(state.peak, state.running)
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let refused: (any Error)? = state.withLock { state in
                    if Task.isCancelled { return CancellationError() }
                    // A turn freed between the two locks: take it.
                    if state.running < concurrent, state.waiting.isEmpty {
                        state.running += 1
                        state.peak = max(state.peak, state.running)
                        continuation.resume()
                        return nil
                    }
                    guard state.waiting.count < queued else { return Overloaded() }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let refused { continuation.resume(throwing: refused) }
            }
        } onCancel: {
            let cancelled = state.withLock { state in
                state.waiting.firstIndex { $0.id == id }.map { state.waiting.remove(at: $0).continuation }
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    private func release() {
        // The turn passes straight to the first waiter, if any; `running` stays the same then.
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }

    var counts: (running: Int, waiting: Int, peak: Int) { state.withLock { ($0.running, $0.waiting.count, $0.peak) } }
}
