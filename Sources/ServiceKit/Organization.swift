public import FaultlineProto
public import FaultlineRPC

/// The organisation a call acts for. The Gateway resolves it from the caller's token and sends
/// it as metadata; every service scopes every query by it, so another organisation's id is
/// simply not found.
public struct OrganizationID: Hashable, Sendable, CustomStringConvertible {
    public static let metadataKey = "x-faultline-org"

    public let rawValue: String

    /// Accepts 1-64 characters of `[A-Za-z0-9._-]`: it ends up in logs and SQL parameters.
    public init?(_ rawValue: String) {
        guard (1...64).contains(rawValue.utf8.count),
              rawValue.utf8.allSatisfy({ $0.isOrganizationIDByte }) else { return nil }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
}

extension UInt8 {
    fileprivate var isOrganizationIDByte: Bool {
        switch self {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}

extension ServerContext {
    /// The calling organisation; UNAUTHENTICATED when the metadata is missing or malformed.
    public func organization() throws(RPCError) -> OrganizationID {
        guard let value = metadata[stringValue: OrganizationID.metadataKey] else {
            throw RPCError(.unauthenticated, "missing \(OrganizationID.metadataKey) metadata")
        }
        guard let organization = OrganizationID(value) else {
            throw RPCError(.unauthenticated, "malformed \(OrganizationID.metadataKey) metadata")
        }
        return organization
    }
}

extension ServerContext {
    /// Who is calling, from `x-faultline-actor` / `x-faultline-role` (set by the Gateway): a
    /// runner is a service, anyone else a user; at most 200 characters of the id are kept.
    public var actor: CommonV1.Actor {
        let id = String(String(metadata[stringValue: ContractMetadata.actor] ?? "").prefix(200))
        let kind: CommonV1.Actor.Kind = metadata[stringValue: ContractMetadata.role] == "runner" ? .service : .user
        return CommonV1.Actor(kind: id.isEmpty ? .unspecified : kind, id: id)
    }
}

extension CallOptions {
    /// Options for a call made on behalf of `organization`.
    public static func on(behalfOf organization: OrganizationID, timeout: Duration? = nil) -> CallOptions {
        var options = CallOptions(timeout: timeout)
        options.metadata.addString(organization.rawValue, forKey: OrganizationID.metadataKey)
        return options
    }
}
