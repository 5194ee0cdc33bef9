import FaultlinePostgres
import FaultlineProto
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

@Suite("Gateway", .serialized)
struct GatewayTests {
    @Test("experiments: import JSON, YAML and envelope; get, list with search and cursor, revisions, export, delete")
    func experimentLifecycle() async throws {
        try await Harness.with("lifecycle") { h in
            let id = try await h.importExperiment("alpha one", tags: ["web", "db"])
            let yaml = try await h.call(.post, "/api/v1/experiments", token: h.token("a", .editor), body: Fixtures.yaml, contentType: "application/yaml")
            #expect(yaml.status == 201)
            let envelope = try await h.call(.post, "/api/v1/experiments", token: h.token(),
                body: #"{"source": \#(String(decoding: try JSONEncoder().encode(Fixtures.yaml), as: UTF8.self)), "format": "yaml"}"#)
            #expect(envelope.status == 201)
            #expect((envelope.json["revision"] as? [String: Any])?["source_format"] as? String == "yaml")

            let got = try await h.call(.get, "/api/v1/experiments/\(id)", token: h.token("a", .viewer))
            #expect(got.status == 200)
            #expect(got.json["title"] as? String == "alpha one")
            #expect(got.json["latest_revision"] as? Int == 1)

            let search = try await h.call(.get, "/api/v1/experiments?q=ALPHA", token: h.token("a", .viewer))
            #expect((search.json["experiments"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            let tagged = try await h.call(.get, "/api/v1/experiments?tag=web&tag=db", token: h.token("a", .viewer))
            #expect((tagged.json["experiments"] as? [[String: Any]])?.count == 1)

            // Cursor pagination: 3 experiments, pages of 2.
            let first = try await h.call(.get, "/api/v1/experiments?page_size=2", token: h.token())
            #expect((first.json["experiments"] as? [Any])?.count == 2)
            let cursor = try #require(first.json["next_page_token"] as? String)
            let second = try await h.call(.get, "/api/v1/experiments?page_size=2&page_token=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", token: h.token())
            #expect((second.json["experiments"] as? [Any])?.count == 1)
            #expect(second.json["next_page_token"] == nil)

            let revisions = try await h.call(.get, "/api/v1/experiments/\(id)/revisions", token: h.token())
            #expect((revisions.json["revisions"] as? [[String: Any]])?.first?["revision"] as? Int == 1)
            let revision = try await h.call(.get, "/api/v1/experiments/\(id)/revisions/1", token: h.token())
            #expect(((revision.json["definition"] as? [String: Any])?["title"] as? String) == "alpha one")

            let exported = try await h.call(.get, "/api/v1/experiments/\(id)/export", token: h.token("a", .viewer))
            #expect(exported.status == 200)
            #expect(exported.text == Fixtures.experiment(title: "alpha one", tags: ["web", "db"]))

            let deleted = try await h.call(.delete, "/api/v1/experiments/\(id)", token: h.token("a", .editor))
            #expect(deleted.status == 200)
            #expect(deleted.json["deleted_at_us"] is Int)
            #expect(try await h.call(.get, "/api/v1/experiments/\(id)", token: h.token()).status == 404)
            // Its revisions, export and score went with it.
            for path in ["revisions", "revisions/1", "export", "score"] {
                let gone = try await h.call(.get, "/api/v1/experiments/\(id)/\(path)", token: h.token())
                #expect(gone.status == 404, "\(path)")
                #expect(gone.code == "experiment.not_found", "\(path)")
            }
        }
    }

    @Test("bad input: invalid JSON, YAML and experiments are 400 problems with JSON paths; limits and media types")
    func badInput() async throws {
        try await Harness.with("bad_input") { h in
            let invalidJSON = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: #"{"title": "x", "method": ["#)
            #expect(invalidJSON.status == 400)
            #expect(invalidJSON.headers[.contentType] == "application/problem+json")
            #expect(invalidJSON.code == "experiment.invalid")

            let invalidYAML = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: "title: [unclosed\n  - x: :", contentType: "application/yaml")
            #expect(invalidYAML.status == 400)
            #expect(invalidYAML.code == "experiment.invalid")

            let noMethod = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: #"{"title": "t", "description": "d", "method": [{"type": "action"}]}"#)
            #expect(noMethod.status == 400)
            let problems = try #require(noMethod.json["problems"] as? [[String: Any]])
            #expect(!problems.isEmpty)
            #expect(problems.allSatisfy { ($0["path"] as? String)?.hasPrefix("$") == true && $0["code"] is String })

            #expect(try await h.call(.post, "/api/v1/experiments", token: h.token(), body: "").code == "experiment.empty")
            #expect(try await h.call(.post, "/api/v1/experiments", token: h.token(), body: "x", contentType: "text/csv").status == 415)
            let huge = String(repeating: "a", count: 300 << 10)
            let tooLarge = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: #"{"source": "\#(huge)"}"#)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.code == "request.too_large")
            #expect(try await h.call(.get, "/api/v1/experiments?page_size=0", token: h.token()).code == "request.parameter.invalid")
            #expect(try await h.call(.get, "/api/v1/experiments?page_size=abc", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/experiments?page_token=garbage", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/executions?status=sleeping", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/nothing-here", token: h.token()).code == "route.not_found")
            // A malformed id names nothing: 404 like an unknown one, decided before any RPC.
            #expect(try await h.call(.get, "/api/v1/experiments/not-an-id", token: h.token()).code == "experiment.not_found")
            #expect(try await h.call(.get, "/api/v1/executions/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa/journal", token: h.token()).code == "execution.not_found")
            #expect(try await h.call(.get, "/api/v1/executions/exe_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token()).status == 404)
            #expect(try await h.call(.post, "/api/v1/tokens", token: h.token(), body: "{not json").code == "request.malformed")
            #expect(try await h.call(.post, "/api/v1/tokens", token: h.token(), body: #"{"name": "x", "role": "god"}"#).status == 400)
            #expect(try await h.call(.post, "/api/v1/tokens", token: h.token(), body: #"{"name": "a\u0000b", "role": "viewer"}"#).code == "token.name.invalid")
            let trace = try await h.call(.init("TRACE")!, "/api/v1/tokens", token: h.token())
            #expect(trace.status == 405)
            #expect(trace.headers[HTTPField.Name("allow")!] != nil)
        }
    }

