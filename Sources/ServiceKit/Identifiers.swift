import Foundation
public import FaultlineRPC

/// Microseconds since the Unix epoch, UTC: the unit of every `_us` field and column.
public enum WallClock {
    public static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// The ids services hand out: a kind prefix and a UUIDv7 in lower-case hex (`exp_0193…`), so ids
/// sort by creation time and keep indexes append-mostly.
public enum PrefixedID {
    public static func make(prefix: String, now: Int64 = WallClock.nowMicros()) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let millis = UInt64(max(0, now / 1000))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - i))) }
        var random = SystemRandomNumberGenerator()
        for i in 6..<16 { bytes[i] = random.next() }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return prefix + "_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `id` has the shape `make(prefix:)` produces. A wrong shape is the caller's
    /// INVALID_ARGUMENT; a well-formed id nobody owns is NOT_FOUND, which only a query can tell.
    public static func isWellFormed(_ id: String, prefix: String) -> Bool {
        let head = prefix + "_"
        return id.utf8.count == head.utf8.count + 32 && id.hasPrefix(head)
            && id.utf8.dropFirst(head.utf8.count).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// The page size of a list call: 0 means the service's default; at most `maximum`.
public enum PageSize {
    public static let maximum = 500

    public static func resolve(_ requested: Int32, default value: Int = 50) throws(RPCError) -> Int {
        guard requested >= 0 else { throw RPCError(.invalidArgument, "page_size must not be negative") }
        return requested == 0 ? value : min(Int(requested), maximum)
    }
}
