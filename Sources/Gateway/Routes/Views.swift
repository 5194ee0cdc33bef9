import FaultlineProto

// The JSON shapes of the API (snake_case, times as `_us` integers), mapped from the contract's
// messages in one place. docs: Sources/Gateway/openapi.json.

struct ExperimentView: Encodable {
    var id: String
    var title: String
    var description: String
    var tags: [String]
    var latest_revision: Int64
    var created_at_us: Int64
    var updated_at_us: Int64
    var deleted_at_us: Int64?
    var score: Double?
    var last_execution: ExecutionSummaryView?

    init(_ e: ExperimentsV1.Experiment) {
        id = e.id; title = e.title; description = e.description; tags = e.tags
        latest_revision = e.latestRevision; created_at_us = e.createdAtUs; updated_at_us = e.updatedAtUs
        deleted_at_us = e.deletedAtUs == 0 ? nil : e.deletedAtUs
        score = e.score?.value
        last_execution = e.lastExecution.map(ExecutionSummaryView.init)
    }
}

struct ExecutionSummaryView: Encodable {
    var id: String
    var status: String
    var created_at_us: Int64
    var ended_at_us: Int64?
    var score: Double?

    init(_ s: ExperimentsV1.ExecutionSummary) {
        id = s.id; status = s.state.apiName; created_at_us = s.createdAtUs
        ended_at_us = s.endedAtUs == 0 ? nil : s.endedAtUs
        score = s.score?.value
    }
}

struct RevisionView: Encodable {
    var experiment_id: String
    var revision: Int64
    var source_format: String
    var sha256: String
    var title: String
    var description: String
    var tags: [String]
    var created_at_us: Int64
    var warnings: [Problem.ProblemItem]
    /// The definition as a JSON object; absent in lists.
    var definition: JSONValue?

    init(_ r: ExperimentsV1.ExperimentRevision) {
        experiment_id = r.experimentId; revision = r.revision
        source_format = r.sourceFormat == .yaml ? "yaml" : "json"
        sha256 = r.sha256; title = r.title; description = r.description; tags = r.tags
        created_at_us = r.createdAtUs; warnings = r.warnings.map(Problem.ProblemItem.init)
        definition = JSONValue(text: r.definitionJson)
    }
}

struct ExperimentScoreView: Encodable {
    var value: Double
    var executions: Int32
    var window: Int32
    var decay: Double
    var computed_at_us: Int64
    var formula: String

    init(_ s: ExperimentsV1.ExperimentScore) {
        value = s.value; executions = s.executions; window = s.window; decay = s.decay
        computed_at_us = s.computedAtUs; formula = s.formula
    }
}

/// `score` is null until one execution of the experiment was scored.
struct ScoreView: Encodable {
    var experiment_id: String
    var score: ExperimentScoreView?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(experiment_id, forKey: .experiment_id)
        try container.encode(score, forKey: .score)  // explicit null, not an absent key
    }

    enum CodingKeys: String, CodingKey { case experiment_id, score }
}

struct CreatedExperimentView: Encodable {
    var experiment: ExperimentView
    var revision: RevisionView
}

struct ExperimentPage: Encodable {
    var experiments: [ExperimentView]
    var next_page_token: String?
}

struct RevisionPage: Encodable {
    var revisions: [RevisionView]
    var next_page_token: String?
}

struct UserStateView: Encodable {
    var request: String
    var version: Int64
    var requested_at_us: Int64?
    var reason: String?
    var pause_expires_at_us: Int64?
    var skip_rollbacks: Bool?

    init(_ u: ExperimentsV1.UserState) {
        switch u.request {
        case .pause(let pause)?: request = "pause"; pause_expires_at_us = pause.expiresAtUs
        case .terminate(let terminate)?: request = "terminate"; skip_rollbacks = terminate.skipRollbacks
        case nil: request = "none"
        }
        version = u.version
        requested_at_us = u.requestedAtUs == 0 ? nil : u.requestedAtUs
        reason = u.reason.isEmpty ? nil : u.reason
    }
}

struct ExecutionView: Encodable {
    var id: String
    var experiment_id: String
    var experiment_revision: Int64
    var status: String
    var deviated: Bool
    var plan_id: String?
    var runner_id: String?
    var created_at_us: Int64
    var started_at_us: Int64?
    var ended_at_us: Int64?
    var reason: String?
    var reason_code: String?
    var score: Double?
    var user_state: UserStateView?
    var contiguous_sequence: Int64
    var events_received: Int64

    init(_ e: ExperimentsV1.Execution) {
        id = e.id; experiment_id = e.experimentId; experiment_revision = e.experimentRevision
        status = e.state.apiName; deviated = e.deviated
        plan_id = e.planId.isEmpty ? nil : e.planId
        runner_id = e.runnerId.isEmpty ? nil : e.runnerId
        created_at_us = e.createdAtUs
        started_at_us = e.startedAtUs == 0 ? nil : e.startedAtUs
        ended_at_us = e.endedAtUs == 0 ? nil : e.endedAtUs
        reason = e.reason.isEmpty ? nil : e.reason
        reason_code = e.reasonCode.isEmpty ? nil : e.reasonCode
        score = e.score?.value
        user_state = e.userState.map(UserStateView.init)
        contiguous_sequence = e.contiguousSequence; events_received = e.eventsReceived
    }
}

struct ExecutionPage: Encodable {
    var executions: [ExecutionView]
    var next_page_token: String?
}

struct EventView: Encodable {
    var sequence: Int64
    var type: String
    var occurred_at_us: Int64
    var received_at_us: Int64
    var activity_name: String?
    var payload: JSONValue?

    init(_ e: ExperimentsV1.ExecutionEvent) {
        sequence = e.sequence; type = e.type; occurred_at_us = e.occurredAtUs; received_at_us = e.receivedAtUs
        activity_name = e.activityName.isEmpty ? nil : e.activityName
        payload = JSONValue(text: e.payloadJson)
    }
}

struct EventPage: Encodable {
    var events: [EventView]
    var next_page_token: String?
}

/// A contract enum as the API spells it: the case name in snake_case (`timed_out`,
/// `run_once`, `reveal_environment`); values this build does not know are `unknown_<n>`.
protocol APIEnum: RawRepresentable<Int32>, Hashable {
    static var knownCases: [Self] { get }
}

extension APIEnum {
    var apiName: String {
        guard Self.knownCases.contains(self) else { return "unknown_\(rawValue)" }
        var name = ""
        for character in String(describing: self) {
            if character.isUppercase { name += "_" + character.lowercased() } else { name.append(character) }
        }
        return name
    }

    /// The value named `apiName`; `unspecified` is never accepted from a client.
    init?(apiName: String) {
        guard let value = Self.knownCases.first(where: { $0.rawValue != 0 && $0.apiName == apiName }) else { return nil }
        self = value
    }

    /// Decodes an optional API name from a request; unknown names are the client's mistake.
    static func parse(_ name: String?, field: String) throws -> Self? {
        guard let name else { return nil }
        guard let value = Self(apiName: name) else {
            let names = knownCases.filter { $0.rawValue != 0 }.map(\.apiName).joined(separator: ", ")
            throw Problem.badRequest("request.field.invalid", "\(field) must be one of \(names)")
        }
        return value
    }
}

extension ExperimentsV1.ExecutionState: APIEnum {
    var isTerminal: Bool {
        switch self {
        case .unspecified, .pending, .running: false
        default: true
        }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
