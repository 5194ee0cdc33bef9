import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Testing
@testable import SecretService

@Suite("integrations rendered as Chaos Toolkit controls")
struct IntegrationTests {
    static func probe(_ url: String = "https://status.example.com/health") -> SecretsV1.HttpProbe {
        SecretsV1.HttpProbe(url: url, method: "GET", headers: ["Accept": "text/plain"], secretHeaders: ["Authorization": "STATUS_TOKEN"],
                            timeoutUs: 2_000_000, expectedStatus: [200, 204], expectedBodyRegex: "ok|healthy")
    }

    static func preCheck() -> SecretsV1.IntegrationConfig { .init(kind: .httpPreCheck(.init(probe: probe()))) }

    static func traces(_ change: (inout SecretsV1.OpenTelemetryTraces) -> Void = { _ in }) -> SecretsV1.IntegrationConfig {
        var traces = SecretsV1.OpenTelemetryTraces(endpoint: "http://otel-collector:4318/otlp", otlpProtocol: .httpJson,
                                                   headers: ["X-Scope-OrgID": "chaos"], secretHeaders: ["Authorization": "STATUS_TOKEN"],
                                                   resourceAttributes: ["deployment.environment": "staging"])
        change(&traces)
        return .init(kind: .opentelemetry(traces))
    }

    static let tokenValue = "status-token-canary-55e1"
    static let hookKey: [UInt8] = Array("hook-key-canary-9d2".utf8) + [0, 200]

