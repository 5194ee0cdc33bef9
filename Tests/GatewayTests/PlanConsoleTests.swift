import FaultlineProto
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

/// `POST /api/v1/plans/preview` and the console's plan pages over a live gateway and a real
/// ScheduleService: fires and errors at their fields, escaping, organisation scoping, CSRF.
@Suite("Console plans", .serialized)
struct PlanConsoleTests {
    static let hostile = #"<script>alert("pwned")</script> & 'quotes'"#

    /// A form as the console's plan form posts it.
    static func form(_ experiment: String, name: String = "nightly", cron: String = "0 3 * * 1-5", zone: String = "Europe/Paris",
                     extra: [String: String] = [:]) -> [String: String] {
        ["name": name, "experiment_id": experiment, "kind": "cron", "cron_expression": cron, "time_zone": zone,
         "concurrency": "forbid", "missed_fire": "skip", "max_retries": "1", "runner_labels": "zone=a, tier=gold"]
            .merging(extra) { $1 }
    }

    @Test("API preview: fires and words; errors are 400 naming the field; never firing is an empty list; roles")
    func apiPreview() async throws {
        try await Harness.with("plan_preview_api") { h in
            // 2026-03-27T00:00Z; Paris springs forward on the 29th (02:30 does not exist: 01:00 UTC).
            let body = #"{"schedule": {"cron": {"expression": "30 2 * * *", "time_zone": "Europe/Paris"}}, "after_us": 1774569600000000, "count": 3}"#
            let reply = try await h.call(.post, "/api/v1/plans/preview", token: h.token("a", .viewer), body: body)
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["fires_at_us"] as? [Int] == [1_774_575_000_000_000, 1_774_661_400_000_000, 1_774_746_000_000_000])
            #expect(reply.json["description"] as? String == "at 02:30 (Europe/Paris)")

            let never = try await h.call(.post, "/api/v1/plans/preview", token: h.token(), body: #"{"schedule": {"cron": {"expression": "0 0 31 2 *"}}, "count": 50}"#)
            #expect(never.status == 200)
            #expect((never.json["fires_at_us"] as? [Any])?.isEmpty == true)

            let windowed = try await h.call(.post, "/api/v1/plans/preview", token: h.token(), body: """
                {"schedule": {"interval": {"every_us": 3600000000, "start_at_us": 1780300800000000}},
                 "windows": [{"days": ["monday"], "start_minute": 540, "end_minute": 600}], "after_us": 1780300800000000, "count": 2}
                """)
            // 2026-06-01 is a Monday: 09:00 UTC that day, then a week later.
            #expect(windowed.json["fires_at_us"] as? [Int] == [1_780_304_400_000_000, 1_780_909_200_000_000], "\(windowed.text)")

            let bad: [(String, String, String)] = [
                (#"{"schedule": {"cron": {"expression": "0 25 * * *"}}}"#, "rpc.invalid_argument", "schedule.cron.expression:"),
                (#"{"schedule": {"cron": {"expression": "0 3 * * *", "time_zone": "Mars/Olympus"}}}"#, "rpc.invalid_argument", "schedule.cron.time_zone:"),
                (#"{"schedule": {"now": {}}, "count": 51}"#, "rpc.invalid_argument", "count:"),
                (#"{"schedule": {"now": {}}, "count": -1}"#, "rpc.invalid_argument", "count:"),
                (#"{"schedule": {"now": {}}, "after_us": -5}"#, "rpc.invalid_argument", "after_us:"),
                (#"{"schedule": {"now": {}}, "windows": [{"start_minute": 5, "end_minute": 5}]}"#, "rpc.invalid_argument", "windows[0]"),
                (#"{"schedule": {"now": {}}, "blackouts": [{"start_at_us": 9, "end_at_us": 3}]}"#, "rpc.invalid_argument", "blackouts[0]"),
                (#"{"schedule": {"now": {}}, "count": 99999999999}"#, "request.malformed", ""),
                (#"{"schedule": {}}"#, "request.field.invalid", ""),
                (#"{"schedule": {"cron": {"expression": "* * * * *"}, "now": {}}}"#, "request.field.invalid", ""),
                ("{nope", "request.malformed", ""),
                ("[]", "request.malformed", ""),
            ]
            for (body, code, prefix) in bad {
                let reply = try await h.call(.post, "/api/v1/plans/preview", token: h.token(), body: body)
                #expect(reply.status == 400 && reply.code == code, "\(body): \(reply.text)")
                #expect((reply.json["detail"] as? String)?.hasPrefix(prefix) == true, "\(body): \(reply.text)")
            }
            // `plans/preview` is its own route, not a plan id: only POST, and `plans/{id}` keeps its methods.
            let get = try await h.call(.get, "/api/v1/plans/preview", token: h.token())
            #expect(get.status == 405 && get.headers[HTTPField.Name("allow")!] == "POST", "\(get.status) \(get.headers)")
            let planMethods = try await h.call(.post, "/api/v1/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token(), body: "{}")
            let allowed = Set((planMethods.headers[HTTPField.Name("allow")!] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            #expect(planMethods.status == 405 && allowed == ["GET", "PUT", "DELETE"], "\(planMethods.headers)")
            #expect(try await h.call(.post, "/api/v1/plans/preview", token: nil, body: #"{"schedule": {"now": {}}}"#).status == 401)
            #expect(try await h.call(.post, "/api/v1/plans/preview", token: h.token("a", .runner), body: #"{"schedule": {"now": {}}}"#).status == 403)
        }
    }

    @Test("pages: create from the form, the plan with its next fires, pause, resume, trigger, edit, delete with confirmation")
    func lifecycle() async throws {
        try await Harness.with("plan_pages") { h in
            let experiment = try await h.importExperiment("nightly probe")
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            let empty = try await h.page("/console/plans", cookie: cookie)
            #expect(empty.status == 200 && empty.text.contains("No plans yet"))
            #expect(empty.text.contains("href=\"/console/plans\" aria-current=\"page\""))
            let new = try await h.page("/console/plans/new?experiment_id=\(experiment)", cookie: cookie)
            #expect(new.status == 200)
            #expect(new.text.contains("<option value=\"\(experiment)\" selected>nightly probe</option>"))
            // Every input has a label.
            for id in ["name", "experiment_id", "environment_id", "time_zone", "cron_expression", "interval_minutes", "at", "w0_start", "b0_reason",
                       "concurrency", "max_in_flight", "missed_fire", "max_duration_minutes", "max_retries", "runner_labels"] {
                #expect(new.text.contains("<label for=\"\(id)\">"), "\(id)")
            }

            let live = try await h.form("/console/plans/preview", Self.form(experiment).merging(["csrf": csrf]) { $1 }, cookie: cookie)
            #expect(live.status == 200, "\(live.text)")
            #expect(live.json["description"] as? String == "at 03:00 on Monday to Friday (Europe/Paris)")
            let fires = try #require(live.json["fires"] as? [[String: Any]])
            #expect(fires.count == 5)
            #expect((fires.first?["zone_text"] as? String)?.hasSuffix("03:00 Europe/Paris") == true, "\(fires)")

            let created = try await h.form("/console/plans", Self.form(experiment).merging(["csrf": csrf]) { $1 }, cookie: cookie)
            #expect(created.status == 303, "\(created.text)")
            let location = try #require(created.headers[.location])
            #expect(location.hasPrefix("/console/plans/plan_") && location.hasSuffix("?notice=created"))
            let id = String(location.dropFirst("/console/plans/".count).prefix { $0 != "?" })
            let plan = try await h.call(.get, "/api/v1/plans/\(id)", token: h.token())
            let spec = try #require(plan.json["spec"] as? [String: Any])
            #expect((spec["run_options"] as? [String: Any])?["runner_labels"] as? [String: String] == ["zone": "a", "tier": "gold"])
            #expect((spec["retry"] as? [String: Any])?["max_retries"] as? Int == 1)

            let shown = try await h.page(location, cookie: cookie)
            #expect(shown.status == 200)
            #expect(shown.text.contains("id=\"notice\""))
            #expect(shown.text.contains("at 03:00 on Monday to Friday (Europe/Paris)"))
            #expect(shown.text.components(separatedBy: "<li><time datetime=").count - 1 == 5)
            #expect(shown.text.contains("This plan has not fired yet"))

            #expect(try await h.form("/console/plans/\(id)/pause", ["csrf": csrf], cookie: cookie).status == 303)
            #expect(try await h.call(.get, "/api/v1/plans/\(id)", token: h.token()).json["state"] as? String == "paused")
            #expect(try await h.page("/console/plans/\(id)", cookie: cookie).text.contains("id=\"resume-plan\""))
            #expect(try await h.form("/console/plans/\(id)/resume", ["csrf": csrf], cookie: cookie).status == 303)
            #expect(try await h.call(.get, "/api/v1/plans/\(id)", token: h.token()).json["state"] as? String == "active")
            #expect(try await h.form("/console/plans/\(id)/trigger", ["csrf": csrf, "ignore_windows": "on"], cookie: cookie).status == 303)
            let history = try await h.page("/console/plans/\(id)", cookie: cookie)
            #expect(history.text.contains("id=\"history\""))
            #expect(history.text.contains(">manual<"))

            let edit = try await h.page("/console/plans/\(id)/edit", cookie: cookie)
            #expect(edit.text.contains("value=\"0 3 * * 1-5\""))
            #expect(edit.text.contains("value=\"zone=a, tier=gold\"") || edit.text.contains("value=\"tier=gold, zone=a\""))
            var changed = Self.form(experiment, name: "weekly", cron: "@weekly", zone: "")
            changed["csrf"] = csrf
            changed["expected_version"] = "1"  // stale: pause and resume moved it on
            let stale = try await h.form("/console/plans/\(id)/edit", changed, cookie: cookie)
            #expect(stale.status == 400 && stale.text.contains("Someone changed this plan"))
            changed["expected_version"] = "0"
            #expect(try await h.form("/console/plans/\(id)/edit", changed, cookie: cookie).status == 303)
            let renamed = try await h.page("/console/plans", cookie: cookie)
            #expect(renamed.text.contains(">weekly</a>") && renamed.text.contains("at 00:00 on Sunday (UTC)"))
            // Without the script, the next fire reads in UTC; the script finds it by `data-local`.
            #expect(renamed.text.range(of: #"<time datetime="\d{4}-\d\d-\d\dT00:00:00Z" data-local>Sun \d{4}-\d\d-\d\d 00:00 UTC</time>"#,
                                       options: .regularExpression) != nil)

            let unconfirmed = try await h.form("/console/plans/\(id)/delete", ["csrf": csrf], cookie: cookie)
            #expect(unconfirmed.status == 400 && unconfirmed.text.contains("plan.delete_unconfirmed"))
            #expect(try await h.call(.get, "/api/v1/plans/\(id)", token: h.token()).status == 200)
            let deleted = try await h.form("/console/plans/\(id)/delete", ["csrf": csrf, "confirm": "on"], cookie: cookie)
            #expect(deleted.status == 303 && deleted.headers[.location] == "/console/plans?notice=deleted")
            #expect(try await h.page("/console/plans/\(id)", cookie: cookie).status == 404)
        }
    }

    @Test("errors at their fields: a bad cron, zone, window, number or missing experiment; the form keeps what was typed and shows the preview")
    func fieldErrors() async throws {
        try await Harness.with("plan_fields") { h in
            let experiment = try await h.importExperiment()
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            func post(_ extra: [String: String]) async throws -> Harness.Reply {
                try await h.form("/console/plans", Self.form(experiment, extra: extra).merging(["csrf": csrf]) { $1 }, cookie: cookie)
            }
            let cron = try await post(["cron_expression": "0 25 * * *"])
            #expect(cron.status == 400)
            #expect(cron.text.contains(#"<input type="text" id="cron_expression" name="cron_expression" value="0 25 * * *" aria-describedby="cron_expression-hint cron_expression-error" aria-invalid="true""#))
            #expect(cron.text.range(of: #"<p class="field-error" id="cron_expression-error" aria-live="polite">Invalid cron expression: hour field, token &quot;25&quot;"#) != nil,
                    "\(cron.text)")
            #expect(cron.text.contains("id=\"form-problems\""))

            let cases: [([String: String], String)] = [
                (["time_zone": "Mars/Olympus"], "time_zone"),
                (["w0_start": "09:00"], "w0"),
                (["w1_start": "09:00", "w1_end": "09:00"], "w1"),
                (["b0_start": "2026-12-24T00:00", "b0_end": "2026-12-20T00:00"], "b0"),
                (["b0_start": "yesterday", "b0_end": "2026-12-20T00:00"], "b0"),
                (["max_retries": "11"], "max_retries"),
                (["max_in_flight": "lots"], "max_in_flight"),
                (["runner_labels": "no equals sign"], "runner_labels"),
                (["runner_labels": "bad key!=x"], "runner_labels"),
                (["kind": "sometimes"], "kind"),
                (["kind": "interval", "interval_minutes": "0"], "interval_minutes"),
                (["kind": "at", "at": ""], "at"),
                (["experiment_id": ""], "experiment_id"),
                (["experiment_id": "exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"], "experiment_id"),
                (["environment_id": "env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"], "environment_id"),
                (["name": ""], "name"),
                (["name": String(repeating: "n", count: 300)], "name"),
            ]
            for (extra, field) in cases {
                let reply = try await post(extra)
                #expect(reply.status == 400, "\(extra)")
                let slot = try #require(reply.text.range(of: "id=\"\(field)-error\" aria-live=\"polite\">"), "\(extra): no error slot")
                #expect(reply.text[slot.upperBound...].first != "<", "\(extra): the error for \(field) is empty")
            }
            // The schedule's preview is rendered with the errors of other fields.
            let other = try await post(["max_retries": "11"])
            #expect(other.status == 400)
            #expect(other.text.contains("<p id=\"preview-description\">at 03:00 on Monday to Friday (Europe/Paris)</p>"))
            #expect(other.text.components(separatedBy: "<li><time datetime=").count - 1 == 5)
            // A schedule that never fires is saved; the preview said so.
            #expect(try await post(["cron_expression": "0 0 31 2 *"]).status == 303)
            // The live preview names the field too.
            let live = try await h.form("/console/plans/preview", Self.form(experiment, extra: ["cron_expression": "0 3 * *", "csrf": csrf]), cookie: cookie)
            #expect((live.json["error"] as? [String: String])?["field"] == "cron_expression", "\(live.text)")
            let zone = try await h.form("/console/plans/preview", Self.form(experiment, extra: ["time_zone": "GMT+2", "csrf": csrf]), cookie: cookie)
            #expect((zone.json["error"] as? [String: String])?["field"] == "time_zone", "\(zone.text)")
        }
    }

    @Test("form to spec: wall-clock inputs read in the plan's zone, windows and blackouts, policies; and back into the edit form")
    func formToSpec() async throws {
        try await Harness.with("plan_form_spec") { h in
            let experiment = try await h.importExperiment()
            let cookie = try await h.signIn(h.token("a", .editor))
            let fields = ["csrf": ConsoleSession.csrfToken(for: cookie), "name": "once", "experiment_id": experiment, "kind": "at",
                          "at": "2027-07-01T09:30", "time_zone": "Europe/Paris",
                          "w0_mon": "on", "w0_fri": "on", "w0_start": "22:00", "w0_end": "02:00", "w1_start": "", "w1_end": "",
                          "w2_start": "08:00", "w2_end": "09:00", "w2_zone": "Asia/Tokyo",
                          "b0_start": "2027-06-30T00:00", "b0_end": "2027-06-30T12:00", "b0_reason": "freeze",
                          "concurrency": "allow", "max_in_flight": "3", "missed_fire": "run_once", "max_duration_minutes": "90",
                          "rollback_strategy": "deviated", "max_retries": "2", "retry_backoff_seconds": "30", "paused": "on"]
            let created = try await h.form("/console/plans", fields, cookie: cookie)
            #expect(created.status == 303, "\(created.text)")
            let id = String(try #require(created.headers[.location]).dropFirst("/console/plans/".count).prefix { $0 != "?" })
            let plan = try await h.call(.get, "/api/v1/plans/\(id)", token: h.token())
            #expect(plan.json["state"] as? String == "paused")
            let spec = try #require(plan.json["spec"] as? [String: Any])
            // 09:30 CEST = 07:30 UTC.
            #expect(((spec["schedule"] as? [String: Any])?["at"] as? [String: Any])?["at_us"] as? Int == 1_814_427_000_000_000)
            let windows = try #require(spec["windows"] as? [[String: Any]])
            #expect(windows.count == 2)
            #expect(windows.first?["days"] as? [String] == ["monday", "friday"])
            #expect(windows.first?["start_minute"] as? Int == 1320 && windows.first?["end_minute"] as? Int == 120)
            #expect(windows.first?["time_zone"] as? String == "Europe/Paris" && windows.last?["time_zone"] as? String == "Asia/Tokyo")
            #expect((spec["blackouts"] as? [[String: Any]])?.first?["start_at_us"] as? Int == 1_814_306_400_000_000)
            #expect(spec["concurrency_policy"] as? String == "allow" && spec["max_in_flight"] as? Int == 3)
            #expect(spec["missed_fire_policy"] as? String == "run_once")
            #expect((spec["run_options"] as? [String: Any])?["max_duration_us"] as? Int == 5_400_000_000)
            #expect((spec["run_options"] as? [String: Any])?["rollback_strategy"] as? String == "deviated")
            #expect((spec["retry"] as? [String: Any])?["backoff_us"] as? Int == 30_000_000)

            // The edit form shows it back as typed (an at-plan's times in UTC: only cron keeps a zone).
            let edit = try await h.page("/console/plans/\(id)/edit", cookie: cookie)
            for fragment in [#"id="at" name="at" value="2027-07-01T07:30""#, #"id="w0_mon" checked"#, #"id="w0_start" name="w0_start" value="22:00""#,
                             #"id="w0_zone" name="w0_zone" value="Europe/Paris""#, #"id="w1_zone" name="w1_zone" value="Asia/Tokyo""#,
                             #"id="b0_reason" name="b0_reason" value="freeze""#, #"<option value="allow" selected>"#,
                             #"<option value="deviated" selected>"#, #"id="max_duration_minutes" name="max_duration_minutes" value="90""#] {
                #expect(edit.text.contains(fragment), "\(fragment)")
            }
        }
    }

    @Test("escaping: hostile plan and experiment names are text on the list, the plan, its form and the history")
    func hostileNames() async throws {
        try await Harness.with("plan_hostile") { h in
            let created = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: Fixtures.experiment(title: #"<script>alert(\"x\")</script>"#))
            let experiment = try #require((created.json["experiment"] as? [String: Any])?["id"] as? String)
            let cookie = try await h.signIn(h.token())
            let csrf = ConsoleSession.csrfToken(for: cookie)
            let form = Self.form(experiment, name: Self.hostile, extra: ["description": "<img src=x onerror=alert(1)>", "b0_start": "2027-01-01T00:00",
                                                                          "b0_end": "2027-01-02T00:00", "b0_reason": "</li><script>x()</script>", "csrf": csrf])
            let reply = try await h.form("/console/plans", form, cookie: cookie)
            #expect(reply.status == 303, "\(reply.text)")
            let id = String(try #require(reply.headers[.location]).dropFirst("/console/plans/".count).prefix { $0 != "?" })
            _ = try await h.form("/console/plans/\(id)/trigger", ["csrf": csrf, "ignore_windows": "on"], cookie: cookie)
            for path in ["/console/plans", "/console/plans/\(id)", "/console/plans/\(id)/edit"] {
                let page = try await h.page(path, cookie: cookie)
                #expect(page.status == 200, "\(path)")
                #expect(!page.text.contains("<script>alert") && !page.text.contains("<img src=x") && !page.text.contains("<script>x()"), "\(path)")
                #expect(page.text.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;"), "\(path)")
                #expect(page.text.components(separatedBy: "<script").count == 2, "\(path)")
            }
            // A hostile value that fails validation is shown back escaped too.
            let refused = try await h.form("/console/plans", Self.form(experiment, cron: "<b>0</b> * * * *", extra: ["csrf": csrf]), cookie: cookie)
            #expect(refused.status == 400)
            #expect(!refused.text.contains("<b>0</b>") && refused.text.contains("&lt;b&gt;0&lt;/b&gt;"))
        }
    }

    @Test("organisations and CSRF: another organisation's plan is a 404 page showing nothing of it; forms without the session's token change nothing")
    func scopeAndCSRF() async throws {
        try await Harness.with("plan_scope") { h in
            let experiment = try await h.importExperiment()
            let secret = "secret-plan-of-org-a"
            let own = try await h.signIn(h.token("a", .editor))
            let ownCSRF = ConsoleSession.csrfToken(for: own)
            let created = try await h.form("/console/plans", Self.form(experiment, name: secret).merging(["csrf": ownCSRF]) { $1 }, cookie: own)
            let id = String(try #require(created.headers[.location]).dropFirst("/console/plans/".count).prefix { $0 != "?" })

            let other = try await h.signIn(h.token("b", .owner))
            let otherCSRF = ConsoleSession.csrfToken(for: other)
            for path in ["/console/plans/\(id)", "/console/plans/\(id)/edit", "/console/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/console/plans/nonsense"] {
                let page = try await h.page(path, cookie: other)
                #expect(page.status == 404, "\(path)")
                #expect(!page.text.contains(secret), "\(path)")
            }
            for action in ["pause", "resume", "trigger", "edit"] {
                let reply = try await h.form("/console/plans/\(id)/\(action)", Self.form(experiment).merging(["csrf": otherCSRF]) { $1 }, cookie: other)
                #expect(reply.status == 404, "\(action): \(reply.status)")
            }
            #expect(try await h.form("/console/plans/\(id)/delete", ["csrf": otherCSRF, "confirm": "on"], cookie: other).status == 404)
            #expect(!(try await h.page("/console/plans", cookie: other)).text.contains(secret))
            // Their experiment cannot be planned by org b either.
            let foreign = try await h.form("/console/plans", Self.form(experiment).merging(["csrf": otherCSRF]) { $1 }, cookie: other)
            #expect(foreign.status == 400 && foreign.text.contains("id=\"experiment_id-error\" aria-live=\"polite\">Not found"))

            // CSRF: missing, another session's, or from another origin.
            let attempts: [([String: String], HTTPFields)] = [
                ([:], [:]), (["csrf": otherCSRF], [:]), (["csrf": ownCSRF], [HTTPField.Name("origin")!: "https://evil.example"]),
            ]
            for (fields, headers) in attempts {
                for path in ["/console/plans", "/console/plans/preview", "/console/plans/\(id)/pause", "/console/plans/\(id)/trigger",
                             "/console/plans/\(id)/edit", "/console/plans/\(id)/delete"] {
                    let body = Self.form(experiment, name: "csrf-made").merging(fields) { $1 }.merging(["confirm": "on"]) { $1 }
                    let reply = try await h.form(path, body, cookie: own, headers: headers)
                    #expect(reply.status == 403 && reply.text.contains("console.csrf"), "\(path) \(fields.keys)")
                }
            }
            let plan = try await h.call(.get, "/api/v1/plans/\(id)", token: h.token())
            #expect(plan.json["state"] as? String == "active")
            #expect((plan.json["spec"] as? [String: Any])?["name"] as? String == secret)
            #expect((try await h.call(.get, "/api/v1/plans/\(id)/runs", token: h.token()).json["runs"] as? [Any])?.isEmpty == true)
            #expect(!(try await h.page("/console/plans", cookie: own)).text.contains("csrf-made"))
            // A viewer sees plans but may not change them.
            let viewer = try await h.signIn(h.token("a", .viewer))
            #expect(try await h.page("/console/plans/\(id)", cookie: viewer).status == 200)
            #expect(!(try await h.page("/console/plans/\(id)", cookie: viewer)).text.contains("id=\"pause-plan\""))
            #expect(try await h.page("/console/plans/new", cookie: viewer).status == 403)
            #expect(try await h.form("/console/plans/\(id)/pause", ["csrf": ConsoleSession.csrfToken(for: viewer)], cookie: viewer).status == 403)
        }
    }

    @Test("integrations: offered by name and kind (escaped), kept on a form error, pre-checked on edit, shown on the plan; unknown, malformed or another organisation's ids refused at the field, naming nothing of theirs")
    func integrations() async throws {
        try await Harness.with("plan_integrations") { h in
            let experiment = try await h.importExperiment()
            func integration(_ name: String, org: String = "a") async throws -> String {
                let body = try JSONSerialization.data(withJSONObject: ["name": name, "config": ["http_pre_check": ["probe": ["url": "https://status.example"]]]])
                let reply = try await h.call(.post, "/api/v1/integrations", token: h.token(org), body: String(decoding: body, as: UTF8.self))
                return try #require(reply.json["id"] as? String, "\(reply.text)")
            }
            func chosen(_ plan: String) async throws -> [String] {
                ((try await h.call(.get, "/api/v1/plans/\(plan)", token: h.token()).json["spec"] as? [String: Any])?["integration_ids"] as? [String]) ?? []
            }
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            let none = try await h.page("/console/plans/new", cookie: cookie)
            #expect(none.text.contains("id=\"no-integrations\"") && none.text.contains("href=\"/console/integrations/new\""), "\(none.text)")

            let hostile = try await integration(Self.hostile)
            let gate = try await integration("gate")
            let foreignName = "integration-of-org-b"
            let foreign = try await integration(foreignName, org: "b")
            let new = try await h.page("/console/plans/new", cookie: cookie)
            #expect(new.text.contains("<fieldset id=\"integration_ids\" aria-describedby=\"integration_ids-hint integration_ids-error\"><legend>Integrations</legend>"))
            #expect(new.text.contains("<input type=\"checkbox\" name=\"integration_\(gate)\" id=\"integration_\(gate)\"> gate <span class=\"muted\">(HTTP pre-check)</span>"))
            #expect(new.text.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;") && !new.text.contains("<script>alert"))
            #expect(!new.text.contains(foreign) && !new.text.contains(foreignName))

            func post(to path: String = "/console/plans", _ extra: [String: String]) async throws -> Harness.Reply {
                try await h.form(path, Self.form(experiment, extra: extra).merging(["csrf": csrf]) { $1 }, cookie: cookie)
            }
            // Another organisation's, an unknown and a malformed id: refused at the field, with the own choice kept.
            for bad in [foreign, "int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "<b>x</b>"] {
                let reply = try await post(["integration_\(gate)": "on", "integration_\(bad)": "on"])
                #expect(reply.status == 400, "\(bad): \(reply.status)")
                #expect(reply.text.contains("id=\"integration_ids-error\" aria-live=\"polite\">One chosen integration is not one of your organisation"), "\(bad)")
                #expect(reply.text.contains("id=\"integration_\(gate)\" checked>"), "\(bad)")
                #expect(!reply.text.contains(foreignName) && !reply.text.contains("<b>x</b>"), "\(bad)")
            }
            // Another field's error keeps the choices too.
            let other = try await post(["integration_\(gate)": "on", "integration_\(hostile)": "on", "max_retries": "11"])
            #expect(other.status == 400 && other.text.contains("id=\"integration_\(gate)\" checked>") && other.text.contains("id=\"integration_\(hostile)\" checked>"))
            #expect((try await h.call(.get, "/api/v1/plans", token: h.token()).json["plans"] as? [Any] ?? []).isEmpty)

            let created = try await post(["integration_\(gate)": "on", "integration_\(hostile)": "on"])
            #expect(created.status == 303, "\(created.text)")
            let id = String(try #require(created.headers[.location]).dropFirst("/console/plans/".count).prefix { $0 != "?" })
            #expect(Set(try await chosen(id)) == [gate, hostile])
            let shown = try await h.page("/console/plans/\(id)", cookie: cookie)
            #expect(shown.text.contains("<li><a href=\"/console/integrations/\(gate)\">gate</a> <span class=\"muted\">(HTTP pre-check)</span></li>"))
            #expect(shown.text.contains("&lt;script&gt;alert(&quot;pwned&quot;)") && !shown.text.contains("<script>alert"))

            let edit = try await h.page("/console/plans/\(id)/edit", cookie: cookie)
            #expect(edit.text.contains("id=\"integration_\(gate)\" checked>") && edit.text.contains("id=\"integration_\(hostile)\" checked>"))
            #expect(try await post(to: "/console/plans/\(id)/edit", ["integration_\(gate)": "on"]).status == 303)
            #expect(try await chosen(id) == [gate])

            // Deleted since: the plan says so, and its edit form keeps it ticked until unticked.
            #expect(try await h.call(.delete, "/api/v1/integrations/\(gate)", token: h.token()).status == 204)
            #expect(try await h.page("/console/plans/\(id)", cookie: cookie).text.contains("<li><code>\(gate)</code> <span class=\"muted\">(not found)</span></li>"))
            #expect(try await h.page("/console/plans/\(id)/edit", cookie: cookie).text.contains("id=\"integration_\(gate)\" checked> <code>\(gate)</code>"))
            #expect(try await post(to: "/console/plans/\(id)/edit", ["integration_\(gate)": "on"]).status == 400)

            // Without the session's CSRF token nothing is saved.
            let forged = try await h.form("/console/plans/\(id)/edit", Self.form(experiment, extra: ["integration_\(hostile)": "on"]), cookie: cookie)
            #expect(forged.status == 403 && forged.text.contains("console.csrf"))
            #expect(try await chosen(id) == [gate])
            // Organisation b sees none of a's integrations on its own form.
            let otherOrg = try await h.signIn(h.token("b", .owner))
            let theirs = try await h.page("/console/plans/new", cookie: otherOrg)
            #expect(theirs.text.contains("id=\"integration_\(foreign)\"") && !theirs.text.contains(hostile) && !theirs.text.contains("pwned"))
        }
    }

    @Test("history fragment: the plan's runs alone, for the page's script; another organisation's plan or a signed-out caller gets nothing")
    func historyFragment() async throws {
        try await Harness.with("plan_history") { h in
            let experiment = try await h.importExperiment()
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            let created = try await h.form("/console/plans", Self.form(experiment, name: "secret-history-plan").merging(["csrf": csrf]) { $1 }, cookie: cookie)
            let id = String(try #require(created.headers[.location]).dropFirst("/console/plans/".count).prefix { $0 != "?" })
            let page = try await h.page("/console/plans/\(id)", cookie: cookie)
            #expect(page.text.contains("data-poll=\"/console/plans/\(id)/history\"") && page.text.contains("<div id=\"history-region\"><p class=\"muted\" id=\"history-empty\">"))
            let empty = try await h.page("/console/plans/\(id)/history", cookie: cookie)
            #expect(empty.status == 200 && empty.text == "<p class=\"muted\" id=\"history-empty\">This plan has not fired yet.</p>")
            #expect(empty.headers[.cacheControl] == "no-store" && empty.headers[.contentType] == "text/html; charset=utf-8")
            #expect(try await h.form("/console/plans/\(id)/trigger", ["csrf": csrf, "ignore_windows": "on"], cookie: cookie).status == 303)
            let fired = try await h.page("/console/plans/\(id)/history", cookie: cookie)
            #expect(fired.status == 200 && fired.text.hasPrefix("<div class=\"table-wrap\"><table class=\"responsive\" id=\"history\">") && fired.text.contains(">manual<"))
            #expect(!fired.text.contains("<html") && !fired.text.contains("<nav"))

            let other = try await h.signIn(h.token("b", .owner))
            for path in ["/console/plans/\(id)/history", "/console/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa/history", "/console/plans/nonsense/history"] {
                let reply = try await h.page(path, cookie: other)
                #expect(reply.status == 404 && !reply.text.contains("manual") && !reply.text.contains("secret-history-plan"), "\(path)")
            }
            let signedOut = try await h.call(.get, "/console/plans/\(id)/history", token: nil)
            #expect(signedOut.status == 302 && signedOut.headers[.location] == "/console/sign-in")
        }
    }
}
