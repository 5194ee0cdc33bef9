public import FaultlineProto
public import FaultlineRPC
import Foundation
public import Logging
public import ServiceLifecycle
import ServiceKit
import Synchronization

/// `faultline.runners.v1.RunnerService`: runs experiments with `chaos` and reports them to
/// ExperimentService. Each run belongs to the organisation of its StartRun call; CancelRun and
/// ListRuns see only the caller's runs.
public final class RunnerServer: RunnersV1.RunnerService, Service, Sendable {
    /// Finished runs ListRuns still shows.
    static let finishedKept = 1000

    private struct Registry {
        var runs: [String: RunHandle] = [:]
        var order: [String] = []
        /// Slots taken by StartRun calls between the capacity check and the registration.
        var reserved = 0
        var byRequest: [String: String] = [:]
        var draining = false
        /// Runs handed to `run()` and not yet finished.
        var unfinished = 0
        /// `drain()` callers waiting for the last run to finish.
        var idleWaiters: [CheckedContinuation<Void, Never>] = []

        /// Once draining, the launch stream ends when no StartRun is between admission and
        /// registration any more (a run registered then still gets its child task).
        var launchesOver: Bool { draining && reserved == 0 }
        var idle: Bool { launchesOver && unfinished == 0 }
    }

    public let configuration: RunnerConfiguration
    private let client: ExperimentsV1.ExperimentClient
    private let secrets: SecretSource?
    private let stateDirectory: StateDirectory
    private let logger: Logger
    private let registry = Mutex(Registry())
    /// Accepted runs, for `run()` to start as children of its task group.
    private let launches: AsyncStream<RunHandle>
    private let launch: AsyncStream<RunHandle>.Continuation
    /// Every run that ended, for `SchedulerRegistration` to report (one reader).
    let ended: AsyncStream<RunnersV1.Run>
    private let endedInput: AsyncStream<RunnersV1.Run>.Continuation

    /// Fails fast when the venv is missing or the state directory cannot be created. Without
    /// `secrets`, runs that name an environment or integrations fail with that reason.
    public init(configuration: RunnerConfiguration, experiments: ExperimentsV1.ExperimentClient, secrets: SecretSource? = nil,
                logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        client = experiments
        self.secrets = secrets
        (launches, launch) = AsyncStream.makeStream(of: RunHandle.self)
        stateDirectory = try StateDirectory(configuration.stateDirectory)
        self.logger = logger
        (ended, endedInput) = AsyncStream.makeStream(of: RunnersV1.Run.self)
    }

    public var labels: [String: String] { configuration.labels }

    // MARK: crash safety

    /// Ends the runs a previous process of this runner left behind as LOST: kills what is left
    /// of their process groups, replays their spooled events, completes them with neither journal
    /// nor exit. Call once before serving; retries while ExperimentService is unreachable.
    public func recoverLeftoverRuns() async {
        for record in stateDirectory.records() {
            guard let organization = OrganizationID(record.organization) else {
                stateDirectory.forget(record.executionID)
                continue
            }
            SpawnedProcess.signalGroup(record.pid, SIGKILL)
            await EventRelay.replay(spoolFile: stateDirectory.spoolFile(record.executionID), executionID: record.executionID,
                                    organization: organization, client: client, logger: logger)
            let outcome = await Delivery.retrying("the end of a leftover run", logger: logger, metadata: ["execution": "\(record.executionID)"]) {
                try await client.completeExecution(
                    .init(executionId: record.executionID, reason: "the runner restarted while it ran"),
                    options: .on(behalfOf: organization, timeout: .seconds(30)))
            }
            switch outcome {
            case .delivered:
                logger.notice("leftover run ended as lost", metadata: ["execution": "\(record.executionID)"])
            case .refused(let error):
                // Final (the execution is gone or already ended): asking again would not change it.
                logger.error("ExperimentService refused to end a leftover run; forgetting it",
                             metadata: ["execution": "\(record.executionID)", "grpc.status": "\(error.code)", "error": "\(error.message)"])
            case .cancelled:
                return  // before ExperimentService heard of it: the record stays for the next start
            }
            try? FileManager.default.removeItem(atPath: record.runDirectory)
            stateDirectory.forget(record.executionID)
        }
    }

    // MARK: RPCs

