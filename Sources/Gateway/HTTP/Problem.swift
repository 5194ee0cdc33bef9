import FaultlineProto
import FaultlineRPC
import Foundation
public import HTTPTypes
public import Hummingbird

/// The one error shape of the API: RFC 9457 `application/problem+json` with a stable `code`
/// that clients match on (the `title` and `detail` are for people and may change).
public struct Problem: Error, Sendable {
    public var status: HTTPResponse.Status
    /// Stable, dotted, lower-case: `auth.missing`, `experiment.invalid`, `rpc.not_found`, ...
    public var code: String
    public var detail: String
    /// Validation problems of a rejected experiment, each with its JSON path.
    public var problems: [ProblemItem] = []

    public init(_ status: HTTPResponse.Status, code: String, detail: String, problems: [ProblemItem] = []) {
        self.status = status
        self.code = code
        self.detail = detail
        self.problems = problems
    }

    public struct ProblemItem: Codable, Sendable, Equatable {
        public var path: String
        public var severity: String
        public var code: String
        public var message: String
    }

    static func badRequest(_ code: String, _ detail: String) -> Problem { Problem(.badRequest, code: code, detail: detail) }
    static let unauthenticated = Problem(.unauthorized, code: "auth.unauthenticated", detail: "a valid bearer token is required")
    static func forbidden(_ detail: String) -> Problem { Problem(.forbidden, code: "auth.forbidden", detail: detail) }
    static func notFound(_ what: String) -> Problem { Problem(.notFound, code: "\(what).not_found", detail: "no such \(what)") }
    /// A known path asked with a method it does not answer (the edge adds `Allow`).
    static func methodNotAllowed(_ method: HTTPRequest.Method) -> Problem {
        Problem(.methodNotAllowed, code: "route.method_not_allowed", detail: "\(method) is not allowed here")
    }
}

extension Problem {
    /// Any error a handler throws, as the client should see it. RPC statuses map as
    /// google.rpc.Code does; anything unexpected is a 500 with a fixed text (the cause is logged,
    /// never sent).
    public init(from error: any Error) {
        switch error {
        case let problem as Problem:
            self = problem
        case let rpc as RPCError:
            self.init(rpc: rpc)
        case let http as HTTPError:
            let status = http.status
            let code: String = switch status.code {
            case 404: "route.not_found"
            case 405: "route.method_not_allowed"
            case 413: "request.too_large"
            case 400: "request.malformed"
            default: "http.\(status.code)"
            }
            self.init(status, code: code, detail: http.body ?? status.reasonPhrase)
        case is LookupGate.Overloaded:
            self.init(.serviceUnavailable, code: "auth.overloaded", detail: "too many unknown tokens are being checked; retry shortly")
        case is DecodingError:
            self.init(.badRequest, code: "request.malformed", detail: "the JSON body does not match the expected shape")
        default:
            self.init(.internalServerError, code: "internal", detail: "internal error")
        }
    }

    init(rpc: RPCError) {
        let status: HTTPResponse.Status = switch rpc.code {
        case .invalidArgument, .failedPrecondition, .outOfRange: .badRequest
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        case .notFound: .notFound
        case .alreadyExists, .aborted: .conflict
        case .resourceExhausted: .tooManyRequests
        case .cancelled: HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
        case .unimplemented: .notImplemented
        case .unavailable: .serviceUnavailable
        case .deadlineExceeded: .gatewayTimeout
        default: .internalServerError
        }
        let name = rpc.code.description.lowercased()
        // Server-side failures keep their message private: it may name tables, hosts and ports
        // (an unreachable service's error is the RPC client's "cannot reach HOST:PORT"). The
        // edge logs the cause.
        let detail = switch rpc.code {
        case .unavailable: "a service this request needs is unavailable; retry shortly"
        case .deadlineExceeded: "a service this request needs did not answer in time; retry shortly"
        default: status.code >= 500 ? "internal error" : rpc.message
        }
        let problems = rpc.validationReport?.problems.map(ProblemItem.init) ?? []
        self.init(status, code: problems.isEmpty ? "rpc.\(name)" : "experiment.invalid", detail: detail, problems: problems)
    }

    private struct Body: Encodable {
        var type = "about:blank"
        var title: String
        var status: Int
        var code: String
        var detail: String
        var requestId: String
        var problems: [ProblemItem]?

        enum CodingKeys: String, CodingKey {
            case type, title, status, code, detail, problems
            case requestId = "request_id"
        }
    }

    public func response(requestID: String) -> Response {
        let body = Body(title: status.reasonPhrase, status: status.code, code: code, detail: detail,
                        requestId: requestID, problems: problems.isEmpty ? nil : problems)
        let data = (try? JSONEncoder.gateway.encode(body)) ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Problem.ProblemItem {
    init(_ problem: ExperimentsV1.ValidationProblem) {
        self.init(path: problem.path, severity: problem.severity == .warning ? "warning" : "error",
                  code: problem.code, message: problem.message)
    }
}

extension JSONEncoder {
    static let gateway: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
