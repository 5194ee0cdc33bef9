import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

/// The console's fleet pages over a live gateway: the overview's halt switch and score chart,
/// score trends, the journal table, environments and integrations (secret values never in any
/// HTML), sessions tied to their API token, and HTML 404s.
@Suite("ConsoleFleet", .serialized)
struct ConsoleFleetTests {
    static let secretValue = "s3cr3t-VALUE-never-shown-7f3a"
    static let replacedValue = "r3placed-VALUE-never-shown-9c1d"
    static let hostile = #"<script>alert(1)</script>"#

    @Test("session: revoking the API token a session came from ends the session; a session pasted as a token is tied to the same one")
    func sessionEndsWithItsToken() async throws {
        try await Harness.with("console_session_parent") { h in
            let org = h.organizations["a"]!
            let (info, source) = try await h.tokens.createToken(in: org, name: "laptop", role: .editor)
            let cookie = try await h.signIn(source)
            let second = try await h.signIn(cookie)  // a session value pasted as the token
            for session in [cookie, second] {
                #expect(try await h.page("/console/experiments", cookie: session).status == 200)
                #expect(try await h.tokens.authenticate(session)?.sourceTokenID == info.id)
            }
            let revoked = try await h.call(.delete, "/api/v1/tokens/\(info.id)", token: h.token())
            #expect(revoked.status == 204)
            for session in [cookie, second] {
                let page = try await h.page("/console/experiments", cookie: session)
                #expect(page.status == 302)
                #expect(page.headers[.location] == "/console/sign-in")
                #expect(try await h.tokens.authenticate(session) == nil)
                let post = try await h.form("/console/halt", ["csrf": ConsoleSession.csrfToken(for: session), "confirm": "on"], cookie: session)
                #expect(post.status == 401)
            }
            // Another token's session lives on.
            let other = try await h.signIn(h.token("a", .viewer))
            #expect(try await h.page("/console", cookie: other).status == 200)
            // An expired source token ends its session too.
            let (shortInfo, short) = try await h.tokens.createToken(in: org, name: "short", role: .viewer, expiresAtUs: TokenStore.nowUs() + 60_000_000)
            let shortSession = try await h.signIn(short)
            try await h.database.execute("UPDATE gateway.api_tokens SET expires_us = 1 WHERE id = \(shortInfo.id)")
            #expect(try await h.page("/console", cookie: shortSession).status == 302)
        }
    }

    @Test("404: unknown console paths are HTML pages, signed in or not, with any method; the API's stay problem+json")
    func htmlNotFound() async throws {
        try await Harness.with("console_404") { h in
            let cookie = try await h.signIn(h.token())
            for path in ["/console/nope", "/console/executions/exe_x/nope", "/console/a/b/c/d", "/console/experiments/x/y/z"] {
                for reply in [try await h.page(path, cookie: cookie), try await h.call(.get, path, token: nil),
                              try await h.form(path, ["csrf": ConsoleSession.csrfToken(for: cookie)], cookie: cookie)] {
                    #expect(reply.status == 404, "\(path)")
                    #expect(reply.headers[.contentType]?.hasPrefix("text/html") == true, "\(path)")
                    #expect(reply.text.contains("console.page_not_found"), "\(path)")
                    #expect(reply.headers[.contentSecurityPolicy] != nil)
                }
            }
            let api = try await h.call(.get, "/api/v1/nope", token: h.token())
            #expect(api.status == 404)
            #expect(api.headers[.contentType] == "application/problem+json")
            // A known page still answers.
            #expect(try await h.page("/console/environments", cookie: cookie).status == 200)
        }
    }

