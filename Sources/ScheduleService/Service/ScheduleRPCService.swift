import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit

/// The handlers of `faultline.schedules.v1.ScheduleService`. Each checks who calls (an
/// organisation, or a runner holding the runner credential), checks the request's shape, and
/// leaves the rest to the stores and the dispatcher.
struct ScheduleRPCService: SchedulesV1.ScheduleService {
    let database: PostgresClient
    let runner: RunnerCredential
    let clock: any ScheduleClock
    let dispatcher: Dispatcher
    let logger: Logger
    let plans: PlanStore
    let runs: PlanRunStore
    let runners: RunnerStore

    init(database: PostgresClient, runner: RunnerCredential, clock: any ScheduleClock, dispatcher: Dispatcher, logger: Logger) {
        self.database = database
        self.runner = runner
        self.clock = clock
        self.dispatcher = dispatcher
        self.logger = logger
        plans = PlanStore(database: database)
        runs = PlanRunStore(database: database, plans: plans)
        runners = RunnerStore(database: database, lease: dispatcher.configuration.lease,
                              heartbeatInterval: dispatcher.configuration.heartbeatInterval)
    }

    // MARK: plans

    func createPlan(_ request: SchedulesV1.CreatePlanRequest, context: ServerContext) async throws -> SchedulesV1.CreatePlanResponse {
        try await call(context) { org in
            try Check.text(request.requestId, "request_id", max: 200)
            let now = clock.now()
            let definition = try PlanDefinition(request.spec ?? .init(), activeSince: now)
            return .init(plan: try await plans.create(org, definition, paused: request.paused, requestID: request.requestId,
                                                      actor: context.actor, now: now))
        }
    }

