import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

@Suite("Gateway plans, runners, kill switch", .serialized)
struct ScheduleRoutesTests {
    static func spec(_ experiment: String, name: String = "nightly", extra: String = "") -> String {
        """
        {"name": "\(name)", "experiment_id": "\(experiment)", "schedule": {"cron": {"expression": "0 3 * * *", "time_zone": "Europe/Paris"}},
         "windows": [{"days": ["monday", "friday"], "start_minute": 60, "end_minute": 300}],
         "concurrency_policy": "forbid", "missed_fire_policy": "run_once", "retry": {"max_retries": 2, "backoff_us": 1000000},
         "run_options": {"rollback_strategy": "always", "runner_labels": {"zone": "a"}}\(extra)}
        """
    }

    @Test("plans: create, list, get, replace, pause, resume, trigger, history, delete")
    func plans() async throws {
        try await Harness.with("plans") { h in
            let experiment = try await h.importExperiment()
            let created = try await h.call(.post, "/api/v1/plans", token: h.token("a", .editor), body: #"{"spec": \#(Self.spec(experiment))}"#)
            #expect(created.status == 201, "\(created.text)")
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["state"] as? String == "active")
            #expect(created.json["next_fire_at_us"] is Int)
            let spec = try #require(created.json["spec"] as? [String: Any])
            #expect(spec["concurrency_policy"] as? String == "forbid")
            #expect(spec["missed_fire_policy"] as? String == "run_once")
            #expect((spec["windows"] as? [[String: Any]])?.first?["days"] as? [String] == ["monday", "friday"])
            #expect((spec["run_options"] as? [String: Any])?["rollback_strategy"] as? String == "always")
            #expect(((spec["schedule"] as? [String: Any])?["cron"] as? [String: Any])?["time_zone"] as? String == "Europe/Paris")

            #expect(try await h.call(.get, "/api/v1/plans/\(id)", token: h.token("a", .viewer)).json["id"] as? String == id)
            let listed = try await h.call(.get, "/api/v1/plans?experiment_id=\(experiment)&state=active", token: h.token("a", .viewer))
            #expect((listed.json["plans"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            let none = try await h.call(.get, "/api/v1/plans?state=paused", token: h.token("a", .viewer))
            #expect((none.json["plans"] as? [Any])?.isEmpty == true)

            let replaced = try await h.call(.put, "/api/v1/plans/\(id)", token: h.token("a", .editor),
                                            body: #"{"expected_version": 1, "spec": \#(Self.spec(experiment, name: "hourly"))}"#)
            #expect(replaced.status == 200, "\(replaced.text)")
            #expect((replaced.json["spec"] as? [String: Any])?["name"] as? String == "hourly")
            let stale = try await h.call(.put, "/api/v1/plans/\(id)", token: h.token("a", .editor),
                                         body: #"{"expected_version": 1, "spec": \#(Self.spec(experiment))}"#)
            #expect(stale.status == 409)

            let paused = try await h.call(.post, "/api/v1/plans/\(id)/pause", token: h.token("a", .editor))
            #expect(paused.json["state"] as? String == "paused")
            let resumed = try await h.call(.post, "/api/v1/plans/\(id)/resume", token: h.token("a", .editor))
            #expect(resumed.json["state"] as? String == "active")

            var headers = HTTPFields()
            headers[HTTPField.Name("idempotency-key")!] = "trigger-1"
            let triggered = try await h.call(.post, "/api/v1/plans/\(id)/trigger", token: h.token("a", .editor),
                                             body: #"{"ignore_windows": true}"#, headers: headers)
            #expect(triggered.status == 202, "\(triggered.text)")
            let run = try #require(triggered.json["id"] as? String)
            #expect(triggered.json["trigger"] as? String == "manual")
            let again = try await h.call(.post, "/api/v1/plans/\(id)/trigger", token: h.token("a", .editor),
                                         body: #"{"ignore_windows": true}"#, headers: headers)
            #expect(again.json["id"] as? String == run)
            let history = try await h.call(.get, "/api/v1/plans/\(id)/runs", token: h.token("a", .viewer))
            #expect((history.json["runs"] as? [[String: Any]])?.map { $0["id"] as? String } == [run])
            #expect(try await h.call(.get, "/api/v1/plans/\(id)/runs?state=nonsense", token: h.token()).code == "request.field.invalid")

            #expect(try await h.call(.delete, "/api/v1/plans/\(id)", token: h.token("a", .editor)).status == 204)
            #expect(try await h.call(.get, "/api/v1/plans/\(id)", token: h.token()).code == "plan.not_found")
        }
    }

    @Test("plans: bad specs are 400; unknown or malformed experiment, environment, plan ids are their kind's 404; roles; other organisation 404")
    func planErrors() async throws {
        try await Harness.with("plan_errors") { h in
            let experiment = try await h.importExperiment()
            let bad: [(String, String)] = [
                ("{not json", "request.malformed"),
                (#"{"spec": {"name": "x"}}"#, "request.malformed"),
                (#"{"spec": \#(Self.spec(experiment).replacingOccurrences(of: "\"forbid\"", with: "\"sometimes\""))}"#, "request.field.invalid"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "schedule": {}}}"#, "request.field.invalid"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "schedule": {"cron": {"expression": "61 * * * *"}}}}"#, "rpc.invalid_argument"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "schedule": {"cron": {"expression": "* * * * *", "time_zone": "Mars/Olympus"}}}}"#, "rpc.invalid_argument"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "schedule": {"now": {}}, "windows": [{"days": ["caturday"], "start_minute": 0, "end_minute": 10}]}}"#, "request.field.invalid"),
                (#"{"spec": {"name": "x", "experiment_id": "exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "schedule": {"now": {}}}}"#, "experiment.not_found"),
                (#"{"spec": {"name": "x", "experiment_id": "nope", "schedule": {"now": {}}}}"#, "experiment.not_found"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "environment_id": "env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "schedule": {"now": {}}}}"#, "environment.not_found"),
                (#"{"spec": {"name": "x", "experiment_id": "\#(experiment)", "integration_ids": ["int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"], "schedule": {"now": {}}}}"#, "integration.not_found"),
            ]
            for (body, code) in bad {
                let reply = try await h.call(.post, "/api/v1/plans", token: h.token(), body: body)
                #expect(reply.code == code, "\(body): \(reply.text)")
                #expect((400...499).contains(reply.status), "\(body)")
            }
            let huge = try await h.call(.post, "/api/v1/plans", token: h.token(),
                                        body: #"{"spec": \#(Self.spec(experiment, extra: #", "description": "\#(String(repeating: "d", count: 300 << 10))""#))}"#)
            #expect(huge.status == 413)
            // Another organisation's experiment is not found either.
            let foreign = try await h.importExperiment(org: "b")
            #expect(try await h.call(.post, "/api/v1/plans", token: h.token(), body: #"{"spec": \#(Self.spec(foreign))}"#).code == "experiment.not_found")

            for path in ["/api/v1/plans/nope", "/api/v1/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
                #expect(try await h.call(.get, path, token: h.token()).code == "plan.not_found", "\(path)")
                #expect(try await h.call(.put, path, token: h.token(), body: #"{"spec": \#(Self.spec(experiment))}"#).code == "plan.not_found", "\(path)")
                #expect(try await h.call(.get, path + "/runs", token: h.token()).code == "plan.not_found", "\(path)")
            }

            let created = try await h.call(.post, "/api/v1/plans", token: h.token(), body: #"{"spec": \#(Self.spec(experiment))}"#)
            let id = try #require(created.json["id"] as? String)
            let routes: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/v1/plans/\(id)", nil), (.put, "/api/v1/plans/\(id)", #"{"spec": \#(Self.spec(experiment))}"#),
                (.post, "/api/v1/plans/\(id)/pause", nil), (.post, "/api/v1/plans/\(id)/resume", nil),
                (.post, "/api/v1/plans/\(id)/trigger", "{}"), (.get, "/api/v1/plans/\(id)/runs", nil), (.delete, "/api/v1/plans/\(id)", nil),
            ]
            for (method, path, body) in routes {
                let other = try await h.call(method, path, token: h.token("b", .owner), body: body)
                #expect(other.status == 404 && other.code == "plan.not_found", "\(method) \(path): \(other.text)")
                #expect(try await h.call(method, path, token: h.token("a", .runner), body: body).status == 403, "\(method) \(path)")
                #expect(try await h.call(method, path, token: nil, body: body).status == 401, "\(method) \(path)")
                if method != .get {
                    #expect(try await h.call(method, path, token: h.token("a", .viewer), body: body).status == 403, "\(method) \(path)")
                }
            }
            #expect((try await h.call(.get, "/api/v1/plans", token: h.token("b", .owner)).json["plans"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("runners: the registry as runners report it; unknown and malformed runner ids 404")
    func runners() async throws {
        try await Harness.with("runners") { h in
            #expect((try await h.call(.get, "/api/v1/runners", token: h.token("a", .viewer)).json["runners"] as? [Any])?.isEmpty == true)
            var options = CallOptions()
            options.metadata = RunnerCredential.metadata(Harness.runnerCredential)
            let registered = try await h.scheduleClient.registerRunner(
                .init(name: "host-1", address: "127.0.0.1:7104", labels: ["zone": "a"], capacity: 4, version: "test"), options: options)
            let id = try #require(registered.runner?.id)
            let listed = try await h.call(.get, "/api/v1/runners", token: h.token("a", .viewer))
            #expect((listed.json["runners"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            let got = try await h.call(.get, "/api/v1/runners/\(id)", token: h.token("a", .viewer))
            #expect(got.json["state"] as? String == "active")
            #expect(got.json["capacity"] as? Int == 4)
            #expect(got.json["labels"] as? [String: String] == ["zone": "a"])
            #expect(got.json["organizations"] as? [String] == [], "shared")
            // A runner dedicated to organisation b: b sees it with its organisations, a does not see it.
            let dedicated = try #require(try await h.scheduleClient.registerRunner(
                .init(name: "host-2", address: "127.0.0.1:7105", capacity: 1, organizations: [h.organizations["b"]!.rawValue]),
                options: options).runner?.id)
            let seenByB = try await h.call(.get, "/api/v1/runners/\(dedicated)", token: h.token("b", .viewer))
            #expect(seenByB.json["organizations"] as? [String] == [h.organizations["b"]!.rawValue])
            #expect(try await h.call(.get, "/api/v1/runners/\(dedicated)", token: h.token("a", .viewer)).code == "runner.not_found")
            let listedForA = try await h.call(.get, "/api/v1/runners", token: h.token("a", .viewer))
            #expect((listedForA.json["runners"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            #expect(try await h.call(.get, "/api/v1/runners/rnr_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", token: h.token()).code == "runner.not_found")
            #expect(try await h.call(.get, "/api/v1/runners/%20bad%20id", token: h.token()).code == "runner.not_found")
            #expect(try await h.call(.get, "/api/v1/runners?include_gone=maybe", token: h.token()).status == 400)
            #expect(try await h.call(.get, "/api/v1/runners", token: h.token("a", .runner)).status == 403)
        }
    }

    @Test("kill switch: halt and resume per organisation; editors may, viewers may not")
    func killSwitch() async throws {
        try await Harness.with("halt") { h in
            let initial = try await h.call(.get, "/api/v1/organization/halt", token: h.token("a", .viewer))
            #expect(initial.json["halted"] as? Bool == false)
            #expect(try await h.call(.post, "/api/v1/organization/halt", token: h.token("a", .viewer), body: "{}").status == 403)
            #expect(try await h.call(.post, "/api/v1/organization/halt", token: h.token("a", .editor), body: "[1, 2]").code == "request.malformed")
            let halted = try await h.call(.post, "/api/v1/organization/halt", token: h.token("a", .editor), body: #"{"reason": "incident 42", "skip_rollbacks": true}"#)
            #expect(halted.status == 200, "\(halted.text)")
            #expect(halted.json["halted"] as? Bool == true)
            #expect(halted.json["reason"] as? String == "incident 42")
            #expect(halted.json["executions_terminated"] as? Int == 0)
            #expect((halted.json["halted_by"] as? [String: Any])?["id"] as? String != nil)
            // Another organisation is not halted by it.
            #expect(try await h.call(.get, "/api/v1/organization/halt", token: h.token("b", .viewer)).json["halted"] as? Bool == false)
            #expect(try await h.call(.get, "/api/v1/organization/halt", token: h.token("a", .viewer)).json["halted"] as? Bool == true)
            #expect(try await h.call(.post, "/api/v1/organization/resume", token: h.token("a", .viewer)).status == 403)
            let resumed = try await h.call(.post, "/api/v1/organization/resume", token: h.token("a", .editor))
            #expect(resumed.json["halted"] as? Bool == false)
        }
    }
}
