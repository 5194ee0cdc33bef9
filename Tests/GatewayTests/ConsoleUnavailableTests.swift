import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

/// The console when a service it calls refuses connections (a real port bound but not
/// listening): the plan form and page still open without SecretService; a page whose main
/// content needs the service is a 503 naming it, without the RPC's words.
@Suite("Console unavailable services", .serialized)
struct ConsoleUnavailableTests {
    /// What an unreachable service's RPC error says, which a page must never repeat.
    static let leaks = ["127.0.0.1", "cannot reach", "connection", "refused", "rpc.", "backoff", "Swift", ".swift"]

    static func expectUnavailable(_ reply: Harness.Reply, naming service: String, _ path: String) {
        #expect(reply.status == 503, "\(path): \(reply.status)")
        #expect(reply.headers[.contentType]?.hasPrefix("text/html") == true, "\(path)")
        #expect(reply.text.contains("\(service) is unavailable right now"), "\(path): \(reply.text)")
        #expect(reply.text.contains("console.service_unavailable"), "\(path)")
        for leak in leaks { #expect(!reply.text.contains(leak), "\(path) shows \(leak)") }
    }

    @Test("without SecretService: the plan form opens with a notice and the plan's integrations kept ticked; saving them is refused at the field and keeps them; unticked, the edit saves; the plan page shows the ids and why")
    func planWithoutSecrets() async throws {
        try await Harness.with("console_no_secrets", unreachable: [.secrets]) { h in
            let experiment = try await h.importExperiment()
            let asA = CallOptions.on(behalfOf: h.organizations["a"]!)
            let chosen = "int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            var spec = SchedulesV1.PlanSpec()
            spec.name = "nightly"
            spec.experimentId = experiment
            spec.integrationIds = [chosen]
            spec.schedule = .init(kind: .interval(.init(everyUs: 3_600_000_000)))
            let plan = try await h.scheduleClient.createPlan(.init(spec: spec, paused: true), options: asA).plan
            let id = try #require(plan?.id)
            func stored() async throws -> [String] {
                try await h.scheduleClient.getPlan(.init(planId: id), options: asA).plan?.spec?.integrationIds ?? []
            }
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)

            let new = try await h.page("/console/plans/new", cookie: cookie)
            #expect(new.status == 200, "\(new.text)")
            #expect(new.text.contains("id=\"integrations-unavailable\" role=\"status\">The organisation\u{2019}s integrations cannot be loaded right now: SecretService is unavailable."))
            #expect(!new.text.contains("id=\"no-integrations\""))

            let edit = try await h.page("/console/plans/\(id)/edit", cookie: cookie)
            #expect(edit.status == 200, "\(edit.text)")
            #expect(edit.text.contains("id=\"integrations-unavailable\""))
            #expect(edit.text.contains("<input type=\"checkbox\" name=\"integration_\(chosen)\" id=\"integration_\(chosen)\" checked> <code>\(chosen)</code> <span class=\"muted\">(not checked)</span>"))

            let form = PlanConsoleTests.form(experiment, extra: ["csrf": csrf, "integration_\(chosen)": "on", "expected_version": "\(plan?.version ?? 0)"])
            let refused = try await h.form("/console/plans/\(id)/edit", form, cookie: cookie)
            #expect(refused.status == 400, "\(refused.text)")
            #expect(refused.text.contains("id=\"integration_ids-error\" aria-live=\"polite\">The chosen integrations cannot be checked right now (SecretService is unavailable)"))
            #expect(refused.text.contains("id=\"integration_\(chosen)\" checked>"))
            #expect(try await stored() == [chosen])
            // A new plan with one chosen: refused the same way, nothing created.
            let created = try await h.form("/console/plans", form, cookie: cookie)
            #expect(created.status == 400 && created.text.contains("cannot be checked right now"))
            #expect(try await h.scheduleClient.listPlans(.init(pageSize: 10, pageToken: ""), options: asA).plans.count == 1)

            // Unticked on purpose, the rest of the edit saves.
            var unticked = form
            unticked["integration_\(chosen)"] = nil
            let saved = try await h.form("/console/plans/\(id)/edit", unticked, cookie: cookie)
            #expect(saved.status == 303, "\(saved.text)")
            #expect(try await stored() == [])

            let other = try await h.scheduleClient.createPlan(.init(spec: spec, paused: true), options: asA).plan
            let shown = try await h.page("/console/plans/\(try #require(other?.id))", cookie: cookie)
            #expect(shown.status == 200)
            #expect(shown.text.contains("id=\"integrations-unavailable\">Names not shown: The organisation\u{2019}s integrations cannot be loaded right now: SecretService is unavailable.</p><ul id=\"plan-integrations\"><li><code>\(chosen)</code></li></ul>"))
            #expect(!shown.text.contains("(not found)"))

            // The pages whose content is SecretService's: a 503 naming it.
            for path in ["/console/environments", "/console/integrations", "/console/integrations/new?kind=\(IntegrationKind.all[0].name)",
                         "/console/environments/env_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/console/integrations/int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
                Self.expectUnavailable(try await h.page(path, cookie: cookie), naming: "SecretService", path)
            }
            // The pages that do not need it still open.
            for path in ["/console", "/console/environments/new", "/console/integrations/new"] {
                #expect(try await h.page(path, cookie: cookie).status == 200, "\(path)")
            }
        }
    }

    @Test("the JSON API without a service: 503 problem+json whose detail names no host or port; the cause is logged")
    func apiWithoutService() async throws {
        try await Harness.with("api_no_experiments", unreachable: [.experiments]) { h in
            for path in ["/api/v1/experiments", "/api/v1/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
                let reply = try await h.call(.get, path, token: h.token("a", .viewer))
                #expect(reply.status == 503, "\(path): \(reply.text)")
                #expect(reply.headers[.contentType] == "application/problem+json")
                #expect(reply.json["code"] as? String == "rpc.unavailable")
                #expect(reply.json["detail"] as? String == "a service this request needs is unavailable; retry shortly")
                for leak in Self.leaks where leak != "rpc." { #expect(!reply.text.contains(leak), "\(path) shows \(leak)") }
            }
            #expect(h.logs.all.contains { $0.contains("request failed") && $0.contains("cannot reach") })
        }
    }

    @Test("without ExperimentService or ScheduleService: their pages are 503s naming the service; the overview keeps working without ScheduleService")
    func pagesWithoutServices() async throws {
        try await Harness.with("console_no_experiments", unreachable: [.experiments]) { h in
            let cookie = try await h.signIn(h.token("a", .editor))
            for path in ["/console", "/console/experiments", "/console/experiments/exp_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         "/console/executions/exe_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/console/plans/new"] {
                Self.expectUnavailable(try await h.page(path, cookie: cookie), naming: "ExperimentService", path)
            }
            // The cause is the operator's, in the log.
            #expect(h.logs.all.contains { $0.contains("console page without its service") && $0.contains("ExperimentService") && $0.contains("cannot reach") })
            // The template catalogue is the gateway's own.
            #expect(try await h.page("/console/templates", cookie: cookie).status == 200)
        }
        try await Harness.with("console_no_schedules", unreachable: [.schedules]) { h in
            let cookie = try await h.signIn(h.token("a", .viewer))
            for path in ["/console/plans", "/console/plans/plan_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
                Self.expectUnavailable(try await h.page(path, cookie: cookie), naming: "ScheduleService", path)
            }
            let overview = try await h.page("/console", cookie: cookie)
            #expect(overview.status == 200 && overview.text.contains("The halt switch's state could not be read"))
        }
    }
}
