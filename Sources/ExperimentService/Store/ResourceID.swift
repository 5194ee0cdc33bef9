import Foundation
import FaultlineRPC

/// Ids this service hands out: a kind prefix and a UUIDv7 in lower-case hex
/// (`exp_0193…`), so ids sort by creation time and keep the events index append-mostly.
struct ResourceID {
    enum Kind: String {
        case experiment = "exp"
        case execution = "exe"
    }

    static func make(_ kind: Kind, now: Int64 = WallClock.nowMicros()) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let millis = UInt64(max(0, now / 1000))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - i))) }
        var random = SystemRandomNumberGenerator()
        for i in 6..<16 { bytes[i] = random.next() }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return kind.rawValue + "_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Checks the shape of an id from a request: a wrong shape is INVALID_ARGUMENT, a well-formed
    /// id nobody owns is NOT_FOUND (decided by the query).
    static func validate(_ id: String, _ kind: Kind, field: String) throws(RPCError) {
        let utf8 = id.utf8
        guard !id.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        guard utf8.count == 36, id.hasPrefix(kind.rawValue + "_"),
              utf8.dropFirst(4).allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { throw RPCError(.invalidArgument, "\(field) is not a \(kind == .experiment ? "experiment" : "execution") id") }
    }
}

/// Microseconds since the epoch, the unit of every `_us` column and field.
enum WallClock {
    static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
