import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit

/// Turns due occurrences into plan runs and plan runs into runs on runners. Every step is a
/// short transaction that takes its rows with `FOR UPDATE SKIP LOCKED`, so any number of replicas
/// share the work and never take one row twice:
///
/// 1. **sweep**: runners whose lease ran out are LOST, with their runs (retried per plan);
/// 2. **fire**: due plans are locked, FirePlanner decides, and the plan run is inserted (PENDING,
///    QUEUED or SKIPPED), with a SKIPPED run for every occurrence that gets none, in the same
///    transaction that moves the plan's cursor — a plan run is recorded durably before anything
///    is dispatched, and an occurrence is fired (or recorded skipped) once;
/// 3. **dispatch**: open plan runs are assigned a runner (labels, free capacity) and claimed,
///    then started with the plan run id as request id, so a retry after a crash is idempotent on
///    the runner: on one StartRuns stream per runner and organisation (RunStarter), or with
///    StartRun calls on a runner without StartRuns.
struct Dispatcher: Sendable {
    let database: PostgresClient
    let clock: any ScheduleClock
    let connections: RunnerConnections
    /// Runners without StartRuns, across passes.
    let unaryOnly = UnaryOnlyRunners()
    let configuration: ScheduleServiceConfiguration
    let logger: Logger

    /// What one pass did (for tests and logs).
    struct Pass: Sendable, Equatable {
        var lostRunners = 0
        var fired = 0
        var dispatched = 0
        var queued = 0
        var failed = 0
    }

    /// One full pass at the clock's current time.
    @discardableResult
    func tick() async throws -> Pass {
        var pass = Pass()
        let now = clock.now()
        pass.lostRunners = try await RunnerStore(database: database, lease: configuration.lease,
                                                 heartbeatInterval: configuration.heartbeatInterval).sweepExpired(now: now.micros).count
        // Fire everything due (or due within the lookahead), claim every open run that can go, and
        // start each when due: at the due time only StartRun is left to do.
        for round in 0..<8 {
            let (fired, outcome) = try await fireClaimAndStart(now: now, fire: round == 0)
            pass.fired += fired
            pass.dispatched += outcome.dispatched
            pass.queued += outcome.queued
            pass.failed += outcome.failed
            // Runs whose runner failed are tried on the next runner at once (each failure rules
            // out one more runner for that run).
            if outcome.runnerFailures == 0 { break }
        }
        return pass
    }

    // MARK: fire

    private struct PlanUpdate: Encodable {
        let org: String
        let id: String
        let handled_through_us: Int64?
        let next_fire_us: Int64?
        let state: Int32
    }