    @Test("auth: no token 401, bad/revoked/expired token 401, wrong role 403, another organisation 404 for every resource kind")
    func authorization() async throws {
        try await Harness.with("auth") { h in
            let experiment = try await h.importExperiment()
            let execution = try await h.createExecution(of: experiment)
            let reads = [
                "/api/v1/experiments/\(experiment)", "/api/v1/experiments/\(experiment)/revisions",
                "/api/v1/experiments/\(experiment)/revisions/1", "/api/v1/experiments/\(experiment)/export",
                "/api/v1/executions/\(execution)", "/api/v1/executions/\(execution)/log",
                "/api/v1/executions/\(execution)/events", "/api/v1/executions/\(execution)/events/stream",
            ]
            for uri in reads {
                #expect(try await h.call(.get, uri, token: nil).status == 401, "\(uri)")
                #expect(try await h.call(.get, uri, token: "flt_" + String(repeating: "x", count: 43)).status == 401, "\(uri)")
                let other = try await h.call(.get, uri, token: h.token("b", .owner))
                #expect(other.status == 404, "\(uri)")
                #expect(other.code?.hasSuffix("not_found") == true, "\(uri)")
                #expect(try await h.call(.get, uri, token: h.token("a", .runner)).status == 403, "\(uri)")
            }
            let writes: [(HTTPRequest.Method, String, String)] = [
                (.delete, "/api/v1/experiments/\(experiment)", ""),
                (.post, "/api/v1/executions/\(execution)/pause", "{}"),
                (.post, "/api/v1/executions/\(execution)/resume", "{}"),
                (.post, "/api/v1/executions/\(execution)/terminate", "{}"),
                (.post, "/api/v1/executions/\(execution)/events", #"{"events": [{"seq": 1, "type": "loading-before", "ts_us": 1, "payload": {}}]}"#),
                (.post, "/api/v1/experiments/\(experiment)/executions", #"{"external": true}"#),
            ]
            for (method, uri, body) in writes {
                #expect(try await h.call(method, uri, token: h.token("b", .owner), body: body).status == 404, "\(uri)")
                #expect(try await h.call(method, uri, token: h.token("a", .viewer), body: body).status == 403, "\(uri)")
                #expect(try await h.call(method, uri, token: nil, body: body).status == 401, "\(uri)")
            }
            #expect(try await h.call(.post, "/api/v1/experiments", token: h.token("a", .viewer), body: Fixtures.experiment(title: "t")).status == 403)
            #expect(try await h.call(.get, "/api/v1/tokens", token: h.token("a", .editor)).status == 403)
            // Tokens of another organisation are not found either.
            let other = try await h.call(.post, "/api/v1/tokens", token: h.token("b", .owner), body: #"{"name": "ci", "role": "viewer"}"#)
            let otherID = try #require((other.json["token"] as? [String: Any])?["id"] as? String)
            #expect(try await h.call(.delete, "/api/v1/tokens/\(otherID)", token: h.token("a", .owner)).status == 404)
            // Experiments lists never show another organisation's.
            let list = try await h.call(.get, "/api/v1/experiments", token: h.token("b", .viewer))
            #expect((list.json["experiments"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("tokens: created once, listed without value, revoked and expired ones refused; no token value stored or listed")
    func tokens() async throws {
        try await Harness.with("tokens") { h in
            let created = try await h.call(.post, "/api/v1/tokens", token: h.token(), body: #"{"name": "ci", "role": "editor"}"#)
            #expect(created.status == 201)
            let value = try #require(created.json["value"] as? String)
            let id = try #require((created.json["token"] as? [String: Any])?["id"] as? String)
            #expect(try await h.call(.get, "/api/v1/organization", token: value).json["role"] as? String == "editor")

            let listed = try await h.call(.get, "/api/v1/tokens", token: h.token())
            #expect(listed.status == 200)
            #expect(!listed.text.contains(value))
            #expect((listed.json["tokens"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true)

            // No token value anywhere in the database: every text and bytea column of schema gateway.
            let dump = try await h.database.query("SELECT row_to_json(t)::text FROM gateway.api_tokens t")
                .map { try $0.decode(String.self, at: 0) }.joined()
            for org in ["a", "b"] { for role in Role.allCases { #expect(!dump.contains(h.token(org, role))) } }
            #expect(!dump.contains(value))

            #expect(try await h.call(.delete, "/api/v1/tokens/\(id)", token: h.token()).status == 204)
            #expect(try await h.call(.delete, "/api/v1/tokens/\(id)", token: h.token()).status == 204)
            #expect(try await h.call(.get, "/api/v1/organization", token: value).status == 401)
            #expect(try await h.call(.delete, "/api/v1/tokens/tok_unknown", token: h.token()).status == 404)
            let own = try #require(try await h.call(.get, "/api/v1/organization", token: h.token()).json["token_id"] as? String)
            #expect(try await h.call(.delete, "/api/v1/tokens/\(own)", token: h.token()).code == "token.self_revocation")
            #expect(try await h.call(.get, "/api/v1/organization", token: h.token()).status == 200)

            let past = try await h.call(.post, "/api/v1/tokens", token: h.token(), body: #"{"name": "old", "role": "viewer", "expires_at_us": 1}"#)
            #expect(past.code == "token.expiry.past")
            // An expired token: made directly with an expiry already passed.
            let expired = try await h.tokens.createToken(in: h.organizations["a"]!, name: "expired", role: .owner, expiresAtUs: 1).value
            #expect(try await h.call(.get, "/api/v1/organization", token: expired).status == 401)
        }
    }

    @Test("executions: get with status and deviated, list by experiment and status, journal, log, events, pause/resume/terminate")
    func executions() async throws {
        try await Harness.with("executions") { h in
            let experiment = try await h.importExperiment()
            let execution = try await h.createExecution(of: experiment)
            let got = try await h.call(.get, "/api/v1/executions/\(execution)", token: h.token("a", .viewer))
            #expect(got.json["status"] as? String == "pending")
            #expect(got.json["deviated"] as? Bool == false)
            let listed = try await h.call(.get, "/api/v1/executions?experiment_id=\(experiment)&status=pending", token: h.token("a", .viewer))
            #expect((listed.json["executions"] as? [[String: Any]])?.map { $0["id"] as? String } == [execution])
            let none = try await h.call(.get, "/api/v1/executions?experiment_id=\(experiment)&status=completed", token: h.token("a", .viewer))
            #expect((none.json["executions"] as? [Any])?.isEmpty == true)
            #expect(try await h.call(.get, "/api/v1/executions/\(execution)/journal", token: h.token()).code == "journal.not_available")
            #expect(try await h.call(.get, "/api/v1/executions/\(execution)/log", token: h.token()).json["log"] as? String == "")

            let events = #"{"events": [{"seq": 1, "type": "experiment-before", "ts_us": 10, "payload": {"title": "t"}}, {"seq": 2, "type": "activity-before", "ts_us": 11, "payload": {"activity": {"name": "noop"}}}]}"#
            let posted = try await h.call(.post, "/api/v1/executions/\(execution)/events", token: h.token("a", .runner), body: events)
            #expect(posted.status == 202)
            #expect(posted.json["accepted"] as? Int == 2)
            let again = try await h.call(.post, "/api/v1/executions/\(execution)/events", token: h.token("a", .runner), body: events)
            #expect(again.status == 202)
            #expect(again.json["duplicates"] as? Int == 2)
            #expect(try await h.call(.post, "/api/v1/executions/\(execution)/events", token: h.token("a", .runner), body: #"{"events": []}"#).status == 400)
            #expect(try await h.call(.post, "/api/v1/executions/\(execution)/events", token: h.token("a", .runner), body: #"{"events": [{"seq": 0, "type": "x", "ts_us": 1}]}"#).status == 400)
            #expect(try await h.call(.post, "/api/v1/executions/nope/events", token: h.token("a", .runner), body: events).status == 404)

            let page = try await h.call(.get, "/api/v1/executions/\(execution)/events?after=1", token: h.token("a", .viewer))
            let listedEvents = try #require(page.json["events"] as? [[String: Any]])
            #expect(listedEvents.map { $0["sequence"] as? Int } == [2])
            #expect(listedEvents.first?["activity_name"] as? String == "noop")
            #expect((listedEvents.first?["payload"] as? [String: Any])?["activity"] != nil)

            _ = try await h.experiments.startExecution(.init(executionId: execution), options: .on(behalfOf: h.organizations["a"]!))
            let paused = try await h.call(.post, "/api/v1/executions/\(execution)/pause", token: h.token("a", .editor), body: #"{"reason": "look"}"#)
            #expect(paused.status == 200)
            #expect((paused.json["user_state"] as? [String: Any])?["request"] as? String == "pause")
            let resumed = try await h.call(.post, "/api/v1/executions/\(execution)/resume", token: h.token("a", .editor))
            #expect((resumed.json["user_state"] as? [String: Any])?["request"] as? String == "none")
            let terminated = try await h.call(.post, "/api/v1/executions/\(execution)/terminate", token: h.token("a", .editor), body: #"{"skip_rollbacks": true}"#)
            #expect((terminated.json["user_state"] as? [String: Any])?["request"] as? String == "terminate")
            #expect(try await h.call(.post, "/api/v1/executions/\(execution)/pause", token: h.token("a", .editor), body: #"{"max_duration_us": -1}"#).status == 400)
        }
    }

    @Test("external executions (control HTTP mode) and run without a runner: 503 with a stable code")
    func externalAndRun() async throws {
        try await Harness.with("external") { h in
            let experiment = try await h.importExperiment()
            let created = try await h.call(.post, "/api/v1/experiments/\(experiment)/executions", token: h.token("a", .runner), body: #"{"external": true}"#)
            #expect(created.status == 201)
            #expect((created.json["id"] as? String)?.isEmpty == false)
            #expect(try await h.call(.post, "/api/v1/experiments/\(experiment)/executions", token: h.token("a", .runner), body: "{}").status == 400)
            let run = try await h.call(.post, "/api/v1/experiments/\(experiment)/run", token: h.token("a", .editor))
            #expect(run.status == 503)
            #expect(run.code == "runner.not_configured")
        }
    }

    @Test("an external execution is completed from its journal: outcome decided like a runner's, repeats idempotent, bad input refused")
    func externalCompletion() async throws {
        try await Harness.with("external-complete") { h in
            let experiment = try await h.importExperiment()
            let created = try await h.call(.post, "/api/v1/experiments/\(experiment)/executions", token: h.token("a", .runner), body: #"{"external": true}"#)
            let id = try #require(created.json["id"] as? String)
            let path = "/api/v1/executions/\(id)/complete"
            // The shape Chaos Toolkit writes: the hypothesis held before and not after.
            let journal = #"""
                {"journal": {"status": "completed", "deviated": true, "run": [], "rollbacks": [],
                 "steady_states": {"before": {"steady_state_met": true, "probes": []}, "after": {"steady_state_met": false, "probes": []}}},
                 "log": "chaos log"}
                """#
            for bad in ["[]", #"{"journal": []}"#, #"{"journal": "text"}"#, "{", #"{"log": "x"}"#] {
                #expect(try await h.call(.post, path, token: h.token("a", .runner), body: bad).status == 400, "\(bad)")
            }
            // NUL anywhere: Postgres jsonb cannot store it (schemathesis found it as a 500); the
            // service refuses it, naming the journal, and the run stays as it was.
            for bad in [#"{"journal": {"status": "completed", "run": [{"k\u0000": 1}]}}"#, #"{"journal": {"status": "a\u0000b"}}"#] {
                let refused = try await h.call(.post, path, token: h.token("a", .runner), body: bad)
                #expect(refused.status == 400 && refused.code == "rpc.invalid_argument", "\(bad): \(refused.text)")
                #expect((refused.json["detail"] as? String)?.contains("journal_json contains \\u0000") == true, "\(refused.text)")
            }
            #expect(try await h.call(.get, "/api/v1/executions/\(id)", token: h.token()).json["status"] as? String == "pending")
            #expect(try await h.call(.post, path, token: h.token("a", .viewer), body: journal).status == 403)
            #expect(try await h.call(.post, path, token: h.token("b", .runner), body: journal).code == "execution.not_found")
            #expect(try await h.call(.post, "/api/v1/executions/garbage/complete", token: h.token("a", .runner), body: journal).code == "execution.not_found")

            let completed = try await h.call(.post, path, token: h.token("a", .runner), body: journal)
            #expect(completed.status == 200)
            #expect(completed.json["status"] as? String == "deviated")
            #expect(completed.json["deviated"] as? Bool == true)
            // The control retries once: the same journal again is the same answer.
            let repeated = try await h.call(.post, path, token: h.token("a", .runner), body: journal)
            #expect(repeated.status == 200)
            #expect(repeated.json["status"] as? String == "deviated")
            let other = #"{"journal": {"status": "completed", "deviated": false, "run": [], "rollbacks": []}}"#
            // FAILED_PRECONDITION, mapped as google.rpc.Code does.
            #expect(try await h.call(.post, path, token: h.token("a", .runner), body: other).status == 400)
            let stored = try await h.call(.get, "/api/v1/executions/\(id)/journal", token: h.token())
            #expect(stored.json["deviated"] as? Bool == true)
        }
    }

    @Test("health, readiness, OpenAPI, request ids, CORS")
    func plumbing() async throws {
        try await Harness.with("plumbing") { h in
            #expect(try await h.call(.get, "/healthz", token: nil).status == 200)
            let ready = try await h.call(.get, "/readyz", token: nil)
            #expect(ready.status == 200)
            #expect((ready.json["checks"] as? [String: String])?["experiment-service"] == "serving")
            let spec = try await h.call(.get, "/api/v1/openapi.json", token: nil)
            #expect(spec.json["openapi"] as? String == "3.1.0")
            var headers = HTTPFields()
            headers[HTTPField.Name("x-request-id")!] = "req-123"
            headers[HTTPField.Name("origin")!] = "https://ui.example"
            let echoed = try await h.call(.get, "/api/v1/experiments/none", token: h.token(), headers: headers)
            #expect(echoed.headers[HTTPField.Name("x-request-id")!] == "req-123")
            #expect(echoed.json["request_id"] as? String == "req-123")
            #expect(echoed.headers[HTTPField.Name("access-control-allow-origin")!] == "https://ui.example")
            let generated = try await h.call(.get, "/healthz", token: nil)
            #expect(generated.headers[HTTPField.Name("x-request-id")!]?.isEmpty == false)
            var foreign = HTTPFields()
            foreign[HTTPField.Name("origin")!] = "https://evil.example"
            #expect(try await h.call(.get, "/healthz", token: nil, headers: foreign).headers[HTTPField.Name("access-control-allow-origin")!] == nil)
        }
    }

    @Test("bootstrap writes one owner token file (0600) only when no organisation exists")
    func bootstrap() async throws {
        try await TestPostgres.withClient(database: "gw_bootstrap") { database in
            _ = try await TokenStore.migrations.apply(on: database)
            let store = TokenStore(database: database)
            let path = try TestPostgres.makeTemporaryDirectory("gw-boot") + "/owner-token"
            #expect(try await store.bootstrap(ownerTokenFile: path))
            let value = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            #expect(try await store.authenticate(value)?.role == .owner)
            #expect(try await store.bootstrap(ownerTokenFile: path) == false)
        }
    }
}
