import FaultlineProto
import FaultlineRPC
import HTTPTypes
import Hummingbird

/// `/api/v1/plans`, `/api/v1/runners` and `/api/v1/organization/halt|resume`, over
/// ScheduleService: plans and their history, the runner registry (read only: runners register
/// themselves over RPC) and the organisation's kill switch.
struct ScheduleRoutes {
    let gateway: Gateway

    func client() throws -> SchedulesV1.ScheduleClient {
        try gateway.required(gateway.schedules, "schedules", variable: "FAULTLINE_SCHEDULE_SERVICE")
    }

    struct CreatePlanBody: Decodable {
        var spec: PlanSpecJSON
        var paused: Bool?
    }

    struct UpdatePlanBody: Decodable {
        var spec: PlanSpecJSON
        var expected_version: Int64?
    }

    func register(on group: RouterGroup<GatewayContext>) {
        registerPlans(on: group)
        group.get("runners") { request, context in
            _ = try context.require(.read)
            var list = SchedulesV1.ListRunnersRequest()
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.includeGone = try request.boolean("include_gone") ?? false
            let page = try await client().listRunners(list, options: gateway.callOptions(context))
            return try Response.json(RunnerPage(runners: page.runners.map(RunnerView.init), next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("runners/{id}") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .runner)
            do {
                let found = try await client().getRunner(.init(runnerId: id), options: gateway.callOptions(context))
                return try Response.json(RunnerView(found.runner ?? .init()))
            } catch let error as RPCError where error.code == .invalidArgument {
                throw ResourceKind.runner.notFound  // the id is the call's only argument: it names no runner
            }
        }
        group.get("organization/halt") { _, context in
            _ = try context.require(.read)
            let found = try await client().getHaltStatus(.init(), options: gateway.callOptions(context))
            return try Response.json(HaltStatusView(found.status))
        }
        // Stopping every run is a safety action: anyone who may start runs may stop them all.
        group.post("organization/halt") { request, context in
            _ = try context.require(.write)
            struct Body: Decodable { var skip_rollbacks: Bool?; var reason: String? }
            let body = try await request.json(Body.self, context)
            let halted = try await client().halt(.init(skipRollbacks: body.skip_rollbacks ?? false, reason: body.reason ?? ""),
                                                 options: gateway.callOptions(context))
            return try Response.json(HaltStatusView(halted.status, terminated: halted.executionsTerminated))
        }
        group.post("organization/resume") { _, context in
            _ = try context.require(.write)
            let resumed = try await client().resume(.init(), options: gateway.callOptions(context))
            return try Response.json(HaltStatusView(resumed.status))
        }
    }

    private func registerPlans(on group: RouterGroup<GatewayContext>) {
        group.post("plans") { request, context in
            _ = try context.require(.write)
            let body = try await request.json(CreatePlanBody.self, context)
            var create = SchedulesV1.CreatePlanRequest(spec: try body.spec.proto(), paused: body.paused ?? false)
            create.requestId = request.headers[HTTPField.Name("idempotency-key")!].flatMap(EdgeMiddleware.acceptable) ?? ""
            let options = try gateway.callOptions(context)
            let schedules = try client()
            try await checkReferences(of: create.spec ?? .init(), options: options)
            let created = try await schedules.createPlan(create, options: options)
            return try Response.json(PlanView(created.plan ?? .init()), status: .created)
        }
        // Read-only arithmetic on the caller's input: anyone who may read plans may preview one.
        group.post("plans/preview") { request, context in
            _ = try context.require(.read)
            let body = try await request.json(SchedulePreviewJSON.self, context)
            let answer = try await client().previewSchedule(try body.proto(), options: gateway.callOptions(context))
            return try Response.json(SchedulePreviewView(answer))
        }
        group.get("plans") { request, context in
            _ = try context.require(.read)
            var list = SchedulesV1.ListPlansRequest()
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.experimentId = try ResourceKind.experiment.reference(request.string("experiment_id"))
            list.states = try request.uri.queryParameters.getAll("state").map { try SchedulesV1.PlanState.parse(String($0), field: "state")! }
            let page = try await client().listPlans(list, options: gateway.callOptions(context))
            return try Response.json(PlanPage(plans: page.plans.map(PlanView.init), next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("plans/{id}") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .plan)
            let found = try await client().getPlan(.init(planId: id), options: gateway.callOptions(context))
            return try Response.json(PlanView(found.plan ?? .init()))
        }
        group.put("plans/{id}") { request, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .plan)
            let body = try await request.json(UpdatePlanBody.self, context)
            let update = SchedulesV1.UpdatePlanRequest(planId: id, spec: try body.spec.proto(), expectedVersion: body.expected_version ?? 0)
            let options = try gateway.callOptions(context)
            let schedules = try client()
            // The plan itself first: an unknown plan is plan.not_found whatever its spec names.
            _ = try await schedules.getPlan(.init(planId: id), options: options)
            try await checkReferences(of: update.spec ?? .init(), options: options)
            let updated = try await schedules.updatePlan(update, options: options)
            return try Response.json(PlanView(updated.plan ?? .init()))
        }
        group.delete("plans/{id}") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .plan)
            _ = try await client().deletePlan(.init(planId: id), options: gateway.callOptions(context))
            return Response(status: .noContent)
        }
        group.post("plans/{id}/pause") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .plan)
            let paused = try await client().pausePlan(.init(planId: id), options: gateway.callOptions(context))
            return try Response.json(PlanView(paused.plan ?? .init()))
        }
        group.post("plans/{id}/resume") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .plan)
            let resumed = try await client().resumePlan(.init(planId: id), options: gateway.callOptions(context))
            return try Response.json(PlanView(resumed.plan ?? .init()))
        }
        group.post("plans/{id}/trigger") { request, context in
            _ = try context.require(.write)
            struct Body: Decodable { var ignore_windows: Bool? }
            let id = try context.parameters.id(of: .plan)
            let body = try await request.json(Body.self, context)
            var trigger = SchedulesV1.TriggerPlanRequest(planId: id, ignoreWindows: body.ignore_windows ?? false)
            trigger.requestId = request.headers[HTTPField.Name("idempotency-key")!].flatMap(EdgeMiddleware.acceptable) ?? ""
            let triggered = try await client().triggerPlan(trigger, options: gateway.callOptions(context))
            return try Response.json(PlanRunView(triggered.run ?? .init()), status: .accepted)
        }
        group.get("plans/{id}/runs") { request, context in
            _ = try context.require(.read)
            var list = SchedulesV1.ListPlanRunsRequest()
            list.planId = try context.parameters.id(of: .plan)
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.states = try request.uri.queryParameters.getAll("state").map { try SchedulesV1.PlanRunState.parse(String($0), field: "state")! }
            let options = try gateway.callOptions(context)
            // A plan with no runs and an unknown plan both list nothing; only the latter is a 404.
            _ = try await client().getPlan(.init(planId: list.planId), options: options)
            let page = try await client().listPlanRuns(list, options: options)
            return try Response.json(PlanRunPage(runs: page.runs.map(PlanRunView.init), next_page_token: page.nextPageToken.nonEmpty))
        }
    }

    /// ScheduleService keeps ids of other services as given (a plan naming a deleted experiment
    /// fails when it fires), so the gateway asks their owners first: an unknown experiment,
    /// environment or integration is refused when the plan is written, with the same code as a
    /// malformed one. Plans are written rarely; these are point reads.
    func checkReferences(of spec: SchedulesV1.PlanSpec, options: CallOptions) async throws {
        func exists(_ kind: ResourceKind, _ call: () async throws -> Void) async throws {
            do { try await call() } catch let error as RPCError where error.code == .notFound { throw kind.notFound }
        }
        try await exists(.experiment) { _ = try await gateway.experiments.getExperiment(.init(experimentId: spec.experimentId), options: options) }
        guard !spec.environmentId.isEmpty || !spec.integrationIds.isEmpty else { return }
        let secrets = try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
        if !spec.environmentId.isEmpty {
            try await exists(.environment) { _ = try await secrets.getEnvironment(.init(environmentId: spec.environmentId), options: options) }
        }
        for integration in spec.integrationIds {
            try await exists(.integration) { _ = try await secrets.getIntegration(.init(integrationId: integration), options: options) }
        }
    }
}

extension Request {
    func boolean(_ name: String) throws -> Bool? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        switch text {
        case "true", "1": return true
        case "false", "0": return false
        default: throw Problem.badRequest("request.parameter.invalid", "\(name) must be true or false")
        }
    }
}