    /// Fires one batch of due plans; answers how many plans it looked at.
    private func fireDue(now: Date) async throws -> Int {
        let (count, cancels) = try await database.withTransaction { tx -> (Int, [Cancellation]) in
            let rows = try await tx.query("""
                SELECT org, id, spec, active_since_us, handled_through_us, next_fire_us FROM schedules.plans
                WHERE state = 1 AND next_fire_us <= \(now.micros + configuration.lookahead.micros)
                ORDER BY next_fire_us LIMIT \(configuration.batchSize) FOR UPDATE SKIP LOCKED
                """)
            guard !rows.isEmpty else { return (0, []) }
            let halted = try await Halts.organizations(on: tx)

            struct Due { let org: OrganizationID; let id: String; let definition: PlanDefinition?; let decision: FireDecision?; let dueAt: Int64 }
            var due: [Due] = []
            for row in rows {
                let (org, id, spec, since, handled, next) = try row.decode((String, String, [UInt8], Int64, Int64?, Int64).self)
                guard let organization = OrganizationID(org) else { continue }
                let activeSince = Date(micros: since)
                // A stored spec was validated on write; one that no longer validates (e.g. its zone
                // left tzdata) stops firing rather than failing every pass.
                let definition = try? PlanDefinition(try SchedulesV1.PlanSpec(serializedBytes: spec), activeSince: activeSince)
                // Within the lookahead a plan is decided as of its due time: the run is recorded now
                // and started when due.
                let decision = definition?.planner(activeSince).decide(handledThrough: handled.map(Date.init(micros:)),
                                                                       now: max(now, Date(micros: next)))
                due.append(Due(org: organization, id: id, definition: definition, decision: decision, dueAt: next))
            }

            let firing = due.filter { $0.decision?.fire != nil }.map(\.id)
            var inFlight: [String: [(id: String, created: Int64, state: Int32, execution: String, runner: String)]] = [:]
            if !firing.isEmpty {
                for row in try await tx.query("""
                    SELECT plan_id, id, created_us, state, execution_id, runner_id FROM schedules.plan_runs
                    WHERE plan_id = ANY(\(firing)) AND state IN (1, 2, 3)
                    """) {
                    let (plan, id, created, state, execution, runner) = try row.decode((String, String, Int64, Int32, String, String).self)
                    inFlight[plan, default: []].append((id, created, state, execution, runner))
                }
            }

            var runs: [NewPlanRun] = []
            var updates: [PlanUpdate] = []
            var replaced: [String] = []
            for plan in due {
                guard let definition = plan.definition, let decision = plan.decision else {
                    logger.error("a stored plan no longer validates; it stops firing", metadata: ["plan": "\(plan.id)"])
                    updates.append(PlanUpdate(org: plan.org.rawValue, id: plan.id, handled_through_us: nil, next_fire_us: nil,
                                              state: SchedulesV1.PlanState.finished.rawValue))
                    continue
                }
                let next = decision.next?.due.micros
                let finished = next == nil
                updates.append(PlanUpdate(org: plan.org.rawValue, id: plan.id, handled_through_us: decision.handledThrough?.micros,
                                          next_fire_us: next, state: (finished ? SchedulesV1.PlanState.finished : .active).rawValue))
                runs += try Self.skipped(decision, plan.org, plan.id, definition, now: now.micros)
                guard let fire = decision.fire else { continue }
                let trigger: SchedulesV1.PlanRunTrigger = fire.kind == .catchUp ? .missed : .schedule
                // When the run is due: its occurrence (not the stored wake-up time, which after a
                // downtime is long past), the window opening it was postponed to, or now for a catch-up.
                let dueAt = switch fire.kind {
                case .onTime: fire.occurrence.micros
                case .postponed: (definition.availability.nextAllowed(from: fire.occurrence) ?? fire.occurrence).micros
                case .catchUp: now.micros
                }
                var state: SchedulesV1.PlanRunState = .pending
                var reason = ""
                if halted.contains(plan.org.rawValue) {
                    state = .skipped
                    reason = SkipText.halted
                } else {
                    let current = inFlight[plan.id] ?? []
                    switch definition.concurrency.decide(inFlight: current.map { RunInFlight(id: $0.id, startedAt: Date(micros: $0.created)) }) {
                    case .start:
                        break
                    case .skip(.runInFlight):
                        state = .skipped
                        reason = SkipText.forbid
                    case .skip(.maximumInFlight) where current.count >= 2 * definition.concurrency.maximumInFlight:
                        // The queue is bounded too: a plan firing faster than its runs end would
                        // otherwise pile up waiting runs without end.
                        state = .skipped
                        reason = SkipText.queueFull(definition.concurrency.maximumInFlight)
                    case .skip(.maximumInFlight):
                        state = .queued
                        reason = "max_in_flight runs of this plan are in flight"
                    case .startAfterCancelling(let ids):
                        replaced += ids
                    }
                }
                var run = try NewPlanRun(org: plan.org, planID: plan.id, definition: definition, spec: RunSpec(definition.spec),
                                         state: state, trigger: trigger, occurrence: fire.occurrence.micros, due: dueAt, now: now.micros)
                run.reason = reason
                runs.append(run)
            }
            _ = try await NewPlanRun.insert(runs, on: tx)
            try await tx.execute("""
                UPDATE schedules.plans p SET handled_through_us = x.handled_through_us, next_fire_us = x.next_fire_us, state = x.state
                FROM jsonb_to_recordset(\(try JSONB(encoding: updates))) AS x(org text, id text, handled_through_us bigint,
                    next_fire_us bigint, state int)
                WHERE p.org = x.org AND p.id = x.id
                """)
            let cancels = replaced.isEmpty ? [] : try await Cancellation.cancelRuns(
                ids: replaced, state: .cancelled, reason: "replaced by a newer run (REPLACE)", now: now.micros, on: tx)
            return (rows.count, cancels)
        }
        await Cancellation.deliver(cancels, skipRollbacks: false, connections: connections, timeout: configuration.callTimeout, logger: logger)
        return count
    }

