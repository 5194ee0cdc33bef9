import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import ServiceKit

/// Reading plan runs: one column list and one decoder for every query that returns them.
enum PlanRunRecord {
    static let columns: SQL = """
        id, plan_id, experiment_id, state, trigger, due_us, created_us, dispatched_us, ended_us, runner_id, \
        execution_id, execution_state, attempt, retry_of, reason
        """

    static func decode(_ row: Row) throws -> SchedulesV1.PlanRun {
        let (id, plan, experiment, state, trigger, due, created, dispatched, ended) =
            try row.decode((String, String, String, Int32, Int32, Int64, Int64, Int64, Int64).self)
        return SchedulesV1.PlanRun(
            id: id, planId: plan, experimentId: experiment, state: .init(rawValue: state), trigger: .init(rawValue: trigger),
            dueAtUs: due, createdAtUs: created, dispatchedAtUs: dispatched, endedAtUs: ended,
            runnerId: try row.decode(at: 9), executionId: try row.decode(at: 10),
            executionState: .init(rawValue: try row.decode(Int32.self, at: 11)), attempt: try row.decode(at: 12),
            retryOf: try row.decode(at: 13), reason: try row.decode(at: 14))
    }

    /// States in which a run occupies a slot of its plan (and, once assigned, of its runner).
    static let inFlight: [Int32] = [SchedulesV1.PlanRunState.pending.rawValue, SchedulesV1.PlanRunState.queued.rawValue,
                                    SchedulesV1.PlanRunState.dispatched.rawValue]
}

/// The lock order of the schema: plans, then runners (by id), then plan runs (by id). A
/// transaction that updates several plan runs locks them in id order first, so two such
/// transactions, or one and a runner being declared lost, never wait on each other in a cycle.
enum PlanRunLocks {
    static func lock(_ ids: [String], on tx: PostgresConnection) async throws {
        guard ids.count > 1 else { return }
        try await tx.execute("SELECT 1 FROM schedules.plan_runs WHERE id = ANY(\(ids)) ORDER BY id FOR UPDATE")
    }
}

/// A new plan run as the store inserts it, many at once through `jsonb_to_recordset`.
struct NewPlanRun: Encodable, Sendable {
    var org: String
    var id: String
    var plan_id: String
    var request_id: String = ""
    var experiment_id: String
    var experiment_revision: Int64
    var environment_id: String
    var integration_ids: [String]
    /// Base64 of the serialized RunOptions.
    var options: String
    var max_in_flight: Int32
    var max_retries: Int32
    var retry_backoff_us: Int64
    var state: Int32
    var trigger: Int32
    var occurrence_us: Int64
    var due_us: Int64
    var not_before_us: Int64
    var created_us: Int64
    var attempt: Int32 = 1
    var retry_of: String = ""
    var reason: String = ""
    var ended_us: Int64 = 0

    init(org: OrganizationID, planID: String, definition: PlanDefinition?, spec: RunSpec, state: SchedulesV1.PlanRunState,
         trigger: SchedulesV1.PlanRunTrigger, occurrence: Int64, due: Int64, now: Int64) throws(RPCError) {
        self.org = org.rawValue
        id = PrefixedID.make(prefix: ScheduleIDs.planRun, now: now)
        plan_id = planID
        experiment_id = spec.experimentID
        experiment_revision = spec.experimentRevision
        environment_id = spec.environmentID
        integration_ids = spec.integrationIDs
        options = Data(try Array(buffer: spec.options.serializedBytes())).base64EncodedString()
        max_in_flight = definition.map { Int32($0.concurrency.maximumInFlight) } ?? 0
        max_retries = definition?.retry.maxRetries ?? 0
        retry_backoff_us = definition?.retry.backoffUs ?? 0
        self.state = state.rawValue
        self.trigger = trigger.rawValue
        occurrence_us = occurrence
        due_us = due
        not_before_us = due
        created_us = now
        if state == .skipped || state == .failed || state == .cancelled { ended_us = now }
    }

    /// Inserts the runs; with `returning`, answers the inserted rows (an idempotent repeat of a
    /// request id inserts nothing: the caller reads the first run then).
    static func insert(_ runs: [NewPlanRun], on connection: PostgresConnection) async throws -> [SchedulesV1.PlanRun] {
        guard !runs.isEmpty else { return [] }
        let rows = try JSONB(encoding: runs)
        return try await connection.query("""
            INSERT INTO schedules.plan_runs (org, id, plan_id, request_id, experiment_id, experiment_revision, environment_id,
                integration_ids, options, max_in_flight, max_retries, retry_backoff_us, state, trigger, occurrence_us, due_us,
                not_before_us, created_us, ended_us, attempt, retry_of, reason)
            SELECT org, id, plan_id, request_id, experiment_id, experiment_revision, environment_id, integration_ids,
                decode(options, 'base64'), max_in_flight, max_retries, retry_backoff_us, state, trigger, occurrence_us, due_us,
                not_before_us, created_us, ended_us, attempt, retry_of, reason
            FROM jsonb_to_recordset(\(rows)) AS x(org text, id text, plan_id text, request_id text, experiment_id text,
                experiment_revision bigint, environment_id text, integration_ids text[], options text, max_in_flight int,
                max_retries int, retry_backoff_us bigint, state int, trigger int, occurrence_us bigint, due_us bigint,
                not_before_us bigint, created_us bigint, ended_us bigint, attempt int, retry_of text, reason text)
            ON CONFLICT DO NOTHING
            RETURNING \(PlanRunRecord.columns)
            """).map(PlanRunRecord.decode)
    }
}

/// What a run starts: the experiment and how (from a plan's spec or a RunExperiment call).
struct RunSpec: Sendable {
    var experimentID: String
    var experimentRevision: Int64
    var environmentID: String
    var integrationIDs: [String]
    var options: SchedulesV1.RunOptions

    init(_ spec: SchedulesV1.PlanSpec) {
        experimentID = spec.experimentId
        experimentRevision = spec.experimentRevision
        environmentID = spec.environmentId
        integrationIDs = spec.integrationIds
        options = spec.runOptions ?? .init()
    }

    init(_ request: SchedulesV1.RunExperimentRequest) {
        experimentID = request.experimentId
        experimentRevision = request.experimentRevision
        environmentID = request.environmentId
        integrationIDs = request.integrationIds
        options = request.runOptions ?? .init()
    }
}

/// The prefixes of this service's ids.
enum ScheduleIDs {
    static let plan = "plan"
    static let planRun = "prun"

    /// A wrong shape is INVALID_ARGUMENT; a well-formed id nobody owns is NOT_FOUND.
    static func validate(_ id: String, prefix: String, field: String) throws(RPCError) {
        guard !id.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        guard PrefixedID.isWellFormed(id, prefix: prefix) else { throw RPCError(.invalidArgument, "\(field) is not a well-formed \(prefix)_ id") }
    }
}

/// An opaque keyset cursor: the last row's sort key and id, bound to the query's filters.
struct Cursor {
    var key: Int64
    var id: String

    func encoded(filters: String) -> String {
        Data("1|\(key)|\(id)|\(filters)".utf8).base64EncodedString()
    }

    static func decode(_ token: String, filters: String) throws(RPCError) -> Cursor? {
        if token.isEmpty { return nil }
        let invalid = RPCError(.invalidArgument, "page_token is malformed or belongs to another query")
        guard token.utf8.count <= 1024, let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8) else { throw invalid }
        let parts = text.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "1", let key = Int64(parts[1]), String(parts[3]) == filters else { throw invalid }
        return Cursor(key: key, id: String(parts[2]))
    }
}
