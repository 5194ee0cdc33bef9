import FaultlineProto
import FaultlineRPC
import Foundation
import HTTPTypes
import Hummingbird

/// Plans: the list (next fires in the viewer's zone), one plan (definition, next five fires,
/// history), create and edit with a live preview of the next fires, pause, resume, trigger and
/// delete. Fires come from ScheduleService's PreviewSchedule, so the console never computes a
/// calendar itself.
///
/// GET  /console/plans, /console/plans/new[?experiment_id=], /console/plans/{id}, /console/plans/{id}/edit
/// POST /console/plans (create), /console/plans/{id}/edit (update), /console/plans/{id}/pause|resume|trigger|delete
/// POST /console/plans/preview   the form's fires as JSON, for the live preview (session + CSRF)
/// GET  /console/plans/{id}/history   the history table alone, which the plan page's script polls
struct PlanPages {
    let console: Console
    var gateway: Gateway { console.gateway }

    struct ActionForm: ConsoleForm {
        var csrf: String?
        var ignore_windows: String?
    }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("plans") { request, context in try await list(request, context) }
        pages.get("plans/new") { request, context in
            _ = try context.require(.write)
            var form = PlanForm(values: ["kind": "cron", "cron_expression": "0 3 * * 1-5", "concurrency": "forbid", "missed_fire": "skip"])
            form.values["experiment_id"] = request.string("experiment_id") ?? ""
            return try await formPage(request, context, form: form, plan: nil, errors: [:], preview: nil)
        }
        pages.post("plans") { request, context in try await save(request, context, planID: nil) }
        pages.post("plans/preview") { request, context in try await livePreview(request, context) }
        pages.get("plans/{id}") { request, context in try await show(request, context) }
        pages.get("plans/{id}/history") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .plan), options = try gateway.callOptions(context)
            // An unknown plan lists no runs, like one that never fired: only the former is a 404.
            _ = try await schedules().getPlan(.init(planId: id), options: options)
            return try await historyTable(id, options).response()
        }
        pages.get("plans/{id}/edit") { request, context in
            _ = try context.require(.write)
            let plan = try await schedules().getPlan(.init(planId: try context.parameters.id(of: .plan)),
                                                     options: gateway.callOptions(context)).plan ?? .init()
            let form = PlanForm(spec: plan.spec ?? .init(), version: plan.version)
            let preview = try? await previewOf(form.parse(), context)
            return try await formPage(request, context, form: form, plan: plan, errors: [:], preview: preview)
        }
        pages.post("plans/{id}/edit") { request, context in
            try await save(request, context, planID: try context.parameters.id(of: .plan))
        }
        pages.post("plans/{id}/pause") { request, context in
            try await act(request, context, notice: "paused") { id, _, options in _ = try await schedules().pausePlan(.init(planId: id), options: options) }
        }
        pages.post("plans/{id}/resume") { request, context in
            try await act(request, context, notice: "resumed") { id, _, options in _ = try await schedules().resumePlan(.init(planId: id), options: options) }
        }
        pages.post("plans/{id}/trigger") { request, context in
            try await act(request, context, notice: "triggered") { id, form, options in
                _ = try await schedules().triggerPlan(.init(planId: id, ignoreWindows: form.ignore_windows == "on",
                                                            requestId: "console-" + UUID().uuidString), options: options)
            }
        }
        pages.post("plans/{id}/delete") { request, context in
            try await console.confirmedDelete(.plan, request, context, then: "/console/plans?notice=deleted") { id, options in
                _ = try await schedules().deletePlan(.init(planId: id), options: options)
            }
        }
    }

    private func schedules() throws -> SchedulesV1.ScheduleClient {
        try gateway.required(gateway.schedules, "schedules", variable: "FAULTLINE_SCHEDULE_SERVICE")
    }

    private func act(_ request: Request, _ context: GatewayContext, notice: String,
                     _ body: (String, ActionForm, CallOptions) async throws -> Void) async throws -> Response {
        try await console.act(on: .plan, ActionForm.self, request, context, then: { "/console/plans/\($0)?notice=\(notice)" }, body)
    }

    // MARK: list

    private func list(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let options = try gateway.callOptions(context)
        var list = SchedulesV1.ListPlansRequest()
        list.pageSize = 50
        list.pageToken = request.string("page_token") ?? ""
        let page = try await schedules().listPlans(list, options: options)
        let titles = await experimentTitles(Set(page.plans.map { $0.spec?.experimentId ?? "" }), options)
        let words = await descriptions(page.plans, options)
        let rows = page.plans.map { plan -> HTML in
            let spec = plan.spec ?? .init()
            let last: HTML = plan.lastRun.map { run in
                // An ended run is best told by how its execution ended.
                let state = Pages.status(run.executionState == .unspecified ? run.state.apiName : run.executionState.apiName)
                return run.executionId.isEmpty ? state : "<a href=\"/console/executions/\(run.executionId)\">\(state)</a>"
            } ?? "<span class=\"muted\">never ran</span>"
            return """
            <tr><td data-label="Plan"><a href="/console/plans/\(plan.id)">\(spec.name)</a></td>
            <td data-label="Experiment"><a href="/console/experiments/\(spec.experimentId)">\(titles[spec.experimentId] ?? spec.experimentId)</a></td>
            <td data-label="Schedule">\(words[plan.id] ?? Self.rawSchedule(spec.schedule))</td>
            <td data-label="State">\(Pages.status(plan.state.apiName))</td>
            <td data-label="Next fire">\(Self.localTime(plan.nextFireAtUs))</td><td data-label="Last run">\(last)</td></tr>
            """
        }
        let table: HTML = page.plans.isEmpty ? "<p class=\"muted\">No plans yet.</p>" : """
            <div class="table-wrap"><table class="responsive" id="plans"><caption class="sr-only">Plans</caption>
            <thead><tr><th scope="col">Plan</th><th scope="col">Experiment</th><th scope="col">Schedule</th><th scope="col">State</th>
            <th scope="col">Next fire</th><th scope="col">Last run</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
        let next: HTML = page.nextPageToken.isEmpty ? .empty
            : "<p><a href=\"/console/plans?page_token=\(ExperimentPages.query(page.nextPageToken))\">Next page</a></p>"
        let body: HTML = """
        <h1>Plans</h1>
        \(Self.notice(request))
        \(HTML.when(principal.role.allows(.write), "<p><a class=\"button\" href=\"/console/plans/new\" id=\"new-plan\">New plan</a></p>"))
        <p class="muted">Times are shown in your browser\u{2019}s time zone (UTC without JavaScript).</p>
        \(table)\(next)
        """
        return try console.page(context, title: "Plans", section: .plans, body: body, request: request)
    }

    // MARK: one plan

    private func show(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let id = try context.parameters.id(of: .plan)
        let options = try gateway.callOptions(context)
        let plan = try await schedules().getPlan(.init(planId: id), options: options).plan ?? .init()
        let spec = plan.spec ?? .init()
        let history = try await historyTable(id, options)
        let title = await experimentTitles([spec.experimentId], options)[spec.experimentId] ?? spec.experimentId
        var environment: HTML = "<span class=\"muted\">none</span>"
        if !spec.environmentId.isEmpty {
            let name = try? await gateway.secrets?.getEnvironment(.init(environmentId: spec.environmentId), options: options).environment?.name
            environment = "\(name ?? spec.environmentId) <code>\(spec.environmentId)</code>"
        }
        // Names are a nicety here: without SecretService the ids still show, saying why.
        let integrations = spec.integrationIds.isEmpty ? PlanIntegrations.empty : (try? await PlanIntegrations.load(gateway, options)) ?? .unreachable
        let preview = try? await schedules().previewSchedule(Self.previewRequest(plan, count: 5), options: options)
        let zone = Self.zone(of: spec)

        let csrf = ConsoleForms.csrf(of: request) ?? ""
        func button(_ action: String, _ label: String, style: String = "secondary", extra: HTML = .empty) -> HTML {
            """
            <form method="post" action="/console/plans/\(id)/\(action)"><input type="hidden" name="csrf" value="\(csrf)">\(extra)
            <button type="submit" id="\(action)-plan" class="\(style)">\(label)</button></form>
            """
        }
        let controls: HTML = principal.role.allows(.write) ? """
            <div class="controls" aria-label="Plan controls">
            <a class="button" href="/console/plans/\(id)/edit" id="edit-plan">Edit</a>
            \(plan.state == .paused ? button("resume", "Resume") : plan.state == .active ? button("pause", "Pause") : .empty)
            \(button("trigger", "Trigger now", style: "",
                     extra: "<label class=\"inline\"><input type=\"checkbox\" name=\"ignore_windows\" id=\"ignore-windows\"> ignore windows and blackouts</label>"))
            </div>
            <details class="danger-zone"><summary>Delete this plan\u{2026}</summary>
            <p>Its runs in flight go on and its history stays readable; it never fires again.</p>
            \(button("delete", "Delete plan", style: "danger",
                     extra: "<label class=\"inline\"><input type=\"checkbox\" name=\"confirm\" id=\"confirm-delete\" required> Yes, delete this plan</label>"))
            </details>
            """ : .empty

        // A paused or finished plan fires no more: its words stay, its fires go.
        let fires: HTML = Self.fireList(plan.state == .active ? preview?.fires.map(\.atUs) ?? [] : [], zone: zone, id: "next-fires",
                                        empty: plan.state == .active ? "No fire to come." : "None while the plan is \(plan.state.apiName).")
        let windows = spec.windows.map { w -> HTML in
            let days = w.days.isEmpty ? "every day" : PlanForm.days.filter { w.days.contains($0.day) }.map(\.label).joined(separator: ", ")
            return "<li>\(days) \(PlanForm.clock(w.startMinute))\u{2013}\(PlanForm.clock(w.endMinute)) \(w.timeZone.isEmpty ? "UTC" : w.timeZone)</li>"
        }
        let blackouts = spec.blackouts.map { b -> HTML in
            "<li>\(Self.localTime(b.startAtUs)) \u{2013} \(Self.localTime(b.endAtUs))\(b.reason.isEmpty ? "" : ": ")\(b.reason)</li>"
        }
        let labels = (spec.runOptions?.runnerLabels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        let body: HTML = """
        <h1>Plan: \(spec.name)</h1>
        \(Self.notice(request))
        \(HTML.when(!spec.description.isEmpty, "<p>\(spec.description)</p>"))
        <dl class="facts plan-facts">
        <dt>Experiment</dt><dd><a href="/console/experiments/\(spec.experimentId)">\(title)</a>\(spec.experimentRevision == 0 ? " (latest revision)" : " (revision \(spec.experimentRevision))")</dd>
        <dt>Environment</dt><dd>\(environment)</dd>
        <dt>Integrations</dt><dd>\(integrations.facts(spec.integrationIds))</dd>
        <dt>Schedule</dt><dd><span id="schedule-words">\(preview?.description ?? "")</span><br><code>\(Self.rawSchedule(spec.schedule))</code></dd>
        <dt>State</dt><dd id="plan-state">\(Pages.status(plan.state.apiName))</dd>
        <dt>Next fire</dt><dd>\(Self.localTime(plan.nextFireAtUs))</dd>
        <dt>Windows</dt><dd>\(windows.isEmpty ? "any time" as HTML : "<ul>\(windows)</ul>")</dd>
        <dt>Blackouts</dt><dd>\(blackouts.isEmpty ? "none" as HTML : "<ul>\(blackouts)</ul>")</dd>
        <dt>Concurrency</dt><dd>\(Self.concurrency(spec)), at most \(max(spec.maxInFlight, 1)) in flight</dd>
        <dt>Missed fires</dt><dd>\(spec.missedFirePolicy == .runOnce ? "run once for all of them" : "skipped")</dd>
        <dt>Max duration</dt><dd>\((spec.runOptions?.maxDurationUs ?? 0) == 0 ? "the runner\u{2019}s default" : "\((spec.runOptions?.maxDurationUs ?? 0) / 60_000_000) minutes")</dd>
        <dt>Retries of lost runs</dt><dd>\(spec.retry?.maxRetries ?? 0)\((spec.retry?.backoffUs ?? 0) > 0 ? ", \((spec.retry?.backoffUs ?? 0) / 1_000_000) s apart" : "")</dd>
        <dt>Runner labels</dt><dd>\(labels.isEmpty ? "any runner" : labels)</dd>
        <dt>Id</dt><dd><code>\(id)</code> · version \(plan.version) · created \(Self.localTime(plan.createdAtUs))</dd>
        </dl>
        \(controls)
        <h2 id="next-fires-heading">Next five fires</h2>
        \(fires)
        <h2 id="history-heading">History</h2>
        <p><a href="/console/plans/\(id)#history-heading" id="refresh-history">Refresh</a>
        <span class="muted" id="history-status" data-poll="/console/plans/\(id)/history"></span></p>
        <div id="history-region">\(history)</div>
        """
        return try console.page(context, title: "Plan \(spec.name)", section: .plans, body: body, request: request)
    }

    /// The newest runs of a plan as a table: on its page, and alone (`GET /console/plans/{id}/history`)
    /// for the page's script to refresh it in place.
    private func historyTable(_ id: String, _ options: CallOptions) async throws -> HTML {
        var history = SchedulesV1.ListPlanRunsRequest()
        history.planId = id
        history.pageSize = 25
        let runs = try await schedules().listPlanRuns(history, options: options).runs
        let runRows = runs.map { run -> HTML in
            let execution: HTML = run.executionId.isEmpty ? "<span class=\"muted\">—</span>" : """
                <a class="execution-link" href="/console/executions/\(run.executionId)">\(run.executionId)</a>\
                \(run.executionState == .unspecified ? .empty : " \(Pages.status(run.executionState.apiName))" as HTML)
                """
            return """
            <tr><td data-label="Due">\(Self.localTime(run.dueAtUs))</td><td data-label="Trigger">\(run.trigger.apiName)</td>
            <td data-label="State">\(Pages.status(run.state.apiName))\(run.attempt > 1 ? " (attempt \(run.attempt))" as HTML : .empty)</td>
            <td data-label="Execution">\(execution)</td><td data-label="Reason">\(run.reason)</td></tr>
            """
        }
        return runs.isEmpty ? "<p class=\"muted\" id=\"history-empty\">This plan has not fired yet.</p>" : """
            <div class="table-wrap"><table class="responsive" id="history"><caption class="sr-only">Runs of this plan, newest first</caption>
            <thead><tr><th scope="col">Due</th><th scope="col">Trigger</th><th scope="col">State</th><th scope="col">Execution</th><th scope="col">Reason</th></tr></thead>
            <tbody>\(runRows)</tbody></table></div>
            """
    }

    // MARK: create and edit

    private func save(_ request: Request, _ context: GatewayContext, planID: String?) async throws -> Response {
        _ = try context.require(.write)
        let form = try await ConsoleForms.read(PlanForm.self, request, context)
        let options = try gateway.callOptions(context)
        var parsed = form.parse()
        var errors = parsed.errors
        var preview: PreviewResult?
        if parsed.spec.schedule != nil {
            // The schedule first: its errors and fires are shown whatever else needs fixing.
            preview = try await previewOf(parsed, context)
            if case .invalid(let field, let message) = preview { errors[field ?? "form"] = errors[field ?? "form"] ?? message }
        }
        var current: SchedulesV1.Plan?
        if let planID {
            current = try await schedules().getPlan(.init(planId: planID), options: options).plan
            // What the form does not show is kept.
            parsed.spec.experimentRevision = current?.spec?.experimentRevision ?? 0
        }
        let integrations = try await PlanIntegrations.load(gateway, options)
        if let problem = integrations.problem(with: parsed.spec.integrationIds) { errors[PlanIntegrations.field] = problem }
        if errors.isEmpty {
            do {
                try await ScheduleRoutes(gateway: gateway).checkReferences(of: parsed.spec, options: options)
                if let planID {
                    let version = Int64(form["expected_version"]) ?? 0
                    _ = try await schedules().updatePlan(.init(planId: planID, spec: parsed.spec, expectedVersion: version), options: options)
                    return Response.seeOther("/console/plans/\(planID)?notice=saved")
                }
                let created = try await schedules().createPlan(.init(spec: parsed.spec, paused: form["paused"] == "on"), options: options)
                return Response.seeOther("/console/plans/\(created.plan?.id ?? "")?notice=created")
            } catch let error as RPCError where error.code == .invalidArgument {
                errors[PlanForm.field(of: error.message, parsed: parsed) ?? "form"] = PlanForm.humane(error.message)
            } catch let error as RPCError where error.code == .aborted {
                errors["form"] = "Someone changed this plan since you opened it; reload the page to edit the latest version."
            } catch where ConsoleBackend.unreachable(error) {
                // The reference check (ExperimentService, SecretService) or the save itself: the form stays, with its reason.
                errors["form"] = "The plan cannot be checked and saved right now (a service is unavailable); your form is kept: save again shortly."
            } catch let problem as Problem where problem.status == .notFound && problem.code != "plan.not_found" {
                errors[problem.code.hasPrefix("environment") ? "environment_id" : problem.code.hasPrefix("integration") ? PlanIntegrations.field : "experiment_id"] =
                    "Not found: choose one of your organisation\u{2019}s."
            }
        }
        return try await formPage(request, context, form: form, plan: current, errors: errors, preview: preview,
                                  integrations: integrations, status: .badRequest)
    }

    enum PreviewResult {
        case fires([Int64], description: String)
        case invalid(field: String?, message: String)
    }

    /// The form's fires, or the first problem of its schedule, windows or blackouts at its field.
    private func previewOf(_ parsed: PlanForm.Parsed, _ context: GatewayContext) async throws -> PreviewResult {
        let spec = parsed.spec
        do {
            let answer = try await schedules().previewSchedule(.init(schedule: spec.schedule, windows: spec.windows, blackouts: spec.blackouts, count: 5),
                                                               options: gateway.callOptions(context))
            return .fires(answer.fires.map(\.atUs), description: answer.description)
        } catch let error as RPCError where error.code == .invalidArgument {
            return .invalid(field: PlanForm.field(of: error.message, parsed: parsed), message: PlanForm.humane(error.message))
        }
    }

    /// The live preview: `{"description", "fires": [{"at", "zone_text"}], "error": {"field", "message"}}`.
    private func livePreview(_ request: Request, _ context: GatewayContext) async throws -> Response {
        _ = try context.require(.read)
        let form = try await ConsoleForms.read(PlanForm.self, request, context)
        let parsed = form.parse()
        struct Fire: Encodable { var at: String; var zone_text: String }
        struct Failure: Encodable { var field: String; var message: String }
        struct Answer: Encodable { var description = ""; var fires: [Fire] = []; var error: Failure? }
        var answer = Answer()
        let scheduleFields: Set<String> = ["kind", "cron_expression", "time_zone", "interval_minutes", "interval_start", "at"]
        if let (field, message) = parsed.errors.first(where: { scheduleFields.contains($0.key) || $0.key.hasPrefix("w") || $0.key.hasPrefix("b") }) {
            answer.error = Failure(field: field, message: message)
        } else {
            switch try await previewOf(parsed, context) {
            case .fires(let fires, let description):
                let zone = TimeZone(identifier: form.timeZone.isEmpty ? "UTC" : form.timeZone)
                answer.description = description
                answer.fires = fires.map { Fire(at: Self.iso($0), zone_text: zone.map(Self.isUTC) == false ? Self.zoneText($0, zone) : "") }
            case .invalid(let field, let message):
                answer.error = Failure(field: field ?? "kind", message: message)
            }
        }
        return try Response.json(answer)
    }

    private func formPage(_ request: Request, _ context: GatewayContext, form: PlanForm, plan: SchedulesV1.Plan?,
                          errors: [String: String], preview: PreviewResult?, integrations: PlanIntegrations? = nil,
                          status: HTTPResponse.Status = .ok) async throws -> Response {
        let options = try gateway.callOptions(context)
        let integrationChoices: PlanIntegrations = if let integrations { integrations } else { try await PlanIntegrations.load(gateway, options) }
        var experiments = ExperimentsV1.ListExperimentsRequest()
        experiments.pageSize = 200
        let experimentList = try await ConsoleBackend.experiments.guarding(context.logger) {
            try await gateway.experiments.listExperiments(experiments, options: options).experiments
        }
        var environments = SecretsV1.ListEnvironmentsRequest()
        environments.pageSize = 200
        let environmentList = (try? await gateway.secrets?.listEnvironments(environments, options: options).environments) ?? []
        let csrf = ConsoleForms.csrf(of: request) ?? ""

        func error(_ key: String) -> HTML {
            "<p class=\"field-error\" id=\"\(key)-error\" aria-live=\"polite\">\(errors[key] ?? "")</p>"
        }
        func described(_ key: String, hint: Bool = false) -> HTML {
            let ids = (hint ? "\(key)-hint " : "") + "\(key)-error"
            return "aria-describedby=\"\(ids)\"\(errors[key] == nil ? .empty : " aria-invalid=\"true\"" as HTML)"
        }
        func text(_ key: String, _ label: String, type: String = "text", hint: String? = nil, extra: HTML = .empty) -> HTML {
            """
            <label for="\(key)">\(label)</label>\(hint.map { "<p class=\"hint\" id=\"\(key)-hint\">\($0)</p>" as HTML } ?? .empty)
            <input type="\(type)" id="\(key)" name="\(key)" value="\(form[key])" \(described(key, hint: hint != nil))\(extra)>\(error(key))
            """
        }
        func select(_ key: String, _ label: String, _ choices: [(String, String)]) -> HTML {
            let items = choices.map { value, text -> HTML in
                "<option value=\"\(value)\"\(form[key] == value ? " selected" as HTML : .empty)>\(text)</option>"
            }
            return "<label for=\"\(key)\">\(label)</label><select id=\"\(key)\" name=\"\(key)\" \(described(key))>\(items)</select>\(error(key))"
        }
        func kind(_ value: String, _ label: String) -> HTML {
            "<label class=\"inline\"><input type=\"radio\" name=\"kind\" value=\"\(value)\" id=\"kind-\(value)\"\(form["kind"] == value ? " checked" as HTML : .empty)> \(label)</label>"
        }

        var experimentChoices = [("", "Choose an experiment")] + experimentList.map { ($0.id, $0.title.isEmpty ? $0.id : $0.title) }
        if !form["experiment_id"].isEmpty, !experimentChoices.contains(where: { $0.0 == form["experiment_id"] }) {
            experimentChoices.append((form["experiment_id"], form["experiment_id"]))
        }
        var environmentChoices = [("", "None")] + environmentList.map { ($0.id, $0.name) }
        // Kept when SecretService cannot list it, so saving an edit never drops it unseen.
        if !form["environment_id"].isEmpty, !environmentChoices.contains(where: { $0.0 == form["environment_id"] }) {
            environmentChoices.append((form["environment_id"], form["environment_id"]))
        }

        let windowRows = (0..<form.rows("w")).map { row -> HTML in
            let key = "w\(row)"
            let days = PlanForm.days.map { day -> HTML in
                "<label class=\"inline\"><input type=\"checkbox\" name=\"\(key)_\(day.key)\" id=\"\(key)_\(day.key)\"\(form["\(key)_\(day.key)"] == "on" ? " checked" as HTML : .empty)> \(day.label)</label>"
            }
            return """
            <fieldset class="row-set" id="\(key)" \(described(key))><legend>Window \(row + 1)</legend>
            <div class="days" role="group" aria-label="Days of window \(row + 1) (none = every day)">\(days)</div>
            <div class="row"><div><label for="\(key)_start">Opens (HH:MM)</label><input type="time" id="\(key)_start" name="\(key)_start" value="\(form["\(key)_start"])"></div>
            <div><label for="\(key)_end">Closes (HH:MM, excluded)</label><input type="time" id="\(key)_end" name="\(key)_end" value="\(form["\(key)_end"])"></div>
            <div><label for="\(key)_zone">Time zone (empty = the plan\u{2019}s)</label><input type="text" id="\(key)_zone" name="\(key)_zone" value="\(form["\(key)_zone"])" list="zones"></div></div>
            \(error(key))</fieldset>
            """
        }
        let blackoutRows = (0..<form.rows("b")).map { row -> HTML in
            let key = "b\(row)"
            return """
            <fieldset class="row-set" id="\(key)" \(described(key))><legend>Blackout \(row + 1)</legend>
            <div class="row"><div><label for="\(key)_start">From</label><input type="datetime-local" id="\(key)_start" name="\(key)_start" value="\(form["\(key)_start"])"></div>
            <div><label for="\(key)_end">Until (excluded)</label><input type="datetime-local" id="\(key)_end" name="\(key)_end" value="\(form["\(key)_end"])"></div>
            <div><label for="\(key)_reason">Reason</label><input type="text" id="\(key)_reason" name="\(key)_reason" value="\(form["\(key)_reason"])"></div></div>
            \(error(key))</fieldset>
            """
        }

        let zone = form.timeZone.isEmpty ? "UTC" : form.timeZone
        let previewBody: HTML
        switch preview {
        case .fires(let fires, let description)?:
            previewBody = """
                <p id="preview-description">\(description)</p>
                \(Self.fireList(fires, zone: TimeZone(identifier: zone), id: "preview-fires", empty: "It never fires."))
                """
        case .invalid(_, let message)?:
            previewBody = "<p id=\"preview-description\" class=\"error\">\(message)</p><ol id=\"preview-fires\" class=\"fires\"></ol>"
        case nil:
            previewBody = "<p id=\"preview-description\" class=\"muted\">The next five fires appear here as you type.</p><ol id=\"preview-fires\" class=\"fires\"></ol>"
        }
        let action = plan.map { "/console/plans/\($0.id)/edit" } ?? "/console/plans"
        let heading = plan.map { "Edit plan: \($0.spec?.name ?? "")" } ?? "New plan"
        let body: HTML = """
        <h1>\(heading)</h1>
        \(HTML.when(!errors.isEmpty, "<div class=\"notice\" role=\"alert\" id=\"form-problems\"><p><strong>The plan was not saved:</strong> \(errors.count == 1 ? "one field needs" : "\(errors.count) fields need") attention.</p>\(errors["form"].map { "<p>\($0)</p>" as HTML } ?? .empty)</div>"))
        <form method="post" action="\(action)" id="plan-form" data-preview="/console/plans/preview" novalidate>
        <input type="hidden" name="csrf" value="\(csrf)">
        <input type="hidden" name="expected_version" value="\(form["expected_version"])">
        <fieldset><legend>What runs</legend>
        \(text("name", "Name"))
        <label for="description">Description</label><textarea id="description" name="description" class="short" \(described("description"))>\(form["description"])</textarea>\(error("description"))
        \(select("experiment_id", "Experiment", experimentChoices))
        \(select("environment_id", "Environment", environmentChoices))
        \(integrationChoices.fieldset(form, errors: errors))
        </fieldset>
        <fieldset id="schedule"><legend>When it runs</legend>
        <div role="radiogroup" aria-label="Schedule kind" \(described("kind"))>\(kind("cron", "On a cron schedule"))\(kind("interval", "Every N minutes"))\(kind("at", "Once, at a time"))\(kind("now", "Once, now"))</div>\(error("kind"))
        \(text("time_zone", "Time zone", hint: "An IANA name such as Europe/Paris; empty = UTC. Cron reads its fields on this zone\u{2019}s wall clock; the dates below are in it too.", extra: " list=\"zones\" autocomplete=\"off\" spellcheck=\"false\""))
        <datalist id="zones">\(TimeZone.knownTimeZoneIdentifiers.map { "<option value=\"\($0)\">" as HTML })</datalist>
        <div data-kind="cron">\(text("cron_expression", "Cron expression", hint: "Five fields: minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5 (03:00 on weekdays); or @daily, @hourly\u{2026}", extra: " autocomplete=\"off\" spellcheck=\"false\""))</div>
        <div data-kind="interval" class="row"><div>\(text("interval_minutes", "Every (minutes)", type: "number", extra: " min=\"1\""))</div>
        <div>\(text("interval_start", "Starting at (empty = when saved)", type: "datetime-local"))</div></div>
        <div data-kind="at">\(text("at", "At", type: "datetime-local"))</div>
        <section id="preview" aria-labelledby="preview-heading" aria-live="polite"><h2 id="preview-heading">Next five fires</h2>\(previewBody)</section>
        </fieldset>
        <fieldset><legend>Only inside these windows (none = any time)</legend>\(windowRows)</fieldset>
        <fieldset><legend>Never inside these blackouts</legend>\(blackoutRows)</fieldset>
        <fieldset><legend>How runs start</legend>
        \(select("concurrency", "While an earlier run is still going", [("forbid", "skip the new run"), ("allow", "start it anyway, up to the limit"), ("replace", "stop the earlier run, start the new one")]))
        \(text("max_in_flight", "Runs in flight at once (with \u{201C}start it anyway\u{201D}; empty = 1)", type: "number", extra: " min=\"0\""))
        \(select("missed_fire", "Fires missed while the scheduler was down", [("skip", "skip them"), ("run_once", "run once for all of them")]))
        \(text("max_duration_minutes", "Stop a run after (minutes; 0 = the runner\u{2019}s default)", type: "number", extra: " min=\"0\""))
        \(select("rollback_strategy", "Rollbacks", [("", "Chaos Toolkit\u{2019}s default"), ("always", "always"), ("deviated", "only when deviated"), ("never", "never")]))
        <div class="row"><div>\(text("max_retries", "Retries of a run lost with its runner", type: "number", extra: " min=\"0\" max=\"10\""))</div>
        <div>\(text("retry_backoff_seconds", "Seconds before each retry", type: "number", extra: " min=\"0\""))</div></div>
        \(text("runner_labels", "Runner labels", hint: "key=value pairs, separated by commas; a runner must carry them all.", extra: " spellcheck=\"false\""))
        </fieldset>
        \(HTML.when(plan == nil, "<p><label class=\"inline\"><input type=\"checkbox\" name=\"paused\" id=\"paused\"\(form["paused"] == "on" ? " checked" as HTML : .empty)> Create it paused</label></p>"))
        <p><button type="submit" id="save-plan">\(plan == nil ? "Create plan" : "Save plan")</button>\(plan.map { " <a href=\"/console/plans/\($0.id)\">Cancel</a>" as HTML } ?? .empty)</p>
        </form>
        """
        return try console.page(context, title: heading, section: .plans, body: body, request: request, status: status)
    }

    // MARK: pieces

    /// The preview request for a plan as stored: from its next fire (an interval counts from it),
    /// or from now when it has none.
    static func previewRequest(_ plan: SchedulesV1.Plan, count: Int32) -> SchedulesV1.PreviewScheduleRequest {
        let spec = plan.spec ?? .init()
        var schedule = spec.schedule
        if case .interval(var interval)? = schedule?.kind, interval.startAtUs == 0, plan.nextFireAtUs > 0 {
            interval.startAtUs = plan.nextFireAtUs
            schedule = .init(kind: .interval(interval))
        }
        return .init(schedule: schedule, windows: spec.windows, blackouts: spec.blackouts,
                     afterUs: plan.state == .active ? plan.nextFireAtUs : 0, count: count)
    }

    /// Each plan's schedule in words, asked concurrently (one page holds at most 50 plans).
    private func descriptions(_ plans: [SchedulesV1.Plan], _ options: CallOptions) async -> [String: String] {
        guard let client = gateway.schedules else { return [:] }
        return await withTaskGroup(of: (String, String?).self) { group in
            for plan in plans {
                group.addTask { (plan.id, try? await client.previewSchedule(Self.previewRequest(plan, count: 1), options: options).description) }
            }
            var words: [String: String] = [:]
            for await (id, description) in group { words[id] = description }
            return words
        }
    }

    private func experimentTitles(_ ids: Set<String>, _ options: CallOptions) async -> [String: String] {
        var titles: [String: String] = [:]
        for id in ids where !id.isEmpty {
            if let title = try? await gateway.experiments.getExperiment(.init(experimentId: id), options: options).experiment?.title {
                titles[id] = title.isEmpty ? id : title
            }
        }
        return titles
    }

    static func rawSchedule(_ schedule: SchedulesV1.Schedule?) -> String {
        switch schedule?.kind {
        case .cron(let cron)?: "cron \(cron.expression) \(cron.timeZone.isEmpty ? "UTC" : cron.timeZone)"
        case .interval(let interval)?: "every \(interval.everyUs / 1_000_000) s"
        case .at(let once)?: "once at \(iso(once.atUs))"
        case .now?: "once, now"
        case nil: ""
        }
    }

    static func concurrency(_ spec: SchedulesV1.PlanSpec) -> String {
        switch spec.concurrencyPolicy {
        case .allow: "start new runs anyway"
        case .replace: "stop the earlier run, start the new one"
        default: "skip a fire while a run is going"
        }
    }

    /// The zone a plan's wall-clock times are read in: its cron zone, else UTC.
    static func zone(of spec: SchedulesV1.PlanSpec) -> TimeZone? {
        if case .cron(let cron)? = spec.schedule?.kind, !cron.timeZone.isEmpty { return TimeZone(identifier: cron.timeZone) }
        return TimeZone(identifier: "UTC")
    }

    /// A time the console script shows in the viewer's zone (with the zone's name); UTC without it.
    static func localTime(_ us: Int64) -> HTML {
        guard us > 0 else { return "—" }
        return "<time datetime=\"\(iso(us))\" data-local>\(utcText(us))</time>"
    }

    static func fireList(_ fires: [Int64], zone: TimeZone?, id: String, empty: String) -> HTML {
        guard !fires.isEmpty else { return "<ol id=\"\(id)\" class=\"fires\"></ol><p class=\"muted\" id=\"\(id)-none\">\(empty)</p>" }
        let items = fires.map { us -> HTML in
            let local: HTML = zone.map { isUTC($0) ? .empty : " <span class=\"muted\">(\(zoneText(us, $0)))</span>" } ?? .empty
            return "<li>\(localTime(us))\(local)</li>"
        }
        return "<ol id=\"\(id)\" class=\"fires\">\(items)</ol>"
    }

    static func iso(_ us: Int64) -> String {
        Date(timeIntervalSince1970: Double(us) / 1_000_000).formatted(.iso8601)
    }

    /// Foundation calls UTC "GMT".
    static func isUTC(_ zone: TimeZone) -> Bool { zone.identifier == "GMT" || zone.identifier == "UTC" }

    static func utcText(_ us: Int64) -> String { text(us, TimeZone(identifier: "UTC")!) + " UTC" }

    /// `Mon 2026-11-30 03:00 Europe/Paris`: how the plan's own zone reads a fire.
    static func zoneText(_ us: Int64, _ zone: TimeZone?) -> String {
        guard let zone, !isUTC(zone) else { return utcText(us) }
        return text(us, zone) + " " + zone.identifier
    }

    private static func text(_ us: Int64, _ zone: TimeZone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.timeZone = zone
        formatter.dateFormat = "EEE yyyy-MM-dd HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(us) / 1_000_000))
    }

    /// The outcome of the last action, from the redirect's query.
    static func notice(_ request: Request) -> HTML {
        let texts = ["created": "The plan was created.", "saved": "The plan was saved.", "paused": "The plan is paused.",
                     "resumed": "The plan is active again.", "triggered": "The plan was triggered: its run is in the history below.",
                     "deleted": "The plan was deleted."]
        guard let key = request.string("notice"), let text = texts[key] else { return .empty }
        return "<p class=\"ok\" role=\"status\" id=\"notice\">\(text)</p>"
    }
}
