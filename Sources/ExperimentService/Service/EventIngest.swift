import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Checks one ReportEvents message as a whole before any of it is written, so a bad event
/// rejects its message (INVALID_ARGUMENT) and never half of it.
struct EventIngest {
    let store: EventStore
    let org: OrganizationID
    let configuration: ExperimentServiceConfiguration

    func check(_ events: [ExperimentsV1.ExecutionEvent]) throws(RPCError) -> [EventStore.Incoming] {
        var batch: [EventStore.Incoming] = []
        batch.reserveCapacity(events.count)
        for (index, e) in events.enumerated() {
            let field = "events[\(index)]"
            try ResourceID.validate(e.executionId, .execution, field: "\(field).execution_id")
            guard e.sequence >= 1 else { throw RPCError(.invalidArgument, "\(field).sequence must be 1 or more") }
            guard !e.type.isEmpty else { throw RPCError(.invalidArgument, "\(field).type is required") }
            try Check.text(e.type, "\(field).type", max: 200)
            try Check.text(e.activityName, "\(field).activity_name", max: 1000)
            guard e.payloadJson.utf8.count <= configuration.maximumEventPayloadBytes else {
                throw RPCError(.invalidArgument, "\(field).payload_json is larger than \(configuration.maximumEventPayloadBytes) bytes")
            }
            let payload = e.payloadJson.isEmpty ? "{}" : e.payloadJson
            try Self.checkObject(payload, field: "\(field).payload_json")
            batch.append(EventStore.Incoming(executionID: e.executionId, sequence: e.sequence, type: e.type,
                                             occurredAtUs: e.occurredAtUs, activityName: e.activityName, payload: payload))
        }
        return batch
    }

    /// A JSON object that jsonb also accepts (jsonb refuses `\u0000`).
    static func checkObject(_ text: String, field: String) throws(RPCError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(jsonBytes: Array(text.utf8), limits: DocumentLimits(maxBytes: 1 << 24, maxDepth: 64))
        } catch {
            throw RPCError(.invalidArgument, "\(field) is not JSON: \(error.message)")
        }
        guard case .object = value else { throw RPCError(.invalidArgument, "\(field) must be a JSON object") }
        guard !text.contains("\\u0000") else { throw RPCError(.invalidArgument, "\(field) contains \\u0000, which Postgres cannot store") }
    }

    func store(_ batch: [EventStore.Incoming]) async throws -> EventStore.BatchResult {
        do {
            return try await store.store(org, batch)
        } catch let error as DatabaseError where error.sqlState?.hasPrefix("22") == true {
            // Data exceptions (a value Postgres cannot take) are the client's; nothing was written.
            throw RPCError(.invalidArgument, "an event holds a value Postgres cannot store (SQLSTATE \(error.sqlState ?? ""))")
        }
    }
}
