import FaultlineRPC
import Foundation
import ServiceKit

/// Ids this service hands out (`env_0193…`): `PrefixedID`s of four kinds.
enum ResourceID {
    enum Kind: String {
        case environment = "env"
        case integration = "int"
        case dataKey = "dk"
        case audit = "aud"
    }

    static func make(_ kind: Kind, now: Int64 = WallClock.nowMicros()) -> String {
        PrefixedID.make(prefix: kind.rawValue, now: now)
    }

    /// A wrong shape is INVALID_ARGUMENT; a well-formed id nobody owns is NOT_FOUND (the query decides).
    static func validate(_ id: String, _ kind: Kind, field: String) throws(RPCError) {
        guard !id.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        guard PrefixedID.isWellFormed(id, prefix: kind.rawValue)
        else { throw RPCError(.invalidArgument, "\(field) is not a well-formed \(kind.rawValue)_ id") }
    }
}

/// An opaque keyset cursor (sort key text, id) plus a fingerprint of the filters.
struct PageToken {
    var key: String
    var id: String

    static func pageSize(_ requested: Int32, default value: Int = 50) throws(RPCError) -> Int {
        try PageSize.resolve(requested, default: value)
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
extension Check {

    /// Letters, digits and `_`, not starting with a digit; 1-128 bytes (secret and variable names).
    static func identifier(_ value: String, _ field: String) throws(RPCError) {
        let utf8 = Array(value.utf8)
        guard (1...128).contains(utf8.count),
              utf8.allSatisfy({ $0 == 0x5F || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }),
              !(utf8[0] >= 0x30 && utf8[0] <= 0x39)
        else { throw RPCError(.invalidArgument, "\(field) must be 1-128 letters, digits or _, not starting with a digit") }
    }

}
