import FaultlineProto

// The JSON shapes of plans, plan runs, runners and the kill switch (ScheduleService). Plan specs
// are read and written in one shape (`PlanSpecJSON`), so a plan fetched can be sent back as is.

extension SchedulesV1.ConcurrencyPolicy: APIEnum {}
extension SchedulesV1.MissedFirePolicy: APIEnum {}
extension SchedulesV1.PlanState: APIEnum {}
extension SchedulesV1.PlanRunState: APIEnum {}
extension SchedulesV1.PlanRunTrigger: APIEnum {}
extension SchedulesV1.RunnerState: APIEnum {}
extension SchedulesV1.DayOfWeek: APIEnum {}
extension CommonV1.RollbackStrategy: APIEnum {}

/// One of `now`, `at`, `cron`, `interval`, keyed as in the contract's oneof.
struct ScheduleJSON: Codable {
    struct Now: Codable {}
    struct At: Codable { var at_us: Int64 }
    struct Cron: Codable { var expression: String; var time_zone: String? }
    struct Interval: Codable { var every_us: Int64; var start_at_us: Int64? }
    var now: Now?
    var at: At?
    var cron: Cron?
    var interval: Interval?

    init(_ s: SchedulesV1.Schedule?) {
        switch s?.kind {
        case .now?: now = Now()
        case .at(let v)?: at = At(at_us: v.atUs)
        case .cron(let v)?: cron = Cron(expression: v.expression, time_zone: v.timeZone.nonEmpty)
        case .interval(let v)?: interval = Interval(every_us: v.everyUs, start_at_us: v.startAtUs)
        case nil: break
        }
    }

    func proto() throws -> SchedulesV1.Schedule {
        var kinds: [SchedulesV1.Schedule.Kind] = []
        if now != nil { kinds.append(.now(.init())) }
        if let at { kinds.append(.at(.init(atUs: at.at_us))) }
        if let cron { kinds.append(.cron(.init(expression: cron.expression, timeZone: cron.time_zone ?? ""))) }
        if let interval { kinds.append(.interval(.init(everyUs: interval.every_us, startAtUs: interval.start_at_us ?? 0))) }
        guard kinds.count == 1, let kind = kinds.first else {
            throw Problem.badRequest("request.field.invalid", "schedule needs exactly one of now, at, cron, interval")
        }
        return .init(kind: kind)
    }
}

struct RunWindowJSON: Codable {
    var days: [String]?
    var start_minute: Int32
    var end_minute: Int32
    var time_zone: String?

    init(_ w: SchedulesV1.RunWindow) {
        days = w.days.map(\.apiName); start_minute = w.startMinute; end_minute = w.endMinute; time_zone = w.timeZone.nonEmpty
    }

    func proto() throws -> SchedulesV1.RunWindow {
        .init(days: try (days ?? []).map { try SchedulesV1.DayOfWeek.parse($0, field: "days")! },
              startMinute: start_minute, endMinute: end_minute, timeZone: time_zone ?? "")
    }
}

struct BlackoutJSON: Codable {
    var start_at_us: Int64
    var end_at_us: Int64
    var reason: String?
}

struct RetryJSON: Codable {
    var max_retries: Int32?
    var backoff_us: Int64?
}

struct RunOptionsJSON: Codable {
    var max_duration_us: Int64?
    var rollback_strategy: String?
    var runner_labels: [String: String]?

    init(_ o: SchedulesV1.RunOptions?) {
        let o = o ?? .init()
        max_duration_us = o.maxDurationUs
        rollback_strategy = o.rollbackStrategy == .unspecified ? nil : o.rollbackStrategy.apiName
        runner_labels = o.runnerLabels
    }

    func proto() throws -> SchedulesV1.RunOptions {
        .init(maxDurationUs: max_duration_us ?? 0,
              rollbackStrategy: try CommonV1.RollbackStrategy.parse(rollback_strategy, field: "rollback_strategy") ?? .unspecified,
              runnerLabels: runner_labels ?? [:])
    }
}

