import Foundation
import FaultlineRPC
import HTTPTypes
import Hummingbird
import Logging

/// Outermost: assigns the request id, turns every error into a problem response, adds CORS,
/// and logs one line per request (never a header value, so never a token).
struct EdgeMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let configuration: GatewayConfiguration
    let routes: RouteTable

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        var context = context
        context.bodyLimit = configuration.maximumBodyBytes
        context.requestID = request.headers[.requestID].flatMap(Self.acceptable) ?? UUID().uuidString.lowercased()
        context.logger[metadataKey: "request.id"] = "\(context.requestID)"
        let origin = request.headers[.origin]
        var response: Response
        if request.method == .options, origin != nil {
            response = Response(status: .noContent)  // CORS preflight
        } else {
            do {
                guard Self.methods.contains(request.method) else {
                    throw Problem(.methodNotAllowed, code: "route.method_not_allowed", detail: "the API has no \(request.method) routes")
                }
                response = try await next(request, context)
            } catch {
                var problem = Problem(from: error)
                if problem.code == "route.not_found", !routes.methods(for: request.uri.path).isEmpty {
                    problem = .methodNotAllowed(request.method)
                }
                if problem.status.code >= 500 {
                    var metadata: Logger.Metadata = ["error": "\(String(reflecting: type(of: error)))", "code": "\(problem.code)"]
                    if let rpc = error as? RPCError { metadata["cause"] = "\(rpc.message)" }  // what the client is not told
                    context.logger.error("request failed", metadata: metadata)
                }
                response = problem.response(requestID: context.requestID)
            }
        }
        response.headers[.requestID] = context.requestID
        if response.status == .methodNotAllowed {
            response.headers[.allow] = routes.methods(for: request.uri.path).map(\.rawValue).joined(separator: ", ")
        }
        if let origin, configuration.allowedOrigins.contains("*") || configuration.allowedOrigins.contains(origin) {
            response.headers[.accessControlAllowOrigin] = configuration.allowedOrigins.contains("*") ? "*" : origin
            response.headers[.accessControlAllowHeaders] = "authorization, content-type, last-event-id, x-request-id"
            response.headers[.accessControlAllowMethods] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            response.headers[.accessControlExposeHeaders] = "x-request-id"
            response.headers[.vary] = "Origin"
        }
        context.logger.info("request", metadata: [
            "http.method": "\(request.method)", "http.path": "\(request.uri.path)",
            "http.status": "\(response.status.code)",
        ])
        return response
    }

    static let methods: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .patch, .delete, .options]

    /// A client's id is kept only when short and printable: it goes into logs and metadata.
    static func acceptable(_ value: String) -> String? {
        (1...128).contains(value.utf8.count) && value.utf8.allSatisfy { (0x21...0x7E).contains($0) } ? value : nil
    }
}

/// Resolves the bearer token into the caller; 401 without a live one.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let tokens: TokenStore

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw Problem.unauthenticated
        }
        let value = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let principal = try await tokens.authenticate(value) else { throw Problem.unauthenticated }
        var context = context
        context.principal = principal
        context.logger[metadataKey: "org"] = "\(principal.organization)"
        context.logger[metadataKey: "token.id"] = "\(principal.tokenID)"
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let requestID = Self("x-request-id")!
    static let origin = Self("origin")!
    static let vary = Self("vary")!
    static let allow = Self("allow")!
    static let lastEventID = Self("last-event-id")!
    static let accessControlAllowOrigin = Self("access-control-allow-origin")!
    static let accessControlAllowHeaders = Self("access-control-allow-headers")!
    static let accessControlAllowMethods = Self("access-control-allow-methods")!
    static let accessControlExposeHeaders = Self("access-control-expose-headers")!
}