    /// The SKIPPED plan runs of one decision: one per listed occurrence, and one summary run for
    /// the rest (keyed by the earliest of them). The occurrence is the key of the unique index,
    /// so a skipped occurrence is recorded once, however many replicas decide.
    private static func skipped(_ decision: FireDecision, _ org: OrganizationID, _ planID: String, _ definition: PlanDefinition,
                                now: Int64) throws -> [NewPlanRun] {
        let spec = RunSpec(definition.spec)
        var runs = try decision.skips.map { skip in
            var run = try NewPlanRun(org: org, planID: planID, definition: definition, spec: spec, state: .skipped, trigger: .schedule,
                                     occurrence: skip.scheduled.micros, due: skip.scheduled.micros, now: now)
            run.reason = SkipText.reason(skip.cause, policy: definition.policy)
            return run
        }
        if let unlisted = decision.unlisted {
            var run = try NewPlanRun(org: org, planID: planID, definition: definition, spec: spec, state: .skipped, trigger: .schedule,
                                     occurrence: unlisted.first.micros, due: unlisted.first.micros, now: now)
            run.reason = SkipText.summary(unlisted)
            runs.append(run)
        }
        return runs
    }

    // MARK: dispatch

    private struct Open {
        let org: OrganizationID
        let id: String
        let planID: String
        let experimentID: String
        let revision: Int64
        let environmentID: String
        let integrationIDs: [String]
        let options: SchedulesV1.RunOptions
        let maxInFlight: Int32
        let avoid: Set<String>
        let runner: String
        let state: Int32
        let notBefore: Int64
    }

    private struct LiveRunner {
        let registration: RunnerRegistration
        var id: String { registration.id }
        let address: String
        let labels: [String: String]
        let tenancy: RunnerTenancy
        var free: Int
    }

    struct Assignment: Sendable {
        let org: OrganizationID
        let runID: String
        let runner: RunnerRegistration
        var runnerID: String { runner.id }
        let address: String
        let notBefore: Int64
        let request: RunnersV1.StartRunRequest
    }

    private struct Change: Encodable {
        let id: String
        let state: Int32
        var runner_id: String = ""
        var claim_until_us: Int64 = 0
        var reason: String = ""
        var ended_us: Int64 = 0
    }

    struct Outcome: Sendable { var dispatched = 0, queued = 0, failed = 0, runnerFailures = 0 }

    /// Runs one pass claims before starting them.
    static let maximumClaimed = 20_000

