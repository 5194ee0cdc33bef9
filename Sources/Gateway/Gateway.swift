public import FaultlinePostgres
public import FaultlineProto
public import FaultlineRPC
import Foundation
public import Hummingbird
public import Logging
import ServiceKit

/// The public JSON API: a Hummingbird application over the services' RPC clients.
public struct Gateway: Sendable {
    public var configuration: GatewayConfiguration
    public var tokens: TokenStore
    public var experiments: ExperimentsV1.ExperimentClient
    /// Nil when no RunnerService is configured: running experiments answers 503.
    public var runners: RunnersV1.RunnerClient?
    /// What `/readyz` checks, by name.
    public var dependencies: [(name: String, caller: any RPCCaller)]
    public var logger: Logger

    public init(configuration: GatewayConfiguration, tokens: TokenStore, experiments: ExperimentsV1.ExperimentClient,
                runners: RunnersV1.RunnerClient?, dependencies: [(name: String, caller: any RPCCaller)], logger: Logger) {
        self.configuration = configuration
        self.tokens = tokens
        self.experiments = experiments
        self.runners = runners
        self.dependencies = dependencies
        self.logger = logger
    }

    /// The served OpenAPI document, as committed.
    static let openAPIDocument: ByteBuffer = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
              let data = try? Data(contentsOf: url) else { return ByteBuffer(string: "{}") }
        return ByteBuffer(bytes: data)
    }()

    public func router() -> Router<GatewayContext> {
        let router = Router(context: GatewayContext.self)
        router.add(middleware: EdgeMiddleware(configuration: configuration))
        router.get("healthz") { _, _ in Response.json(#"{"status":"ok"}"#) }
        router.get("readyz") { _, context in try await readiness(context) }
        router.get("api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: Self.openAPIDocument))
        }
        let api = router.group("api/v1").add(middleware: AuthenticationMiddleware(tokens: tokens))
        TokenRoutes(tokens: tokens).register(on: api)
        ExperimentRoutes(gateway: self).register(on: api)
        ExecutionRoutes(gateway: self).register(on: api)
        Console(gateway: self).register(on: router)
        return router
    }

    /// The application bound to the configured address; `onServerRunning` gets the bound port.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "faultline"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Options for an RPC made for the caller of `context`: organisation, actor, role and
    /// request id as metadata, and the request's deadline.
    func callOptions(_ context: GatewayContext, timeout: Duration?? = .none) throws -> CallOptions {
        guard let principal = context.principal else { throw Problem.unauthenticated }
        var options = CallOptions.on(behalfOf: principal.organization, timeout: timeout ?? configuration.requestTimeout)
        options.metadata.addString(principal.tokenID, forKey: ContractMetadata.actor)
        options.metadata.addString(principal.role.rawValue, forKey: ContractMetadata.role)
        options.metadata.addString(context.requestID, forKey: ContractMetadata.requestID)
        return options
    }

    private func readiness(_ context: GatewayContext) async throws -> Response {
        var checks: [String: String] = [:]
        var options = CallOptions(timeout: .seconds(2))
        options.metadata.addString(context.requestID, forKey: ContractMetadata.requestID)
        for dependency in dependencies {
            let status: String
            do {
                let response = try await HealthV1.HealthClient(dependency.caller).check(.init(), options: options)
                status = response.status == .serving ? "serving" : "not_serving"
            } catch {
                status = "unreachable"
            }
            checks[dependency.name] = status
        }
        do {
            _ = try await tokens.database.query("SELECT 1")
            checks["database"] = "serving"
        } catch {
            checks["database"] = "unreachable"
        }
        let ready = checks.values.allSatisfy { $0 == "serving" }
        struct Body: Encodable { var status: String; var checks: [String: String] }
        return try Response.json(Body(status: ready ? "ready" : "not_ready", checks: checks),
                                 status: ready ? .ok : .serviceUnavailable)
    }
}

extension Response {
    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder.gateway.encode(value))))
    }
}

extension GatewayContext {
    /// The caller, when its role grants `permission`; 403 otherwise.
    func require(_ permission: Role.Permission) throws -> Principal {
        guard let principal else { throw Problem.unauthenticated }
        guard principal.role.allows(permission) else {
            throw Problem.forbidden("a \(principal.role.rawValue) token may not do this")
        }
        return principal
    }
}

extension Request {
    /// The body as bytes, refused with 413 past the configured limit.
    func bytes(_ context: GatewayContext) async throws -> ByteBuffer {
        do {
            return try await body.collect(upTo: context.bodyLimit)
        } catch {
            throw Problem(.contentTooLarge, code: "request.too_large", detail: "the body exceeds \(context.bodyLimit) bytes")
        }
    }

    /// The body decoded as JSON `T`; an empty body decodes as `{}`.
    func json<T: Decodable>(_ type: T.Type, _ context: GatewayContext) async throws -> T {
        let data = Data(try await bytes(context).readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data.isEmpty ? Data("{}".utf8) : data)
        } catch {
            throw Problem.badRequest("request.malformed", "the body is not the expected JSON object")
        }
    }

    func integer(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        guard let value = Int64(text), range.contains(value) else {
            throw Problem.badRequest("request.parameter.invalid", "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func string(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }
}

extension Parameters {
    /// A path id; ids are opaque but never empty nor huge.
    func id(_ name: String = "id") throws -> String {
        guard let value = get(name), (1...128).contains(value.utf8.count) else {
            throw Problem.badRequest("request.parameter.invalid", "\(name) is not a valid id")
        }
        return String(value)
    }

    /// The path id of an experiment or execution. A malformed one names no resource at all: to
    /// an HTTP client that is the same as an unknown id, so it is a 404 before any RPC.
    func id(of kind: ResourceKind, _ name: String = "id") throws -> String {
        let value = try id(name)
        guard PrefixedID.isWellFormed(value, prefix: kind.prefix) else { throw Problem.notFound(kind.rawValue) }
        return value
    }
}

/// The kinds of ids the routes take, with ExperimentService's prefixes.
enum ResourceKind: String {
    case experiment, execution

    var prefix: String { self == .experiment ? "exp" : "exe" }
}
