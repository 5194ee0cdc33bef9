import FaultlineProto
import Foundation

// The JSON shapes of environments, integrations and the audit trail (SecretService). A secret's
// value only ever travels inwards: `SecretInputBody` decodes it, no view has a field for it.

struct DeliveryJSON: Codable {
    struct EnvVar: Codable { var name: String? }
    struct File: Codable { var path: String; var path_env_var: String? }
    var env_var: EnvVar?
    var file: File?

    init(_ d: SecretsV1.SecretDelivery?) {
        switch d?.target {
        case .file(let file)?: self.file = File(path: file.path, path_env_var: file.pathEnvVar.nonEmpty)
        case .envVar(let env)?: env_var = EnvVar(name: env.name.nonEmpty)
        case nil: env_var = EnvVar(name: nil)
        }
    }

    /// Exactly one of `env_var` and `file`.
    func proto() throws -> SecretsV1.SecretDelivery {
        switch (env_var, file) {
        case (let env?, nil): return .init(target: .envVar(.init(name: env.name ?? "")))
        case (nil, let file?): return .init(target: .file(.init(path: file.path, pathEnvVar: file.path_env_var ?? "")))
        default: throw Problem.badRequest("request.field.invalid", "a secret's delivery is either env_var or file")
        }
    }
}

struct SecretInfoView: Encodable {
    var name: String
    var delivery: DeliveryJSON
    var updated_at_us: Int64

    init(_ s: SecretsV1.SecretInfo) {
        name = s.name; delivery = DeliveryJSON(s.delivery); updated_at_us = s.updatedAtUs
    }
}

/// A secret as a request sets it: the value as UTF-8 text (`value`) or as base64 bytes
/// (`value_base64`, for files), exactly one.
struct SecretInputBody: Decodable {
    var name: String
    var value: String?
    var value_base64: String?
    var delivery: DeliveryJSON?

    func proto() throws -> SecretsV1.SecretInput {
        let bytes: [UInt8]
        switch (value, value_base64) {
        case (let text?, nil): bytes = Array(text.utf8)
        case (nil, let encoded?):
            guard let data = Data(base64Encoded: encoded) else {
                throw Problem.badRequest("request.field.invalid", "value_base64 of secret \(name.prefix(64)) is not base64")
            }
            bytes = Array(data)
        default:
            throw Problem.badRequest("request.field.invalid", "secret \(name.prefix(64)) needs exactly one of value and value_base64")
        }
        return .init(name: name, delivery: try (delivery ?? DeliveryJSON(nil)).proto(), value: bytes)
    }
}

struct EnvironmentView: Encodable {
    var id: String
    var name: String
    var description: String
    var variables: [String: String]
    var secrets: [SecretInfoView]
    var created_at_us: Int64
    var updated_at_us: Int64
    var version: Int64

    init(_ e: SecretsV1.Environment) {
        id = e.id; name = e.name; description = e.description; variables = e.variables
        secrets = e.secrets.map(SecretInfoView.init)
        created_at_us = e.createdAtUs; updated_at_us = e.updatedAtUs; version = e.version
    }
}

struct EnvironmentPage: Encodable {
    var environments: [EnvironmentView]
    var next_page_token: String?
}

struct HttpProbeJSON: Codable {
    var url: String
    var method: String?
    var headers: [String: String]?
    var secret_headers: [String: String]?
    var body: String?
    var timeout_us: Int64?
    var expected_status: [Int32]?
    var expected_body_regex: String?

    init(_ p: SecretsV1.HttpProbe?) {
        let p = p ?? .init()
        url = p.url; method = p.method.nonEmpty; headers = p.headers; secret_headers = p.secretHeaders
        body = p.body.nonEmpty; timeout_us = p.timeoutUs; expected_status = p.expectedStatus
        expected_body_regex = p.expectedBodyRegex.nonEmpty
    }

    var proto: SecretsV1.HttpProbe {
        .init(url: url, method: method ?? "", headers: headers ?? [:], secretHeaders: secret_headers ?? [:], body: body ?? "",
              timeoutUs: timeout_us ?? 0, expectedStatus: expected_status ?? [], expectedBodyRegex: expected_body_regex ?? "")
    }
}

/// One integration kind, keyed by its name as in the contract's oneof.
struct IntegrationConfigJSON: Codable {
    struct PreCheck: Codable { var probe: HttpProbeJSON }
    struct Safeguard: Codable { var probe: HttpProbeJSON; var interval_us: Int64?; var failure_threshold: Int32?; var skip_rollbacks: Bool? }
    struct Slack: Codable { var channel: String; var token_secret: String; var events: [String]? }
    struct Webhook: Codable { var url: String; var signing_secret: String; var events: [String]?; var timeout_us: Int64? }
    struct Prometheus: Codable { var pushgateway_url: String; var job: String?; var labels: [String: String]? }
    struct OpenTelemetry: Codable {
        var endpoint: String
        var otlp_protocol: String?
        var headers: [String: String]?
        var secret_headers: [String: String]?
        var service_name: String?
        var resource_attributes: [String: String]?
    }

    var http_pre_check: PreCheck?
    var http_safeguard: Safeguard?
    var slack: Slack?
    var webhook: Webhook?
    var prometheus: Prometheus?
    var opentelemetry: OpenTelemetry?