    /// Assigns a runner to one batch of open plan runs and claims them; answers how many it took.
    private func claimOpen(now: Date) async throws -> (Int, [Assignment]) {
        try await database.withTransaction { tx -> (Int, [Assignment]) in
            // Lock order, everywhere: runners before plan runs (declaring a runner lost locks its
            // row, then its runs), so the runners are locked before the runs are taken: locked so
            // that two replicas never hand out the same free slot, and only when there is work, so
            // an idle pass writes nothing.
            let isOpen: SQL = """
                state IN (1, 2) AND not_before_us <= \(now.micros + configuration.lookahead.micros) AND claim_until_us < \(now.micros)
                """
            let work = try await tx.query("SELECT EXISTS (SELECT 1 FROM schedules.plan_runs WHERE \(isOpen))")
            guard try work.first?.decode(Bool.self, at: 0) == true else { return (0, []) }
            var runners: [LiveRunner] = try await tx.query("""
                SELECT r.id, r.registered_us, r.address, r.labels::text, r.organizations, r.capacity, r.running,
                    (SELECT count(*) FROM schedules.plan_runs p WHERE p.runner_id = r.id
                        AND (p.state = 3 OR (p.state IN (1, 2) AND p.claim_until_us >= \(now.micros))))
                FROM schedules.runners r WHERE r.state = 1 AND r.lease_us >= \(now.micros) ORDER BY r.id FOR UPDATE
                """).map { row in
                let (id, registered, address, labels, organizations, capacity, running, assigned) =
                    try row.decode((String, Int64, String, String, [String], Int32, Int32, Int64).self)
                return LiveRunner(registration: RunnerRegistration(id: id, registeredUs: registered), address: address,
                                  labels: (try? JSONDecoder().decode([String: String].self, from: Data(labels.utf8))) ?? [:],
                                  // Validated at registration; should a stored list not be, the runner serves no one.
                                  tenancy: (try? RunnerTenancy(organizations: organizations)) ?? .dedicated([]), free: Int(capacity) - max(Int(running), Int(assigned)))
            }

            let rows = try await tx.query("""
                SELECT org, id, plan_id, experiment_id, experiment_revision, environment_id, integration_ids, options,
                    max_in_flight, CASE WHEN avoid_until_us >= \(now.micros) THEN avoid_runners ELSE '{}' END, runner_id, state,
                    not_before_us
                FROM schedules.plan_runs WHERE \(isOpen)
                ORDER BY due_us, id LIMIT \(configuration.batchSize) FOR UPDATE SKIP LOCKED
                """)
            guard !rows.isEmpty else { return (0, []) }
            var open: [Open] = []
            for row in rows {
                let (org, id, plan, experiment, revision, environment, integrations, options) =
                    try row.decode((String, String, String, String, Int64, String, [String], [UInt8]).self)
                let (maxInFlight, avoid, runner, state) = (try row.decode(Int32.self, at: 8), try row.decode([String].self, at: 9),
                                                           try row.decode(String.self, at: 10), try row.decode(Int32.self, at: 11))
                let notBefore = try row.decode(Int64.self, at: 12)
                guard let organization = OrganizationID(org) else { continue }
                open.append(Open(org: organization, id: id, planID: plan, experimentID: experiment, revision: revision,
                                 environmentID: environment, integrationIDs: integrations,
                                 options: (try? SchedulesV1.RunOptions(serializedBytes: options)) ?? .init(),
                                 maxInFlight: maxInFlight, avoid: Set(avoid), runner: runner, state: state, notBefore: notBefore))
            }
            let halted = try await Halts.organizations(on: tx)
            let plans = Array(Set(open.map(\.planID).filter { !$0.isEmpty }))
            var occupied: [String: Int] = [:]
            if !plans.isEmpty {
                for row in try await tx.query("""
                    SELECT plan_id, count(*) FROM schedules.plan_runs
                    WHERE plan_id = ANY(\(plans)) AND (state = 3 OR (state IN (1, 2) AND claim_until_us >= \(now.micros)))
                    GROUP BY plan_id
                    """) {
                    occupied[try row.decode(String.self, at: 0)] = Int(try row.decode(Int64.self, at: 1))
                }
            }
            var changes: [Change] = []
            var assignments: [Assignment] = []
            let claimUntil = now.micros + configuration.lookahead.micros + configuration.callTimeout.micros * 2
            for run in open {
                if halted.contains(run.org.rawValue) {
                    changes.append(Change(id: run.id, state: SchedulesV1.PlanRunState.skipped.rawValue,
                                          reason: SkipText.halted, ended_us: now.micros))
                    continue
                }
                if run.maxInFlight > 0, occupied[run.planID, default: 0] >= Int(run.maxInFlight) {
                    if run.state != SchedulesV1.PlanRunState.queued.rawValue {
                        changes.append(Change(id: run.id, state: SchedulesV1.PlanRunState.queued.rawValue,
                                              reason: "max_in_flight runs of this plan are in flight"))
                    }
                    continue
                }
                let required = run.options.runnerLabels
                // A runner that may already have it (a claim that timed out) keeps it: StartRun is
                // idempotent there, and only there.
                // Only a runner that serves the run's organisation, either way (it may have
                // registered again, dedicated to others).
                let index = runners.firstIndex { $0.id == run.runner && !run.runner.isEmpty && $0.tenancy.serves(run.org) }
                    ?? runners.indices.filter { i in
                        runners[i].free > 0 && runners[i].tenancy.serves(run.org) && !run.avoid.contains(runners[i].id)
                            && required.allSatisfy { runners[i].labels[$0.key] == $0.value }
                    }.max { runners[$0].free < runners[$1].free }
                guard let index else {
                    changes.append(Change(id: run.id, state: SchedulesV1.PlanRunState.queued.rawValue,
                                          reason: "no live runner for this organisation with matching labels and free capacity"))
                    continue
                }
                runners[index].free -= 1
                occupied[run.planID, default: 0] += 1
                changes.append(Change(id: run.id, state: SchedulesV1.PlanRunState.pending.rawValue,
                                      runner_id: runners[index].id, claim_until_us: claimUntil))
                assignments.append(Assignment(
                    org: run.org, runID: run.id, runner: runners[index].registration, address: runners[index].address, notBefore: run.notBefore,
                    request: RunnersV1.StartRunRequest(
                        experimentId: run.experimentID, experimentRevision: run.revision, environmentId: run.environmentID,
                        integrationIds: run.integrationIDs, planId: run.planID, planRunId: run.id,
                        maxDurationUs: run.options.maxDurationUs, rollbackStrategy: run.options.rollbackStrategy,
                        requestId: run.id)))
            }
            try await Self.apply(changes, on: tx)
            return (rows.count, assignments)
        }
    }

