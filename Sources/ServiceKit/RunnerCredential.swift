public import FaultlineRPC
import Crypto

/// The runner role: a service credential sent as `authorization: Bearer <credential>`, checked by
/// every service that takes calls only runners may make (SecretService's reveals, ScheduleService's
/// runner registry). Only a
/// digest is kept, and digests are compared in constant time, so neither the length nor a
/// prefix of the credential leaks through timing.
public struct RunnerCredential: Sendable {
    /// The request metadata key carrying the credential.
    public static let metadataKey = "authorization"

    private let digest: [UInt8]?

    /// nil or empty = no caller has the runner role.
    public init(_ credential: String?) {
        digest = credential.flatMap { $0.isEmpty ? nil : Array(SHA256.hash(data: Array($0.utf8))) }
    }

    /// Whether the call carries this credential (always false when none is configured).
    public func admits(_ context: ServerContext) -> Bool {
        guard let digest, let header = context.metadata[stringValue: Self.metadataKey], header.hasPrefix("Bearer ") else { return false }
        let presented = Array(SHA256.hash(data: Array(header.utf8.dropFirst(7))))
        var difference: UInt8 = 0
        for (a, b) in zip(digest, presented) { difference |= a ^ b }
        return difference == 0
    }

    /// Metadata a runner sends (for clients and tests).
    public static func metadata(_ credential: String) -> Metadata {
        var metadata = Metadata()
        metadata.addString("Bearer " + credential, forKey: metadataKey)
        return metadata
    }
}
