import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// Validates an integration's configuration before it is stored: every field a control will act
/// on, and every secret it names (which must live in the integration's own environment).
enum IntegrationCheck {
    static let maximumTimeoutUs: Int64 = 300_000_000

    /// The secret names the configuration refers to.
    static func validate(_ config: SecretsV1.IntegrationConfig?, hasEnvironment: Bool) throws(RPCError) -> [String] {
        guard let kind = config?.kind else { throw RPCError(.invalidArgument, "config: one integration kind is required") }
        var secrets: [String]
        switch kind {
        case .httpPreCheck(let check):
            secrets = try probe(check.probe, "config.http_pre_check.probe")
        case .httpSafeguard(let guardConfig):
            secrets = try probe(guardConfig.probe, "config.http_safeguard.probe")
            guard (0...3_600_000_000).contains(guardConfig.intervalUs) else {
                throw RPCError(.invalidArgument, "config.http_safeguard.interval_us must be 0-3600000000")
            }
            guard (0...1000).contains(guardConfig.failureThreshold) else {
                throw RPCError(.invalidArgument, "config.http_safeguard.failure_threshold must be 0-1000")
            }
        case .webhook(let hook):
            try url(hook.url, "config.webhook.url")
            try Check.identifier(hook.signingSecret, "config.webhook.signing_secret")
            try timeout(hook.timeoutUs, "config.webhook.timeout_us")
            try events(hook.events, "config.webhook.events")
            secrets = [hook.signingSecret]
        case .slack(let slack):
            guard (1...80).contains(slack.channel.utf8.count) else { throw RPCError(.invalidArgument, "config.slack.channel must be 1-80 bytes") }
            try Check.text(slack.channel, "config.slack.channel", max: 80)
            try Check.identifier(slack.tokenSecret, "config.slack.token_secret")
            try events(slack.events, "config.slack.events")
            secrets = [slack.tokenSecret]
        case .prometheus(let prometheus):
            try url(prometheus.pushgatewayUrl, "config.prometheus.pushgateway_url")
            guard prometheus.job.utf8.count <= 128, !prometheus.job.contains("/") else {
                throw RPCError(.invalidArgument, "config.prometheus.job must be at most 128 bytes without /")
            }
            try Check.text(prometheus.job, "config.prometheus.job", max: 128)
            guard prometheus.labels.count <= 20 else { throw RPCError(.invalidArgument, "config.prometheus.labels: at most 20") }
            for (name, value) in prometheus.labels {
                try Check.identifier(name, "config.prometheus.labels")
                guard !name.hasPrefix("__") else { throw RPCError(.invalidArgument, "config.prometheus.labels: \(name) is reserved") }
                try Check.text(value, "config.prometheus.labels[\(name)]", max: 1024)
            }
            secrets = []
        case .opentelemetry(let traces):
            secrets = try openTelemetry(traces)
        }
        if !secrets.isEmpty, !hasEnvironment {
            throw RPCError(.invalidArgument, "the configuration names secrets, so environment_id is required")
        }
        return secrets
    }