    typealias Answer = (assignment: Assignment, result: Result<String, RPCError>)

    /// Fires due plans and claims open runs batch by batch, and starts each claimed run when it is
    /// due, on one StartRuns stream per runner and organisation; then records what the runners
    /// answered.
    ///
    /// Fires, claims and calls share one task group: the next batch is fired while the last one is
    /// claimed (each on its own pool connection), and a batch is started as soon as its claim is
    /// committed. When thousands of occurrences fall due at once on a loaded machine and recording
    /// them runs into the due time, the runs already claimed still start on time and the rest go on
    /// beside the calls.
    private func fireClaimAndStart(now: Date, fire: Bool) async throws -> (fired: Int, outcome: Outcome) {
        enum Event: Sendable {
            case fired(Result<Int, any Error>)
            case claimed(Result<(taken: Int, batch: [Assignment]), any Error>)
            case started([Answer])
        }
        struct Lane: Hashable { let runner: RunnerRegistration; let address: String; let org: OrganizationID }
        var outcome = Outcome()
        var fired = 0
        var failure: (any Error)?
        let answers = await withTaskGroup(of: Event.self) { group -> [Answer] in
            var answers: [Answer] = []
            var lanes: [Lane: StartQueue] = [:]
            var claimedRuns = 0
            var firing = false
            var claiming = false
            var claimAgain = false  // a batch was fired while a claim ran
            func fireBatch() {
                firing = true
                group.addTask {
                    do { return .fired(.success(try await fireDue(now: now))) } catch { return .fired(.failure(error)) }
                }
            }
            func claim() {
                claiming = true
                group.addTask {
                    do { return .claimed(.success(try await claimOpen(now: now))) } catch { return .claimed(.failure(error)) }
                }
            }
            /// Hands a claimed run to its lane's starter, opening the lane on its first run.
            func start(_ assignment: Assignment) {
                let lane = Lane(runner: assignment.runner, address: assignment.address, org: assignment.org)
                if let queue = lanes[lane] {
                    queue.add(assignment)
                    return
                }
                let queue = StartQueue()
                queue.add(assignment)
                lanes[lane] = queue
                // The runs of the pass are claimed until the lookahead plus two calls' time after its
                // start (claimOpen): the stream may last as long, at least one call's time.
                let left = now.micros + configuration.lookahead.micros + 2 * configuration.callTimeout.micros - clock.now().micros
                let starter = RunStarter(runner: connections.runner(at: lane.address), registration: lane.runner, address: lane.address,
                                         organization: lane.org, streamTimeout: .microseconds(max(left, configuration.callTimeout.micros)),
                                         unaryOnly: unaryOnly, clock: clock, configuration: configuration, logger: logger)
                group.addTask { .started(await starter.start(queue)) }
            }
            if fire { fireBatch() } else { claim() }
            while let event = await group.next() {
                switch event {
                case .fired(.success(let count)):
                    firing = false
                    fired += count
                    if count == configuration.batchSize, failure == nil { fireBatch() }
                    if claiming { claimAgain = true } else if failure == nil { claim() }
                case .claimed(.success(let (taken, batch))):
                    claiming = false
                    claimedRuns += batch.count
                    outcome.queued += taken - batch.count
                    batch.forEach(start)
                    // Queued runs that found no runner come back in every batch: go on only on progress.
                    let more = taken == configuration.batchSize && !batch.isEmpty && claimedRuns < Self.maximumClaimed
                    if (more || claimAgain), failure == nil { claim() }
                    claimAgain = false
                case .fired(.failure(let error)), .claimed(.failure(let error)):
                    // Nothing more is fired or claimed; what is claimed is still started and recorded.
                    if case .claimed = event { claiming = false } else { firing = false }
                    failure = failure ?? error
                case .started(let lane):
                    answers += lane
                }
                // Nothing more will be claimed in this pass: each stream half-closes after its last run.
                if !firing, !claiming { lanes.values.forEach { $0.finish() } }
            }
            return answers
        }
        let recorded = try await record(answers)
        outcome.dispatched += recorded.dispatched
        outcome.queued += recorded.queued
        outcome.failed += recorded.failed
        outcome.runnerFailures += recorded.runnerFailures
        if let failure { throw failure }
        return (fired, outcome)
    }

