/// The statements one connection has prepared, keyed by text and parameter types, least recently
/// used first out. Bookkeeping only (no I/O): `LibPQConnection` prepares and deallocates.
///
/// Names are never reused on a connection, so a statement re-prepared after an invalidation can
/// never collide with a stale one the server still holds.
struct StatementCache {
    struct Key: Hashable {
        let text: String
        let types: [UInt32]
    }

    private struct Entry {
        let name: String
        var lastUse: UInt64
    }

    let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0
    private var nextName = 0
    /// Names the server still holds but the cache no longer knows: evicted or invalidated while a
    /// transaction was open, when a failing `DEALLOCATE` would have aborted it.
    private(set) var stale: [String] = []

    /// A capacity of 0 turns caching off (every statement runs unnamed).
    init(capacity: Int) { self.capacity = max(0, capacity) }

    var count: Int { entries.count }
    var isFull: Bool { entries.count >= capacity }

    /// Only texts this short are cached: longer ones (long `IN` lists, generated bulk statements)
    /// rarely repeat and would only push out the ones that do.
    static let maximumTextLength = 8_192

    static func isCacheable(_ key: Key) -> Bool {
        key.text.utf8.count <= maximumTextLength && !key.text.isEmpty
    }

    /// The prepared statement's name, marking it as just used.
    mutating func lookup(_ key: Key) -> String? {
        guard entries[key] != nil else { return nil }
        clock += 1
        entries[key]!.lastUse = clock
        return entries[key]!.name
    }

    /// A fresh name for a statement about to be prepared; recorded only by `insert` once the
    /// server accepted it.
    mutating func makeName() -> String {
        nextName += 1
        return "fl_\(nextName)"
    }

    /// Records a statement the server prepared. The caller makes room first (`evictLeastRecent`).
    mutating func insert(_ key: Key, name: String) {
        clock += 1
        entries[key] = Entry(name: name, lastUse: clock)
    }

    /// Forgets the least recently used statement and returns its name, to deallocate.
    /// A scan, not a list: it runs only when a full cache prepares something new.
    mutating func evictLeastRecent() -> String? {
        guard let victim = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) else { return nil }
        entries[victim.key] = nil
        return victim.value.name
    }

    /// Forgets a statement whose server-side plan went bad; returns its name.
    mutating func remove(_ key: Key) -> String? {
        entries.removeValue(forKey: key)?.name
    }

    mutating func markStale(_ name: String) { stale.append(name) }

    mutating func takeStale() -> [String] {
        defer { stale = [] }
        return stale
    }

    /// The session ended: the server forgot every statement.
    mutating func removeAll() {
        entries = [:]
        stale = []
    }
}