    private static func probe(_ probe: SecretsV1.HttpProbe?, _ field: String) throws(RPCError) -> [String] {
        guard let probe else { throw RPCError(.invalidArgument, "\(field) is required") }
        try url(probe.url, "\(field).url")
        guard ["", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(probe.method) else {
            throw RPCError(.invalidArgument, "\(field).method must be an upper-case HTTP method")
        }
        try headers(probe.headers, secret: probe.secretHeaders, field)
        try Check.text(probe.body, "\(field).body", max: 64 << 10)
        try timeout(probe.timeoutUs, "\(field).timeout_us")
        guard probe.expectedStatus.count <= 50, probe.expectedStatus.allSatisfy({ (100...599).contains($0) }) else {
            throw RPCError(.invalidArgument, "\(field).expected_status: at most 50 codes, each 100-599")
        }
        try Check.text(probe.expectedBodyRegex, "\(field).expected_body_regex", max: 1024)
        if !probe.expectedBodyRegex.isEmpty, (try? NSRegularExpression(pattern: probe.expectedBodyRegex)) == nil {
            throw RPCError(.invalidArgument, "\(field).expected_body_regex is not a valid regular expression")
        }
        return probe.secretHeaders.values.sorted()
    }

    private static func openTelemetry(_ traces: SecretsV1.OpenTelemetryTraces) throws(RPCError) -> [String] {
        let field = "config.opentelemetry"
        try url(traces.endpoint, "\(field).endpoint")
        // The control appends /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT is used.
        guard !traces.endpoint.contains("?"), !traces.endpoint.contains("#") else {
            throw RPCError(.invalidArgument, "\(field).endpoint must have no query or fragment (/v1/traces is appended)")
        }
        guard !traces.endpoint.hasSuffix("/v1/traces"), !traces.endpoint.hasSuffix("/v1/traces/") else {
            throw RPCError(.invalidArgument, "\(field).endpoint is the OTLP base URL: /v1/traces is appended")
        }
        switch traces.otlpProtocol {
        case .unspecified, .httpJson: break
        case .grpc, .httpProtobuf:
            throw RPCError(.unimplemented, "\(field).otlp_protocol: this version exports OTLP/HTTP with JSON only (OTLP_PROTOCOL_HTTP_JSON)")
        case .unrecognized(let value):
            throw RPCError(.invalidArgument, "\(field).otlp_protocol: unknown value \(value)")
        }
        try headers(traces.headers, secret: traces.secretHeaders, field)
        try Check.text(traces.serviceName, "\(field).service_name", max: 256)
        guard !traces.serviceName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw RPCError(.invalidArgument, "\(field).service_name contains a control character")
        }
        guard traces.resourceAttributes.count <= 64 else { throw RPCError(.invalidArgument, "\(field).resource_attributes: at most 64") }
        for (key, value) in traces.resourceAttributes {
            guard (1...256).contains(key.utf8.count), !key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw RPCError(.invalidArgument, "\(field).resource_attributes: keys must be 1-256 bytes without control characters")
            }
            guard key != "service.name" else {
                throw RPCError(.invalidArgument, "\(field).resource_attributes: service.name is set by service_name")
            }
            try Check.text(value, "\(field).resource_attributes[\(key)]", max: 4096)
        }
        return traces.secretHeaders.values.sorted()
    }

    /// Plain headers (no line breaks) and secret headers (header -> secret name); a header is one or the other.
    private static func headers(_ plain: [String: String], secret: [String: String], _ field: String) throws(RPCError) {
        guard plain.count + secret.count <= 50 else { throw RPCError(.invalidArgument, "\(field): at most 50 headers") }
        for (name, value) in plain {
            try headerName(name, "\(field).headers")
            try Check.text(value, "\(field).headers[\(name)]", max: 8192)
            // By scalar: "\r\n" is one Character, equal to neither.
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw RPCError(.invalidArgument, "\(field).headers[\(name)] contains a line break")
            }
        }
        let plainNames = Set(plain.keys.map { $0.lowercased() })
        for (name, secretName) in secret {
            try headerName(name, "\(field).secret_headers")
            try Check.identifier(secretName, "\(field).secret_headers[\(name)]")
            guard !plainNames.contains(name.lowercased()) else {
                throw RPCError(.invalidArgument, "\(field): header \(name) is both in headers and in secret_headers")
            }
        }
    }

    private static func url(_ text: String, _ field: String) throws(RPCError) {
        try Check.text(text, field, max: 2048)
        guard let components = URLComponents(string: text), ["http", "https"].contains(components.scheme?.lowercased() ?? ""),
              let host = components.host, !host.isEmpty, components.user == nil, components.password == nil
        else { throw RPCError(.invalidArgument, "\(field) must be an http(s) URL with a host and no credentials") }
    }

    private static func headerName(_ name: String, _ field: String) throws(RPCError) {
        let token = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        guard (1...256).contains(name.utf8.count), name.utf8.allSatisfy(token.contains) else {
            throw RPCError(.invalidArgument, "\(field): \"\(name.prefix(64))\" is not an HTTP header name")
        }
    }

    private static func timeout(_ value: Int64, _ field: String) throws(RPCError) {
        guard (0...maximumTimeoutUs).contains(value) else { throw RPCError(.invalidArgument, "\(field) must be 0-\(maximumTimeoutUs)") }
    }

    private static func events(_ events: [String], _ field: String) throws(RPCError) {
        guard events.count <= 20 else { throw RPCError(.invalidArgument, "\(field): at most 20 events") }
        for event in events where !ControlRenderer.runEvents.contains(event) {
            throw RPCError(.invalidArgument, "\(field): unknown event \"\(event.prefix(64))\" (known: \(ControlRenderer.runEvents.joined(separator: ", ")))")
        }
    }
}
