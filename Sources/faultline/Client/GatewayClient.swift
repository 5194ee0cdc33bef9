import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The Gateway's JSON API over HTTP/1.1 on the NIO already in the build: one connection per
/// request (`Connection: close`), which is all a command-line client needs, and no new
/// dependency. Plain `http://` only (no TLS in this build): put a TLS proxy's plain side or an
/// SSH tunnel in front of a remote Gateway.
struct GatewayClient: Sendable {
    let endpoint: Endpoint
    let token: String?

    /// Bodies larger than this are refused rather than buffered (journals are the largest).
    static let maximumBodySize = 64 << 20

    struct Endpoint: Sendable, Equatable {
        var host: String
        var port: Int
        /// Without a trailing `/`; empty at the root.
        var basePath: String

        init(host: String, port: Int, basePath: String) {
            self.host = host
            self.port = port
            self.basePath = basePath
        }

        init(parsing text: String) throws(ClientError) {
            guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
                  let host = components.host, !host.isEmpty else {
                throw ClientError(.usage, "FAULTLINE_URL must be an http:// URL, got '\(text.prefix(200))'")
            }
            guard scheme == "http" else {
                throw ClientError(.usage, "only http:// Gateway URLs are supported by this client (got \(scheme)://); use a local TLS proxy for https")
            }
            guard components.query == nil, components.fragment == nil, components.user == nil else {
                throw ClientError(.usage, "FAULTLINE_URL takes no query, fragment or credentials")
            }
            let port = components.port ?? 80
            guard (1...65535).contains(port) else { throw ClientError(.usage, "FAULTLINE_URL has an invalid port") }
            self.host = host
            self.port = port
            var path = components.percentEncodedPath
            while path.hasSuffix("/") { path.removeLast() }
            basePath = path
        }
    }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: Data

        var contentType: String {
            headers.first(name: "content-type")?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        }
    }

    /// Sends one request and returns the whole response; any non-2xx status is thrown as
    /// `ClientError` with the Gateway's problem details.
    func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil,
              contentType: String = "application/json", headers extra: [(String, String)] = [],
              timeout: Duration = .seconds(60)) async throws(ClientError) -> Response {
        let response: Response
        do {
            response = try await withDeadline(timeout) {
                try await exchange(method, path, query: query, body: body, contentType: contentType, headers: extra) { head, reader in
                    var data = Data()
                    while let chunk = try await reader.next() {
                        guard data.count + chunk.readableBytes <= Self.maximumBodySize else {
                            throw ClientError(.protocolViolation, "the Gateway's response exceeds \(Self.maximumBodySize) bytes")
                        }
                        data.append(contentsOf: chunk.readableBytesView)
                    }
                    return Response(status: head.status, headers: head.headers, body: data)
                }
            }
        } catch {
            throw ClientError(wrapping: error, endpoint: endpoint)
        }
        guard (200..<300).contains(response.status.code) else {
            throw ClientError(status: response.status, contentType: response.contentType, body: response.body)
        }
        return response
    }

    /// Sends a GET and hands the body's chunks to `consume` as they arrive (server-sent events).
    /// A non-2xx answer is thrown before `consume` runs.
    func stream<Result: Sendable>(_ path: String, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                                  consume: (inout BodyReader) async throws -> Result) async throws(ClientError) -> Result {
        do {
            return try await exchange(.GET, path, query: query, body: nil, contentType: "", headers: extra + [("Accept", "text/event-stream")]) { head, reader in
                guard (200..<300).contains(head.status.code) else {
                    var data = Data()
                    while let chunk = try await reader.next(), data.count < 1 << 20 { data.append(contentsOf: chunk.readableBytesView) }
                    let type = head.headers.first(name: "content-type")?.split(separator: ";").first.map(String.init) ?? ""
                    throw ClientError(status: head.status, contentType: type, body: data)
                }
                return try await consume(&reader)
            }
        } catch {
            throw ClientError(wrapping: error, endpoint: endpoint)
        }
    }

    /// The chunks of one response body, in order; nil at its end.
    struct BodyReader {
        fileprivate var iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator

        mutating func next() async throws -> ByteBuffer? {
            while let part = try await iterator.next() {
                switch part {
                case .body(let chunk): return chunk
                case .end: return nil
                case .head: throw ClientError(.protocolViolation, "a second response head on one request")
                }
            }
            throw ClientError(.connection, "the Gateway closed the connection mid-response")
        }
    }

    private func exchange<Result: Sendable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: Data?, contentType: String,
        headers extra: [(String, String)], handle: (HTTPResponseHead, inout BodyReader) async throws -> Result
    ) async throws -> Result {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: endpoint.basePath + path + Self.encode(query))
        head.headers.add(name: "Host", value: endpoint.port == 80 ? endpoint.host : "\(endpoint.host):\(endpoint.port)")
        head.headers.add(name: "User-Agent", value: "faultline-cli")
        head.headers.add(name: "Accept", value: "application/json, application/problem+json")
        head.headers.add(name: "Connection", value: "close")
        if let token { head.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in extra { head.headers.replaceOrAdd(name: name, value: value) }
        if let body {
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: String(body.count))
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var reader = BodyReader(iterator: inbound.makeAsyncIterator())
            // Skip informational answers (100 Continue); the first final head is the response.
            while let part = try await reader.iterator.next() {
                guard case .head(let response) = part else {
                    throw ClientError(.protocolViolation, "a response body before its head")
                }
                if response.status.code >= 200 { return try await handle(response, &reader) }
            }
            throw ClientError(.connection, "the Gateway closed the connection without answering")
        }
    }

    /// `path` segments are the caller's; each id goes through `segment` first.
    static func segment(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathSegmentAllowed) ?? id
    }

    private static func encode(_ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return "" }
        return "?" + query.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    private static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? text
    }
}

extension CharacterSet {
    /// RFC 3986 unreserved: everything else is percent-encoded in a path segment or query value.
    static let urlPathSegmentAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    static let urlQueryValueAllowed = urlPathSegmentAllowed
}

/// Runs `body`, throwing `ClientError(.timeout)` when it takes longer than `timeout`.
func withDeadline<Result: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw ClientError(.timeout, "the Gateway did not answer within \(timeout)")
        }
        return result
    }
}