    /// Records what the runners answered: one transaction, one statement per kind of outcome.
    private func record(_ results: [Answer]) async throws -> Outcome {
        var outcome = Outcome()
        guard !results.isEmpty else { return outcome }
        let dispatchedAt = clock.now().micros
        struct Started { let id: String; let runnerID: String; let executionID: String }
        var started: [Started] = []
        var changes: [Change] = []
        var retry: [(String, String)] = []
        for (assignment, result) in results {
            switch result {
            case .success(let execution):
                started.append(Started(id: assignment.runID, runnerID: assignment.runnerID, executionID: execution))
            case .failure(let error) where Self.isPermanent(error.code):
                outcome.failed += 1
                changes.append(Change(id: assignment.runID, state: SchedulesV1.PlanRunState.failed.rawValue,
                                      reason: "the runner refused the run: \(String(error.message.prefix(500)))", ended_us: dispatchedAt))
            case .failure(let error):
                outcome.queued += 1
                outcome.runnerFailures += 1
                // RunStarter logged one line for all of its lane's; here each run, in detail.
                logger.debug("runner did not take a run; trying another", metadata: [
                    "runner": "\(assignment.runnerID)", "plan_run": "\(assignment.runID)", "grpc.status": "\(error.code)"])
                retry.append((assignment.runID, assignment.runnerID))
            }
        }
        outcome.dispatched = started.count
        let orphaned = try await database.withTransaction { tx -> [Cancellation] in
            try await PlanRunLocks.lock(results.map(\.0.runID), on: tx)
            try await Self.apply(changes, on: tx)
            if !retry.isEmpty {
                struct Avoid: Encodable { let id: String; let runner: String }
                try await tx.execute("""
                    UPDATE schedules.plan_runs p SET state = \(SchedulesV1.PlanRunState.queued.rawValue), runner_id = '',
                        claim_until_us = 0, avoid_runners = array_append(p.avoid_runners, x.runner),
                        avoid_until_us = \(dispatchedAt + configuration.unreachableBackoff.micros),
                        reason = 'its runner was unreachable or full; waiting for another'
                    FROM jsonb_to_recordset(\(try JSONB(encoding: retry.map { Avoid(id: $0.0, runner: $0.1) }))) AS x(id text, runner text)
                    WHERE p.id = x.id AND p.state IN (1, 2)
                    """)
            }
            guard !started.isEmpty else { return [] }
            // Text arrays rather than JSON: thousands of rows at once after a burst, with less to encode and parse.
            let confirmed = Set(try await tx.query("""
                UPDATE schedules.plan_runs p SET state = \(SchedulesV1.PlanRunState.dispatched.rawValue), execution_id = x.execution_id,
                    dispatched_us = \(dispatchedAt), claim_until_us = 0, reason = ''
                FROM unnest(\(started.map(\.id)), \(started.map(\.runnerID)), \(started.map(\.executionID)))
                    AS x(id, runner_id, execution_id)
                WHERE p.id = x.id AND p.runner_id = x.runner_id AND p.state IN (1, 2)
                RETURNING p.id
                """).map { try $0.decode(String.self, at: 0) })
            // Halted or cancelled while StartRun was on its way: the runner must stop it again.
            return started.filter { !confirmed.contains($0.id) }.compactMap { run in
                results.first { $0.0.runID == run.id }.map {
                    Cancellation(org: $0.0.org, runnerID: run.runnerID, address: $0.0.address, executionID: run.executionID)
                }
            }
        }
        await Cancellation.deliver(orphaned, skipRollbacks: false, connections: connections, timeout: configuration.callTimeout, logger: logger)
        return outcome
    }

    private static func apply(_ changes: [Change], on tx: PostgresConnection) async throws {
        guard !changes.isEmpty else { return }
        try await tx.execute("""
            UPDATE schedules.plan_runs p SET state = x.state, runner_id = x.runner_id, claim_until_us = x.claim_until_us,
                reason = x.reason, ended_us = x.ended_us
            FROM jsonb_to_recordset(\(try JSONB(encoding: changes))) AS x(id text, state int, runner_id text, claim_until_us bigint,
                reason text, ended_us bigint)
            WHERE p.id = x.id
            """)
    }

    /// The runner will never take this run, whoever asks: the run FAILED (e.g. a deleted experiment).
    private static func isPermanent(_ code: RPCError.Code) -> Bool {
        [.invalidArgument, .notFound, .failedPrecondition, .permissionDenied, .unauthenticated, .unimplemented].contains(code)
    }
}
