import Synchronization

/// The hand-off between the task reading a ReportEvents stream and the task writing to Postgres:
/// while one transaction commits, the next messages gather here and go out together (group
/// commit), so batches grow with the load. Bounded in events: a client faster than Postgres
/// waits in `push`, which stops reading its stream (HTTP/2 flow control does the rest).
final class IngestQueue: Sendable {
    private struct State {
        var queued: [EventStore.Incoming] = []
        var finished = false
        var failure: (any Error)?
        var taker: CheckedContinuation<Void, Never>?
        var pushers: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Queues a checked batch; waits while the queue is full; throws once the writer failed.
    func push(_ batch: [EventStore.Incoming]) async throws {
        while true {
            let (full, failure): (Bool, (any Error)?) = state.withLock { ($0.queued.count >= capacity, $0.failure) }
            if let failure { throw failure }
            if !full { break }
            await withCheckedContinuation { continuation in
                let wait: Bool = state.withLock { s in
                    guard s.queued.count >= capacity, s.failure == nil else { return false }
                    s.pushers.append(continuation)
                    return true
                }
                if !wait { continuation.resume() }
            }
        }
        let taker: CheckedContinuation<Void, Never>? = state.withLock { s in
            s.queued.append(contentsOf: batch)
            defer { s.taker = nil }
            return s.taker
        }
        taker?.resume()
    }

    /// No more batches.
    func finish() {
        let taker: CheckedContinuation<Void, Never>? = state.withLock { s in
            s.finished = true
            defer { s.taker = nil }
            return s.taker
        }
        taker?.resume()
    }

    /// The writer failed: pushers get the error.
    func fail(_ error: any Error) {
        let pushers: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.failure = s.failure ?? error
            defer { s.pushers = [] }
            return s.pushers
        }
        for pusher in pushers { pusher.resume() }
    }

    /// Up to `limit` queued events, waiting for some; nil once finished and drained.
    func take(limit: Int) async -> [EventStore.Incoming]? {
        while true {
            let result: [EventStore.Incoming]?? = state.withLock { s in
                if !s.queued.isEmpty {
                    let count = min(limit, s.queued.count)
                    let batch = Array(s.queued.prefix(count))
                    s.queued.removeFirst(count)
                    return .some(batch)
                }
                return s.finished ? .some(nil) : nil
            }
            if let result {
                let pushers: [CheckedContinuation<Void, Never>] = state.withLock { s in
                    defer { s.pushers = [] }
                    return s.pushers
                }
                for pusher in pushers { pusher.resume() }
                return result
            }
            await withCheckedContinuation { continuation in
                let ready: Bool = state.withLock { s in
                    if !s.queued.isEmpty || s.finished { return true }
                    s.taker = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}
