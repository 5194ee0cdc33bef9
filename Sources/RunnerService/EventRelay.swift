import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Synchronization

/// Takes a run's control events (de-duplicated by seq), keeps every one in an on-disk spool file
/// and relays them to ExperimentService in batches, retrying while it is unreachable. Delivery is
/// idempotent on (execution, seq), so the whole spool can be replayed after a runner restart.
final class EventRelay: Sendable {
    static let batchSize = 500
    static let linger = Duration.milliseconds(50)

    private struct State {
        var highestSeq: Int64 = 0
        var pending: [ControlEvent] = []
        var pendingSizes: [Int] = []
        var pendingBytes = 0
        var relayed: Int64 = 0
        var dropped: Int64 = 0
        /// `\u0000` escapes replaced in the payloads sent (`NULEscapes`).
        var replacedNULs = 0
        var closed = false
        var wake: CheckedContinuation<Void, Never>?
        /// `linger` waiting for a close, which ends the linger at once.
        var closeWaiter: CheckedContinuation<Void, Never>?
    }

    let executionID: String
    private let organization: OrganizationID
    private let client: ExperimentsV1.ExperimentClient
    private let spool: FileHandle?
    private let limitBytes: Int
    private let logger: Logger
    private let state = Mutex(State())

    init(executionID: String, organization: OrganizationID, client: ExperimentsV1.ExperimentClient,
         spoolFile: URL, limitBytes: Int, logger: Logger) {
        self.executionID = executionID
        self.organization = organization
        self.client = client
        self.limitBytes = limitBytes
        self.logger = logger
        _ = FileManager.default.createFile(atPath: spoolFile.path, contents: nil, attributes: [.posixPermissions: 0o600])
        spool = try? FileHandle(forWritingTo: spoolFile)
        _ = try? spool?.seekToEnd()
    }

    var relayed: Int64 { state.withLock { $0.relayed } }
    var waiting: Int64 { state.withLock { Int64($0.pending.count) } }
    var highestSeq: Int64 { state.withLock { $0.highestSeq } }
    var replacedNULs: Int { state.withLock { $0.replacedNULs } }