    init(_ c: SecretsV1.IntegrationConfig?) {
        switch c?.kind {
        case .httpPreCheck(let v)?: http_pre_check = .init(probe: .init(v.probe))
        case .httpSafeguard(let v)?:
            http_safeguard = .init(probe: .init(v.probe), interval_us: v.intervalUs, failure_threshold: v.failureThreshold, skip_rollbacks: v.skipRollbacks)
        case .slack(let v)?: slack = .init(channel: v.channel, token_secret: v.tokenSecret, events: v.events)
        case .webhook(let v)?: webhook = .init(url: v.url, signing_secret: v.signingSecret, events: v.events, timeout_us: v.timeoutUs)
        case .prometheus(let v)?: prometheus = .init(pushgateway_url: v.pushgatewayUrl, job: v.job.nonEmpty, labels: v.labels)
        case .opentelemetry(let v)?:
            opentelemetry = .init(endpoint: v.endpoint, otlp_protocol: v.otlpProtocol == .unspecified ? nil : v.otlpProtocol.apiName,
                                  headers: v.headers, secret_headers: v.secretHeaders, service_name: v.serviceName.nonEmpty,
                                  resource_attributes: v.resourceAttributes)
        case nil: break
        }
    }

    /// Exactly one kind must be set.
    func proto() throws -> SecretsV1.IntegrationConfig {
        var kinds: [SecretsV1.IntegrationConfig.Kind] = []
        if let v = http_pre_check { kinds.append(.httpPreCheck(.init(probe: v.probe.proto))) }
        if let v = http_safeguard {
            kinds.append(.httpSafeguard(.init(probe: v.probe.proto, intervalUs: v.interval_us ?? 0,
                                              failureThreshold: v.failure_threshold ?? 0, skipRollbacks: v.skip_rollbacks ?? false)))
        }
        if let v = slack { kinds.append(.slack(.init(channel: v.channel, tokenSecret: v.token_secret, events: v.events ?? []))) }
        if let v = webhook {
            kinds.append(.webhook(.init(url: v.url, signingSecret: v.signing_secret, events: v.events ?? [], timeoutUs: v.timeout_us ?? 0)))
        }
        if let v = prometheus { kinds.append(.prometheus(.init(pushgatewayUrl: v.pushgateway_url, job: v.job ?? "", labels: v.labels ?? [:]))) }
        if let v = opentelemetry {
            let otlp = try SecretsV1.OtlpProtocol.parse(v.otlp_protocol, field: "otlp_protocol") ?? .unspecified
            // SecretService answers UNIMPLEMENTED for the others: refused here as the client's choice, not a 501.
            guard otlp == .unspecified || otlp == .httpJson else {
                throw Problem.badRequest("integration.unsupported", "opentelemetry exports over http_json only")
            }
            kinds.append(.opentelemetry(.init(endpoint: v.endpoint, otlpProtocol: otlp, headers: v.headers ?? [:],
                                              secretHeaders: v.secret_headers ?? [:], serviceName: v.service_name ?? "",
                                              resourceAttributes: v.resource_attributes ?? [:])))
        }
        guard kinds.count == 1, let kind = kinds.first else {
            throw Problem.badRequest("request.field.invalid",
                                     "config needs exactly one of http_pre_check, http_safeguard, slack, webhook, prometheus, opentelemetry")
        }
        return .init(kind: kind)
    }
}

extension SecretsV1.OtlpProtocol: APIEnum {}
extension SecretsV1.AuditAction: APIEnum {}
extension CommonV1.Actor.Kind: APIEnum {}

struct IntegrationView: Encodable {
    var id: String
    var name: String
    var description: String
    var config: IntegrationConfigJSON
    var environment_id: String?
    var created_at_us: Int64
    var updated_at_us: Int64
    var version: Int64

    init(_ i: SecretsV1.Integration) {
        id = i.id; name = i.name; description = i.description; config = .init(i.config)
        environment_id = i.environmentId.nonEmpty
        created_at_us = i.createdAtUs; updated_at_us = i.updatedAtUs; version = i.version
    }
}

struct IntegrationPage: Encodable {
    var integrations: [IntegrationView]
    var next_page_token: String?
}

struct ActorView: Encodable {
    var kind: String
    var id: String
    var display_name: String?

    init(_ a: CommonV1.Actor?) {
        let a = a ?? .init()
        kind = a.kind.apiName; id = a.id; display_name = a.displayName.nonEmpty
    }
}

struct AuditEventView: Encodable {
    var id: String
    var occurred_at_us: Int64
    var action: String
    var actor: ActorView
    var peer: String?
    var environment_id: String?
    var integration_ids: [String]
    var secret_names: [String]
    var execution_id: String?

    init(_ e: SecretsV1.AuditEvent) {
        id = e.id; occurred_at_us = e.occurredAtUs; action = e.action.apiName; actor = .init(e.actor)
        peer = e.peer.nonEmpty; environment_id = e.environmentId.nonEmpty
        integration_ids = e.integrationIds; secret_names = e.secretNames; execution_id = e.executionId.nonEmpty
    }
}

struct AuditEventPage: Encodable {
    var events: [AuditEventView]
    var next_page_token: String?
}
