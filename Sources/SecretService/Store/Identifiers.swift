import FaultlineRPC
import Foundation

// Services never import each other, so these mirror ExperimentService's ResourceID and PageToken.

/// Ids this service hands out: a kind prefix and a UUIDv7 in lower-case hex (`env_0193…`).
enum ResourceID {
    enum Kind: String {
        case environment = "env"
        case integration = "int"
        case dataKey = "dk"
        case audit = "aud"
    }

    static func make(_ kind: Kind, now: Int64 = Clock.nowMicros()) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let millis = UInt64(max(0, now / 1000))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - i))) }
        var random = SystemRandomNumberGenerator()
        for i in 6..<16 { bytes[i] = random.next() }
        bytes[6] = (bytes[6] & 0x0F) | 0x70
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return kind.rawValue + "_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// A wrong shape is INVALID_ARGUMENT; a well-formed id nobody owns is NOT_FOUND (the query decides).
    static func validate(_ id: String, _ kind: Kind, field: String) throws(RPCError) {
        guard !id.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        let prefix = kind.rawValue + "_"
        guard id.utf8.count == prefix.utf8.count + 32, id.hasPrefix(prefix),
              id.utf8.dropFirst(prefix.utf8.count).allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { throw RPCError(.invalidArgument, "\(field) is not a well-formed \(kind.rawValue)_ id") }
    }
}

enum Clock {
    static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// An opaque keyset cursor (sort key text, id) plus a fingerprint of the filters.
struct PageToken {
    var key: String
    var id: String

    static func pageSize(_ requested: Int32, default value: Int = 50) throws(RPCError) -> Int {
        guard requested >= 0 else { throw RPCError(.invalidArgument, "page_size must not be negative") }
        return requested == 0 ? value : min(Int(requested), 500)
    }

    func encoded(filters: String) -> String {
        Data("1|\(filters.utf8.count)|\(filters)|\(key.utf8.count)|\(key)|\(id)".utf8).base64EncodedString()
    }

    static func decode(_ token: String, filters: String) throws(RPCError) -> PageToken? {
        if token.isEmpty { return nil }
        let invalid = RPCError(.invalidArgument, "page_token is malformed or belongs to another query")
        guard token.utf8.count <= 2048, let data = Data(base64Encoded: token),
              let raw = String(data: data, encoding: .utf8) else { throw invalid }
        var rest = Substring(raw)
        func field() throws(RPCError) -> String {
            guard let bar = rest.firstIndex(of: "|"), let count = Int(rest[..<bar]), count >= 0 else { throw invalid }
            let body = rest[rest.index(after: bar)...]
            guard body.utf8.count >= count else { throw invalid }
            let end = body.utf8.index(body.startIndex, offsetBy: count)
            let value = String(body[..<end])
            rest = body[end...]
            if rest.first == "|" { rest = rest.dropFirst() }
            return value
        }
        guard rest.hasPrefix("1|") else { throw invalid }
        rest = rest.dropFirst(2)
        guard try field() == filters else { throw invalid }
        let key = try field()
        return PageToken(key: key, id: String(rest))
    }
}

/// Bounds on request text, checked before anything reaches SQL.
enum Check {
    static func text(_ value: String, _ field: String, max: Int) throws(RPCError) {
        guard value.utf8.count <= max else { throw RPCError(.invalidArgument, "\(field) is longer than \(max) bytes") }
        guard !value.utf8.contains(0) else { throw RPCError(.invalidArgument, "\(field) contains a NUL character") }
    }

    /// Letters, digits and `_`, not starting with a digit; 1-128 bytes (secret and variable names).
    static func identifier(_ value: String, _ field: String) throws(RPCError) {
        let utf8 = Array(value.utf8)
        guard (1...128).contains(utf8.count),
              utf8.allSatisfy({ $0 == 0x5F || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }),
              !(utf8[0] >= 0x30 && utf8[0] <= 0x39)
        else { throw RPCError(.invalidArgument, "\(field) must be 1-128 letters, digits or _, not starting with a digit") }
    }

    /// Display names: 1-200 bytes, no control characters.
    static func name(_ value: String, _ field: String) throws(RPCError) {
        guard (1...200).contains(value.utf8.count), !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw RPCError(.invalidArgument, "\(field) must be 1-200 bytes without control characters") }
    }
}
