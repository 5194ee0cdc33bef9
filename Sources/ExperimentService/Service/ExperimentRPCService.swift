import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Logging
import ServiceKit

/// The handlers of `faultline.experiments.v1.ExperimentService`. Each one reads the calling
/// organisation, checks the request's shape (ids, tokens, sizes: INVALID_ARGUMENT), and leaves
/// the rest to the stores; database failures surface with `DatabaseError`'s fixed messages.
struct ExperimentRPCService: ExperimentsV1.ExperimentService {
    let database: PostgresClient
    let logger: Logger
    let configuration: ExperimentServiceConfiguration
    let hub: WatchHub
    let experiments: ExperimentStore
    let executions: ExecutionStore
    let events: EventStore

    init(database: PostgresClient, logger: Logger, configuration: ExperimentServiceConfiguration, hub: WatchHub) {
        self.database = database
        self.logger = logger
        self.configuration = configuration
        self.hub = hub
        experiments = ExperimentStore(database: database)
        executions = ExecutionStore(database: database)
        events = EventStore(database: database)
    }

    // MARK: experiments

    func validateExperiment(_ request: ExperimentsV1.ValidateExperimentRequest, context: ServerContext) async throws -> ExperimentsV1.ValidateExperimentResponse {
        _ = try context.organization()
        let reading = ImportedExperiment.read(request.source, limits: configuration.documentLimits)
        return ExperimentsV1.ValidateExperimentResponse(problems: reading.problems, definitionJson: reading.imported?.definitionJSON ?? "")
    }

    func createExperiment(_ request: ExperimentsV1.CreateExperimentRequest, context: ServerContext) async throws -> ExperimentsV1.CreateExperimentResponse {
        try await call(context, storing: "the experiment definition") { org in
            try Check.text(request.requestId, "request_id", max: 200)
            let imported = try ImportedExperiment.require(request.source, limits: configuration.documentLimits)
            let (experiment, revision) = try await experiments.create(
                org, imported, by: ExperimentStore.Writer(actor: context.actor, requestID: request.requestId))
            return ExperimentsV1.CreateExperimentResponse(experiment: experiment, revision: revision)
        }
    }

    func updateExperiment(_ request: ExperimentsV1.UpdateExperimentRequest, context: ServerContext) async throws -> ExperimentsV1.UpdateExperimentResponse {
        try await call(context, storing: "the experiment definition") { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            guard request.expectedRevision >= 0 else { throw RPCError(.invalidArgument, "expected_revision must not be negative") }
            let imported = try ImportedExperiment.require(request.source, limits: configuration.documentLimits)
            let (experiment, revision) = try await experiments.update(
                org, request.experimentId, imported, expectedRevision: request.expectedRevision, by: context.actor)
            return ExperimentsV1.UpdateExperimentResponse(experiment: experiment, revision: revision)
        }
    }

