import NIOCore

/// The gRPC side of one server stream: validates the request head, reassembles messages, and
/// builds the response head and trailers. A value type with no I/O; the connection handler
/// performs the actions it returns.
struct ServerStreamStateMachine {
    struct RequestHead {
        var path: String
        var metadata: Metadata
        var timeout: Duration?
    }

    enum HeadAction {
        case accept(RequestHead)
        /// Not a gRPC request at all: answer with a plain HTTP status.
        case rejectHTTP(status: Int)
        /// A gRPC request that cannot be served: answer Trailers-Only.
        case reject(RPCError, extra: [HeaderField])
    }

    enum Phase { case idle, open, responding, closed }

    private(set) var phase = Phase.idle
    private var deframer: MessageDeframer
    private var requestEnded = false

    init(maxMessageSize: Int) {
        deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    mutating func receiveHead(_ fields: [HeaderField]) -> HeadAction {
        var method: String?, path: String?, contentType: String?, te: String?, timeout: String?, encoding: String?
        for field in fields {
            switch field.name {
            case ":method": method = field.value
            case ":path": path = field.value
            case "content-type": contentType = field.value
            case "te": te = field.value
            case "grpc-timeout": timeout = field.value
            case "grpc-encoding": encoding = field.value
            default: break
            }
        }
        phase = .closed  // until the head proves acceptable
        guard let contentType, contentType.hasPrefix("application/grpc") else { return .rejectHTTP(status: 415) }
        guard method == "POST" else { return .reject(RPCError(.internalError, "gRPC requests must use POST"), extra: []) }
        guard let path, path.hasPrefix("/") else { return .reject(RPCError(.unimplemented, "the request has no :path"), extra: []) }
        if let te, te != "trailers" { return .reject(RPCError(.internalError, "te must be \"trailers\""), extra: []) }
        var deadline: Duration?
        if let timeout {
            guard let parsed = Wire.parseTimeout(timeout) else {
                return .reject(RPCError(.internalError, "malformed grpc-timeout \"\(timeout.prefix(16))\""), extra: [])
            }
            deadline = parsed
        }
        if let encoding, encoding != "identity" {
            return .reject(
                RPCError(.unimplemented, "grpc-encoding \"\(encoding.prefix(32))\" is not supported"),
                extra: [("grpc-accept-encoding", "identity")])
        }
        phase = .open
        return .accept(RequestHead(path: path, metadata: Wire.metadata(from: fields), timeout: deadline))
    }

    /// Reassembles request messages; a thrown status fails the stream.
    mutating func receiveData(_ chunk: ByteBuffer, into messages: inout [ByteBuffer]) throws(RPCError) {
        guard phase == .open || phase == .responding, !requestEnded else { return }
        try deframer.process(chunk, into: &messages)
    }

    /// The client half-closed: fine unless a message was cut off.
    mutating func receiveEnd() throws(RPCError) {
        guard !requestEnded else { return }
        requestEnded = true
        if deframer.hasPartialMessage {
            throw RPCError(.internalError, "the request ended inside a message (truncated length prefix or body)")
        }
    }

    var isClosed: Bool { phase == .closed }
    var hasResponded: Bool { phase == .responding }

    /// Response headers ahead of the first message.
    mutating func responseHead(metadata: Metadata) -> [HeaderField] {
        phase = .responding
        var fields: [HeaderField] = [(":status", "200"), ("content-type", "application/grpc")]
        Wire.append(metadata, to: &fields)
        return fields
    }

    /// Trailers ending a response that has a head; `status` nil means OK.
    mutating func trailers(status: RPCError?, metadata: Metadata) -> [HeaderField] {
        phase = .closed
        var fields: [HeaderField] = []
        Self.appendStatus(status, metadata: metadata, to: &fields)
        return fields
    }

    /// One HEADERS frame with END_STREAM carrying the status.
    mutating func trailersOnly(status: RPCError?, metadata: Metadata, extra: [HeaderField] = []) -> [HeaderField] {
        phase = .closed
        var fields: [HeaderField] = [(":status", "200"), ("content-type", "application/grpc")]
        fields += extra
        Self.appendStatus(status, metadata: metadata, to: &fields)
        return fields
    }

    static func httpRejection(status: Int) -> [HeaderField] {
        [(":status", String(status)), ("content-type", "text/plain")]
    }

    private static func appendStatus(_ status: RPCError?, metadata: Metadata, to fields: inout [HeaderField]) {
        if let status {
            fields.append(("grpc-status", String(status.code.rawValue)))
            if !status.message.isEmpty { fields.append(("grpc-message", Wire.percentEncode(status.message))) }
            var all = status.metadata
            for (key, value) in metadata { all.append(key, value) }
            Wire.append(all, to: &fields)
        } else {
            fields.append(("grpc-status", "0"))
            Wire.append(metadata, to: &fields)
        }
    }
}

/// The gRPC side of one client stream: validates the response head and trailers, reassembles
/// response messages.
struct ClientStreamStateMachine {
    enum HeadAction {
        case head(Metadata)
        /// Trailers-Only: the call ended with this status before any message.
        case trailersOnly(Result<Void, RPCError>)
        case fail(RPCError)
    }

    private var deframer: MessageDeframer
    private(set) var ended = false

    init(maxMessageSize: Int) {
        deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    mutating func receiveHead(_ fields: [HeaderField], endStream: Bool) -> HeadAction {
        var status: String?, contentType: String?
        for field in fields {
            if field.name == ":status" { status = field.value } else if field.name == "content-type" { contentType = field.value }
        }
        guard let status, let httpStatus = Int(status) else {
            ended = true
            return .fail(RPCError(.internalError, "the response has no :status"))
        }
        if httpStatus != 200 {
            ended = true
            // A gRPC status in a non-200 response still wins (some proxies do this).
            if endStream, fields.contains(where: { $0.name == "grpc-status" }) { return .trailersOnly(Self.status(from: fields)) }
            return .fail(RPCError(Wire.code(forHTTPStatus: httpStatus), "the server answered with HTTP status \(httpStatus)"))
        }
        if endStream {
            ended = true
            return .trailersOnly(Self.status(from: fields))
        }
        guard let contentType, contentType.hasPrefix("application/grpc") else {
            ended = true
            return .fail(RPCError(.unknown, "the response content-type is \"\(contentType?.prefix(64) ?? "")\", not gRPC"))
        }
        return .head(Wire.metadata(from: fields))
    }

    mutating func receiveData(_ chunk: ByteBuffer, into messages: inout [ByteBuffer]) throws(RPCError) {
        guard !ended else { return }
        try deframer.process(chunk, into: &messages)
    }

    mutating func receiveTrailers(_ fields: [HeaderField]) -> Result<Void, RPCError> {
        ended = true
        if deframer.hasPartialMessage {
            return .failure(RPCError(.internalError, "the response ended inside a message"))
        }
        return Self.status(from: fields)
    }

    static func status(from fields: [HeaderField]) -> Result<Void, RPCError> {
        var code: RPCError.Code?, message = "", found = false
        for field in fields {
            if field.name == "grpc-status" {
                found = true
                code = Int(field.value).flatMap(RPCError.Code.init(rawValue:))
            } else if field.name == "grpc-message" {
                message = Wire.percentDecode(field.value)
            }
        }
        guard found else { return .failure(RPCError(.internalError, "the response ended without a grpc-status")) }
        guard let code else { return .failure(RPCError(.unknown, message.isEmpty ? "the server sent an unknown status" : message)) }
        if code == .ok { return .success(()) }
        return .failure(RPCError(code, message, metadata: Wire.metadata(from: fields)))
    }
}
