import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Everything a client command can fail with, printed as one clear paragraph; each kind has its
/// own exit code (documented in `faultline run --help`).
struct ClientError: Error, CustomStringConvertible, Sendable {
    struct Kind: Equatable, Sendable {
        fileprivate let name: String
        let exitCode: Int32

        /// A flag, URL or argument that cannot work.
        static let usage = Kind(name: "usage", exitCode: 64)
        /// The Gateway could not be reached or dropped the connection.
        static let connection = Kind(name: "connection", exitCode: 69)
        static let timeout = Kind(name: "timeout", exitCode: 69)
        /// The Gateway answered with something that is not HTTP/JSON as documented.
        static let protocolViolation = Kind(name: "protocol", exitCode: 76)
        /// The Gateway refused the request (application/problem+json).
        static let problem = Kind(name: "problem", exitCode: 65)
        /// A local file or process failed (`run --local`).
        static let local = Kind(name: "local", exitCode: 74)
    }

    /// One item of a rejected experiment's validation report.
    struct Item: Decodable, Sendable {
        var path: String
        var severity: String?
        var code: String?
        var message: String
    }

    /// The Gateway's RFC 9457 body, when there was one.
    struct Problem: Decodable, Sendable {
        var status: Int?
        var title: String?
        var code: String?
        var detail: String?
        var request_id: String?
        var problems: [Item]?
    }

    var kind: Kind
    var message: String
    var problem: Problem?
    var httpStatus: Int?

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A non-2xx answer: the problem body if the Gateway sent one, else the status and a bit of
    /// whatever came (an intermediary's HTML page, say), never more than a line of it.
    init(status: HTTPResponseStatus, contentType: String, body: Data) {
        kind = .problem
        httpStatus = Int(status.code)
        if contentType.hasSuffix("json"), let problem = try? JSONDecoder().decode(Problem.self, from: body),
           problem.code != nil || problem.detail != nil {
            self.problem = problem
            message = problem.detail ?? problem.title ?? status.reasonPhrase
        } else {
            let snippet = String(decoding: body.prefix(200), as: UTF8.self)
                .split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            message = snippet.isEmpty ? status.reasonPhrase : "\(status.reasonPhrase): \(snippet)"
        }
    }

    /// Any error from the transport, as a connection failure naming the endpoint.
    init(wrapping error: any Error, endpoint: GatewayClient.Endpoint) {
        if let error = error as? ClientError {
            self = error
            return
        }
        let target = "\(endpoint.host):\(endpoint.port)"
        switch error {
        case is CancellationError:
            self.init(.connection, "cancelled")
        case let failed as NIOConnectionError:
            let cause = failed.connectionErrors.first.map { "\($0.error)" } ?? failed.dnsAAAAError.map { "\($0)" } ?? "no address"
            self.init(.connection, "cannot reach the Gateway at \(target): \(cause)")
        case let io as IOError:
            self.init(.connection, "cannot reach the Gateway at \(target): \(io.description)")
        case is ChannelError:
            self.init(.connection, "cannot reach the Gateway at \(target): \(error)")
        case HTTPParserError.invalidEOFState:
            // The connection closed mid-body (the Gateway restarting): a drop, not bad HTTP.
            self.init(.connection, "the Gateway at \(target) closed the connection mid-response")
        case is HTTPParserError:
            self.init(.protocolViolation, "the Gateway at \(target) did not answer in HTTP/1.1 (\(error))")
        default:
            self.init(.connection, "request to the Gateway at \(target) failed: \(error)")
        }
    }

    var description: String {
        guard kind == .problem else { return message }
        var text = "the Gateway refused the request"
        if let httpStatus { text += " (HTTP \(httpStatus)" + (problem?.code.map { ", \($0)" } ?? "") + ")" }
        text += ": \(message)"
        if problem?.code == "route.not_found" {
            text += "\n  this Gateway does not serve that route (is it older than this CLI?)"
        }
        for item in problem?.problems ?? [] {
            text += "\n  \(item.severity ?? "error") at \(item.path.isEmpty ? "/" : item.path): \(item.message)"
            if let code = item.code { text += " [\(code)]" }
        }
        if let id = problem?.request_id { text += "\n  request id: \(id)" }
        return text
    }
}