struct PlanSpecJSON: Codable {
    var name: String
    var description: String?
    var experiment_id: String
    var experiment_revision: Int64?
    var environment_id: String?
    var integration_ids: [String]?
    var schedule: ScheduleJSON
    var windows: [RunWindowJSON]?
    var blackouts: [BlackoutJSON]?
    var concurrency_policy: String?
    var max_in_flight: Int32?
    var missed_fire_policy: String?
    var retry: RetryJSON?
    var run_options: RunOptionsJSON?

    init(_ s: SchedulesV1.PlanSpec?) {
        let s = s ?? .init()
        name = s.name; description = s.description; experiment_id = s.experimentId
        experiment_revision = s.experimentRevision; environment_id = s.environmentId.nonEmpty
        integration_ids = s.integrationIds; schedule = .init(s.schedule)
        windows = s.windows.map(RunWindowJSON.init)
        blackouts = s.blackouts.map { BlackoutJSON(start_at_us: $0.startAtUs, end_at_us: $0.endAtUs, reason: $0.reason.nonEmpty) }
        concurrency_policy = s.concurrencyPolicy == .unspecified ? nil : s.concurrencyPolicy.apiName
        max_in_flight = s.maxInFlight
        missed_fire_policy = s.missedFirePolicy == .unspecified ? nil : s.missedFirePolicy.apiName
        retry = s.retry.map { RetryJSON(max_retries: $0.maxRetries, backoff_us: $0.backoffUs) }
        run_options = s.runOptions.map(RunOptionsJSON.init)
    }

    /// The spec to send; ids named in it are checked for shape (malformed = that kind's 404).
    func proto() throws -> SchedulesV1.PlanSpec {
        var spec = SchedulesV1.PlanSpec()
        spec.name = name
        spec.description = description ?? ""
        spec.experimentId = try ResourceKind.experiment.checked(experiment_id)
        spec.experimentRevision = experiment_revision ?? 0
        spec.environmentId = try ResourceKind.environment.reference(environment_id)
        spec.integrationIds = try (integration_ids ?? []).map { try ResourceKind.integration.checked($0) }
        spec.schedule = try schedule.proto()
        spec.windows = try (windows ?? []).map { try $0.proto() }
        spec.blackouts = (blackouts ?? []).map { .init(startAtUs: $0.start_at_us, endAtUs: $0.end_at_us, reason: $0.reason ?? "") }
        spec.concurrencyPolicy = try SchedulesV1.ConcurrencyPolicy.parse(concurrency_policy, field: "concurrency_policy") ?? .unspecified
        spec.maxInFlight = max_in_flight ?? 0
        spec.missedFirePolicy = try SchedulesV1.MissedFirePolicy.parse(missed_fire_policy, field: "missed_fire_policy") ?? .unspecified
        spec.retry = retry.map { .init(maxRetries: $0.max_retries ?? 0, backoffUs: $0.backoff_us ?? 0) }
        spec.runOptions = try run_options?.proto()
        return spec
    }
}

/// `POST /api/v1/plans/preview`: a schedule with the windows and blackouts of a plan spec.
struct SchedulePreviewJSON: Decodable {
    var schedule: ScheduleJSON
    var windows: [RunWindowJSON]?
    var blackouts: [BlackoutJSON]?
    var after_us: Int64?
    var count: Int32?

    func proto() throws -> SchedulesV1.PreviewScheduleRequest {
        .init(schedule: try schedule.proto(), windows: try (windows ?? []).map { try $0.proto() },
              blackouts: (blackouts ?? []).map { .init(startAtUs: $0.start_at_us, endAtUs: $0.end_at_us, reason: $0.reason ?? "") },
              afterUs: after_us ?? 0, count: count ?? 0)
    }
}

struct SchedulePreviewView: Encodable {
    var fires_at_us: [Int64]
    var description: String