    @Test func everyIntegrationKindRendersAControlThatChaosValidateAccepts() async throws {
        try await Harness.with(database: "secrets_render") { h in
            let environment = try await h.createEnvironment("integrations", variables: ["SERVICE": "api"], secrets: [
                Harness.envSecret("STATUS_TOKEN", Self.tokenValue, variable: "FL_STATUS_TOKEN"),
                Harness.fileSecret("HOOK_KEY", Self.hookKey, path: "secrets/hook.key", pathEnvVar: "FL_HOOK_KEY_FILE"),
            ])
            let configs: [(String, SecretsV1.IntegrationConfig)] = [
                ("pre-check", Self.preCheck()),
                ("safeguard", .init(kind: .httpSafeguard(.init(probe: Self.probe(), intervalUs: 500_000, failureThreshold: 3, skipRollbacks: true)))),
                ("webhook", .init(kind: .webhook(.init(url: "https://hooks.example.com/faultline", signingSecret: "HOOK_KEY", events: ["run-finished"])))),
                ("slack", .init(kind: .slack(.init(channel: "#chaos", tokenSecret: "STATUS_TOKEN", events: ["deviated"])))),
                ("prometheus", .init(kind: .prometheus(.init(pushgatewayUrl: "http://pushgateway:9091", job: "", labels: ["team": "payments"])))),
                ("traces", Self.traces()),
            ]
            var ids: [String] = []
            for (name, config) in configs {
                let created = try await h.service.createIntegration(.init(name: name, description: "d", config: config, environmentId: environment.id),
                                                                    context: h.context())
                ids.append(try #require(created.integration?.id))
            }
            let listed = try await h.service.listIntegrations(.init(pageSize: 2), context: h.context())
            #expect(listed.integrations.map(\.name) == ["pre-check", "prometheus"] && !listed.nextPageToken.isEmpty)
            #expect(try await h.service.getIntegration(.init(integrationId: ids[2]), context: h.context()).integration?.config == configs[2].1)
            await expectRPCError(.failedPrecondition, "environment in use") {
                try await h.service.deleteEnvironment(.init(environmentId: environment.id), context: h.context())
            }

            let rendered = try await h.service.renderControls(.init(integrationIds: ids, executionId: "exe-9"), context: h.runnerContext())
            #expect(rendered.controls.map(\.name) == ["pre-check", "safeguard", "webhook", "slack", "prometheus", "traces"])
            #expect(rendered.controls.map(\.integrationId) == ids)
            #expect(rendered.environment?.secrets.map(\.name) == ["HOOK_KEY", "STATUS_TOKEN"])
            #expect(rendered.environment?.variables == ["SERVICE": "api"])
            for control in rendered.controls {
                #expect(!control.controlJson.contains("canary"), "\(control.controlJson)")
            }
            #expect(rendered.controlFileJson.contains(#""Authorization":{"env":"FL_STATUS_TOKEN"}"#))
            #expect(rendered.controlFileJson.contains(#""signing_key":{"file_env":"FL_HOOK_KEY_FILE"}"#))
            let traces = try #require(try JSONSerialization.jsonObject(with: Data(rendered.controls[5].controlJson.utf8)) as? [String: Any])
            let tracesProvider = try #require(traces["provider"] as? [String: Any])
            #expect(tracesProvider["module"] as? String == "chaosfaultline.integrations.opentelemetry")
            let tracesArguments = try #require(tracesProvider["arguments"] as? [String: Any])
            #expect(tracesArguments["endpoint"] as? String == "http://otel-collector:4318/otlp")
            #expect(tracesArguments["headers"] as? [String: String] == ["X-Scope-OrgID": "chaos"])
            #expect(tracesArguments["secret_headers"] as? [String: [String: String]] == ["Authorization": ["env": "FL_STATUS_TOKEN"]])
            #expect(tracesArguments["service_name"] as? String == "faultline")
            #expect(tracesArguments["resource_attributes"] as? [String: String] == ["deployment.environment": "staging"])
            #expect(tracesArguments["integration"] as? String == "traces")
            let audit = try await h.service.listAuditEvents(.init(executionId: "exe-9"), context: h.context())
            #expect(audit.events.map(\.action) == [.renderControls])
            #expect(audit.events.first?.integrationIds == ids && audit.events.first?.secretNames == ["HOOK_KEY", "STATUS_TOKEN"])

            // The control file as an experiment's `controls`, through the real `chaos validate`.
            let file = try #require(try JSONSerialization.jsonObject(with: Data(rendered.controlFileJson.utf8)) as? [String: Any])
            let controls = rendered.controls.map { control -> [String: Any] in ["name": control.name, "provider": (file[control.name] as! [String: Any])["provider"]!] }
            let valid = try ChaosValidate.run(controls: controls)
            #expect(valid.status == 0, "\(valid.output)")
            #expect(!valid.output.contains("Could not find Python module"), "\(valid.output)")

            // The same check fails when a control's arguments are wrong, so it is not vacuous.
            var broken = controls
            var provider = broken[0]["provider"] as! [String: Any]
            provider["arguments"] = ["probe": ["url": "ftp://nowhere"]]
            broken[0]["provider"] = provider
            #expect(try ChaosValidate.run(controls: broken).status != 0)
        }
    }

    /// Render to run, end to end: the control SecretService renders, under a real `chaos run` with
    /// the revealed environment as the runner gives it, exports the run's trace (secret header
    /// resolved) to a local OTLP/HTTP collector.
    @Test func theRenderedOpenTelemetryControlExportsTheRunsTrace() async throws {
        let collector = try OTLPCollector()
        defer { collector.stop() }
        try await Harness.with(database: "secrets_render_otel") { h in
            let environment = try await h.createEnvironment("otel", variables: [:], secrets: [
                Harness.envSecret("OTLP_TOKEN", "Bearer otlp-canary-81", variable: "FL_OTLP_TOKEN")])
            let config = Self.traces { $0.endpoint = collector.url + "/otlp"; $0.secretHeaders = ["Authorization": "OTLP_TOKEN"] }
            let integration = try #require(try await h.service.createIntegration(
                .init(name: "traces", config: config, environmentId: environment.id), context: h.context()).integration)
            let rendered = try await h.service.renderControls(.init(integrationIds: [integration.id], executionId: "exe-otel"), context: h.runnerContext())
            #expect(!rendered.controlFileJson.contains("canary"))
            var runEnvironment = rendered.environment?.variables ?? [:]
            for secret in rendered.environment?.secrets ?? [] {
                guard case .envVar(let variable) = secret.delivery?.target else { continue }
                runEnvironment[variable.name.isEmpty ? secret.name : variable.name] = String(decoding: secret.value, as: UTF8.self)
            }
            let run = try ChaosValidate.run(command: "run", controlFile: rendered.controlFileJson, environment: runEnvironment)
            #expect(run.status == 0, "\(run.output)")
            #expect(!run.output.contains("canary"))

            let (path, headers, body) = try collector.firstRequest()
            #expect(path == "/otlp/v1/traces")
            #expect(headers["authorization"] == "Bearer otlp-canary-81" && headers["x-scope-orgid"] == "chaos")
            let document = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            let resourceSpans = try #require((document["resourceSpans"] as? [[String: Any]])?.first)
            let resource = try #require((resourceSpans["resource"] as? [String: Any])?["attributes"] as? [[String: Any]])
            #expect(Set(resource.compactMap { $0["key"] as? String }) == ["service.name", "deployment.environment"])
            let spans = try #require(((resourceSpans["scopeSpans"] as? [[String: Any]])?.first?["spans"]) as? [[String: Any]])
            #expect(spans.compactMap { $0["name"] as? String }.sorted() ==
                    ["carries integrations", "method", "noop", "probe-true", "probe-true", "rollbacks", "steady-state hypothesis", "steady-state hypothesis"])
            #expect(Set(spans.compactMap { $0["traceId"] as? String }).count == 1)
        }
    }

    @Test func integrationsEnvironmentsMergeAndAConflictIsRefused() async throws {
        try await Harness.with(database: "secrets_render_merge") { h in
            let token = Harness.envSecret("STATUS_TOKEN", "token-canary-1", variable: "FL_STATUS_TOKEN")
            let environments = [
                ("first", try await h.createEnvironment("first", variables: ["REGION": "eu-canary", "TEAM": "a"], secrets: [token])),
                ("same", try await h.createEnvironment("same", variables: ["REGION": "eu-canary"], secrets: [token])),
                ("variable-clash", try await h.createEnvironment("variable-clash", variables: ["REGION": "us-canary"], secrets: [])),
                ("secret-clash", try await h.createEnvironment("secret-clash", variables: [:],
                                                               secrets: [Harness.envSecret("STATUS_TOKEN", "token-canary-2", variable: "FL_STATUS_TOKEN")])),
            ]
            var ids: [String: String] = [:]
            for (name, environment) in environments {
                let config = name == "variable-clash" ? SecretsV1.IntegrationConfig(kind: .prometheus(.init(pushgatewayUrl: "http://p"))) : Self.preCheck()
                let created = try await h.service.createIntegration(.init(name: name, config: config, environmentId: environment.id), context: h.context())
                ids[name] = try #require(created.integration?.id)
            }
            // Equal values merge into one environment.
            let merged = try await h.service.renderControls(.init(integrationIds: [ids["first"]!, ids["same"]!]), context: h.runnerContext())
            #expect(merged.environment?.variables == ["REGION": "eu-canary", "TEAM": "a"])
            #expect(merged.environment?.secrets.map(\.name) == ["STATUS_TOKEN"])
            // The same variable, or the same secret delivery, with two values: refused, naming both integrations, quoting no value.
            for other in ["variable-clash", "secret-clash"] {
                let error = await expectRPCError(.failedPrecondition, other) {
                    try await h.service.renderControls(.init(integrationIds: [ids["first"]!, ids[other]!]), context: h.runnerContext())
                }
                let message = error?.message ?? ""
                #expect(message.contains("first") && message.contains(other) && !message.contains("canary"), "\(message)")
            }
        }
    }

    @Test func integrationConfigsAreValidated() async throws {
        try await Harness.with(database: "secrets_integration_input") { h in
            let environment = try await h.createEnvironment(secrets: [Harness.envSecret("STATUS_TOKEN", "t")])
            func create(_ config: SecretsV1.IntegrationConfig?, environment id: String = environment.id, name: String = "i") async throws {
                _ = try await h.service.createIntegration(.init(name: name, config: config, environmentId: id), context: h.context())
            }
            func probe(_ change: (inout SecretsV1.HttpProbe) -> Void) -> SecretsV1.IntegrationConfig {
                var probe = Self.probe()
                change(&probe)
                return .init(kind: .httpPreCheck(.init(probe: probe)))
            }
            let invalid: [(String, SecretsV1.IntegrationConfig?)] = [
                ("no config", nil), ("empty kind", .init()),
                ("no probe", .init(kind: .httpPreCheck(.init()))),
                ("ftp url", probe { $0.url = "ftp://x/y" }), ("no host", probe { $0.url = "http://" }),
                ("credentials in url", probe { $0.url = "https://user:pw@x.example/" }),
                ("method", probe { $0.method = "get" }), ("header name", probe { $0.headers = ["Bad Header": "v"] }),
                ("header CRLF", probe { $0.headers = ["X": "a\r\nInjected: 1"] }),
                ("secret header name", probe { $0.secretHeaders = ["Authorization": "not-an-identifier"] }),
                ("status", probe { $0.expectedStatus = [99] }), ("regex", probe { $0.expectedBodyRegex = "([" }),
                ("timeout", probe { $0.timeoutUs = -1 }),
                ("threshold", .init(kind: .httpSafeguard(.init(probe: Self.probe(), failureThreshold: -1)))),
                ("webhook events", .init(kind: .webhook(.init(url: "https://h.example", signingSecret: "STATUS_TOKEN", events: ["nope"])))),
                ("webhook secret", .init(kind: .webhook(.init(url: "https://h.example", signingSecret: "")))),
                ("slack channel", .init(kind: .slack(.init(channel: "", tokenSecret: "STATUS_TOKEN")))),
                ("slack token", .init(kind: .slack(.init(channel: "#c", tokenSecret: "xoxb-inline-token")))),
                ("prometheus url", .init(kind: .prometheus(.init(pushgatewayUrl: "pushgateway:9091")))),
                ("prometheus job", .init(kind: .prometheus(.init(pushgatewayUrl: "http://p", job: "a/b")))),
                ("prometheus label", .init(kind: .prometheus(.init(pushgatewayUrl: "http://p", labels: ["__name__": "x"])))),
                ("otel no endpoint", Self.traces { $0.endpoint = "" }), ("otel scheme", Self.traces { $0.endpoint = "grpc://otel:4317" }),
                ("otel no host", Self.traces { $0.endpoint = "http:///v1" }), ("otel credentials", Self.traces { $0.endpoint = "https://u:p@otel" }),
                ("otel query", Self.traces { $0.endpoint = "http://otel:4318?tenant=a" }), ("otel fragment", Self.traces { $0.endpoint = "http://otel#x" }),
                ("otel signal path", Self.traces { $0.endpoint = "http://otel:4318/v1/traces" }),
                ("otel long endpoint", Self.traces { $0.endpoint = "http://otel/" + String(repeating: "p", count: 2048) }),
                ("otel unknown protocol", Self.traces { $0.otlpProtocol = .unrecognized(9) }),
                ("otel header name", Self.traces { $0.headers = ["Bad Header": "v"] }),
                ("otel header CRLF", Self.traces { $0.headers = ["X-A": "a\r\nInjected: 1"] }),
                ("otel header NUL", Self.traces { $0.headers = ["X-A": "a\u{0}b"] }),
                ("otel secret header", Self.traces { $0.secretHeaders = ["Authorization": "Bearer inline-token"] }),
                ("otel header twice", Self.traces { $0.headers = ["authorization": "Bearer x"] }),
                ("otel too many headers", Self.traces { $0.headers = Dictionary(uniqueKeysWithValues: (0..<51).map { ("X-\($0)", "v") }) }),
                ("otel service name", Self.traces { $0.serviceName = "api\nlog-injection" }),
                ("otel long service name", Self.traces { $0.serviceName = String(repeating: "s", count: 257) }),
                ("otel resource service.name", Self.traces { $0.resourceAttributes = ["service.name": "other"] }),
                ("otel resource empty key", Self.traces { $0.resourceAttributes = ["": "x"] }),
                ("otel resource control key", Self.traces { $0.resourceAttributes = ["a\tb": "x"] }),
                ("otel resource value", Self.traces { $0.resourceAttributes = ["k": String(repeating: "v", count: 4097)] }),
                ("otel too many attributes", Self.traces { $0.resourceAttributes = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") }) }),
            ]
            for (what, config) in invalid {
                await expectRPCError(.invalidArgument, what) { try await create(config) }
            }
            await expectRPCError(.invalidArgument, "secrets without environment") { try await create(Self.preCheck(), environment: "") }
            await expectRPCError(.notFound, "unknown environment") { try await create(Self.preCheck(), environment: "env_" + String(repeating: "1", count: 32)) }
            // Valid, but not exported by this version: said so, not taken for malformed.
            for otlp in [SecretsV1.OtlpProtocol.grpc, .httpProtobuf] {
                let error = await expectRPCError(.unimplemented, "\(otlp)") { try await create(Self.traces { $0.otlpProtocol = otlp }) }
                #expect(error?.message.contains("OTLP_PROTOCOL_HTTP_JSON") == true)
            }
            await expectRPCError(.invalidArgument, "otel secret header without environment") { try await create(Self.traces(), environment: "") }
            // Without secret headers an environment is not needed; unspecified is OTLP/HTTP JSON.
            try await create(Self.traces { $0.secretHeaders = [:]; $0.otlpProtocol = .unspecified; $0.endpoint = "https://otel.example.com" },
                             environment: "", name: "traces-without-environment")
            let plain = try await h.service.listIntegrations(.init(), context: h.context()).integrations
            _ = try await h.service.deleteIntegration(.init(integrationId: try #require(plain.first?.id)), context: h.context())
            try await create(Self.preCheck())
            await expectRPCError(.alreadyExists, "same name") { try await create(Self.preCheck()) }
            #expect(try await h.service.listIntegrations(.init(), context: h.context()).integrations.count == 1)

            // A secret named by the config but missing from the environment fails at render time, clearly.
            let listed = try await h.service.listIntegrations(.init(), context: h.context()).integrations
            let id = try #require(listed.first?.id)
            _ = try await h.service.updateEnvironment(.init(environmentId: environment.id, deleteSecrets: ["STATUS_TOKEN"]), context: h.context())
            let error = await expectRPCError(.failedPrecondition) { try await h.service.renderControls(.init(integrationIds: [id]), context: h.runnerContext()) }
            #expect(error?.message.contains("STATUS_TOKEN") == true)
            await expectRPCError(.invalidArgument, "duplicate ids") {
                try await h.service.renderControls(.init(integrationIds: [id, id]), context: h.runnerContext())
            }
            // Update replaces, with optimistic versions.
            let updated = try await h.service.updateIntegration(.init(integrationId: id, expectedVersion: 1, name: "renamed",
                                                                       config: .init(kind: .webhook(.init(url: "https://h.example", signingSecret: "K"))),
                                                                       environmentId: environment.id), context: h.context())
            #expect(updated.integration?.version == 2 && updated.integration?.name == "renamed")
            await expectRPCError(.aborted) {
                try await h.service.updateIntegration(.init(integrationId: id, expectedVersion: 1, name: "x", config: Self.preCheck(),
                                                            environmentId: environment.id), context: h.context())
            }
            _ = try await h.service.deleteIntegration(.init(integrationId: id), context: h.context())
            await expectRPCError(.notFound) { try await h.service.getIntegration(.init(integrationId: id), context: h.context()) }
            _ = try await h.service.deleteEnvironment(.init(environmentId: environment.id), context: h.context())
        }
    }
}

/// `chaos --no-version-check validate` from `$FAULTLINE_VENV` (default: the package's `.venv`)
/// on an experiment carrying `controls`.
enum ChaosValidate {
    static var venv: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_VENV"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".venv")
    }

    static func run(controls: [[String: Any]]) throws -> (status: Int32, output: String) {
        try run(command: "validate", experimentControls: controls)
    }

    /// `chaos <command>` on an experiment with a steady-state probe, one action and no rollbacks,
    /// carrying `experimentControls` and/or given `controlFile` (as the runner passes rendered
    /// controls), in an environment of PATH plus `environment`.
    static func run(command: String, experimentControls: [[String: Any]] = [], controlFile: String? = nil,
                    environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let directory = try TestPostgres.makeTemporaryDirectory("chaos-validate")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let experiment: [String: Any] = [
            "title": "carries integrations", "description": "d", "controls": experimentControls,
            "steady-state-hypothesis": ["title": "true is true", "probes": [
                ["type": "probe", "name": "probe-true", "tolerance": 0, "provider": ["type": "process", "path": "true"]]]],
            "method": [["type": "action", "name": "noop", "provider": ["type": "process", "path": "true"]]],
        ]
        let path = (directory as NSString).appendingPathComponent("experiment.json")
        try JSONSerialization.data(withJSONObject: experiment).write(to: URL(fileURLWithPath: path))
        var arguments = ["--no-version-check", "--log-file", (directory as NSString).appendingPathComponent("chaos.log"), command]
        if let controlFile {
            let controlPath = (directory as NSString).appendingPathComponent("controls.json")
            try Data(controlFile.utf8).write(to: URL(fileURLWithPath: controlPath))
            arguments += ["--control-file", controlPath]
        }
        if command == "run" { arguments += ["--journal-path", (directory as NSString).appendingPathComponent("journal.json")] }
        let process = Process()
        process.executableURL = venv.appendingPathComponent("bin/chaos")
        process.arguments = arguments + [path]
        process.environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"].merging(environment) { $1 }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

/// A local OTLP/HTTP collector: a Python process from the venv that binds 127.0.0.1 on a free port,
/// says it on its first output line, and records the first POST (path, headers, body) to a file.
final class OTLPCollector: Sendable {
    private static let script = """
        import http.server, json, sys
        out = sys.argv[1]
        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with open(out + ".tmp", "w") as f:
                    json.dump({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}, f)
                import os; os.rename(out + ".tmp", out)
                self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
        s = http.server.HTTPServer(("127.0.0.1", 0), H)
        s.timeout = 120
        print(s.server_address[1], flush=True)
        s.handle_request()
        """

    let url: String
    private let process: Process
    private let output: String

    init() throws {
        let directory = try TestPostgres.makeTemporaryDirectory("otlp-collector")
        output = (directory as NSString).appendingPathComponent("request.json")
        process = Process()
        process.executableURL = ChaosValidate.venv.appendingPathComponent("bin/python")
        process.arguments = ["-c", Self.script, output]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        var line = Data()
        while let byte = try pipe.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw CocoaError(.fileReadCorruptFile) }
        url = "http://127.0.0.1:\(port)"
    }

    /// The request it got; it serves one and exits (or gives up after 120 s without one).
    func firstRequest() throws -> (path: String, headers: [String: String], body: Data) {
        process.waitUntilExit()
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output))) as? [String: Any])
        return (recorded["path"] as? String ?? "", recorded["headers"] as? [String: String] ?? [:], Data((recorded["body"] as? String ?? "").utf8))
    }

    func stop() {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: (output as NSString).deletingLastPathComponent)
    }
}
