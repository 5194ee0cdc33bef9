import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import ServiceKit
import Testing

@Suite("Gateway secrets, audit, scores", .serialized)
struct SecretRoutesTests {
    static let secretValue = "s3cr3t-VALUE-never-shown-7f1c"
    static let fileBytes: [UInt8] = [0x00, 0xFF, 0x10, 0x80, 0x7F]

    static var environmentBody: String {
        """
        {"name": "staging", "description": "d", "variables": {"REGION": "eu-west-1"},
         "secrets": [{"name": "API_TOKEN", "value": "\(secretValue)", "delivery": {"env_var": {}}},
                     {"name": "kubeconfig", "value_base64": "\(Data(fileBytes).base64EncodedString())",
                      "delivery": {"file": {"path": "secrets/kubeconfig", "path_env_var": "KUBECONFIG"}}}]}
        """
    }

    @Test("environments: create, list, get, update, delete; secret values never returned nor logged")
    func environments() async throws {
        try await Harness.with("environments") { h in
            let created = try await h.call(.post, "/api/v1/environments", token: h.token("a", .editor), body: Self.environmentBody)
            #expect(created.status == 201)
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["variables"] as? [String: String] == ["REGION": "eu-west-1"])
            let secrets = try #require(created.json["secrets"] as? [[String: Any]])
            #expect(secrets.map { $0["name"] as? String } == ["API_TOKEN", "kubeconfig"])
            #expect(secrets.allSatisfy { $0["value"] == nil && $0["value_base64"] == nil })
            #expect(((secrets[1]["delivery"] as? [String: Any])?["file"] as? [String: Any])?["path"] as? String == "secrets/kubeconfig")

            let got = try await h.call(.get, "/api/v1/environments/\(id)", token: h.token("a", .viewer))
            #expect(got.status == 200)
            #expect(got.json["name"] as? String == "staging")
            let listed = try await h.call(.get, "/api/v1/environments", token: h.token("a", .viewer))
            #expect((listed.json["environments"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])

            let updated = try await h.call(.patch, "/api/v1/environments/\(id)", token: h.token("a", .editor), body: """
                {"expected_version": 1, "description": "changed", "set_secrets": [{"name": "OTHER", "value": "\(Self.secretValue)-2"}],
                 "delete_secrets": ["kubeconfig"]}
                """)
            #expect(updated.status == 200)
            #expect(updated.json["description"] as? String == "changed")
            #expect((updated.json["secrets"] as? [[String: Any]])?.map { $0["name"] as? String } == ["API_TOKEN", "OTHER"])
            let stale = try await h.call(.patch, "/api/v1/environments/\(id)", token: h.token("a", .editor), body: #"{"expected_version": 1, "description": "x"}"#)
            #expect(stale.status == 409)

            for reply in [created, got, listed, updated] {
                #expect(!reply.text.contains(Self.secretValue))
                #expect(!reply.text.contains(Data(Self.fileBytes).base64EncodedString()))
            }
            #expect(h.logs.all.allSatisfy { !$0.contains(Self.secretValue) })
            #expect(!h.logs.all.isEmpty)

            #expect(try await h.call(.delete, "/api/v1/environments/\(id)", token: h.token("a", .editor)).status == 204)
            #expect(try await h.call(.get, "/api/v1/environments/\(id)", token: h.token()).code == "environment.not_found")
        }
    }