    init(_ answer: SchedulesV1.PreviewScheduleResponse) {
        fires_at_us = answer.fires.map(\.atUs)
        description = answer.description
    }
}

struct PlanRunView: Encodable {
    var id: String
    var plan_id: String?
    var experiment_id: String
    var state: String
    var trigger: String
    var due_at_us: Int64
    var created_at_us: Int64
    var dispatched_at_us: Int64?
    var ended_at_us: Int64?
    var runner_id: String?
    var execution_id: String?
    var execution_status: String?
    var attempt: Int32
    var retry_of: String?
    var reason: String?

    init(_ r: SchedulesV1.PlanRun) {
        id = r.id; plan_id = r.planId.nonEmpty; experiment_id = r.experimentId
        state = r.state.apiName; trigger = r.trigger.apiName
        due_at_us = r.dueAtUs; created_at_us = r.createdAtUs
        dispatched_at_us = r.dispatchedAtUs == 0 ? nil : r.dispatchedAtUs
        ended_at_us = r.endedAtUs == 0 ? nil : r.endedAtUs
        runner_id = r.runnerId.nonEmpty; execution_id = r.executionId.nonEmpty
        execution_status = r.executionState == .unspecified ? nil : r.executionState.apiName
        attempt = r.attempt; retry_of = r.retryOf.nonEmpty; reason = r.reason.nonEmpty
    }
}

struct PlanView: Encodable {
    var id: String
    var spec: PlanSpecJSON
    var state: String
    var next_fire_at_us: Int64?
    var created_at_us: Int64
    var updated_at_us: Int64
    var created_by: ActorView
    var version: Int64
    var last_run: PlanRunView?

    init(_ p: SchedulesV1.Plan) {
        id = p.id; spec = .init(p.spec); state = p.state.apiName
        next_fire_at_us = p.nextFireAtUs == 0 ? nil : p.nextFireAtUs
        created_at_us = p.createdAtUs; updated_at_us = p.updatedAtUs; created_by = .init(p.createdBy)
        version = p.version; last_run = p.lastRun.map(PlanRunView.init)
    }
}

struct PlanPage: Encodable {
    var plans: [PlanView]
    var next_page_token: String?
}

struct PlanRunPage: Encodable {
    var runs: [PlanRunView]
    var next_page_token: String?
}

struct RunnerView: Encodable {
    var id: String
    var name: String
    var address: String
    var labels: [String: String]
    var capacity: Int32
    var running: Int32
    var state: String
    var version: String
    var registered_at_us: Int64
    var last_heartbeat_at_us: Int64
    var lease_expires_at_us: Int64
    /// Empty: shared by every organisation.
    var organizations: [String]

    init(_ r: SchedulesV1.Runner) {
        id = r.id; name = r.name; address = r.address; labels = r.labels; capacity = r.capacity; running = r.running
        state = r.state.apiName; version = r.version; registered_at_us = r.registeredAtUs
        last_heartbeat_at_us = r.lastHeartbeatAtUs; lease_expires_at_us = r.leaseExpiresAtUs; organizations = r.organizations
    }
}

struct RunnerPage: Encodable {
    var runners: [RunnerView]
    var next_page_token: String?
}

struct HaltStatusView: Encodable {
    var halted: Bool
    var halted_at_us: Int64?
    var halted_by: ActorView?
    var reason: String?
    var skip_rollbacks: Bool
    /// Only in a halt's answer: executions asked to terminate.
    var executions_terminated: Int32?

    init(_ s: SchedulesV1.HaltStatus?, terminated: Int32? = nil) {
        let s = s ?? .init()
        halted = s.halted; halted_at_us = s.haltedAtUs == 0 ? nil : s.haltedAtUs
        halted_by = s.haltedBy.map(ActorView.init); reason = s.reason.nonEmpty; skip_rollbacks = s.skipRollbacks
        executions_terminated = terminated
    }
}
