import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

/// Control events: batched ingestion through `COPY` into a per-connection staging table, then one
/// `INSERT … ON CONFLICT DO NOTHING` into `events`, so a repeated (execution, sequence) is ignored
/// and a retried batch is harmless.
struct EventStore {
    let database: PostgresClient

    /// What one stored batch changed.
    struct BatchResult {
        var accepted: Int64 = 0
        var duplicates: Int64 = 0
    }

    /// An event checked by the caller: the execution belongs to the organisation, the sequence is
    /// positive and the payload is a JSON object.
    struct Incoming {
        var executionID: String
        var sequence: Int64
        var type: String
        var occurredAtUs: Int64
        var activityName: String
        var payload: String
    }

    /// Which of `ids` exist in the organisation (NOT_FOUND for the others is the caller's call).
    func owned(_ org: OrganizationID, _ ids: [String]) async throws -> Set<String> {
        let rows = try await database.query("SELECT id FROM experiments.executions WHERE org = \(org.rawValue) AND id = ANY(\(ids))")
        return Set(try rows.map { try $0.decode(String.self, at: 0) })
    }

    /// Stores one batch in one transaction and notifies watchers once per execution.
    ///
    /// The common case, a batch with nothing stored before, is one `COPY` straight into `events`
    /// (the Postgres ceiling). When that meets a stored (execution, sequence) — a retry — the
    /// savepoint is rolled back and the batch goes through the staging table and
    /// `INSERT … ON CONFLICT DO NOTHING`, which keeps exactly the new rows.
    func store(_ org: OrganizationID, _ batch: [Incoming]) async throws -> BatchResult {
        // Repeats inside the batch are dropped here; the first occurrence wins, as in the table.
        var seen = Set<EventKey>(minimumCapacity: batch.count)
        let events = batch.filter { seen.insert(EventKey(execution: $0.executionID, sequence: $0.sequence)).inserted }
        guard !events.isEmpty else { return BatchResult() }
        let received = WallClock.nowMicros()
        var result = try await database.withTransaction { tx in
            try await tx.execute("SAVEPOINT direct_copy")
            do {
                try await tx.copyIn(into: "events", schema: "experiments", columns: Self.columns) { w in
                    try Self.write(events, received: received, into: &w)
                }
            } catch let error as DatabaseError where error.sqlState == "23505" {
                try await tx.execute("ROLLBACK TO SAVEPOINT direct_copy")
                return try await storeSkippingDuplicates(tx, org, events, received: received)
            }
            var added: [String: (count: Int64, top: Int64)] = [:]
            for e in events {
                let current = added[e.executionID] ?? (0, 0)
                added[e.executionID] = (current.count + 1, max(current.top, e.sequence))
            }
            let ids = Array(added.keys)
            try await tx.execute("""
                WITH u AS (SELECT * FROM unnest(\(ids)::text[], \(ids.map { String(added[$0]!.count) })::bigint[],
                                                \(ids.map { String(added[$0]!.top) })::bigint[]) AS u(id, added, top)),
                counted AS (UPDATE experiments.executions x SET events_received = x.events_received + u.added
                            FROM u WHERE x.org = \(org.rawValue) AND x.id = u.id RETURNING x.id)
                SELECT pg_notify(\(ExperimentSchema.channel), u.id || ':' || u.top) FROM u
                """)
            try await advanceContiguous(tx, org, ids)
            return BatchResult(accepted: Int64(events.count))
        }
        result.duplicates = Int64(batch.count) - result.accepted
        return result
    }

    private struct EventKey: Hashable {
        var execution: String
        var sequence: Int64
    }

    private static let columns = ["execution_id", "seq", "type", "occurred_us", "received_us", "activity_name", "payload"]

    private static func write(_ events: [Incoming], received: Int64, into w: inout CopyWriter) throws {
        for e in events {
            w.append(e.executionID)
            w.append(e.sequence)
            w.append(e.type)
            w.append(e.occurredAtUs)
            w.append(received)
            w.append(e.activityName)
            w.append(e.payload)
            try w.endRow()
        }
    }