    public func startRun(_ request: RunnersV1.StartRunRequest, context: ServerContext) async throws -> RunnersV1.StartRunResponse {
        let organization = try context.organization()
        guard configuration.tenancy.serves(organization) else {
            throw RPCError(.permissionDenied, "this runner is dedicated to other organisations than \(organization)")
        }
        guard !request.experimentId.isEmpty else { throw RPCError(.invalidArgument, "experiment_id is required") }
        guard request.maxDurationUs >= 0, request.terminationGraceUs >= 0, request.experimentRevision >= 0 else {
            throw RPCError(.invalidArgument, "max_duration_us, termination_grace_us and experiment_revision must not be negative")
        }
        let requestKey = request.requestId.isEmpty ? nil : "\(organization)/\(request.requestId)"
        let admission = registry.withLock { registry -> Result<RunHandle?, RPCError> in
            if registry.draining { return .failure(RPCError(.unavailable, "the runner is draining")) }
            if let requestKey, let id = registry.byRequest[requestKey], let run = registry.runs[id] { return .success(run) }
            let active = registry.runs.values.filter(\.isActive).count + registry.reserved
            guard active < configuration.capacity else {
                return .failure(RPCError(.resourceExhausted, "runner at capacity (\(configuration.capacity) runs)"))
            }
            registry.reserved += 1
            return .success(nil)
        }
        if let existing = try admission.get() { return .init(run: existing.snapshot) }
        var registered = false
        defer { if !registered { _ = release(registering: nil) } }

        let created = try await client.createExecution(
            .init(experimentId: request.experimentId, experimentRevision: request.experimentRevision,
                  planId: request.planId, planRunId: request.planRunId, runnerId: configuration.runnerID,
                  environmentId: request.environmentId, integrationIds: request.integrationIds,
                  maxDurationUs: request.maxDurationUs, requestId: request.requestId),
            options: .on(behalfOf: organization, timeout: .seconds(30)))
        guard let execution = created.execution else { throw RPCError(.internalError, "CreateExecution returned no execution") }
        let run = RunHandle(execution: execution, definitionJSON: created.definitionJson, request: request,
                            organization: organization, configuration: configuration, stateDirectory: stateDirectory,
                            client: client, secrets: secrets, logger: logger)
        registered = true
        if let existing = release(registering: (run, requestKey)) { return .init(run: existing.snapshot) }
        return .init(run: run.snapshot)
    }

    /// StartRun for many runs on one stream: each request goes through `startRun`.
    public func startRuns(_ requests: RPCAsyncSequence<RunnersV1.StartRunRequest>, responses: RPCWriter<RunnersV1.StartRunsResponse>,
                          context: ServerContext) async throws {
        _ = try context.organization()
        try await StartRunsStream.serve(requests, responses: responses) { try await self.startRun($0, context: context) }
    }

    /// Gives back a StartRun's reserved slot, registering and launching `registering` if given.
    /// Returns the run already registered for the same execution instead, if there is one.
    private func release(registering: (run: RunHandle, requestKey: String?)?) -> RunHandle? {
        enum Outcome { case existing(RunHandle), launched(draining: Bool), none }
        let (outcome, endLaunches) = registry.withLock { registry -> (Outcome, Bool) in
            registry.reserved -= 1
            var outcome = Outcome.none
            if let (run, requestKey) = registering {
                // CreateExecution is idempotent on request_id: a concurrent repeat gets the same id.
                if let other = registry.runs[run.executionID] {
                    outcome = .existing(other)
                } else {
                    registry.runs[run.executionID] = run
                    registry.order.append(run.executionID)
                    if let requestKey { registry.byRequest[requestKey] = run.executionID }
                    registry.unfinished += 1
                    launch.yield(run)
                    outcome = .launched(draining: registry.draining)
                }
            }
            return (outcome, registry.launchesOver)
        }
        if endLaunches { launch.finish() }
        switch outcome {
        case .existing(let run):
            return run
        case .launched(draining: true):
            registering?.run.stop(.cancelled, rollbacks: nil, reason: "the runner is shutting down")
            return nil
        case .launched, .none:
            return nil
        }
    }

    public func cancelRun(_ request: RunnersV1.CancelRunRequest, context: ServerContext) async throws -> RunnersV1.CancelRunResponse {
        let run = try self.run(request.executionId, organization: context.organization())
        run.stop(.cancelled, rollbacks: !request.skipRollbacks,
                 reason: request.reason.isEmpty ? "cancelled" : String(request.reason.prefix(1000)))
        return .init(run: run.snapshot)
    }