    func getExperiment(_ request: ExperimentsV1.GetExperimentRequest, context: ServerContext) async throws -> ExperimentsV1.GetExperimentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            guard let experiment = try await experiments.get(org, request.experimentId, includeDeleted: request.includeDeleted) else {
                throw ExperimentStore.notFound
            }
            return ExperimentsV1.GetExperimentResponse(experiment: experiment)
        }
    }

    func listExperiments(_ request: ExperimentsV1.ListExperimentsRequest, context: ServerContext) async throws -> ExperimentsV1.ListExperimentsResponse {
        try await call(context) { org in
            try Check.text(request.titleQuery, "title_query", max: 500)
            guard request.tags.count <= 50 else { throw RPCError(.invalidArgument, "at most 50 tags") }
            for tag in request.tags { try Check.text(tag, "tags", max: 200) }
            return try await experiments.list(org, request)
        }
    }

    func deleteExperiment(_ request: ExperimentsV1.DeleteExperimentRequest, context: ServerContext) async throws -> ExperimentsV1.DeleteExperimentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            return ExperimentsV1.DeleteExperimentResponse(experiment: try await experiments.delete(org, request.experimentId))
        }
    }

    func getExperimentRevision(_ request: ExperimentsV1.GetExperimentRevisionRequest, context: ServerContext) async throws -> ExperimentsV1.GetExperimentRevisionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            guard request.revision >= 0 else { throw RPCError(.invalidArgument, "revision must not be negative") }
            guard let revision = try await experiments.revision(org, request.experimentId, request.revision, includeDefinition: true,
                                                                includeDeleted: request.includeDeleted) else {
                throw RPCError(.notFound, "no such experiment revision")
            }
            return ExperimentsV1.GetExperimentRevisionResponse(revision: revision)
        }
    }

    func listExperimentRevisions(_ request: ExperimentsV1.ListExperimentRevisionsRequest, context: ServerContext) async throws -> ExperimentsV1.ListExperimentRevisionsResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            return try await experiments.revisions(org, request)
        }
    }

    // MARK: executions

    func createExecution(_ request: ExperimentsV1.CreateExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.CreateExecutionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            guard request.experimentRevision >= 0 else { throw RPCError(.invalidArgument, "experiment_revision must not be negative") }
            guard request.maxDurationUs >= 0 else { throw RPCError(.invalidArgument, "max_duration_us must not be negative") }
            for (value, field) in [(request.planId, "plan_id"), (request.planRunId, "plan_run_id"), (request.runnerId, "runner_id"),
                                   (request.environmentId, "environment_id"), (request.requestId, "request_id")] {
                try Check.text(value, field, max: 200)
            }
            guard request.integrationIds.count <= 100 else { throw RPCError(.invalidArgument, "at most 100 integration_ids") }
            for id in request.integrationIds { try Check.text(id, "integration_ids", max: 200) }
            let (execution, definition) = try await executions.create(org, request, by: context.actor)
            return ExperimentsV1.CreateExecutionResponse(execution: execution, definitionJson: definition)
        }
    }

    func startExecution(_ request: ExperimentsV1.StartExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.StartExecutionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            try Check.text(request.runnerId, "runner_id", max: 200)
            guard request.startedAtUs >= 0 else { throw RPCError(.invalidArgument, "started_at_us must not be negative") }
            let execution = try await executions.start(org, request.executionId, runnerID: request.runnerId, startedAt: request.startedAtUs)
            return ExperimentsV1.StartExecutionResponse(execution: execution)
        }
    }

    func completeExecution(_ request: ExperimentsV1.CompleteExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.CompleteExecutionResponse {
        try await call(context, storing: "journal_json") { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            try Check.text(request.reason, "reason", max: 4096)
            guard request.endedAtUs >= 0 else { throw RPCError(.invalidArgument, "ended_at_us must not be negative") }
            let completion = try Completion(request, logCap: configuration.maximumLogBytes, journalLimits: configuration.journalLimits)
            // What makes two completions "the same request" for the retry rule.
            let digestSource = [request.journalJson, request.log, "\(request.exit?.exitCode ?? -1)/\(request.exit?.signal ?? -1)/\(request.exit != nil)",
                                "\(request.stopRequest.rawValue)", request.reason, "\(request.endedAtUs)"]
                .map { "\($0.utf8.count):\($0)" }.joined()
            let execution = try await executions.complete(org, request.executionId, completion, digestSource: digestSource,
                                                          endedAt: request.endedAtUs, external: request.external)
            return ExperimentsV1.CompleteExecutionResponse(execution: execution)
        }
    }

    func getExecution(_ request: ExperimentsV1.GetExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.GetExecutionResponse {
        try await call(context) { org in
            ExperimentsV1.GetExecutionResponse(execution: try await requireExecution(org, request.executionId))
        }
    }

    func listExecutions(_ request: ExperimentsV1.ListExecutionsRequest, context: ServerContext) async throws -> ExperimentsV1.ListExecutionsResponse {
        try await call(context) { org in
            if !request.experimentId.isEmpty { try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id") }
            try Check.text(request.planId, "plan_id", max: 200)
            try Check.text(request.planRunId, "plan_run_id", max: 200)
            guard request.states.count <= 20, request.states.allSatisfy({ ExecutionStatus($0) != nil }) else {
                throw RPCError(.invalidArgument, "states holds an unknown or unspecified state")
            }
            return try await executions.list(org, request)
        }
    }

    func getExecutionJournal(_ request: ExperimentsV1.GetExecutionJournalRequest, context: ServerContext) async throws -> ExperimentsV1.GetExecutionJournalResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            return ExperimentsV1.GetExecutionJournalResponse(journalJson: try await executions.journal(org, request.executionId))
        }
    }

    func getExecutionLog(_ request: ExperimentsV1.GetExecutionLogRequest, context: ServerContext) async throws -> ExperimentsV1.GetExecutionLogResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            return try await executions.log(org, request.executionId)
        }
    }

    // MARK: events

    func reportEvents(_ requests: RPCAsyncSequence<ExperimentsV1.ReportEventsRequest>, context: ServerContext) async throws -> ExperimentsV1.ReportEventsResponse {
        try await call(context) { org in
            let ingest = EventIngest(store: events, org: org, configuration: configuration)
            let queue = IngestQueue(capacity: 2 * configuration.ingestBatchRows)
            var response = ExperimentsV1.ReportEventsResponse()
            var touched: [String] = []
            // The writer stores what the reader checked, batching whatever queued up meanwhile.
            // A bad message ends reading, but what was accepted before it is still stored.
            let (readFailure, stored) = try await withThrowingTaskGroup(of: EventStore.BatchResult.self) { group in
                group.addTask {
                    var total = EventStore.BatchResult()
                    do {
                        while let batch = await queue.take(limit: configuration.ingestBatchRows) {
                            let result = try await ingest.store(batch)
                            total.accepted += result.accepted
                            total.duplicates += result.duplicates
                        }
                    } catch {
                        queue.fail(error)
                        throw error
                    }
                    return total
                }
                var readFailure: (any Error)?
                do {
                    var owned = Set<String>()
                    for try await message in requests {
                        let batch = try ingest.check(message.events)
                        let fresh = Set(batch.map(\.executionID)).subtracting(owned)
                        if !fresh.isEmpty {
                            let found = try await events.owned(org, Array(fresh))
                            guard found.count == fresh.count else { throw ExecutionStore.notFound }
                            owned.formUnion(found)
                            touched.append(contentsOf: fresh.sorted())
                        }
                        try await queue.push(batch)
                    }
                } catch {
                    readFailure = error
                }
                queue.finish()
                let stored = try await group.next() ?? EventStore.BatchResult()
                return (readFailure, stored)
            }
            if let readFailure { throw readFailure }
            response.accepted = stored.accepted
            response.duplicates = stored.duplicates
            for id in touched { response.progress.append(try await events.progress(id)) }
            return response
        }
    }

    func watchExecution(_ request: ExperimentsV1.WatchExecutionRequest, responses: RPCWriter<ExperimentsV1.WatchExecutionResponse>, context: ServerContext) async throws {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            guard request.afterSequence >= 0 else { throw RPCError(.invalidArgument, "after_sequence must not be negative") }
            let watcher = ExecutionWatcher(executions: executions, events: events, hub: hub, configuration: configuration)
            try await watcher.watch(org, request.executionId, after: request.afterSequence, into: responses)
        }
    }

    func listExecutionEvents(_ request: ExperimentsV1.ListExecutionEventsRequest, context: ServerContext) async throws -> ExperimentsV1.ListExecutionEventsResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            guard request.afterSequence >= 0 else { throw RPCError(.invalidArgument, "after_sequence must not be negative") }
            let size = try PageToken.pageSize(request.pageSize, default: 100)
            let filters = PageToken.fingerprint(["events", request.executionId, String(request.afterSequence)])
            let after = try PageToken.decode(request.pageToken, filters: filters)?.time ?? request.afterSequence
            _ = try await requireExecution(org, request.executionId)
            let page = try await events.events(request.executionId, after: after, limit: size + 1)
            var response = ExperimentsV1.ListExecutionEventsResponse(events: Array(page.prefix(size)))
            if page.count > size, let last = response.events.last {
                response.nextPageToken = PageToken(time: last.sequence, id: "", filters: filters).encoded
            }
            return response
        }
    }

    // MARK: user state

    func pauseExecution(_ request: ExperimentsV1.PauseExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.PauseExecutionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            try Check.text(request.reason, "reason", max: 4096)
            guard request.maxDurationUs >= 0 else { throw RPCError(.invalidArgument, "max_duration_us must not be negative") }
            let maximum = configuration.maximumPauseUs
            let duration = request.maxDurationUs == 0 ? maximum : min(request.maxDurationUs, maximum)
            let execution = try await executions.change(org, request.executionId, .pause(maxDurationUs: duration), reason: request.reason, by: context.actor)
            return ExperimentsV1.PauseExecutionResponse(execution: execution)
        }
    }

    func resumeExecution(_ request: ExperimentsV1.ResumeExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.ResumeExecutionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            try Check.text(request.reason, "reason", max: 4096)
            let execution = try await executions.change(org, request.executionId, .resume, reason: request.reason, by: context.actor)
            return ExperimentsV1.ResumeExecutionResponse(execution: execution)
        }
    }

    func terminateExecution(_ request: ExperimentsV1.TerminateExecutionRequest, context: ServerContext) async throws -> ExperimentsV1.TerminateExecutionResponse {
        try await call(context) { org in
            try ResourceID.validate(request.executionId, .execution, field: "execution_id")
            try Check.text(request.reason, "reason", max: 4096)
            let execution = try await executions.change(org, request.executionId, .terminate(skipRollbacks: request.skipRollbacks),
                                                        reason: request.reason, by: context.actor)
            return ExperimentsV1.TerminateExecutionResponse(execution: execution)
        }
    }

    func getUserState(_ request: ExperimentsV1.GetUserStateRequest, context: ServerContext) async throws -> ExperimentsV1.GetUserStateResponse {
        try await call(context) { org in
            let execution = try await requireExecution(org, request.executionId)
            return ExperimentsV1.GetUserStateResponse(userState: execution.userState, executionState: execution.state)
        }
    }

    // MARK: scores and retention

    func getExperimentScore(_ request: ExperimentsV1.GetExperimentScoreRequest, context: ServerContext) async throws -> ExperimentsV1.GetExperimentScoreResponse {
        try await call(context) { org in
            try ResourceID.validate(request.experimentId, .experiment, field: "experiment_id")
            guard (0...1000).contains(request.window) else { throw RPCError(.invalidArgument, "window must be in 0...1000") }
            let window = request.window == 0 ? 10 : Int(request.window)
            try await experiments.requireExisting(org, request.experimentId, includeDeleted: request.includeDeleted)
            return ExperimentsV1.GetExperimentScoreResponse(score: try await executions.experimentScore(org, request.experimentId, window: window))
        }
    }

    func getRetentionPolicy(_ request: ExperimentsV1.GetRetentionPolicyRequest, context: ServerContext) async throws -> ExperimentsV1.GetRetentionPolicyResponse {
        try await call(context) { org in
            ExperimentsV1.GetRetentionPolicyResponse(policy: try await executions.retentionPolicy(org))
        }
    }

    func setRetentionPolicy(_ request: ExperimentsV1.SetRetentionPolicyRequest, context: ServerContext) async throws -> ExperimentsV1.SetRetentionPolicyResponse {
        try await call(context) { org in
            let policy = request.policy ?? ExperimentsV1.RetentionPolicy()
            guard policy.maxAgeUs >= 0, policy.maxExecutionsPerExperiment >= 0 else {
                throw RPCError(.invalidArgument, "retention limits must not be negative")
            }
            try await executions.setRetentionPolicy(org, policy)
            return ExperimentsV1.SetRetentionPolicyResponse(policy: policy)
        }
    }

    func applyRetention(_ request: ExperimentsV1.ApplyRetentionRequest, context: ServerContext) async throws -> ExperimentsV1.ApplyRetentionResponse {
        try await call(context) { org in
            let (executions, events) = try await executions.applyRetention(org, dryRun: request.dryRun)
            return ExperimentsV1.ApplyRetentionResponse(executionsDeleted: executions, eventsDeleted: events)
        }
    }

    /// Applies every organisation's retention policy every `retentionInterval` until cancelled.
    func retentionLoop() async {
        while !Task.isCancelled {
            do {
                for org in try await executions.organizationsWithRetention() {
                    let (gone, events) = try await executions.applyRetention(org, dryRun: false)
                    if gone > 0 { logger.info("retention", metadata: ["org": "\(org)", "executions": "\(gone)", "events": "\(events)"]) }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("retention failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.retentionInterval)
        }
    }

    // MARK: helpers

    private func requireExecution(_ org: OrganizationID, _ id: String) async throws -> ExperimentsV1.Execution {
        try ResourceID.validate(id, .execution, field: "execution_id")
        guard let execution = try await executions.get(org, id) else { throw ExecutionStore.notFound }
        return execution
    }

    /// Runs a handler body for the calling organisation (ServiceKit maps its failures). `json`
    /// names the JSON a call stores, for the one refusal of it only Postgres makes (`UnstorableJSON`).
    private func call<T: Sendable>(_ context: ServerContext, storing json: String = "a JSON value",
                                   _ body: (OrganizationID) async throws -> T) async throws -> T {
        let org = try context.organization()
        return try await context.mappingFailures { try await UnstorableJSON.mapping(json) { try await body(org) } }
    }
}
