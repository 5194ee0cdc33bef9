public import Logging
public import NIOCore

/// What a handler knows about the call it serves.
public struct ServerContext: Sendable {
    public let method: MethodDescriptor
    /// Request metadata (the custom headers the client sent; pseudo-headers and `grpc-*`
    /// reserved headers excluded).
    public let metadata: Metadata
    /// When the client gives up (`grpc-timeout`); `nil` means no deadline.
    public let deadline: ContinuousClock.Instant?
    /// The remote address, e.g. `127.0.0.1:52100`.
    public let peer: String
    /// Carries `rpc.method` (and whatever the server adds) as metadata.
    public var logger: Logger
    /// The stream this context belongs to, when a server runs the call (nil in unit tests that
    /// build a context by hand).
    var io: H2StreamIO?

    public init(method: MethodDescriptor, metadata: Metadata, deadline: ContinuousClock.Instant?, peer: String, logger: Logger) {
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.logger = logger
    }
}

extension ServerContext {
    /// Adds metadata to the response headers. Takes effect only if called before the first
    /// response message is written; after that, use trailing metadata.
    public func addInitialMetadata(_ metadata: Metadata) {
        io?.addInitialMetadata(metadata)
    }

    /// Adds metadata to the trailers that end the call (sent with any status).
    public func addTrailingMetadata(_ metadata: Metadata) {
        io?.addTrailingMetadata(metadata)
    }
}

/// A set of methods served together, e.g. one protobuf `service`. Generated service protocols
/// provide `methods`; a server is built from a list of these.
public protocol RPCService: Sendable {
    var methods: [RegisteredMethod] { get }
}

/// One servable method with its handler erased to bytes in, messages out. The runtime decodes
/// nothing itself: it hands each de-framed message to `handle` and frames what it writes.
public struct RegisteredMethod: Sendable {
    public typealias Handler = @Sendable (
        _ requests: RPCAsyncSequence<ByteBuffer>,
        _ responses: RPCWriter<any RPCMessage>,
        _ context: ServerContext
    ) async throws -> Void

    public let descriptor: MethodDescriptor
    public let handle: Handler

    public init(_ descriptor: MethodDescriptor, handle: @escaping Handler) {
        self.descriptor = descriptor
        self.handle = handle
    }
}

extension RegisteredMethod {
    public static func unary<Request: RPCMessage, Response: RPCMessage>(
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) -> RegisteredMethod {
        RegisteredMethod(descriptor) { requests, responses, context in
            let bytes = try await requests.singleElement(of: descriptor)
            let response = try await body(try Request(serializedBytes: bytes), context)
            try await responses.write(response)
        }
    }

    public static func serverStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
    ) -> RegisteredMethod {
        RegisteredMethod(descriptor) { requests, responses, context in
            let bytes = try await requests.singleElement(of: descriptor)
            try await body(try Request(serializedBytes: bytes), responses.map { $0 }, context)
        }
    }

    public static func clientStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (RPCAsyncSequence<Request>, ServerContext) async throws -> Response
    ) -> RegisteredMethod {
        RegisteredMethod(descriptor) { requests, responses, context in
            let response = try await body(requests.map { try Request(serializedBytes: $0) }, context)
            try await responses.write(response)
        }
    }

    public static func bidirectional<Request: RPCMessage, Response: RPCMessage>(
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (RPCAsyncSequence<Request>, RPCWriter<Response>, ServerContext) async throws -> Void
    ) -> RegisteredMethod {
        RegisteredMethod(descriptor) { requests, responses, context in
            try await body(requests.map { try Request(serializedBytes: $0) }, responses.map { $0 }, context)
        }
    }
}
