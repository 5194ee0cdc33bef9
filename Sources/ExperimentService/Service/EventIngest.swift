import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Checks one ReportEvents message as a whole before any of it is queued, so a bad event rejects
/// its message (INVALID_ARGUMENT) and never half of it. A payload that only Postgres finds
/// invalid fails the transaction it was written in: the call fails, nothing after the last
/// commit is acknowledged, and a retry of the call stores each event once.
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

    /// The shape of a JSON object; Postgres' jsonb input checks the rest as the rows are
    /// copied (a failure there is INVALID_ARGUMENT too, see `store`). Parsing every payload here
    /// as well would cost as much CPU as the COPY itself.
    static func checkObject(_ text: String, field: String) throws(RPCError) {
        let bytes = text.utf8
        let first = bytes.first { !Self.isSpace($0) }
        let last = bytes.reversed().first { !Self.isSpace($0) }
        guard first == UInt8(ascii: "{"), last == UInt8(ascii: "}") else {
            throw RPCError(.invalidArgument, "\(field) must be a JSON object")
        }
        guard !NULEscapes.occur(in: text) else { throw UnstorableJSON.refusal(of: field) }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    func store(_ batch: [EventStore.Incoming]) async throws -> EventStore.BatchResult {
        do {
            return try await UnstorableJSON.mapping("an event's payload_json") { try await store.store(org, batch) }
        } catch let error as DatabaseError where error.sqlState?.hasPrefix("22") == true {
            // Data exceptions (a value Postgres cannot take) are the client's; nothing was written.
            throw RPCError(.invalidArgument,
                           "an event's payload_json is not JSON that Postgres accepts (SQLSTATE \(error.sqlState ?? ""))")
        }
    }
}
