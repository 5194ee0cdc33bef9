/// The failure of one RPC: a gRPC status code, a human message, trailing metadata, and the
/// error it came from (kept for logs, never sent over the wire).
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// A gRPC status code. A struct over its raw value rather than an enum, so a code received
    /// from a newer peer survives a round trip instead of collapsing to `unknown`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int

        public init?(rawValue: Int) {
            guard (0...16).contains(rawValue) else { return nil }
            self.rawValue = rawValue
        }

        private init(_ rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(0)
        public static let cancelled = Code(1)
        public static let unknown = Code(2)
        public static let invalidArgument = Code(3)
        public static let deadlineExceeded = Code(4)
        public static let notFound = Code(5)
        public static let alreadyExists = Code(6)
        public static let permissionDenied = Code(7)
        public static let resourceExhausted = Code(8)
        public static let failedPrecondition = Code(9)
        public static let aborted = Code(10)
        public static let outOfRange = Code(11)
        public static let unimplemented = Code(12)
        public static let internalError = Code(13)
        public static let unavailable = Code(14)
        public static let dataLoss = Code(15)
        public static let unauthenticated = Code(16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        /// The canonical upper-case name, e.g. `NOT_FOUND`.
        public var description: String { Self.names[rawValue] }
    }

    public var code: Code
    public var message: String
    public var metadata: Metadata
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, metadata: Metadata = [:], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.metadata = metadata
        self.cause = cause
    }

    public var description: String { "\(code): \(message)" }
}

/// A domain error that knows which status it should surface as. Errors that do not conform
/// become `UNKNOWN` with a fixed message, so internals never leak to a caller.
public protocol RPCErrorConvertible: Error {
    var rpcErrorCode: RPCError.Code { get }
    /// Sent to the caller: must hold no secret, SQL parameter or stack trace.
    var rpcErrorMessage: String { get }
}

extension RPCError {
    /// The status a handler's thrown error is reported with.
    public init(from error: any Error) {
        switch error {
        case let error as RPCError:
            self = error
        case let error as any RPCErrorConvertible:
            self.init(error.rpcErrorCode, error.rpcErrorMessage, cause: error)
        case is CancellationError:
            self.init(.cancelled, "the call was cancelled", cause: error)
        default:
            self.init(.unknown, "the service failed to handle the call", cause: error)
        }
    }
}