    /// The retry path: COPY into a per-connection staging table, then keep what is new.
    private func storeSkippingDuplicates(_ tx: PostgresConnection, _ org: OrganizationID, _ events: [Incoming],
                                         received: Int64) async throws -> BatchResult {
        try await tx.execute("""
            CREATE TEMP TABLE IF NOT EXISTS event_staging (LIKE experiments.events) ON COMMIT DELETE ROWS
            """)
        try await tx.copyIn(into: "event_staging", columns: Self.columns) { w in
            try Self.write(events, received: received, into: &w)
        }
        // Per execution: how many rows were new and the highest sequence now stored; the
        // counters move in the same statement, so they never disagree with the rows.
        let rows = try await tx.query("""
            WITH inserted AS (
                INSERT INTO experiments.events SELECT * FROM event_staging
                ON CONFLICT (execution_id, seq) DO NOTHING
                RETURNING execution_id, seq
            ), per_execution AS (
                SELECT execution_id, count(*) AS added, max(seq) AS top FROM inserted GROUP BY execution_id
            ), counted AS (
                UPDATE experiments.executions x SET events_received = x.events_received + p.added
                FROM per_execution p WHERE x.org = \(org.rawValue) AND x.id = p.execution_id
                RETURNING x.id
            )
            SELECT p.execution_id, p.added, p.top, pg_notify(\(ExperimentSchema.channel), p.execution_id || ':' || p.top)
            FROM per_execution p
            """)
        var result = BatchResult()
        for row in rows { result.accepted += try row.decode(Int64.self, at: 1) }
        try await advanceContiguous(tx, org, try rows.map { try $0.decode(String.self, at: 0) })
        return result
    }

    /// Moves each execution's `contiguous_seq` past every event now stored right after it.
    private func advanceContiguous(_ tx: PostgresConnection, _ org: OrganizationID, _ ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await tx.execute("""
            UPDATE experiments.executions x SET contiguous_seq = (
                SELECT coalesce(min(s.seq), x.contiguous_seq) FROM (
                    SELECT seq, lead(seq) OVER (ORDER BY seq) AS next
                    FROM experiments.events WHERE execution_id = x.id AND seq > x.contiguous_seq
                ) s WHERE s.next IS NULL OR s.next <> s.seq + 1)
            WHERE x.org = \(org.rawValue) AND x.id = ANY(\(ids))
              AND EXISTS (SELECT 1 FROM experiments.events WHERE execution_id = x.id AND seq = x.contiguous_seq + 1)
            """)
    }

    /// Where an execution's events stand: the contiguous prefix and the first 100 holes above it.
    func progress(_ id: String) async throws -> ExperimentsV1.EventProgress {
        let rows = try await database.query("SELECT contiguous_seq FROM experiments.executions WHERE id = \(id)")
        let contiguous = try rows.first?.decode(Int64.self, at: 0) ?? 0
        let gaps = try await database.query("""
            SELECT seq + 1, next - 1 FROM (
                SELECT seq, lead(seq) OVER (ORDER BY seq) AS next FROM (
                    SELECT \(contiguous)::bigint AS seq
                    UNION ALL SELECT seq FROM experiments.events WHERE execution_id = \(id) AND seq > \(contiguous)
                ) known
            ) pairs WHERE next > seq + 1 ORDER BY seq LIMIT 100
            """)
        return ExperimentsV1.EventProgress(
            executionId: id, contiguousSequence: contiguous,
            gaps: try gaps.map { row in
                let (first, last) = try row.decode((Int64, Int64).self)
                return ExperimentsV1.SequenceGap(first: first, last: last)
            })
    }

    /// Events with a sequence above `after`, in order (the caller checked the organisation).
    func events(_ id: String, after: Int64, limit: Int) async throws -> [ExperimentsV1.ExecutionEvent] {
        let rows = try await database.query("""
            SELECT seq, type, occurred_us, received_us, payload::text, activity_name FROM experiments.events
            WHERE execution_id = \(id) AND seq > \(after) ORDER BY seq LIMIT \(limit)
            """)
        return try rows.map { row in
            let (seq, type, occurred, received, payload, activity) = try row.decode((Int64, String, Int64, Int64, String, String).self)
            return ExperimentsV1.ExecutionEvent(executionId: id, sequence: seq, type: type, occurredAtUs: occurred,
                                                receivedAtUs: received, payloadJson: payload, activityName: activity)
        }
    }
}