    @Test("environments and integrations: bad input is 400, malformed and unknown ids the same 404, roles, other organisation 404")
    func badInputAndAccess() async throws {
        try await Harness.with("secrets_access") { h in
            let env = try await h.call(.post, "/api/v1/environments", token: h.token(), body: Self.environmentBody)
            let id = try #require(env.json["id"] as? String)
            let bad: [(String, String)] = [
                ("{not json", "request.malformed"),
                (#"{"description": "no name"}"#, "request.malformed"),
                (#"{"name": "x", "secrets": [{"name": "A"}]}"#, "request.field.invalid"),
                (#"{"name": "x", "secrets": [{"name": "A", "value": "v", "value_base64": "dg=="}]}"#, "request.field.invalid"),
                (#"{"name": "x", "secrets": [{"name": "A", "value_base64": "***"}]}"#, "request.field.invalid"),
                (#"{"name": "x", "secrets": [{"name": "A", "value": "v", "delivery": {}}]}"#, "request.field.invalid"),
                (#"{"name": "x", "secrets": [{"name": "1bad", "value": "v"}]}"#, "rpc.invalid_argument"),
                (#"{"name": "staging"}"#, "rpc.already_exists"),
            ]
            for (body, code) in bad {
                let reply = try await h.call(.post, "/api/v1/environments", token: h.token(), body: body)
                #expect(reply.code == code, "\(body): \(reply.text)")
                #expect((400...499).contains(reply.status), "\(body)")
            }
            let oversized = try await h.call(.post, "/api/v1/environments", token: h.token(),
                                             body: #"{"name": "big", "variables": {"X": "\#(String(repeating: "x", count: 300 << 10))"}}"#)
            #expect(oversized.status == 413)

            let malformed = try await h.call(.get, "/api/v1/environments/not-an-id", token: h.token())
            let unknown = try await h.call(.get, "/api/v1/environments/env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token())
            #expect(malformed.status == 404 && unknown.status == 404)
            #expect(malformed.code == "environment.not_found" && unknown.code == "environment.not_found")

            let integration = try await h.call(.post, "/api/v1/integrations", token: h.token(), body: """
                {"name": "gate", "config": {"http_pre_check": {"probe": {"url": "https://status.example/health"}}}}
                """)
            let integrationID = try #require(integration.json["id"] as? String)
            let paths: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/v1/environments/\(id)", nil), (.patch, "/api/v1/environments/\(id)", "{}"),
                (.delete, "/api/v1/environments/\(id)", nil), (.get, "/api/v1/integrations/\(integrationID)", nil),
                (.put, "/api/v1/integrations/\(integrationID)", #"{"name": "g", "config": {"http_pre_check": {"probe": {"url": "https://a.example"}}}}"#),
                (.delete, "/api/v1/integrations/\(integrationID)", nil),
            ]
            for (method, path, body) in paths {
                let other = try await h.call(method, path, token: h.token("b", .owner), body: body)
                #expect(other.status == 404, "\(method) \(path)")
                #expect(other.code?.hasSuffix(".not_found") == true, "\(method) \(path)")
                #expect(try await h.call(method, path, token: h.token("a", .runner), body: body).status == 403, "\(method) \(path)")
                #expect(try await h.call(method, path, token: nil, body: body).status == 401, "\(method) \(path)")
                if method != .get {
                    #expect(try await h.call(method, path, token: h.token("a", .viewer), body: body).status == 403, "\(method) \(path)")
                }
            }
            #expect((try await h.call(.get, "/api/v1/environments", token: h.token("b", .owner)).json["environments"] as? [Any])?.isEmpty == true)
            #expect((try await h.call(.get, "/api/v1/integrations", token: h.token("b", .owner)).json["integrations"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("integrations: create, list, get, replace, delete; config kinds; unknown and malformed environment references")
    func integrations() async throws {
        try await Harness.with("integrations") { h in
            let env = try await h.call(.post, "/api/v1/environments", token: h.token(), body: Self.environmentBody)
            let environmentID = try #require(env.json["id"] as? String)
            let created = try await h.call(.post, "/api/v1/integrations", token: h.token("a", .editor), body: """
                {"name": "hook", "description": "d", "environment_id": "\(environmentID)",
                 "config": {"webhook": {"url": "https://hooks.example/in", "signing_secret": "API_TOKEN", "events": ["run-started"]}}}
                """)
            #expect(created.status == 201, "\(created.text)")
            let id = try #require(created.json["id"] as? String)
            let webhook = (created.json["config"] as? [String: Any])?["webhook"] as? [String: Any]
            #expect(webhook?["signing_secret"] as? String == "API_TOKEN")
            #expect(created.json["environment_id"] as? String == environmentID)
            #expect(!created.text.contains(Self.secretValue))

            let got = try await h.call(.get, "/api/v1/integrations/\(id)", token: h.token("a", .viewer))
            #expect(got.json["name"] as? String == "hook")
            let listed = try await h.call(.get, "/api/v1/integrations", token: h.token("a", .viewer))
            #expect((listed.json["integrations"] as? [[String: Any]])?.count == 1)

            let replaced = try await h.call(.put, "/api/v1/integrations/\(id)", token: h.token("a", .editor), body: """
                {"name": "safeguard", "config": {"http_safeguard": {"probe": {"url": "https://status.example", "expected_status": [200]},
                 "interval_us": 1000000, "failure_threshold": 3}}}
                """)
            #expect(replaced.status == 200, "\(replaced.text)")
            #expect(((replaced.json["config"] as? [String: Any])?["http_safeguard"] as? [String: Any])?["failure_threshold"] as? Int == 3)

            // References: a malformed environment id and an unknown one are both environment.not_found.
            for reference in ["garbage", "env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
                let body = ##"{"name": "n-\##(reference.count)", "environment_id": "\##(reference)", "config": {"slack": {"channel": "#c", "token_secret": "T"}}}"##
                #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: body).code == "environment.not_found", "\(reference)")
                #expect(try await h.call(.put, "/api/v1/integrations/\(id)", token: h.token(), body: body).code == "environment.not_found", "\(reference)")
            }
            // Unknown integration with a valid reference: the integration is what is missing.
            let missing = try await h.call(.put, "/api/v1/integrations/int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token(), body: """
                {"name": "x", "environment_id": "\(environmentID)", "config": {"slack": {"channel": "#c", "token_secret": "API_TOKEN"}}}
                """)
            #expect(missing.code == "integration.not_found")

            let twoKinds = ##"{"name": "x", "config": {"slack": {"channel": "#c", "token_secret": "T"}, "prometheus": {"pushgateway_url": "http://p"}}}"##
            #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: twoKinds).code == "request.field.invalid")
            #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: #"{"name": "x", "config": {}}"#).code == "request.field.invalid")
            let otlpGRPC = #"{"name": "x", "config": {"opentelemetry": {"endpoint": "http://o", "otlp_protocol": "grpc"}}}"#
            #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: otlpGRPC).code == "integration.unsupported")
            let otlp = #"{"name": "traces", "config": {"opentelemetry": {"endpoint": "http://collector:4318", "service_name": "checkout"}}}"#
            let traced = try await h.call(.post, "/api/v1/integrations", token: h.token(), body: otlp)
            #expect(traced.status == 201)
            let traces = (traced.json["config"] as? [String: Any])?["opentelemetry"] as? [String: Any]
            #expect(traces?["endpoint"] as? String == "http://collector:4318")
            #expect(traces?["service_name"] as? String == "checkout")
            let otlpNoEndpoint = #"{"name": "y", "config": {"opentelemetry": {"endpoint": "not a url"}}}"#
            #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: otlpNoEndpoint).status == 400)
            let badURL = #"{"name": "x", "config": {"http_pre_check": {"probe": {"url": "ftp://nope"}}}}"#
            #expect(try await h.call(.post, "/api/v1/integrations", token: h.token(), body: badURL).status == 400)
            // Still used by the integration's environment? Deleting the integration first frees it.
            #expect(try await h.call(.delete, "/api/v1/integrations/\(id)", token: h.token("a", .editor)).status == 204)
            #expect(try await h.call(.get, "/api/v1/integrations/\(id)", token: h.token()).code == "integration.not_found")
            #expect(try await h.call(.get, "/api/v1/integrations/nope", token: h.token()).code == "integration.not_found")
        }
    }

    @Test("audit trail: owner only, filtered by environment and action, never a value")
    func audit() async throws {
        try await Harness.with("audit") { h in
            let env = try await h.call(.post, "/api/v1/environments", token: h.token(), body: Self.environmentBody)
            let id = try #require(env.json["id"] as? String)
            _ = try await h.call(.patch, "/api/v1/environments/\(id)", token: h.token(), body: #"{"description": "again"}"#)
            let trail = try await h.call(.get, "/api/v1/audit-events?environment_id=\(id)", token: h.token())
            #expect(trail.status == 200)
            let events = try #require(trail.json["events"] as? [[String: Any]])
            #expect(Set(events.compactMap { $0["action"] as? String }) == ["create_environment", "update_environment"])
            #expect(events.allSatisfy { ($0["actor"] as? [String: Any])?["id"] as? String != nil })
            #expect(!trail.text.contains(Self.secretValue))
            let created = try await h.call(.get, "/api/v1/audit-events?action=create_environment", token: h.token())
            #expect((created.json["events"] as? [[String: Any]])?.count == 1)
            #expect(try await h.call(.get, "/api/v1/audit-events?action=steal", token: h.token()).code == "request.field.invalid")
            #expect(try await h.call(.get, "/api/v1/audit-events?environment_id=garbage", token: h.token()).code == "environment.not_found")
            #expect(try await h.call(.get, "/api/v1/audit-events?since_us=-1", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/audit-events", token: h.token("a", .editor)).status == 403)
            #expect((try await h.call(.get, "/api/v1/audit-events", token: h.token("b", .owner)).json["events"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("scores: null until an execution is scored, then the experiment's score; unknown, malformed, other organisation 404")
    func scores() async throws {
        try await Harness.with("scores") { h in
            let experiment = try await h.importExperiment()
            let empty = try await h.call(.get, "/api/v1/experiments/\(experiment)/score", token: h.token("a", .viewer))
            #expect(empty.status == 200)
            #expect(empty.text.contains(#""score":null"#))

            let execution = try await h.createExecution(of: experiment)
            let organization = h.organizations["a"]!
            _ = try await h.experiments.startExecution(.init(executionId: execution), options: .on(behalfOf: organization))
            var complete = ExperimentsV1.CompleteExecutionRequest()
            complete.executionId = execution
            complete.exit = .init(exitCode: 1, signal: 0)
            _ = try await h.experiments.completeExecution(complete, options: .on(behalfOf: organization))
            let scored = try await h.call(.get, "/api/v1/experiments/\(experiment)/score?window=5", token: h.token("a", .viewer))
            let score = try #require(scored.json["score"] as? [String: Any], "\(scored.text)")
            #expect((0...1).contains(score["value"] as? Double ?? -1))
            #expect(score["executions"] as? Int == 1)
            #expect(score["window"] as? Int == 5)

            #expect(try await h.call(.get, "/api/v1/experiments/\(experiment)/score?window=0", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/experiments/\(experiment)/score", token: h.token("b", .owner)).code == "experiment.not_found")
            #expect(try await h.call(.get, "/api/v1/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa/score", token: h.token()).code == "experiment.not_found")
            #expect(try await h.call(.get, "/api/v1/experiments/x/score", token: h.token()).code == "experiment.not_found")
            #expect(try await h.call(.get, "/api/v1/experiments/\(experiment)/score", token: h.token("a", .runner)).status == 403)
        }
    }

    @Test("one code per resource: malformed, unknown and another organisation's ids of experiments and executions")
    func notFoundCodes() async throws {
        try await Harness.with("not_found_codes") { h in
            let experiment = try await h.importExperiment(org: "b")
            for path in ["/api/v1/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/api/v1/experiments/nope", "/api/v1/experiments/\(experiment)",
                         "/api/v1/experiments/\(experiment)/revisions/1", "/api/v1/experiments/\(experiment)/export"] {
                #expect(try await h.call(.get, path, token: h.token()).code == "experiment.not_found", "\(path)")
            }
            for path in ["/api/v1/executions/exe_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/api/v1/executions/nope/log"] {
                #expect(try await h.call(.get, path, token: h.token()).code == "execution.not_found", "\(path)")
            }
        }
    }

    @Test("without ScheduleService or SecretService their routes answer 503 with a stable code")
    func notConfigured() async throws {
        try await Harness.with("not_configured", secrets: false, schedules: false) { h in
            let requests: [(HTTPRequest.Method, String, String?, String)] = [
                (.get, "/api/v1/plans", nil, "schedules.not_configured"),
                (.get, "/api/v1/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil, "schedules.not_configured"),
                (.get, "/api/v1/runners", nil, "schedules.not_configured"),
                (.get, "/api/v1/organization/halt", nil, "schedules.not_configured"),
                (.post, "/api/v1/organization/halt", "{}", "schedules.not_configured"),
                (.get, "/api/v1/environments", nil, "secrets.not_configured"),
                (.get, "/api/v1/audit-events", nil, "secrets.not_configured"),
            ]
            for (method, path, body, code) in requests {
                let reply = try await h.call(method, path, token: h.token(), body: body)
                #expect(reply.status == 503, "\(path)")
                #expect(reply.code == code, "\(path)")
            }
            // Roles are checked before configuration: a viewer may not halt, configured or not.
            #expect(try await h.call(.post, "/api/v1/organization/halt", token: h.token("a", .viewer), body: "{}").status == 403)
            // Malformed plan ids are plan.not_found before anything else is asked.
            #expect(try await h.call(.get, "/api/v1/plans/nope", token: h.token()).code == "plan.not_found")
            let badSpec = #"{"spec": {"name": "p", "experiment_id": "exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "schedule": {"cron": {"expression": "* * * * *"}, "now": {}}}}"#
            #expect(try await h.call(.post, "/api/v1/plans", token: h.token(), body: badSpec).code == "request.field.invalid")
        }
    }

    @Test("405 with the path's own methods in Allow; /metrics counts requests by route template; /readyz names every dependency")
    func plumbing() async throws {
        try await Harness.with("metrics") { h in
            let put = try await h.call(.put, "/api/v1/experiments", token: h.token(), body: "{}")
            #expect(put.status == 405)
            #expect(put.code == "route.method_not_allowed")
            #expect(put.headers[HTTPField.Name("allow")!] == "POST, GET" || put.headers[HTTPField.Name("allow")!] == "GET, POST")
            let post = try await h.call(.post, "/api/v1/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token(), body: "{}")
            #expect(post.status == 405)
            #expect(post.headers[HTTPField.Name("allow")!]?.contains("DELETE") == true)
            #expect(try await h.call(.delete, "/api/v1/nothing", token: h.token()).status == 404)

            _ = try await h.call(.get, "/api/v1/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token())
            _ = try await h.call(.get, "/api/v1/experiments/exp_0193bbbbbbbbbbbbbbbbbbbbbbbbbbbb", token: h.token())
            let metrics = try await h.call(.get, "/metrics", token: nil)
            #expect(metrics.status == 200)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let line = metrics.text.split(separator: "\n").first {
                $0.hasPrefix("faultline_gateway_http_requests_total{") && $0.contains(#"route="/api/v1/experiments/{id}""#)
                    && $0.contains(#"status="404""#) && $0.contains(#"method="GET""#)
            }
            #expect(line?.hasSuffix(" 2") == true, "\(metrics.text)")
            #expect(!metrics.text.contains("exp_0193"))
            #expect(metrics.text.contains("faultline_gateway_http_request_duration_seconds_bucket"))
            #expect(metrics.text.contains("faultline_gateway_http_requests_in_flight"))

            let ready = try await h.call(.get, "/readyz", token: nil)
            #expect(ready.status == 200)
            #expect(ready.json["checks"] as? [String: String] == ["experiment-service": "serving", "secret-service": "serving",
                                                                   "schedule-service": "serving", "database": "serving"])
        }
    }
}

@Suite("Gateway readiness")
struct ReadinessTests {
    @Test("/readyz is 503 naming the dependency that does not answer, and ready ones as serving")
    func notReady() async throws {
        try await TestPostgres.withClient(database: "gw_readyz") { database in
            _ = try await TokenStore.migrations.apply(on: database)
            var logger = Logger(label: "gateway-test")
            logger.logLevel = .critical
            // A port nothing listens on: bound, read and closed.
            let port = try await {
                let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
                let port = channel.localAddress?.port ?? 1
                try await channel.close()
                return port
            }()
            let dead = RPCClient(host: "127.0.0.1", port: port, logger: logger)
            var configuration = GatewayConfiguration()
            configuration.port = 0
            let gateway = Gateway(configuration: configuration, tokens: TokenStore(database: database),
                                  experiments: .init(dead), runners: nil, secrets: .init(dead),
                                  dependencies: [("experiment-service", dead), ("secret-service", dead)], logger: logger)
            try await gateway.application().test(.router) { client in
                let response = try await client.execute(uri: "/readyz", method: .get)
                #expect(response.status == .serviceUnavailable)
                let body = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                #expect(body?["status"] as? String == "not_ready")
                #expect(body?["checks"] as? [String: String] == ["experiment-service": "unreachable", "secret-service": "unreachable", "database": "serving"])
            }
            await dead.close()
        }
    }
}
