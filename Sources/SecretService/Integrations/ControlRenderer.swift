import FaultlineProto
import FaultlineRPC
import Foundation

/// Turns a stored integration into a Chaos Toolkit control. Secrets never appear in the control:
/// an argument that needs one carries `{"env": VAR}` (or `{"file_env": VAR}` for a secret
/// delivered as a file), which the control resolves from the run's environment.
enum ControlRenderer {
    /// The run events webhook and notification integrations may subscribe to.
    static let runEvents = ["run-started", "run-finished", "deviated", "interrupted"]

    static let preCheckModule = "chaosfaultline.integrations.precheck"
    static let safeguardModule = "chaosfaultline.integrations.safeguard"
    static let webhookModule = "chaosfaultline.integrations.webhook"
    static let slackModule = "chaosfaultline.integrations.slack"
    static let prometheusModule = "chaosfaultline.integrations.prometheus"
    static let openTelemetryModule = "chaosfaultline.integrations.opentelemetry"

    static func render(_ integration: SecretsV1.Integration, environment: SecretsV1.RevealedEnvironment) throws(RPCError) -> SecretsV1.RenderedControl {
        let module: String
        var arguments: [String: Any]
        switch integration.config?.kind {
        case .httpPreCheck(let check):
            module = preCheckModule
            arguments = ["probe": try probe(check.probe ?? .init(), environment, integration)]
        case .httpSafeguard(let safeguard):
            module = safeguardModule
            arguments = [
                "probe": try probe(safeguard.probe ?? .init(), environment, integration),
                "interval": Double(safeguard.intervalUs == 0 ? 5_000_000 : safeguard.intervalUs) / 1_000_000,
                "failure_threshold": Int(safeguard.failureThreshold == 0 ? 1 : safeguard.failureThreshold),
                "skip_rollbacks": safeguard.skipRollbacks,
            ]
        case .webhook(let hook):
            module = webhookModule
            arguments = [
                "url": hook.url,
                "signing_key": try reference(hook.signingSecret, environment, integration),
                "events": hook.events.isEmpty ? runEvents : hook.events,
                "timeout": Double(hook.timeoutUs == 0 ? 10_000_000 : hook.timeoutUs) / 1_000_000,
                "integration": integration.name,
            ]
        case .slack(let slack):
            module = slackModule
            arguments = [
                "channel": slack.channel,
                "token": try reference(slack.tokenSecret, environment, integration),
                "events": slack.events.isEmpty ? ["run-started", "run-finished"] : slack.events,
            ]
        case .prometheus(let prometheus):
            module = prometheusModule
            arguments = [
                "pushgateway_url": prometheus.pushgatewayUrl,
                "job": prometheus.job.isEmpty ? "faultline" : prometheus.job,
                "labels": prometheus.labels,
            ]
        case .opentelemetry(let traces):
            module = openTelemetryModule
            arguments = [
                "endpoint": traces.endpoint,
                "headers": traces.headers,
                "secret_headers": try secretHeaders(traces.secretHeaders, environment, integration),
                "service_name": traces.serviceName.isEmpty ? "faultline" : traces.serviceName,
                "resource_attributes": traces.resourceAttributes,
                "timeout": 10.0,
                "integration": integration.name,
            ]
        default:
            throw RPCError(.unimplemented, "integration \(integration.id) has a kind this version cannot render")
        }
        let control: [String: Any] = ["provider": ["type": "python", "module": module, "arguments": arguments]]
        return SecretsV1.RenderedControl(integrationId: integration.id, name: integration.name,
                                         controlJson: try json(control), pythonRequirement: "")
    }

    /// `{"<name>": <control>, ...}` in request order.
    static func controlFile(_ controls: [SecretsV1.RenderedControl]) throws(RPCError) -> String {
        var parts: [String] = []
        for control in controls { parts.append(try json(control.name) + ": " + control.controlJson) }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    private static func probe(_ probe: SecretsV1.HttpProbe, _ environment: SecretsV1.RevealedEnvironment,
                              _ integration: SecretsV1.Integration) throws(RPCError) -> [String: Any] {
        [
            "url": probe.url,
            "method": probe.method.isEmpty ? "GET" : probe.method,
            "headers": probe.headers,
            "secret_headers": try secretHeaders(probe.secretHeaders, environment, integration),
            "body": probe.body,
            "timeout": Double(probe.timeoutUs == 0 ? 10_000_000 : probe.timeoutUs) / 1_000_000,
            "expected_status": probe.expectedStatus.map(Int.init),
            "expected_body_regex": probe.expectedBodyRegex,
        ]
    }

    /// Header name -> where the run finds the header's secret.
    private static func secretHeaders(_ headers: [String: String], _ environment: SecretsV1.RevealedEnvironment,
                                      _ integration: SecretsV1.Integration) throws(RPCError) -> [String: Any] {
        var references: [String: Any] = [:]
        for (header, secret) in headers { references[header] = try reference(secret, environment, integration) }
        return references
    }

    /// Where the run finds secret `name` of the integration's environment.
    private static func reference(_ name: String, _ environment: SecretsV1.RevealedEnvironment,
                                  _ integration: SecretsV1.Integration) throws(RPCError) -> [String: String] {
        guard let secret = environment.secrets.first(where: { $0.name == name }) else {
            throw RPCError(.failedPrecondition, "integration \(integration.name): its environment has no secret \(name)")
        }
        switch secret.delivery?.target {
        case .file(let file):
            guard !file.pathEnvVar.isEmpty else {
                throw RPCError(.failedPrecondition, "integration \(integration.name): secret \(name) is a file without path_env_var")
            }
            return ["file_env": file.pathEnvVar]
        case .envVar(let variable):
            return ["env": variable.name.isEmpty ? name : variable.name]
        case nil:
            return ["env": name]
        }
    }

    private static func json(_ value: Any) throws(RPCError) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
            throw RPCError(.internalError, "a control could not be encoded")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
