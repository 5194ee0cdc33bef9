import FaultlineRPC
import HTTPTypes
import Hummingbird
import ServiceKit

/// The kinds of resources the API names by id. Every "no such X" answer, whether the id is
/// malformed, unknown, or another organisation's, is a 404 with code `<kind>.not_found`.
enum ResourceKind: String, Sendable {
    case experiment, execution, environment, integration, plan, runner

    /// The id prefix the owning service gives (`PrefixedID`). Runners have none: a runner may
    /// keep the id it had before a restart, so their ids are only bounded in length here.
    var prefix: String? {
        switch self {
        case .experiment: "exp"
        case .execution: "exe"
        case .environment: "env"
        case .integration: "int"
        case .plan: "plan"
        case .runner: nil
        }
    }

    /// The kind a collection path segment holds (`experiments` → experiment).
    init?(collection: Substring) {
        guard collection.hasSuffix("s"), let kind = Self(rawValue: String(collection.dropLast())) else { return nil }
        self = kind
    }

    var notFound: Problem { Problem.notFound(rawValue) }

    /// `id` when it could name a resource of this kind; otherwise it names nothing, which an
    /// HTTP client cannot tell from an unknown id: 404 before any RPC.
    func checked(_ id: String) throws -> String {
        guard (1...128).contains(id.utf8.count) else { throw notFound }
        if let prefix, !PrefixedID.isWellFormed(id, prefix: prefix) { throw notFound }
        return id
    }

    /// A reference in a request body (`environment_id`, ...): empty means none.
    func reference(_ id: String?) throws -> String {
        guard let id, !id.isEmpty else { return "" }
        return try checked(id)
    }
}

extension Parameters {
    /// The path id of a resource of `kind`; malformed is `<kind>.not_found`.
    func id(of kind: ResourceKind, _ name: String = "id") throws -> String {
        try kind.checked(get(name).map { String($0) } ?? "")
    }
}

/// Gives a service's NOT_FOUND the code of the resource the path names: `GET /plans/{id}` that
/// ends in NOT_FOUND is `plan.not_found`, like a malformed plan id. Handlers whose calls can
/// miss another resource (a body reference) throw their own problem first.
struct ResourceErrorMiddleware: RouterMiddleware {
    typealias Context = GatewayContext

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RPCError where error.code == .notFound {
            // /api/v1/<collection>/...
            let segments = request.uri.path.split(separator: "/")
            guard segments.count >= 3, let kind = ResourceKind(collection: segments[2]) else { throw error }
            throw kind.notFound
        }
    }
}
