public import NIOCore

/// Per-call options.
public struct CallOptions: Sendable {
    /// Sent as `grpc-timeout`; the tighter of this and `RPCDeadline.current` wins.
    public var timeout: Duration?
    public var metadata: Metadata

    public init(timeout: Duration? = nil, metadata: Metadata = [:]) {
        self.timeout = timeout
        self.metadata = metadata
    }
}

/// The response side of a call as the client sees it.
public struct ClientResponse: Sendable {
    /// The initial metadata the server sent (empty for a Trailers-Only response).
    public let metadata: Metadata
    /// The response messages, raw. Ends when the server's trailers say OK; throws the
    /// `RPCError` they carry otherwise.
    public let messages: RPCAsyncSequence<ByteBuffer>

    public init(metadata: Metadata, messages: RPCAsyncSequence<ByteBuffer>) {
        self.metadata = metadata
        self.messages = messages
    }
}

/// Something that can make calls: the one primitive every typed call is built on. Generated
/// clients hold an `any RPCCaller`, normally an `RPCClient` connection.
public protocol RPCCaller: Sendable {
    /// Opens a stream for `method`, runs `requests` (concurrently with `responses`) to write the
    /// request messages, half-closes when it returns, and hands the response to `responses`.
    /// The call is cancelled (RST_STREAM) if either closure throws or the task is cancelled.
    func call<Result: Sendable>(
        _ method: MethodDescriptor,
        options: CallOptions,
        requests: @escaping @Sendable (RPCWriter<any RPCMessage>) async throws -> Void,
        responses: @escaping @Sendable (ClientResponse) async throws -> Result
    ) async throws -> Result
}

extension RPCCaller {
    public func unary<Request: RPCMessage, Response: RPCMessage>(
        _ method: MethodDescriptor,
        _ request: Request,
        options: CallOptions = CallOptions()
    ) async throws -> Response {
        try await call(method, options: options, requests: { try await $0.write(request) }) { response in
            try Response(serializedBytes: try await response.messages.singleElement(of: method))
        }
    }

    public func serverStreaming<Request: RPCMessage, Response: RPCMessage, Result: Sendable>(
        _ method: MethodDescriptor,
        _ request: Request,
        options: CallOptions = CallOptions(),
        responses body: @escaping @Sendable (RPCAsyncSequence<Response>) async throws -> Result
    ) async throws -> Result {
        try await call(method, options: options, requests: { try await $0.write(request) }) { response in
            try await body(response.messages.map { try Response(serializedBytes: $0) })
        }
    }

    public func clientStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ method: MethodDescriptor,
        options: CallOptions = CallOptions(),
        requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void
    ) async throws -> Response {
        try await call(method, options: options, requests: { try await requests($0.map { $0 }) }) { response in
            try Response(serializedBytes: try await response.messages.singleElement(of: method))
        }
    }

    public func bidirectional<Request: RPCMessage, Response: RPCMessage, Result: Sendable>(
        _ method: MethodDescriptor,
        options: CallOptions = CallOptions(),
        requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void,
        responses body: @escaping @Sendable (RPCAsyncSequence<Response>) async throws -> Result
    ) async throws -> Result {
        try await call(method, options: options, requests: { try await requests($0.map { $0 }) }) { response in
            try await body(response.messages.map { try Response(serializedBytes: $0) })
        }
    }
}