    @Test("halt switch: confirmed halt with a reason (escaped) and rollbacks skipped, then resume; unconfirmed, CSRF-less and viewer halts refused; another organisation unaffected")
    func haltSwitch() async throws {
        try await Harness.with("console_halt_switch") { h in
            let editor = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: editor)
            let overview = try await h.page("/console", cookie: editor)
            #expect(overview.text.contains("data-halted=\"false\""))
            #expect(overview.text.contains("id=\"halt-form\""))
            #expect(overview.text.contains("id=\"score-chart-title\""))

            #expect(try await h.form("/console/halt", ["csrf": csrf], cookie: editor).status == 400)  // unconfirmed
            #expect(try await h.form("/console/halt", ["confirm": "on"], cookie: editor).status == 403)  // no CSRF token
            let viewer = try await h.signIn(h.token("a", .viewer))
            #expect(try await h.form("/console/halt", ["csrf": ConsoleSession.csrfToken(for: viewer), "confirm": "on"], cookie: viewer).status == 403)
            #expect(!(try await h.page("/console", cookie: viewer)).text.contains("id=\"halt-form\""))
            #expect(try await Self.halted(h, "a") == false)

            let halt = try await h.form("/console/halt", ["csrf": csrf, "confirm": "on", "reason": Self.hostile, "skip_rollbacks": "on"], cookie: editor)
            #expect(halt.status == 303)
            #expect(halt.headers[.location]?.hasPrefix("/console?terminated=0") == true)
            #expect(try await Self.halted(h, "a") == true)
            let halted = try await h.page(try #require(halt.headers[.location]), cookie: editor)
            #expect(halted.text.contains("data-halted=\"true\""))
            #expect(halted.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!halted.text.contains(Self.hostile))
            #expect(halted.text.contains("skipped"))
            #expect(halted.text.contains("id=\"resume-fleet\""))
            #expect(!(try await h.page("/console", cookie: viewer)).text.contains("id=\"resume-fleet\""))
            // Organisation b neither sees a's halt nor is halted.
            let other = try await h.page("/console", cookie: try await h.signIn(h.token("b", .owner)))
            #expect(other.text.contains("data-halted=\"false\""))
            #expect(!other.text.contains("&lt;script&gt;"))

            #expect(try await h.form("/console/resume", [:], cookie: editor).status == 403)
            #expect(try await h.form("/console/resume", ["csrf": csrf], cookie: editor).status == 303)
            #expect(try await Self.halted(h, "a") == false)
        }
    }

    @Test("halt switch without ScheduleService: the overview says so and still renders")
    func haltUnavailable() async throws {
        try await Harness.with("console_halt_none", schedules: false) { h in
            let cookie = try await h.signIn(h.token())
            let page = try await h.page("/console", cookie: cookie)
            #expect(page.status == 200)
            #expect(page.text.contains("no ScheduleService is configured"))
            #expect(try await h.form("/console/halt", ["csrf": ConsoleSession.csrfToken(for: cookie), "confirm": "on"], cookie: cookie).status == 503)
        }
    }