    func getPlan(_ request: SchedulesV1.GetPlanRequest, context: ServerContext) async throws -> SchedulesV1.GetPlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            return .init(plan: try await plans.require(org, request.planId))
        }
    }

    func listPlans(_ request: SchedulesV1.ListPlansRequest, context: ServerContext) async throws -> SchedulesV1.ListPlansResponse {
        try await call(context) { org in
            if !request.experimentId.isEmpty { try Check.reference(request.experimentId, "experiment_id", required: true) }
            try Self.checkEnums(request.states.map(\.rawValue), 1...3, "states")
            return try await plans.list(org, request)
        }
    }

    func updatePlan(_ request: SchedulesV1.UpdatePlanRequest, context: ServerContext) async throws -> SchedulesV1.UpdatePlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            guard request.expectedVersion >= 0 else { throw RPCError(.invalidArgument, "expected_version must not be negative") }
            let now = clock.now()
            let definition = try PlanDefinition(request.spec ?? .init(), activeSince: now)
            return .init(plan: try await plans.update(org, request.planId, definition, expectedVersion: request.expectedVersion, now: now))
        }
    }

    func deletePlan(_ request: SchedulesV1.DeletePlanRequest, context: ServerContext) async throws -> SchedulesV1.DeletePlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            try await plans.delete(org, request.planId)
            return .init()
        }
    }

    func pausePlan(_ request: SchedulesV1.PausePlanRequest, context: ServerContext) async throws -> SchedulesV1.PausePlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            return .init(plan: try await plans.pause(org, request.planId, now: clock.now()))
        }
    }

    func resumePlan(_ request: SchedulesV1.ResumePlanRequest, context: ServerContext) async throws -> SchedulesV1.ResumePlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            return .init(plan: try await plans.resume(org, request.planId, now: clock.now()))
        }
    }

    func triggerPlan(_ request: SchedulesV1.TriggerPlanRequest, context: ServerContext) async throws -> SchedulesV1.TriggerPlanResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id")
            try Check.text(request.requestId, "request_id", max: 200)
            return .init(run: try await runs.trigger(org, request, now: clock.now()))
        }
    }

    func runExperiment(_ request: SchedulesV1.RunExperimentRequest, context: ServerContext) async throws -> SchedulesV1.RunExperimentResponse {
        try await call(context) { org in
            try Check.reference(request.experimentId, "experiment_id", required: true)
            guard request.experimentRevision >= 0 else { throw RPCError(.invalidArgument, "experiment_revision must not be negative") }
            try Check.reference(request.environmentId, "environment_id", required: false)
            try Check.references(request.integrationIds, "integration_ids", maximum: PlanDefinition.maximumIntegrations)
            try Check.runOptions(request.runOptions)
            try Check.text(request.requestId, "request_id", max: 200)
            return .init(run: try await runs.runExperiment(org, request, now: clock.now()))
        }
    }

    func getPlanRun(_ request: SchedulesV1.GetPlanRunRequest, context: ServerContext) async throws -> SchedulesV1.GetPlanRunResponse {
        try await call(context) { org in
            try ScheduleIDs.validate(request.planRunId, prefix: ScheduleIDs.planRun, field: "plan_run_id")
            return .init(run: try await runs.require(org, request.planRunId))
        }
    }

    func listPlanRuns(_ request: SchedulesV1.ListPlanRunsRequest, context: ServerContext) async throws -> SchedulesV1.ListPlanRunsResponse {
        try await call(context) { org in
            if !request.planId.isEmpty { try ScheduleIDs.validate(request.planId, prefix: ScheduleIDs.plan, field: "plan_id") }
            try Self.checkEnums(request.states.map(\.rawValue), 1...8, "states")
            return try await runs.list(org, request)
        }
    }

    func previewSchedule(_ request: SchedulesV1.PreviewScheduleRequest, context: ServerContext) async throws -> SchedulesV1.PreviewScheduleResponse {
        try await call(context) { _ in try SchedulePreview.answer(request, now: clock.now()) }
    }

    // MARK: runners

    func registerRunner(_ request: SchedulesV1.RegisterRunnerRequest, context: ServerContext) async throws -> SchedulesV1.RegisterRunnerResponse {
        try await runnerCall(context) {
            if !request.runnerId.isEmpty { try Check.runnerID(request.runnerId, "runner_id") }
            if !request.name.isEmpty { try Check.name(request.name, "name") }
            try Check.reference(request.address, "address", required: true)
            guard RunnerConnections.isAddress(request.address) else { throw RPCError(.invalidArgument, "address must be host:port") }
            try Check.labels(request.labels, "labels")
            guard (1...10_000_000).contains(request.capacity) else { throw RPCError(.invalidArgument, "capacity must be between 1 and 10,000,000") }
            try Check.text(request.version, "version", max: 100)
            let tenancy: RunnerTenancy
            do { tenancy = try RunnerTenancy(organizations: request.organizations) } catch {
                throw RPCError(.invalidArgument, "organizations: \(error)")
            }
            let registered = try await runners.register(request, tenancy: tenancy, now: clock.now().micros)
            return .init(runner: registered, heartbeatIntervalUs: dispatcher.configuration.heartbeatInterval.micros,
                         leaseUs: dispatcher.configuration.lease.micros)
        }
    }

    func heartbeat(_ request: SchedulesV1.HeartbeatRequest, context: ServerContext) async throws -> SchedulesV1.HeartbeatResponse {
        try await runnerCall(context) {
            try Check.runnerID(request.runnerId, "runner_id")
            guard (0...10_000_000).contains(request.capacity) else { throw RPCError(.invalidArgument, "capacity must be between 0 and 10,000,000") }
            guard request.executionIds.count <= 100_000 else { throw RPCError(.invalidArgument, "at most 100,000 execution_ids") }
            for id in request.executionIds { try Check.reference(id, "execution_ids", required: true) }
            return try await runners.heartbeat(request, now: clock.now().micros)
        }
    }

    func deregisterRunner(_ request: SchedulesV1.DeregisterRunnerRequest, context: ServerContext) async throws -> SchedulesV1.DeregisterRunnerResponse {
        try await runnerCall(context) {
            try Check.runnerID(request.runnerId, "runner_id")
            try await runners.deregister(request.runnerId, now: clock.now().micros)
            return .init()
        }
    }

    func reportRunEnded(_ request: SchedulesV1.ReportRunEndedRequest, context: ServerContext) async throws -> SchedulesV1.ReportRunEndedResponse {
        try await runnerCall(context) {
            try Check.runnerID(request.runnerId, "runner_id")
            try ScheduleIDs.validate(request.planRunId, prefix: ScheduleIDs.planRun, field: "plan_run_id")
            try Check.reference(request.executionId, "execution_id", required: true)
            switch request.executionState {
            case .completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut: break
            default: throw RPCError(.invalidArgument, "execution_state must be a final state")
            }
            try await runs.reportEnded(request, now: clock.now().micros)
            return .init()
        }
    }

    func getRunner(_ request: SchedulesV1.GetRunnerRequest, context: ServerContext) async throws -> SchedulesV1.GetRunnerResponse {
        try await call(context) { org in
            try Check.runnerID(request.runnerId, "runner_id")
            return .init(runner: try await runners.require(request.runnerId, visibleTo: org))
        }
    }

    func listRunners(_ request: SchedulesV1.ListRunnersRequest, context: ServerContext) async throws -> SchedulesV1.ListRunnersResponse {
        try await call(context) { org in try await runners.list(request, visibleTo: org) }
    }

    // MARK: kill switch

    func halt(_ request: SchedulesV1.HaltRequest, context: ServerContext) async throws -> SchedulesV1.HaltResponse {
        try await call(context) { org in
            try Check.text(request.reason, "reason", max: 1000)
            let reason = request.reason.isEmpty ? "the organisation was halted" : request.reason
            var cancellations = try await Halts.halt(org, request, actor: context.actor, now: clock.now().micros, database: database)
            // Runs started directly on a runner (not through a plan run) are the organisation's too.
            let known = Set(cancellations.map(\.executionID))
            cancellations += try await directRuns(org, excluding: known)
            let terminated = await Cancellation.deliver(cancellations, skipRollbacks: request.skipRollbacks, reason: reason,
                                                        connections: dispatcher.connections, timeout: dispatcher.configuration.callTimeout,
                                                        logger: logger)
            logger.notice("organisation halted", metadata: ["org": "\(org)", "terminated": "\(terminated)", "asked": "\(cancellations.count)"])
            return .init(status: try await Halts.status(org, database: database), executionsTerminated: Int32(cancellations.count))
        }
    }

    func resume(_ request: SchedulesV1.ResumeRequest, context: ServerContext) async throws -> SchedulesV1.ResumeResponse {
        try await call(context) { org in
            try await Halts.resume(org, database: database)
            return .init(status: try await Halts.status(org, database: database))
        }
    }

    func getHaltStatus(_ request: SchedulesV1.GetHaltStatusRequest, context: ServerContext) async throws -> SchedulesV1.GetHaltStatusResponse {
        try await call(context) { org in .init(status: try await Halts.status(org, database: database)) }
    }

    /// The organisation's active runs on every live runner, as each runner lists them.
    private func directRuns(_ org: OrganizationID, excluding known: Set<String>) async throws -> [Cancellation] {
        let live = try await database.query("SELECT id, address FROM schedules.runners WHERE state IN (1, 2) AND \(RunnerStore.serves(org))")
            .map { try ($0.decode(String.self, at: 0), $0.decode(String.self, at: 1)) }
        return await withTaskGroup(of: [Cancellation].self) { group in
            for (id, address) in live {
                group.addTask {
                    guard let client = dispatcher.connections.runner(at: address) else { return [] }
                    var found: [Cancellation] = []
                    var token = ""
                    for _ in 0..<100 {
                        guard let page = try? await client.listRuns(.init(pageSize: 500, pageToken: token),
                                                                    options: .on(behalfOf: org, timeout: dispatcher.configuration.callTimeout))
                        else { break }
                        found += page.runs.filter { !known.contains($0.executionId) }
                            .map { Cancellation(org: org, runnerID: id, address: address, executionID: $0.executionId) }
                        token = page.nextPageToken
                        if token.isEmpty { break }
                    }
                    return found
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
    }

    // MARK: checks

    private static func checkEnums(_ values: [Int32], _ range: ClosedRange<Int32>, _ field: String) throws(RPCError) {
        guard values.count <= 20 else { throw RPCError(.invalidArgument, "at most 20 \(field)") }
        guard values.allSatisfy(range.contains) else { throw RPCError(.invalidArgument, "\(field) holds an unknown value") }
    }

    /// Registry calls: only runners, proven by the runner credential.
    private func runnerCall<T: Sendable>(_ context: ServerContext, _ body: () async throws -> T) async throws -> T {
        guard runner.admits(context) else {
            throw RPCError(.permissionDenied, "only runners may call this (send the runner credential as `authorization: Bearer …`)")
        }
        return try await context.mappingFailures { try await body() }
    }

    /// Runs a handler body for the calling organisation.
    private func call<T: Sendable>(_ context: ServerContext, _ body: (OrganizationID) async throws -> T) async throws -> T {
        let org = try context.organization()
        return try await context.mappingFailures { try await body(org) }
    }
}