    /// From the control socket: drops duplicates (seq ≤ highest accepted), spools the rest.
    func receive(_ event: ControlEvent) {
        let line = (try? JSONEncoder().encode(event)).map { $0 + Data("\n".utf8) }
        let wake = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard event.seq > state.highestSeq, !state.closed else { return nil }
            if event.seq > state.highestSeq + 1 {
                logger.warning("control events lost before reaching the runner",
                               metadata: ["from": "\(state.highestSeq + 1)", "to": "\(event.seq - 1)"])
            }
            state.highestSeq = event.seq
            let size = line?.count ?? 0
            guard state.pendingBytes + size <= limitBytes else {
                state.dropped += 1
                logger.error("event spool full; event dropped", metadata: ["seq": "\(event.seq)"])
                return nil
            }
            if let line { try? spool?.write(contentsOf: line) }
            state.pending.append(event)
            state.pendingSizes.append(size)
            state.pendingBytes += size
            defer { state.wake = nil }
            return state.wake
        }
        wake?.resume()
    }

    /// Delivers until closed and drained; retries failures with backoff for as long as the
    /// service may take them (`Delivery`).
    func deliver() async {
        while true {
            enum Next { case send([ControlEvent]), wait, done }
            let next = state.withLock { state -> Next in
                if !state.pending.isEmpty { return .send(Array(state.pending.prefix(Self.batchSize))) }
                return state.closed ? .done : .wait
            }
            let batch: [ControlEvent]
            switch next {
            case .done:
                return
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state -> Bool in
                        if !state.pending.isEmpty || state.closed { return true }
                        state.wake = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
                await linger()
                continue
            case .send(let events):
                batch = events
            }
            guard let refused = await deliver(batch[...]) else { return }
            state.withLock { state in
                state.pending.removeFirst(batch.count)
                state.pendingBytes -= state.pendingSizes.prefix(batch.count).reduce(0, +)
                state.pendingSizes.removeFirst(batch.count)
                state.relayed += Int64(batch.count - refused)
                state.dropped += Int64(refused)
            }
        }
    }

    /// Sends `batch` until delivered; how many of its events ExperimentService refused for good,
    /// nil when cancelled. INVALID_ARGUMENT (and a RESOURCE_EXHAUSTED that stayed: a size limit)
    /// is about an event's data or the batch's size: the batch is halved until
    /// the refused events are alone, and those are dropped, so each bad event costs about
    /// log2(batch) calls and every other event is kept (resending a half is safe: delivery is
    /// idempotent on (execution, seq)). Any other final answer (the execution is gone, the
    /// runner may not report it) holds for every event: the batch is dropped whole.
    private func deliver(_ batch: ArraySlice<ControlEvent>) async -> Int? {
        switch await Delivery.retrying("events", logger: logger, metadata: ["waiting": "\(batch.count)"], { try await send(batch) }) {
        case .delivered:
            return 0
        case .cancelled:
            return nil
        case .refused(let error) where batch.count == 1 || ![.invalidArgument, .resourceExhausted].contains(error.code):
            logger.error("ExperimentService refused events; dropped",
                         metadata: ["seq": "\(batch[batch.startIndex].seq)...\(batch[batch.endIndex - 1].seq)", "count": "\(batch.count)",
                                    "grpc.status": "\(error.code)", "error": "\(error.message)"])
            return batch.count
        case .refused:
            let middle = batch.startIndex + batch.count / 2
            guard let first = await deliver(batch[..<middle]), let second = await deliver(batch[middle...]) else { return nil }
            return first + second
        }
    }

    /// Coalesces: a run's events come in bursts, and one ReportEvents call per event would
    /// compete with `chaos` for CPU. A close ends the wait at once: the run's end (and with it
    /// CompleteExecution) never waits for a linger.
    private func linger() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: Self.linger) }
            group.addTask { await self.waitForClose() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForClose() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    // Checked under the lock the cancellation handler takes too: no lost wake-up.
                    if state.closed || Task.isCancelled { return true }
                    state.closeWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.closeWaiter = nil }
                return state.closeWaiter
            }?.resume()
        }
    }

    /// No more events will come: `deliver` returns once the rest is delivered.
    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            defer {
                state.wake = nil
                state.closeWaiter = nil
            }
            return [state.wake, state.closeWaiter].compactMap { $0 }
        }
        waiters.forEach { $0.resume() }
        try? spool?.close()
    }

    private func send(_ batch: ArraySlice<ControlEvent>) async throws {
        var replaced = 0
        let request = ExperimentsV1.ReportEventsRequest(events: batch.map { event in
            // Postgres cannot store U+0000 (an activity's output can hold it); the spool keeps it.
            let payload = NULEscapes.replaced(in: event.payloadJSON)
            replaced += payload.count
            return ExperimentsV1.ExecutionEvent(executionId: executionID, sequence: event.seq, type: event.type,
                                                occurredAtUs: event.tsUs, payloadJson: payload.text,
                                                activityName: event.activityName)
        })
        _ = try await client.reportEvents(options: .on(behalfOf: organization, timeout: .seconds(10))) { writer in
            try await writer.write(request)
        }
        state.withLock { $0.replacedNULs += replaced }
    }

    /// Replays a spool file left by a previous runner process.
    static func replay(spoolFile: URL, executionID: String, organization: OrganizationID,
                       client: ExperimentsV1.ExperimentClient, logger: Logger) async {
        guard let data = try? Data(contentsOf: spoolFile), !data.isEmpty else { return }
        let relay = EventRelay(executionID: executionID, organization: organization, client: client,
                               spoolFile: spoolFile.appendingPathExtension("replay"), limitBytes: .max, logger: logger)
        for line in data.split(separator: UInt8(ascii: "\n")) {
            // A line cut short by the crash is skipped; its event is lost with the process.
            if let event = try? JSONDecoder().decode(ControlEvent.self, from: line) { relay.receive(event) }
        }
        relay.close()
        await relay.deliver()
        Delivery.noticeReplacedNULs(["execution": "\(executionID)", "events": "\(relay.replacedNULs)"], total: relay.replacedNULs, logger: logger)
        try? FileManager.default.removeItem(at: spoolFile.appendingPathExtension("replay"))
    }
}