    @Test("trends and journal: the list draws each experiment's latest scores; the execution page lays the journal out (escaped); the overview charts the mean score")
    func trendsAndJournal() async throws {
        try await Harness.with("console_trends") { h in
            let id = try await h.importExperiment("trend probe")
            let org = h.organizations["a"]!
            var executions: [String] = []
            for exit: Int32 in [0, 1, 0] {
                let execution = try await h.createExecution(of: id)
                _ = try await h.experiments.startExecution(.init(executionId: execution), options: .on(behalfOf: org))
                var complete = ExperimentsV1.CompleteExecutionRequest()
                complete.executionId = execution
                complete.exit = .init(exitCode: exit, signal: 0)
                complete.journalJson = Self.journal(ok: exit == 0)
                _ = try await h.experiments.completeExecution(complete, options: .on(behalfOf: org))
                executions.append(execution)
            }
            let cookie = try await h.signIn(h.token("a", .viewer))
            let list = try await h.page("/console/experiments", cookie: cookie)
            #expect(list.status == 200)
            let spark = try #require(list.text.range(of: "<svg class=\"spark\"").map { String(list.text[$0.lowerBound...].prefix(400)) })
            let percentages = spark.components(separatedBy: "%").count - 1
            #expect(percentages >= 3, "\(spark)")  // three scores in the label (and the title)
            #expect(list.text.contains("id=\"trend-note\""))
            #expect(list.text.contains("organisation's newest 3 runs"))

            let detail = try await h.page("/console/experiments/\(id)", cookie: cookie)
            #expect(detail.text.contains("<svg class=\"spark\""))
            #expect(!detail.text.contains("id=\"older-runs\""))
            // Past a page of runs, the older ones are a link away.
            for _ in 0..<25 { _ = try await h.createExecution(of: id) }
            let crowded = try await h.page("/console/experiments/\(id)", cookie: cookie)
            #expect(!crowded.text.contains(executions[0]))
            let older = try #require(Self.value(after: "id=\"older-runs\" href=\"", in: crowded.text))
            let olderPage = try await h.page(older.replacingOccurrences(of: "&amp;", with: "&"), cookie: cookie)
            #expect(olderPage.status == 200)
            #expect(olderPage.text.contains(executions[0]))

            let run = try await h.page("/console/executions/\(executions[0])", cookie: cookie)
            #expect(run.text.contains("id=\"journal-activities\""))
            #expect(run.text.contains("hypothesis before"))
            #expect(run.text.contains("&lt;b&gt;out&lt;/b&gt;"))
            #expect(!run.text.contains("<b>out</b>"))
            let failed = try await h.page("/console/executions/\(executions[1])", cookie: cookie)
            #expect(failed.text.contains("not met"))
            #expect(failed.text.contains(">tolerance not met</span>"))

            let overview = try await h.page("/console", cookie: cookie)
            #expect(overview.text.contains("id=\"score-table\""))
            #expect(overview.text.contains("mean of 3 run(s)"))
            // Organisation b sees none of it.
            let other = try await h.page("/console/experiments", cookie: try await h.signIn(h.token("b", .viewer)))
            #expect(!other.text.contains("trend probe"))
            #expect(!(try await h.page("/console", cookie: try await h.signIn(h.token("b", .viewer)))).text.contains("mean of 3"))
        }
    }