    public func listRuns(_ request: RunnersV1.ListRunsRequest, context: ServerContext) async throws -> RunnersV1.ListRunsResponse {
        let organization = try context.organization()
        guard request.pageSize >= 0 else { throw RPCError(.invalidArgument, "page_size must not be negative") }
        let offset: Int
        if request.pageToken.isEmpty {
            offset = 0
        } else {
            guard let value = Int(request.pageToken), value >= 0 else { throw RPCError(.invalidArgument, "malformed page_token") }
            offset = value
        }
        let states = request.states.isEmpty ? [.starting, .running, .cancelling] : Set(request.states)
        let runs = registry.withLock { registry in
            registry.order.compactMap { registry.runs[$0] }.filter { $0.organization == organization }
        }.map(\.snapshot).filter { states.contains($0.state) }
        let size = request.pageSize == 0 ? 100 : min(Int(request.pageSize), 1000)
        let page = Array(runs.dropFirst(offset).prefix(size))
        let next = offset + page.count < runs.count ? String(offset + page.count) : ""
        return .init(runs: page, nextPageToken: next)
    }

    private func run(_ executionID: String, organization: OrganizationID) throws(RPCError) -> RunHandle {
        let run = handle(executionID)
        guard let run, run.organization == organization else { throw RPCError(.notFound, "no run '\(executionID)' on this runner") }
        return run
    }

    /// A run of any organisation (tests read what it answers at checkpoints).
    func handle(_ executionID: String) -> RunHandle? {
        registry.withLock { $0.runs[executionID] }
    }

    /// The runs not yet finished, across organisations (for heartbeats).
    func activeRuns() -> [(execution: String, organization: OrganizationID)] {
        registry.withLock { $0.runs.values.filter(\.isActive).map { ($0.snapshot.executionId, $0.organization) } }
    }

    /// Stops a run ScheduleService asked to stop (halt, REPLACE, declared lost), rollbacks played.
    func cancel(executionID: String, reason: String) {
        guard let run = registry.withLock({ $0.runs[executionID] }), run.isActive else { return }
        run.stop(.cancelled, rollbacks: nil, reason: reason)
    }

    private func finished(_ executionID: String) {
        if let run = registry.withLock({ $0.runs[executionID] }) { endedInput.yield(run.snapshot) }
        let waiters = registry.withLock { registry -> [CheckedContinuation<Void, Never>] in
            registry.unfinished -= 1
            let finished = registry.order.filter { registry.runs[$0]?.isActive == false }
            for id in finished.prefix(max(0, finished.count - Self.finishedKept)) {
                if let run = registry.runs.removeValue(forKey: id), !run.requestID.isEmpty {
                    registry.byRequest.removeValue(forKey: "\(run.organization)/\(run.requestID)")
                }
                registry.order.removeAll { $0 == id }
            }
            guard registry.idle else { return [] }
            defer { registry.idleWaiters = [] }
            return registry.idleWaiters
        }
        waiters.forEach { $0.resume() }
    }

    // MARK: lifecycle

    /// As a ServiceLifecycle service: ends leftover runs, then runs every accepted run as a child
    /// task until a graceful shutdown (or `drain()`) has stopped them all and each is completed.
    /// StartRun calls that arrive before it starts wait for it. Cancelled, it kills its runs'
    /// process groups at once; runs it could not complete are ended as lost on the next start.
    public func run() async throws {
        await recoverLeftoverRuns()
        await withTaskGroup(of: Void.self) { lifecycle in
            lifecycle.addTask {
                try? await gracefulShutdown()
                self.beginDrain()
            }
            await withDiscardingTaskGroup { runs in
                for await run in launches {
                    runs.addTask {
                        await run.execute()
                        self.finished(run.executionID)
                    }
                }
            }
            lifecycle.cancelAll()
        }
    }

    /// Refuses new runs, stops the running ones (as cancelled) and waits until each is completed.
    /// Needs `run()` running (it owns the runs).
    public func drain() async {
        beginDrain()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = registry.withLock { registry -> Bool in
                guard !registry.idle else { return true }
                registry.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    private func beginDrain() {
        let (runs, endLaunches) = registry.withLock { registry in
            registry.draining = true
            return (Array(registry.runs.values), registry.launchesOver)
        }
        if endLaunches { launch.finish() }
        for run in runs where run.isActive { run.stop(.cancelled, rollbacks: nil, reason: "the runner is shutting down") }
    }
}
