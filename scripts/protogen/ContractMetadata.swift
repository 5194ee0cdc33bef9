public import FaultlineRPC
internal import NIOCore

/// The request and trailing metadata keys of the contract's conventions
/// (faultline/common/v1/common.proto), spelled once for every service and the Gateway.
public enum ContractMetadata {
    /// The caller's organisation; every call is scoped by it.
    public static let organisation = "x-faultline-org"
    /// An opaque actor id (e.g. an API token id), recorded on what the call changes.
    public static let actor = "x-faultline-actor"
    /// `owner`, `editor`, `viewer` or `runner`.
    public static let role = "x-faultline-role"
    /// Logged by every service with each line about the call.
    public static let requestID = "x-faultline-request-id"
    /// Trailing metadata of an INVALID_ARGUMENT create or update of an experiment: a serialized
    /// `faultline.experiments.v1.ValidationReport`.
    public static let validationReport = "faultline-validation-bin"
}

extension RPCError {
    /// INVALID_ARGUMENT carrying every problem in the `faultline-validation-bin` trailer.
    public static func invalidExperiment(_ report: ExperimentsV1.ValidationReport, message: String) -> RPCError {
        var metadata = Metadata()
        if let bytes = try? report.serializedBytes() {
            metadata.addBinary(Array(buffer: bytes), forKey: ContractMetadata.validationReport)
        }
        return RPCError(.invalidArgument, message, metadata: metadata)
    }

    /// The validation report an `invalidExperiment` error carries, if any (and decodable).
    public var validationReport: ExperimentsV1.ValidationReport? {
        for case .binary(let bytes) in metadata[ContractMetadata.validationReport] {
            return try? ExperimentsV1.ValidationReport(serializedBytes: bytes)
        }
        return nil
    }
}