    @Test("environments: create, list, edit, replace and remove a secret, delete; secret values in no HTML response; hostile names escaped")
    func environments() async throws {
        try await Harness.with("console_environments") { h in
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            var responses: [Harness.Reply] = []
            func keep(_ reply: Harness.Reply) -> Harness.Reply { responses.append(reply); return reply }

            // A mistake: the form comes back with the error, its fields, but no secret value.
            let mistake = keep(try await h.form("/console/environments", [
                "csrf": csrf, "name": "staging", "variables": "REGION=eu\nbroken line",
                "secret_name_0": "DB_PASSWORD", "secret_value_0": Self.secretValue,
            ], cookie: cookie))
            #expect(mistake.status == 400)
            #expect(mistake.text.contains("line 2"))
            #expect(mistake.text.contains("value=\"DB_PASSWORD\""))

            let created = keep(try await h.form("/console/environments", [
                "csrf": csrf, "name": Self.hostile, "description": "the staging cluster", "variables": "REGION=eu-west-1\nLOG_LEVEL = debug",
                "secret_name_0": "DB_PASSWORD", "secret_value_0": Self.secretValue,
                "secret_name_1": "KUBECONFIG", "secret_value_1": Self.secretValue, "secret_delivery_1": "file", "secret_target_1": "secrets/kubeconfig",
            ], cookie: cookie))
            #expect(created.status == 303)
            let location = try #require(created.headers[.location])
            let id = try #require(location.split(separator: "/").last?.split(separator: "?").first.map(String.init))
            #expect(id.hasPrefix("env_"))

            let edit = keep(try await h.page(location, cookie: cookie))
            #expect(edit.status == 200)
            #expect(edit.text.contains("id=\"saved\""))
            #expect(edit.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!edit.text.contains(Self.hostile))
            #expect(edit.text.contains("LOG_LEVEL=debug"))
            #expect(edit.text.contains("file <code>secrets/kubeconfig</code>"))
            #expect(edit.text.components(separatedBy: "secret-set\">set").count - 1 == 2)
            let list = keep(try await h.page("/console/environments", cookie: cookie))
            #expect(list.text.contains("DB_PASSWORD"))
            #expect(!list.text.contains(Self.hostile))

            // Replace one secret's value, remove the other, rename; the version guards the edit.
            let version = try #require(Self.attribute("expected_version", in: edit.text))
            let saved = keep(try await h.form(location.components(separatedBy: "?")[0], [
                "csrf": csrf, "expected_version": version, "name": "staging", "variables": "REGION=eu-west-2",
                "existing_name_0": "DB_PASSWORD", "existing_value_0": Self.replacedValue,
                "existing_name_1": "KUBECONFIG", "existing_remove_1": "on",
            ], cookie: cookie))
            #expect(saved.status == 303)
            let revealed = try await Self.reveal(h, id)
            #expect(revealed.variables == ["REGION": "eu-west-2"])
            #expect(revealed.secrets.map(\.name) == ["DB_PASSWORD"])
            #expect(revealed.secrets.first?.value == Array(Self.replacedValue.utf8))
            #expect(revealed.secrets.first.map { if case .envVar? = $0.delivery?.target { true } else { false } } == true)
            // The same (now stale) version again: a conflict, said in the form.
            let stale = keep(try await h.form("/console/environments/\(id)", ["csrf": csrf, "expected_version": version, "name": "x"], cookie: cookie))
            #expect(stale.status == 409)
            #expect(stale.text.contains("changed meanwhile"))
            #expect(keep(try await h.page("/console/environments/\(id)", cookie: cookie)).text.contains("Environment staging"))

            // Another organisation: 404 pages and no change.
            let other = try await h.signIn(h.token("b", .owner))
            #expect(keep(try await h.page("/console/environments/\(id)", cookie: other)).status == 404)
            #expect(try await h.form("/console/environments/\(id)", ["csrf": ConsoleSession.csrfToken(for: other), "name": "stolen"], cookie: other).status == 404)
            #expect(try await h.form("/console/environments/\(id)/delete", ["csrf": ConsoleSession.csrfToken(for: other), "confirm": "on"], cookie: other).status == 404)
            #expect(!keep(try await h.page("/console/environments", cookie: other)).text.contains("staging"))
            // A viewer reads, but gets no inputs for values and cannot post.
            let viewer = try await h.signIn(h.token("a", .viewer))
            let read = keep(try await h.page("/console/environments/\(id)", cookie: viewer))
            #expect(read.status == 200)
            #expect(!read.text.contains("existing_value_0"))
            #expect(try await h.form("/console/environments", ["csrf": ConsoleSession.csrfToken(for: viewer), "name": "v"], cookie: viewer).status == 403)
            // CSRF.
            #expect(try await h.form("/console/environments/\(id)/delete", ["confirm": "on"], cookie: cookie).status == 403)
            #expect(try await h.form("/console/environments/\(id)/delete", ["csrf": csrf], cookie: cookie).status == 400)  // unconfirmed
            #expect(try await h.form("/console/environments/\(id)/delete", ["csrf": csrf, "confirm": "on"], cookie: cookie).status == 303)
            #expect(try await h.page("/console/environments/\(id)", cookie: cookie).status == 404)

            for reply in responses {
                #expect(!reply.text.contains(Self.secretValue))
                #expect(!reply.text.contains(Self.replacedValue))
            }
            #expect(!h.logs.all.joined().contains(Self.secretValue))
        }
    }

