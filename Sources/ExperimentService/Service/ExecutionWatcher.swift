import FaultlineProto
import FaultlineRPC
import ServiceKit

/// One WatchExecution stream. It reads from Postgres at its own pace (Postgres is the buffer),
/// so ingestion never waits for it. Events go out in sequence order, each once: while the run
/// goes on only the contiguous prefix is sent (a late event fills its gap before anything after
/// it is sent); once the run is terminal, everything stored is. A watcher that falls more than
/// `watchBacklogLimit` events behind what arrived since it started gets `resume_from` and the
/// stream ends.
struct ExecutionWatcher {
    let executions: ExecutionStore
    let events: EventStore
    let hub: WatchHub
    let configuration: ExperimentServiceConfiguration

    private struct SnapshotKey: Equatable {
        var state: Int32
        var userVersion: Int64
        init(_ x: ExperimentsV1.Execution) {
            state = x.state.rawValue
            userVersion = x.userState?.version ?? 0
        }
    }

    func watch(_ org: OrganizationID, _ id: String, after: Int64,
               into responses: RPCWriter<ExperimentsV1.WatchExecutionResponse>) async throws {
        // Subscribe before the first read, so no change after it goes unnoticed.
        let (subscription, signal) = hub.subscribe(id)
        defer { hub.unsubscribe(id, subscription) }
        guard var execution = try await executions.get(org, id) else { throw ExecutionStore.notFound }
        let baseline = execution.contiguousSequence
        try await responses.write(.init(item: .execution(execution)))
        var lastSnapshot = SnapshotKey(execution)
        var snapshotIsLast = true
        var sent = after
        var caughtUp = false
        while true {
            let terminal = ExecutionStatus(execution.state)?.isTerminal ?? false
            let limit = terminal ? Int64.max : execution.contiguousSequence
            while sent < limit {
                let page = try await events.events(id, after: sent, limit: configuration.watchPageSize)
                    .filter { $0.sequence <= limit }
                for event in page {
                    try await responses.write(.init(item: .event(event)))
                    sent = event.sequence
                    snapshotIsLast = false
                }
                if page.count < configuration.watchPageSize { break }
                // A full page: more may be waiting. Too far behind what arrived since the start?
                guard let now = try await executions.get(org, id) else { return }
                if now.contiguousSequence - max(sent, baseline) > configuration.watchBacklogLimit {
                    try await responses.write(.init(item: .resumeFrom(.init(afterSequence: sent))))
                    return
                }
            }
            if !caughtUp {
                try await responses.write(.init(item: .caughtUp(.init(sequence: sent))))
                caughtUp = true
            }
            let key = SnapshotKey(execution)
            if key != lastSnapshot || (terminal && !snapshotIsLast) {
                try await responses.write(.init(item: .execution(execution)))
                lastSnapshot = key
                snapshotIsLast = true
            }
            if terminal { return }
            await signal.wait(timeout: configuration.watchRecheckInterval)
            try Task.checkCancellation()
            // State first, then events: every event stored before a terminal state is read after it.
            guard let next = try await executions.get(org, id) else { return }  // deleted by retention
            execution = next
        }
    }
}
