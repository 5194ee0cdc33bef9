import FaultlineRPC
import Hummingbird
import Logging

/// The service a console page depends on, and the one rule for when it cannot be reached: the
/// page is a 503 naming the service, never the RPC's own message (it names hosts and ports).
/// Pages register under `ConsoleBackend.Middleware` for their main service; a call to another
/// service inside the page is wrapped in `guarding` so the page blames the right one.
enum ConsoleBackend: String, Sendable {
    case experiments = "ExperimentService"
    case secrets = "SecretService"
    case schedules = "ScheduleService"

    /// Down, restarting, overloaded or too slow: what a retry later may mend. A deadline is
    /// the same to the reader as a refused connection, so both are one 503.
    static func unreachable(_ error: any Error) -> Bool {
        guard let rpc = error as? RPCError else { return false }
        return rpc.code == .unavailable || rpc.code == .deadlineExceeded
    }

    /// The 503 a page answers when `backend` (nil: a service it does not know) is unreachable.
    static func problem(_ backend: ConsoleBackend?) -> Problem {
        Problem(.serviceUnavailable, code: "console.service_unavailable",
                detail: "\(backend?.rawValue ?? "A service this page needs") is unavailable right now, so this page cannot be shown; try again in a moment.")
    }

    /// `body`, with an unreachable service reported as this one's 503 (its cause logged, not shown).
    func guarding<T>(_ logger: Logger, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError where Self.unreachable(error) {
            logger.warning("console page without its service", metadata: ["service": "\(rawValue)", "grpc.status": "\(error.code)", "error": "\(error)"])
            throw Self.problem(self)
        }
    }

    /// The group-wide `guarding` for the pages whose main content comes from `backend`.
    struct Middleware: RouterMiddleware {
        typealias Context = GatewayContext
        let backend: ConsoleBackend

        func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
            try await backend.guarding(context.logger) { try await next(request, context) }
        }
    }
}
