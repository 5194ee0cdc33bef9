import FaultlinePostgres
import FaultlineProto

/// Mapping between `executions` rows and `Execution` messages, and the stored forms of the
/// outcome and score.
enum ExecutionRecord {
    static let executionFormula = "faultline-execution-v1"
    static let experimentFormula = "faultline-experiment-v1"

    static let columns = SQL(unescaped: """
        id, experiment_id, revision, state, deviated, plan_id, plan_run_id, runner_id, environment_id, integration_ids,
        created_us, started_us, ended_us, reason, outcome::text AS outcome, score, score_parts::text AS score_parts,
        contiguous_seq, events_received, actor_kind, actor_id, max_duration_us,
        user_request, pause_max_us, pause_expires_us, skip_rollbacks, user_version, user_at_us, user_actor_kind, user_actor_id, user_reason
        """)

    static func execution(_ row: Row) throws -> ExperimentsV1.Execution {
        var x = ExperimentsV1.Execution()
        x.id = try row.decode(column: "id")
        x.experimentId = try row.decode(column: "experiment_id")
        x.experimentRevision = try row.decode(column: "revision")
        x.state = ExperimentsV1.ExecutionState(rawValue: try row.decode(Int32.self, column: "state"))
        x.deviated = try row.decode(column: "deviated")
        x.planId = try row.decode(column: "plan_id")
        x.planRunId = try row.decode(column: "plan_run_id")
        x.runnerId = try row.decode(column: "runner_id")
        x.environmentId = try row.decode(column: "environment_id")
        x.integrationIds = try row.decode(column: "integration_ids")
        x.createdAtUs = try row.decode(column: "created_us")
        x.startedAtUs = try row.decode(column: "started_us")
        x.endedAtUs = try row.decode(column: "ended_us")
        x.reason = try row.decode(column: "reason")
        if let outcome = try row.decode(String?.self, column: "outcome") {
            x.outcome = try JSONB(outcome).decode(StoredOutcome.self).proto
        }
        x.score = try score(value: row.decode(column: "score"), parts: row.decode(column: "score_parts"))
        x.userState = try userState(row)
        x.contiguousSequence = try row.decode(column: "contiguous_seq")
        x.eventsReceived = try row.decode(column: "events_received")
        x.startedBy = try actor(row, kind: "actor_kind", id: "actor_id")
        x.maxDurationUs = try row.decode(column: "max_duration_us")
        return x
    }

    static func userState(_ row: Row) throws -> ExperimentsV1.UserState {
        var state = ExperimentsV1.UserState()
        switch try row.decode(String?.self, column: "user_request") {
        case "pause":
            state.request = .pause(ExperimentsV1.PauseRequest(maxDurationUs: try row.decode(column: "pause_max_us"),
                                                               expiresAtUs: try row.decode(column: "pause_expires_us")))
        case "terminate":
            state.request = .terminate(ExperimentsV1.TerminateRequest(skipRollbacks: try row.decode(column: "skip_rollbacks")))
        default:
            break
        }
        state.version = try row.decode(column: "user_version")
        state.requestedAtUs = try row.decode(column: "user_at_us")
        state.requestedBy = try actor(row, kind: "user_actor_kind", id: "user_actor_id")
        state.reason = try row.decode(column: "user_reason")
        return state
    }

    static func score(value: Double?, parts: String?) throws -> ExperimentsV1.ExecutionScore? {
        guard let value else { return nil }
        let stored = try parts.map { try JSONB($0).decode(StoredScore.self) } ?? StoredScore(verdict: value, rollbackFactor: 1)
        return ExperimentsV1.ExecutionScore(value: value, verdict: stored.verdict, rollbackFactor: stored.rollbackFactor,
                                            formula: executionFormula)
    }
}

/// The factors of an execution's score (`score = verdict × rollbackFactor`, SCORING.md).
struct StoredScore: Codable {
    var verdict: Double
    var rollbackFactor: Double
}

/// `ExecutionOutcome` as kept in `executions.outcome`.
struct StoredOutcome: Codable {
    var hasJournal: Bool
    var journalStatus: String
    var deviated: Bool
    var before: Int32
    var after: Int32
    var activitiesRun: Int32
    var activitiesFailed: Int32
    var rollbacksRun: Int32
    var rollbacksFailed: Int32
    var exitCode: Int32?
    var signal: Int32?
    var interruptionJSON: String

    init(_ o: ExperimentsV1.ExecutionOutcome) {
        hasJournal = o.hasJournal
        journalStatus = o.journalStatus
        deviated = o.deviated
        before = o.steadyStateBefore.rawValue
        after = o.steadyStateAfter.rawValue
        activitiesRun = o.activitiesRun
        activitiesFailed = o.activitiesFailed
        rollbacksRun = o.rollbacksRun
        rollbacksFailed = o.rollbacksFailed
        exitCode = o.exit?.exitCode
        signal = o.exit?.signal
        interruptionJSON = o.interruptionJson
    }

    var proto: ExperimentsV1.ExecutionOutcome {
        var o = ExperimentsV1.ExecutionOutcome()
        o.hasJournal = hasJournal
        o.journalStatus = journalStatus
        o.deviated = deviated
        o.steadyStateBefore = ExperimentsV1.SteadyState(rawValue: before)
        o.steadyStateAfter = ExperimentsV1.SteadyState(rawValue: after)
        o.activitiesRun = activitiesRun
        o.activitiesFailed = activitiesFailed
        o.rollbacksRun = rollbacksRun
        o.rollbacksFailed = rollbacksFailed
        if exitCode != nil || signal != nil {
            o.exit = ExperimentsV1.ProcessExit(exitCode: exitCode ?? 0, signal: signal ?? 0)
        }
        o.interruptionJson = interruptionJSON
        return o
    }
}
