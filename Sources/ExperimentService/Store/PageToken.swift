import Foundation
import FaultlineRPC
import ServiceKit

/// An opaque list cursor: the keyset position of the last row returned, plus a fingerprint of
/// the filters, so a token is only honoured by the query that made it. Rows inserted later sort
/// before the position (newest first) or after it (sequence order) and never shift a page.
struct PageToken: Equatable {
    var time: Int64
    var id: String
    var filters: UInt64

    static func pageSize(_ requested: Int32, default value: Int = 50) throws(RPCError) -> Int {
        try PageSize.resolve(requested, default: value)
    }

    var encoded: String {
        let raw = "1|\(time)|\(filters)|\(id)"
        return Data(raw.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// nil for the first page; INVALID_ARGUMENT for anything this service did not produce for
    /// the same filters.
    static func decode(_ token: String, filters: UInt64) throws(RPCError) -> PageToken? {
        if token.isEmpty { return nil }
        let invalid = RPCError(.invalidArgument, "page_token is malformed or belongs to another query")
        guard token.utf8.count <= 512 else { throw invalid }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let raw = String(data: data, encoding: .utf8) else { throw invalid }
        let parts = raw.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "1", let time = Int64(parts[1]), let fingerprint = UInt64(parts[2]),
              fingerprint == filters else { throw invalid }
        return PageToken(time: time, id: String(parts[3]), filters: filters)
    }

    /// FNV-1a over the filter values: stable across processes (unlike `Hasher`).
    static func fingerprint(_ parts: [String]) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for part in parts {
            for byte in part.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
            hash = (hash ^ 0x1F) &* 0x100000001b3
        }
        return hash
    }
}
