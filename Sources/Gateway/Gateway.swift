import FaultlinePostgres
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
    /// Nil when no SecretService is configured: environments, integrations and the audit trail answer 503.
    public var secrets: SecretsV1.SecretClient?
    /// Nil when no ScheduleService is configured: plans, runners and the kill switch answer 503.
    public var schedules: SchedulesV1.ScheduleClient?
    /// What `/readyz` checks, by name.
    public var dependencies: [(name: String, caller: any RPCCaller)]
    public var logger: Logger
    public var metrics = GatewayMetrics()

    public init(configuration: GatewayConfiguration, tokens: TokenStore, experiments: ExperimentsV1.ExperimentClient,
                runners: RunnersV1.RunnerClient?, secrets: SecretsV1.SecretClient? = nil,
                schedules: SchedulesV1.ScheduleClient? = nil,
                dependencies: [(name: String, caller: any RPCCaller)], logger: Logger) {
        self.configuration = configuration
        self.tokens = tokens
        self.experiments = experiments
        self.runners = runners
        self.secrets = secrets
        self.schedules = schedules
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
        let routes = RouteTable()
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: EdgeMiddleware(configuration: configuration, routes: routes))
        router.get("healthz") { _, _ in Response.json(#"{"status":"ok"}"#) }
        router.get("readyz") { _, context in try await readiness(context) }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: metrics.exposition()))
        }
        router.get("api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: Self.openAPIDocument))
        }
        let api = router.group("api/v1")
            .add(middleware: AuthenticationMiddleware(tokens: tokens))
            .add(middleware: ResourceErrorMiddleware())
        TokenRoutes(tokens: tokens).register(on: api)
        ExperimentRoutes(gateway: self).register(on: api)
        ExecutionRoutes(gateway: self).register(on: api)
        SecretRoutes(gateway: self).register(on: api)
        ScheduleRoutes(gateway: self).register(on: api)
        ReliablyRoutes(gateway: self).register(on: api)  // Reliably/: existing Reliably clients
        TemplateRoutes(gateway: self).register(on: api)
        Console(gateway: self).register(on: router, routes: routes)
        routes.record(router)
        return router
    }

    /// The application bound to the configured address; `onServerRunning` gets the bound port.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "faultline"),
            services: [tokens.revocationListener(logger: logger)],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// A configured client, or 503 naming the variable that configures it.
    func required<Client>(_ client: Client?, _ service: String, variable: String) throws -> Client {
        guard let client else {
            throw Problem(.serviceUnavailable, code: "\(service).not_configured",
                          detail: "no \(service) service is configured (\(variable))")
        }
        return client
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

    /// Ready when every configured dependency answers its gRPC health check SERVING and the
    /// token database answers; all are checked at once, each within 2 seconds.
    private func readiness(_ context: GatewayContext) async throws -> Response {
        var health = CallOptions(timeout: .seconds(2))
        health.metadata.addString(context.requestID, forKey: ContractMetadata.requestID)
        let options = health
        let checks = await withTaskGroup(of: (String, String).self) { group in
            for dependency in dependencies {
                group.addTask {
                    do {
                        let response = try await HealthV1.HealthClient(dependency.caller).check(.init(), options: options)
                        return (dependency.name, response.status == .serving ? "serving" : "not_serving")
                    } catch {
                        return (dependency.name, "unreachable")
                    }
                }
            }
            group.addTask {
                do {
                    _ = try await tokens.database.query("SELECT 1")
                    return ("database", "serving")
                } catch {
                    return ("database", "unreachable")
                }
            }
            var checks: [String: String] = [:]
            for await (name, status) in group { checks[name] = status }
            return checks
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
}

