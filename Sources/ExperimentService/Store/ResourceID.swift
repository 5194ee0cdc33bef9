import FaultlineRPC
import ServiceKit

/// Ids this service hands out (`exp_0193…`, `exe_0193…`): `PrefixedID`s of two kinds.
struct ResourceID {
    enum Kind: String {
        case experiment = "exp"
        case execution = "exe"
    }

    static func make(_ kind: Kind, now: Int64 = WallClock.nowMicros()) -> String {
        PrefixedID.make(prefix: kind.rawValue, now: now)
    }

    /// Checks the shape of an id from a request: a wrong shape is INVALID_ARGUMENT, a well-formed
    /// id nobody owns is NOT_FOUND (decided by the query).
    static func validate(_ id: String, _ kind: Kind, field: String) throws(RPCError) {
        guard !id.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        guard PrefixedID.isWellFormed(id, prefix: kind.rawValue)
        else { throw RPCError(.invalidArgument, "\(field) is not a \(kind == .experiment ? "experiment" : "execution") id") }
    }
}