    @Test("integrations: each kind's form, a secret value set write-only in its environment, edit, invalid input shown, delete; values in no HTML response")
    func integrations() async throws {
        try await Harness.with("console_integrations") { h in
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            var responses: [Harness.Reply] = []
            func keep(_ reply: Harness.Reply) -> Harness.Reply { responses.append(reply); return reply }
            let environment = try await h.call(.post, "/api/v1/environments", token: h.token(), body: #"{"name": "notify"}"#)
            let environmentID = try #require(environment.json["id"] as? String)

            let chooser = keep(try await h.page("/console/integrations/new", cookie: cookie))
            for kind in IntegrationKind.all { #expect(chooser.text.contains("kind=\(kind.name)")) }
            for kind in IntegrationKind.all {
                let form = keep(try await h.page("/console/integrations/new?kind=\(kind.name)", cookie: cookie))
                #expect(form.status == 200)
                for field in kind.fields { #expect(form.text.contains("name=\"\(field.id)\""), "\(kind.name) \(field.id)") }
            }

            // Missing required field, and a secret value with no environment to keep it in.
            let missing = keep(try await h.form("/console/integrations", ["csrf": csrf, "kind": "webhook", "name": "hook", "signing_secret": "HOOK_KEY"], cookie: cookie))
            #expect(missing.status == 400)
            #expect(missing.text.contains("URL is required"))
            let nowhere = keep(try await h.form("/console/integrations", [
                "csrf": csrf, "kind": "slack", "name": "chat", "channel": "#chaos", "token_secret": "SLACK_TOKEN", "token_secret_value": Self.secretValue,
            ], cookie: cookie))
            #expect(nowhere.status == 400)
            #expect(nowhere.text.contains("Choose an environment"))
            let badStatus = keep(try await h.form("/console/integrations", [
                "csrf": csrf, "kind": "http_pre_check", "name": "pre", "probe_url": "http://svc.local/health", "probe_expected_status": "200, 9000",
            ], cookie: cookie))
            #expect(badStatus.status == 400)
            #expect(badStatus.text.contains("9000 is not an HTTP status"))
            // Another organisation's environment is no environment at all.
            let foreign = try await h.call(.post, "/api/v1/environments", token: h.token("b", .owner), body: #"{"name": "theirs"}"#)
            let foreignID = try #require(foreign.json["id"] as? String)
            for environment in [foreignID, "env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "garbage"] {
                let refused = keep(try await h.form("/console/integrations", [
                    "csrf": csrf, "kind": "slack", "name": "chat", "channel": "#chaos", "token_secret": "SLACK_TOKEN",
                    "token_secret_value": Self.secretValue, "environment_id": environment,
                ], cookie: cookie))
                #expect(refused.status == 404, "\(environment)")
                #expect(refused.text.contains("id=\"form-error\""))
                #expect(!refused.text.contains("theirs"))
            }
            #expect(try await Self.reveal(h, foreignID, org: "b").secrets.isEmpty)

            let created = keep(try await h.form("/console/integrations", [
                "csrf": csrf, "kind": "slack", "name": Self.hostile, "channel": "#chaos", "events": "run-started, deviated",
                "token_secret": "SLACK_TOKEN", "token_secret_value": Self.secretValue, "environment_id": environmentID,
            ], cookie: cookie))
            #expect(created.status == 303)
            let location = try #require(created.headers[.location])
            let id = try #require(location.split(separator: "/").last?.split(separator: "?").first.map(String.init))
            let api = try await h.call(.get, "/api/v1/integrations/\(id)", token: h.token())
            let slack = try #require((api.json["config"] as? [String: Any])?["slack"] as? [String: Any])
            #expect(slack["events"] as? [String] == ["run-started", "deviated"])
            #expect(try await Self.reveal(h, environmentID).secrets.first { $0.name == "SLACK_TOKEN" }?.value == Array(Self.secretValue.utf8))

            let edit = keep(try await h.page(location, cookie: cookie))
            #expect(edit.text.contains("id=\"token_secret_state\""))
            #expect(edit.text.contains("secret-set\">set"))
            #expect(edit.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!edit.text.contains(Self.hostile))
            #expect(edit.text.contains("value=\"run-started, deviated\""))
            let list = keep(try await h.page("/console/integrations", cookie: cookie))
            #expect(list.text.contains("Slack notification"))
            #expect(!list.text.contains(Self.hostile))

            // Edit: a new channel and a replaced token; kind stays.
            let version = try #require(Self.attribute("expected_version", in: edit.text))
            let saved = keep(try await h.form("/console/integrations/\(id)", [
                "csrf": csrf, "kind": "webhook", "expected_version": version, "name": "chat", "channel": "#ops",
                "token_secret": "SLACK_TOKEN", "token_secret_value": Self.replacedValue, "environment_id": environmentID,
            ], cookie: cookie))
            #expect(saved.status == 303)
            let after = try await h.call(.get, "/api/v1/integrations/\(id)", token: h.token())
            #expect(((after.json["config"] as? [String: Any])?["slack"] as? [String: Any])?["channel"] as? String == "#ops")
            #expect(try await Self.reveal(h, environmentID).secrets.first { $0.name == "SLACK_TOKEN" }?.value == Array(Self.replacedValue.utf8))

            // A safeguard with headers, seconds and a checkbox round-trips through its form.
            let guardReply = keep(try await h.form("/console/integrations", [
                "csrf": csrf, "kind": "http_safeguard", "name": "guard", "probe_url": "http://svc.local/health",
                "probe_headers": "Accept: application/json", "interval_us": "2.5", "failure_threshold": "3", "skip_rollbacks": "on",
                "probe_expected_status": "200 204",
            ], cookie: cookie))
            #expect(guardReply.status == 303)
            let guardID = try #require(guardReply.headers[.location]?.split(separator: "/").last?.split(separator: "?").first.map(String.init))
            let guardJSON = try await h.call(.get, "/api/v1/integrations/\(guardID)", token: h.token())
            let safeguard = try #require((guardJSON.json["config"] as? [String: Any])?["http_safeguard"] as? [String: Any])
            #expect(safeguard["interval_us"] as? Int == 2_500_000)
            #expect(safeguard["skip_rollbacks"] as? Bool == true)
            #expect((safeguard["probe"] as? [String: Any])?["headers"] as? [String: String] == ["Accept": "application/json"])
            #expect((safeguard["probe"] as? [String: Any])?["expected_status"] as? [Int] == [200, 204])
            let guardPage = keep(try await h.page("/console/integrations/\(guardID)", cookie: cookie))
            #expect(guardPage.text.contains("value=\"2.5\""))
            #expect(guardPage.text.contains("Accept: application/json"))

            // Another organisation.
            let other = try await h.signIn(h.token("b", .owner))
            #expect(keep(try await h.page("/console/integrations/\(id)", cookie: other)).status == 404)
            #expect(try await h.form("/console/integrations/\(id)/delete", ["csrf": ConsoleSession.csrfToken(for: other), "confirm": "on"], cookie: other).status == 404)
            #expect(!keep(try await h.page("/console/integrations", cookie: other)).text.contains("Slack"))
            // Delete needs CSRF and the confirmation.
            #expect(try await h.form("/console/integrations/\(id)/delete", ["confirm": "on"], cookie: cookie).status == 403)
            #expect(try await h.form("/console/integrations/\(id)/delete", ["csrf": csrf], cookie: cookie).status == 400)
            #expect(try await h.form("/console/integrations/\(id)/delete", ["csrf": csrf, "confirm": "on"], cookie: cookie).status == 303)
            #expect(try await h.page("/console/integrations/\(id)", cookie: cookie).status == 404)
            // Hostile form shapes are refused as malformed, not a 500.
            #expect(try await h.form("/console/integrations", ["csrf": csrf, "kind[x]": "slack"], cookie: cookie).status == 400)

            for reply in responses {
                #expect(!reply.text.contains(Self.secretValue))
                #expect(!reply.text.contains(Self.replacedValue))
            }
        }
    }

    @Test("forms: key-value lines and integration fields parse or say what is wrong")
    func formParsing() throws {
        #expect(try KeyValueLines.parse("A=1\n\n B = two=2 \r\n", separator: "=", what: "v") == ["A": "1", "B": "two=2"])
        #expect(throws: FormError.self) { try KeyValueLines.parse("A=1\nA=2", separator: "=", what: "v") }
        #expect(throws: FormError.self) { try KeyValueLines.parse("=1", separator: "=", what: "v") }
        #expect(KeyValueLines.render(["b": "2", "a": "1"], separator: ": ") == "a: 1\nb: 2")
        let prometheus = try #require(IntegrationKind.named("prometheus"))
        let config = try prometheus.config(from: FieldsForm(fields: ["pushgateway_url": "http://pg:9091", "labels": "team=sre"]))
        guard case .prometheus(let p)? = config.kind else { Issue.record("kind"); return }
        #expect(p.labels == ["team": "sre"])
        let (kind, values) = try #require(IntegrationKind.of(config))
        #expect(kind.name == "prometheus")
        #expect(IntegrationKind.display(values["labels"], .lines(separator: "=")) == "team=sre")
        #expect(throws: FormError.self) { try prometheus.config(from: FieldsForm(fields: [:])) }
        let webhook = try #require(IntegrationKind.named("webhook"))
        #expect(throws: FormError.self) {
            try webhook.config(from: FieldsForm(fields: ["url": "http://x", "signing_secret": "K", "timeout_us": "-1"]))
        }
        #expect(IntegrationKind.seconds(1_500_000) == "1.5")
        #expect(IntegrationKind.seconds(10_000_000) == "10")
    }

    @Test("log: terminal colour codes are dropped, the text kept")
    func plainLog() {
        #expect(ExecutionPages.plain("\u{1B}[36m[2026] DEBUG\u{1B}[0m done \u{1B}[1;31mred\u{1B}[0m") == "[2026] DEBUG done red")
        #expect(ExecutionPages.plain("no codes [1;2m") == "no codes [1;2m")
    }

    @Test("charts: daily mean score with gaps; sparkline points and label")
    func charts() {
        let end = Date(timeIntervalSince1970: 1_700_000_000)
        let dayUs: Int64 = 86_400_000_000, endUs: Int64 = 1_700_000_000_000_000
        let chart = ScoreChart(executions: [(endUs, 1.0), (endUs, 0.5), (endUs - 2 * dayUs, 0.2), (endUs - dayUs, nil), (endUs - 9 * dayUs, 1)],
                               days: 3, endingAt: end)
        #expect(chart.buckets.map(\.mean) == [0.2, nil, 0.75])
        #expect(chart.scoredRuns == 3)
        let svg = chart.svg().text
        #expect(!svg.contains("<polyline"))  // a gap between the only two scored days
        #expect(svg.contains("75% mean of 2 run(s)"))
        let line = ScoreChart(executions: [(endUs, 1.0), (endUs - dayUs, 0.5)], days: 2, endingAt: end).svg().text
        #expect(line.contains("<polyline"))
        let spark = Sparkline(scores: [0, 0.5, 1]).svg(label: "t").text
        #expect(spark.contains("t: 0%, 50%, 100%"))
        #expect(spark.contains("points=\"3,21 48,12 93,3\""))
        #expect(Sparkline(scores: []).svg(label: "t").text.contains("no scored runs"))
    }

    // MARK: helpers

    static func halted(_ h: Harness, _ org: String) async throws -> Bool {
        try await h.call(.get, "/api/v1/organization/halt", token: h.token(org, .viewer)).json["halted"] as? Bool ?? false
    }

    static func reveal(_ h: Harness, _ environment: String, org: String = "a") async throws -> SecretsV1.RevealedEnvironment {
        var options = CallOptions.on(behalfOf: h.organizations[org]!)
        options.metadata.addString("Bearer " + Harness.runnerCredential, forKey: RunnerCredential.metadataKey)
        return try await SecretsV1.SecretClient(h.experiments.caller).revealEnvironment(.init(environmentId: environment), options: options).environment ?? .init()
    }

    /// The value of the hidden input `name` in a page.
    static func attribute(_ name: String, in page: String) -> String? {
        value(after: "name=\"\(name)\" value=\"", in: page)
    }

    /// The quoted attribute value that `prefix` opens.
    static func value(after prefix: String, in page: String) -> String? {
        guard let range = page.range(of: prefix) else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    static func journal(ok: Bool) -> String {
        """
        {"status": "\(ok ? "completed" : "failed")", "deviated": false,
         "steady_states": {"before": {"steady_state_met": true, "probes": [
            {"activity": {"type": "probe", "name": "ok"}, "status": "succeeded", "duration": 0.01, "output": 0}]},
          "after": {"steady_state_met": \(ok), "probes": [
            {"activity": {"type": "probe", "name": "ok"}, "status": "succeeded", "tolerance_met": \(ok), "duration": 0.02, "output": 1}]},
          "during": []},
         "run": [{"activity": {"type": "action", "name": "noop"}, "status": "succeeded", "duration": 1.5, "output": "<b>out</b>"}],
         "rollbacks": []}
        """
    }
}
