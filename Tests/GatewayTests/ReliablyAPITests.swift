import Foundation
@testable import Gateway
import HTTPTypes
import Testing

/// The Reliably routes with malformed, hostile and out-of-order input, and across organisations.
@Suite("Reliably API input and scoping")
struct ReliablyAPITests {
    /// An experiment of organisation `a` with one execution created through the Reliably API.
    struct Fixture {
        var org: String
        var experimentUUID: String
        var executionUUID: String
        var experimentID: String
        var base: String { "/api/v1/organization/\(org)/experiments/\(experimentUUID)" }
        var execution: String { "\(base)/executions/\(executionUUID)" }
    }

    static func journal(status: String? = nil, runs: Int = 0, log extra: String = "") -> String {
        let run = #"{"activity": {"name": "noop", "type": "action"}, "status": "succeeded", "output": {"status": 0, "stdout": "\#(extra)"}, "duration": 0.1}"#
        let value: [String: Any] = [
            "experiment": ["title": "probe the api"], "status": status.map { $0 as Any } ?? NSNull(), "deviated": false,
            "steady_states": ["before": NSNull(), "after": NSNull(), "during": []],
            "run": (0..<runs).map { _ in try! JSONSerialization.jsonObject(with: Data(run.utf8)) }, "rollbacks": [],
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: value), as: UTF8.self)
    }

    static func body(_ value: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: value), as: UTF8.self)
    }

    static func fixture(_ h: Harness) async throws -> Fixture {
        let experiment = try await h.importExperiment()
        let ids = try await h.call(.get, "/api/v1/reliably/experiments/\(experiment)", token: h.token())
        let org = try #require(ids.json["organization_id"] as? String)
        let uuid = try #require(ids.json["experiment_id"] as? String)
        let created = try await h.call(.post, "/api/v1/organization/\(org)/experiments/\(uuid)/executions", token: h.token("a", .runner),
                                       body: body(["result": journal(), "plan_id": NSNull()]))
        #expect(created.status == 201, "\(created.text)")
        let execution = try #require(created.json["id"] as? String)
        #expect(UUID(uuidString: execution) != nil)
        return Fixture(org: org, experimentUUID: uuid, executionUUID: execution, experimentID: experiment)
    }

    /// The Faultline execution behind a fixture's one execution.
    static func faultlineExecution(_ h: Harness, _ f: Fixture) async throws -> [String: Any] {
        let list = try await h.call(.get, "/api/v1/executions?experiment_id=\(f.experimentID)", token: h.token())
        return try #require((list.json["executions"] as? [[String: Any]])?.first)
    }

    @Test("malformed or unknown ids in any position are 404 with a JSON body")
    func malformedIDs() async throws {
        try await ReliablySupport.with("rly_ids") { h in
            let f = try await Self.fixture(h)
            let random = UUID().uuidString.lowercased()
            let paths = [
                "/api/v1/organization/not-a-uuid/experiments/\(f.experimentUUID)/raw",
                "/api/v1/organization/\(random)/experiments/\(f.experimentUUID)/raw",
                "/api/v1/organization/\(f.org)/experiments/\(random)/raw",
                "/api/v1/organization/\(f.org)/experiments/exp_123/raw",
                "/api/v1/organization/\(f.org)/experiments/\(f.experimentUUID)/executions/\(random)/state",
                "/api/v1/organization/\(f.org)/experiments/\(f.experimentUUID)/executions/None/state",
                "/api/v1/organization/\(f.org)/experiments/\(f.experimentUUID)/executions/%00%ff/state",
                "/api/v1/organization/\(f.org)/experiments/\(f.experimentUUID)/executions/\(String(repeating: "a", count: 5000))/state",
                // An execution UUID under an experiment it does not belong to.
                "/api/v1/organization/\(f.org)/experiments/\(f.executionUUID)/executions/\(f.executionUUID)/state",
            ]
            for path in paths {
                let reply = try await h.call(.get, path, token: h.token())
                #expect(reply.status == 404, "\(path): \(reply.status) \(reply.text)")
                #expect(reply.code?.hasSuffix("not_found") == true, "\(path): \(reply.text)")
            }
            let results = try await h.call(.put, "/api/v1/organization/\(f.org)/experiments/\(f.experimentUUID)/executions/None/results",
                                           token: h.token("a", .runner), body: Self.body(["result": Self.journal(), "log": ""]))
            #expect(results.status == 404)  // the control's hidden slack_sdk bug sends this
            // Upper-case UUIDs name the same resources.
            let upper = try await h.call(.get, f.execution.uppercased().replacingOccurrences(of: "/API/V1/ORGANIZATION", with: "/api/v1/organization")
                .replacingOccurrences(of: "/EXPERIMENTS/", with: "/experiments/").replacingOccurrences(of: "/EXECUTIONS/", with: "/executions/") + "/state",
                token: h.token())
            #expect(upper.status == 200, "\(upper.text)")
        }
    }

    @Test("another organisation's token gets 404 for everything of this one, and its own UUID names nothing here")
    func otherOrganisation() async throws {
        try await ReliablySupport.with("rly_org") { h in
            let f = try await Self.fixture(h)
            let other = try await h.call(.get, "/api/v1/reliably/organization", token: h.token("b"))
            let orgB = try #require(other.json["id"] as? String)
            #expect(orgB != f.org)
            for base in [f.base, "/api/v1/organization/\(orgB)/experiments/\(f.experimentUUID)"] {
                for (method, path, body) in [(HTTPRequest.Method.get, "\(base)/raw", nil as String?),
                                             (.post, "\(base)/executions", Self.body(["result": Self.journal()])),
                                             (.get, "\(base)/executions/\(f.executionUUID)/state", nil),
                                             (.put, "\(base)/executions/\(f.executionUUID)/state", #"{"current": "running"}"#),
                                             (.put, "\(base)/executions/\(f.executionUUID)/results", Self.body(["result": Self.journal(), "log": ""]))] {
                    let reply = try await h.call(method, path, token: h.token("b"), body: body)
                    #expect(reply.status == 404, "\(method) \(path): \(reply.status) \(reply.text)")
                }
            }
            let faultlineID = try await h.call(.get, "/api/v1/reliably/experiments/\(f.experimentID)", token: h.token("b"))
            #expect(faultlineID.status == 404)
            // Nothing changed in organisation a.
            let execution = try await Self.faultlineExecution(h, f)
            #expect(execution["status"] as? String == "pending")
        }
    }

    @Test("tokens: none is 401, a viewer may read but not report")
    func roles() async throws {
        try await ReliablySupport.with("rly_roles") { h in
            let f = try await Self.fixture(h)
            #expect(try await h.call(.get, "\(f.base)/raw", token: nil).status == 401)
            #expect(try await h.call(.get, "\(f.base)/raw", token: "flt_garbage").status == 401)
            #expect(try await h.call(.get, "\(f.base)/raw", token: h.token("a", .viewer)).status == 200)
            let put = try await h.call(.put, "\(f.execution)/results", token: h.token("a", .viewer),
                                       body: Self.body(["result": Self.journal(), "log": ""]))
            #expect(put.status == 403)
            // A runner token reports but may not terminate.
            let terminate = try await h.call(.put, "\(f.execution)/state", token: h.token("a", .runner),
                                             body: #"{"current": "terminate", "skip_rollbacks": true}"#)
            #expect(terminate.status == 403)
        }
    }

    @Test("bad bodies are 400 with a stable code and change nothing")
    func badBodies() async throws {
        try await ReliablySupport.with("rly_bodies") { h in
            let f = try await Self.fixture(h)
            let runner = h.token("a", .runner)
            let cases: [(HTTPRequest.Method, String, String, String)] = [
                (.post, "\(f.base)/executions", "{not json", "request.malformed"),
                (.post, "\(f.base)/executions", "[1, 2]", "request.malformed"),
                (.post, "\(f.base)/executions", "", "request.malformed"),
                (.post, "\(f.base)/executions", #"{"result": 42}"#, "reliably.result.invalid"),
                (.post, "\(f.base)/executions", #"{"result": "{\"truncated"}"#, "reliably.result.invalid"),
                (.post, "\(f.base)/executions", #"{"result": "[]"}"#, "reliably.result.invalid"),
                (.post, "\(f.base)/executions", Self.body(["result": Self.journal(), "plan_id": "not-a-uuid"]), "reliably.plan.unknown"),
                (.post, "\(f.base)/executions", Self.body(["result": Self.journal(), "plan_id": UUID().uuidString]), "reliably.plan.unknown"),
                (.post, "\(f.base)/executions", Self.body(["result": Self.journal(), "plan_id": 7]), "reliably.plan.invalid"),
                (.put, "\(f.execution)/results", #"{"log": "x"}"#, "reliably.result.missing"),
                (.put, "\(f.execution)/results", Self.body(["result": Self.journal(), "log": 12]), "reliably.log.invalid"),
                (.put, "\(f.execution)/results", "\u{0}\u{1}binary", "request.malformed"),
                (.put, "\(f.execution)/state", #"{"current": "exploded"}"#, "reliably.state.invalid"),
                (.put, "\(f.execution)/state", #"{"status": "running"}"#, "reliably.state.invalid"),
                (.put, "\(f.execution)/state", #"{"current": "pause", "duration": "ten"}"#, "reliably.state.invalid"),
                (.put, "\(f.execution)/state", #"{"current": "pause", "duration": -3}"#, "reliably.state.invalid"),
                (.put, "\(f.execution)/state", #"{"current": "finished", "status": "great"}"#, "reliably.state.invalid"),
                (.put, "\(f.execution)/state", #"{"current": "terminate"}"#, "reliably.state.invalid"),
            ]
            for (method, path, body, code) in cases {
                let token = code == "reliably.state.invalid" && body.contains("terminate") ? h.token("a", .editor) : runner
                let reply = try await h.call(method, path, token: token, body: body)
                #expect(reply.status == 400, "\(body.prefix(80)): \(reply.status) \(reply.text)")
                #expect(reply.code == code, "\(body.prefix(80)): \(reply.text)")
            }
            // Autopause's float durations are fine.
            let pause = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "pause", "duration": 12.5, "plan_id": null}"#)
            #expect(pause.status == 200, "\(pause.text)")
            let execution = try await Self.faultlineExecution(h, f)
            #expect(execution["status"] as? String == "pending")
            let all = try await h.call(.get, "/api/v1/executions?experiment_id=\(f.experimentID)", token: h.token())
            #expect((all.json["executions"] as? [Any])?.count == 1)
        }
    }

    @Test("a journal holding U+0000 is the service's 400, not a 500; a deleted experiment's raw definition is 404")
    func unstorableJournalAndDeletedExperiment() async throws {
        try await ReliablySupport.with("rly_nul_deleted") { h in
            let f = try await Self.fixture(h)
            let runner = h.token("a", .runner)
            let nul = Self.body(["result": Self.journal(status: "completed", runs: 1, log: #"bin\u0000ary"#), "log": ""])
            let refused = try await h.call(.put, "\(f.execution)/results", token: runner, body: nul)
            #expect(refused.status == 400 && refused.code == "rpc.invalid_argument", "\(refused.text)")
            #expect((refused.json["detail"] as? String)?.contains("\\u0000") == true, "\(refused.text)")
            #expect(try await Self.faultlineExecution(h, f)["ended_at_us"] == nil)

            #expect(try await h.call(.get, "\(f.base)/raw", token: runner).status == 200)
            #expect(try await h.call(.delete, "/api/v1/experiments/\(f.experimentID)", token: h.token()).status == 200)
            let raw = try await h.call(.get, "\(f.base)/raw", token: runner)
            #expect(raw.status == 404, "\(raw.text)")
        }
    }

    @Test("results carry whole journals and logs past the gateway's own body limit; beyond the Reliably limit it is 413")
    func largeResults() async throws {
        try await ReliablySupport.with("rly_large") { h in
            let f = try await Self.fixture(h)
            let runner = h.token("a", .runner)
            // 2 MiB of log and a journal with 300 KiB of output: far past the 256 KiB gateway limit.
            let log = String(repeating: "[2026-01-01 INFO] a line of the chaos log\n", count: 50_000)
            let journal = Self.journal(status: "completed", runs: 1, log: String(repeating: "x", count: 300_000))
            let put = try await h.call(.put, "\(f.execution)/results", token: runner, body: Self.body(["result": journal, "log": log]))
            #expect(put.status == 200, "\(put.text.prefix(500))")
            let execution = try await Self.faultlineExecution(h, f)
            #expect(execution["status"] as? String == "completed", "\(execution)")
            let id = try #require(execution["id"] as? String)
            let stored = try await h.call(.get, "/api/v1/executions/\(id)/journal", token: h.token())
            #expect(stored.text.utf8.count >= 300_000)
            let storedLog = try await h.call(.get, "/api/v1/executions/\(id)/log", token: h.token())
            #expect(storedLog.json["original_size_bytes"] as? Int == log.utf8.count)
            // The event for the action's output is clipped; the journal keeps it whole.
            let events = try await h.call(.get, "/api/v1/executions/\(id)/events", token: h.token())
            let action = (events.json["events"] as? [[String: Any]])?.first { $0["type"] as? String == "activity-after" }
            #expect((action?["payload"] as? [String: Any])?["output_truncated"] as? Bool == true)

            let tooLarge = try await h.call(.put, "\(f.execution)/results", token: runner,
                                            body: Self.body(["result": Self.journal(), "log": String(repeating: "y", count: ReliablyRoutes.maximumResultsBytes)]))
            #expect(tooLarge.status == 413)
            #expect(tooLarge.code == "request.too_large")
            // A journal larger than an execution can keep is refused, not cut.
            let other = try await Self.fixture(h)
            let huge = Self.journal(status: "completed", runs: 1, log: String(repeating: "z", count: 5 << 20))
            let refused = try await h.call(.put, "\(other.execution)/results", token: runner, body: Self.body(["result": huge, "log": ""]))
            #expect(refused.status == 413)
            #expect(refused.code == "reliably.journal.too_large")
        }
    }

    @Test("user requests made in Faultline show in the control's state: pause until it pauses, resume once, terminate always")
    func userStateTranslation() async throws {
        try await ReliablySupport.with("rly_state") { h in
            let f = try await Self.fixture(h)
            let runner = h.token("a", .runner), editor = h.token("a", .editor)
            func current() async throws -> [String: Any] {
                let reply = try await h.call(.get, "\(f.execution)/state", token: runner)
                #expect(reply.status == 200)
                return reply.json
            }
            #expect(try await current()["current"] as? String == "pending")
            let running = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "running", "started_on": "2026-01-01T00:00:00+00:00", "plan_id": null}"#)
            #expect(running.status == 200, "\(running.text)")
            #expect(try await current()["current"] as? String == "running")
            let id = try #require(try await Self.faultlineExecution(h, f)["id"] as? String)

            #expect(try await h.call(.post, "/api/v1/executions/\(id)/pause", token: editor, body: #"{"max_duration_us": 120000000}"#).status == 200)
            let paused = try await current()
            #expect(paused["current"] as? String == "pause")
            #expect((paused["duration"] as? Int).map { (1...120).contains($0) } == true, "\(paused)")
            // The control inserts its pause activity and reports it: the request is now seen.
            _ = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "pause", "duration": 120}"#)
            #expect(try await current()["current"] as? String == "running")

            #expect(try await h.call(.post, "/api/v1/executions/\(id)/resume", token: editor, body: "{}").status == 200)
            #expect(try await current()["current"] as? String == "resume")
            #expect(try await current()["current"] as? String == "resume")  // until the control reports
            _ = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "running", "started_on": "2026-01-01T00:00:00+00:00"}"#)
            #expect(try await current()["current"] as? String == "running")

            #expect(try await h.call(.post, "/api/v1/executions/\(id)/terminate", token: editor, body: #"{"skip_rollbacks": true}"#).status == 200)
            let terminate = try await current()
            #expect(terminate["current"] as? String == "terminate")
            #expect(terminate["skip_rollbacks"] as? Bool == true)  // required by the control
            // Even after the control reports again, a terminate stays shown.
            _ = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "running"}"#)
            #expect(try await current()["current"] as? String == "terminate")

            // The run ends: results with the final journal complete it; the finished state after it is a no-op.
            let done = try await h.call(.put, "\(f.execution)/results", token: runner,
                                        body: Self.body(["result": Self.journal(status: "interrupted", runs: 1), "log": "bye"]))
            #expect(done.status == 200, "\(done.text)")
            let finished = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "finished", "status": "interrupted", "deviated": false}"#)
            #expect(finished.status == 200, "\(finished.text)")
            let execution = try await Self.faultlineExecution(h, f)
            #expect(execution["status"] as? String == "interrupted", "\(execution)")
        }
    }

    @Test("a finished state without a final journal still ends the execution")
    func finishedWithoutJournal() async throws {
        try await ReliablySupport.with("rly_nojournal") { h in
            let f = try await Self.fixture(h)
            let runner = h.token("a", .runner)
            // Out of order: finished before running and before any results.
            let finished = try await h.call(.put, "\(f.execution)/state", token: runner, body: #"{"current": "finished", "status": "completed", "deviated": false}"#)
            #expect(finished.status == 200, "\(finished.text)")
            let execution = try await Self.faultlineExecution(h, f)
            #expect(execution["ended_at_us"] != nil, "\(execution)")
            #expect((try await h.call(.get, "\(f.execution)/state", token: runner)).json["current"] as? String == "finished")
            // Later reports change nothing and fail cleanly.
            let late = try await h.call(.put, "\(f.execution)/results", token: runner, body: Self.body(["result": Self.journal(status: "completed"), "log": ""]))
            #expect(late.status == 200)
            #expect(try await Self.faultlineExecution(h, f)["status"] as? String == execution["status"] as? String)
        }
    }

    @Test("the raw experiment carries the Reliably control with this organisation's ids, replacing foreign ones")
    func rawControl() async throws {
        let foreign: JSONValue = .object([
            "title": "t", "controls": .array([.object(["name": "reliably", "provider": .object([
                "type": "python", "module": "chaosreliably.controls.experiment",
                "arguments": .object(["org_id": "11111111-1111-4111-8111-111111111111", "exp_id": "22222222-2222-4222-8222-222222222222"]),
            ])])]),
        ])
        let served = try ReliablyRoutes.withControl(foreign, org: "o", experiment: "e")
        let controls = served["controls"]?.arrayValue ?? []
        #expect(controls.count == 1)
        #expect(controls.first?["provider"]?["arguments"] == .object(["org_id": "o", "exp_id": "e"]))
        let plain = try ReliablyRoutes.withControl(.object(["title": "t"]), org: "o", experiment: "e")
        #expect(plain["controls"]?.arrayValue?.first?["provider"]?["module"] == "chaosreliably.controls.experiment")
        #expect(throws: Problem.self) { try ReliablyRoutes.withControl(.object(["controls": "x"]), org: "o", experiment: "e") }
    }

    @Test("journal events keep their numbers as the journal grows")
    func journalEventsAreStable() throws {
        func events(_ journal: String) -> [String] {
            JournalEvents(journal: JSONValue(text: journal)!).events(executionID: "exe_1").map { "\($0.type):\($0.payload.text)" }
        }
        let early = events(Self.journal(runs: 1))
        let later = events(Self.journal(runs: 3))
        let final = events(Self.journal(status: "completed", runs: 3))
        #expect(Array(later.prefix(early.count)) == early)
        #expect(Array(final.prefix(later.count)) == later)
        #expect(final.count == later.count + 1)
        #expect(final.last?.hasPrefix("experiment-after") == true)
    }
}

/// Integrations, their controls and environments in the clear, as reliably-cli loads them.
@Suite("Reliably API: integrations and environments")
struct ReliablySecretTests {
    @Test("an integration, its control and its environment in the clear, accepted by reliably-cli's own models")
    func integrationAndEnvironment() async throws {
        try await ReliablySupport.with("rly_secrets") { h in
            let env = try await h.call(.post, "/api/v1/environments", token: h.token(), body: SecretRoutesTests.environmentBody)
            let envID = try #require(env.json["id"] as? String, "\(env.text)")
            let integration = try await h.call(.post, "/api/v1/integrations", token: h.token(), body: """
                {"name": "notify", "environment_id": "\(envID)", "config": {"slack": {"channel": "#chaos", "token_secret": "API_TOKEN"}}}
                """)
            let integrationID = try #require(integration.json["id"] as? String, "\(integration.text)")
            let envIDs = try await h.call(.get, "/api/v1/reliably/environments/\(envID)", token: h.token())
            let org = try #require(envIDs.json["organization_id"] as? String)
            let envUUID = try #require(envIDs.json["id"] as? String)
            let integrationUUID = try #require(try await h.call(.get, "/api/v1/reliably/integrations/\(integrationID)", token: h.token()).json["id"] as? String)
            let runner = h.token("a", .runner)

            let found = try await h.call(.get, "/api/v1/organization/\(org)/integrations/\(integrationUUID)", token: runner)
            #expect(found.status == 200, "\(found.text)")
            #expect(found.json["environment_id"] as? String == envUUID)
            #expect(found.json["provider"] as? String == "slack")
            let control = try await h.call(.get, "/api/v1/organization/\(org)/integrations/\(integrationUUID)/control", token: runner)
            #expect(control.json["name"] as? String == "notify", "\(control.text)")
            #expect((control.json["provider"] as? [String: Any])?["module"] as? String == "chaosfaultline.integrations.slack")
            #expect(!control.text.contains(SecretRoutesTests.secretValue))  // controls reference secrets, never inline them

            let clear = try await h.call(.get, "/api/v1/organization/\(org)/environments/\(envUUID)/clear", token: runner)
            #expect(clear.status == 200, "\(clear.text)")
            let envvars = clear.json["envvars"] as? [[String: String]] ?? []
            #expect(envvars.contains { $0["var_name"] == "REGION" && $0["value"] == "eu-west-1" })
            #expect(envvars.contains { $0["var_name"] == "KUBECONFIG" && $0["value"] == "/kubeconfig/kubeconfig" })
            let secrets = clear.json["secrets"] as? [[String: String]] ?? []
            #expect(secrets.contains { $0["var_name"] == "API_TOKEN" && $0["value"] == SecretRoutesTests.secretValue })
            #expect(secrets.contains { $0["path"] == "/kubeconfig/kubeconfig" })
            // reliably-cli's pydantic models take it as it is.
            let check = try await ReliablySupport.python("""
                import json, sys
                from reliably_cli.types import Environment
                env = Environment.model_validate(json.loads(sys.stdin.read()))
                print(sum(1 for _ in env.envvars), sum(1 for _ in env.secrets))
                """, input: clear.text)
            #expect(check.status == 0, "\(check.output)")
            #expect(check.output.trimmingCharacters(in: .whitespacesAndNewlines) == "2 2")

            // Only report-capable tokens of this organisation; unknown and malformed ids are 404.
            #expect(try await h.call(.get, "/api/v1/organization/\(org)/environments/\(envUUID)/clear", token: h.token("a", .viewer)).status == 403)
            let orgB = try #require(try await h.call(.get, "/api/v1/reliably/organization", token: h.token("b")).json["id"] as? String)
            for path in ["/api/v1/organization/\(org)/environments/\(envUUID)/clear", "/api/v1/organization/\(orgB)/environments/\(envUUID)/clear",
                         "/api/v1/organization/\(orgB)/integrations/\(integrationUUID)", "/api/v1/organization/\(orgB)/integrations/\(integrationUUID)/control"] {
                #expect(try await h.call(.get, path, token: h.token("b", .runner)).status == 404, "\(path)")
            }
            for path in ["/api/v1/organization/\(org)/environments/\(UUID().uuidString)/clear", "/api/v1/organization/\(org)/environments/\(envID)/clear",
                         "/api/v1/organization/\(org)/integrations/\(envUUID)", "/api/v1/organization/\(org)/integrations/x/control"] {
                let reply = try await h.call(.get, path, token: runner)
                #expect(reply.status == 404, "\(path): \(reply.text)")
            }
            #expect(try await h.call(.get, "/api/v1/reliably/environments/env_nope", token: h.token()).status == 404)
        }
    }
}

@Suite("Reliably API: plans")
struct ReliablyPlanTests {
    @Test("plans: Reliably's shape; malformed, unknown and other organisations' ids are 404; bad statuses are 400")
    func plans() async throws {
        try await ReliablySupport.with("rly_plans") { h in
            let experiment = try await h.importExperiment()
            let created = try await h.call(.post, "/api/v1/plans", token: h.token(), body: """
                {"spec": {"name": "nightly", "experiment_id": "\(experiment)", "schedule": {"cron": {"expression": "0 3 * * *", "time_zone": "Europe/Paris"}}}}
                """)
            let planID = try #require(created.json["id"] as? String, "\(created.text)")
            let ids = try await h.call(.get, "/api/v1/reliably/plans/\(planID)", token: h.token())
            let org = try #require(ids.json["organization_id"] as? String)
            let plan = try #require(ids.json["id"] as? String)
            let runner = h.token("a", .runner)
            let found = try await h.call(.get, "/api/v1/organization/\(org)/plans/\(plan)", token: runner)
            #expect(found.status == 200, "\(found.text)")
            let definition = found.json["definition"] as? [String: Any] ?? [:]
            #expect((definition["schedule"] as? [String: Any])?["pattern"] as? String == "0 3 * * *")
            #expect((definition["integrations"] as? [Any])?.isEmpty == true)  // a list, never null
            let experiments = definition["experiments"] as? [String] ?? []
            #expect(experiments.count == 1 && UUID(uuidString: experiments[0]) != nil)
            #expect(definition["environment"] is NSNull)

            let status = "/api/v1/organization/\(org)/plans/\(plan)/status"
            #expect(try await h.call(.put, status, token: runner, body: #"{"status": "running", "error": null}"#).status == 200)
            #expect(try await h.call(.put, status, token: runner, body: #"{"status": "error", "error": "Error: boom"}"#).status == 200)
            for body in [#"{"status": "exploded"}"#, #"{"error": null}"#, #"{"status": "error", "error": 5}"#, "nope", "[]"] {
                let reply = try await h.call(.put, status, token: runner, body: body)
                #expect(reply.status == 400, "\(body): \(reply.text)")
            }
            #expect(try await h.call(.put, status, token: h.token("a", .viewer), body: #"{"status": "running"}"#).status == 403)

            let orgB = try #require(try await h.call(.get, "/api/v1/reliably/organization", token: h.token("b")).json["id"] as? String)
            for (token, path) in [(h.token("b", .runner), "/api/v1/organization/\(org)/plans/\(plan)"),
                                  (h.token("b", .runner), "/api/v1/organization/\(orgB)/plans/\(plan)"),
                                  (runner, "/api/v1/organization/\(org)/plans/\(UUID().uuidString)"),
                                  (runner, "/api/v1/organization/\(org)/plans/\(planID)"),
                                  (runner, "/api/v1/organization/\(org)/plans/not-a-uuid")] {
                let reply = try await h.call(.get, path, token: token)
                #expect(reply.status == 404, "\(path): \(reply.text)")
                let put = try await h.call(.put, path + "/status", token: token, body: #"{"status": "running"}"#)
                #expect(put.status == 404, "\(path)/status: \(put.text)")
            }
            #expect(try await h.call(.get, "/api/v1/reliably/plans/\(planID)", token: h.token("b")).status == 404)
        }
    }
}
