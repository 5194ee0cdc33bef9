import FaultlinePostgres
import Logging
import Synchronization

/// Fans `NOTIFY`s out to the watchers of this replica. One listening connection per replica;
/// a notification only wakes the watchers of its execution, which then re-query Postgres, so a
/// missed or coalesced notification costs latency, never an event. Waking never blocks: a
/// watcher's wake-up is one flag, however many notifications arrive before it looks.
final class WatchHub: Sendable {
    private let watchers = Mutex<[String: [Int: WakeSignal]]>([:])
    private let nextID = Atomic<Int>(0)

    func subscribe(_ executionID: String) -> (id: Int, signal: WakeSignal) {
        let signal = WakeSignal()
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        watchers.withLock { $0[executionID, default: [:]][id] = signal }
        return (id, signal)
    }

    func unsubscribe(_ executionID: String, _ id: Int) {
        watchers.withLock { all in
            all[executionID]?[id] = nil
            if all[executionID]?.isEmpty == true { all[executionID] = nil }
        }
    }

    func wake(_ executionID: String) {
        for signal in watchers.withLock({ Array(($0[executionID] ?? [:]).values) }) { signal.fire() }
    }

    func wakeAll() {
        for signal in watchers.withLock({ $0.values.flatMap(\.values) }) { signal.fire() }
    }

    /// Listens until cancelled, reconnecting after failures (and waking everyone then, since
    /// notifications sent meanwhile are lost).
    func run(database: PostgresClient, logger: Logger) async {
        while !Task.isCancelled {
            do {
                try await database.listen(to: [ExperimentSchema.channel]) { notifications in
                    wakeAll()
                    for await notification in notifications {
                        let id = notification.payload.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
                        wake(id)
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("event notifications interrupted; reconnecting", metadata: ["error": "\(error)"])
            }
            wakeAll()
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// A level-triggered, coalescing wake-up for one waiting task.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func fire() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            if let w = s.waiter { s.waiter = nil; return w }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns once fired (now or earlier) or after `timeout`, whichever comes first.
    func wait(timeout: Duration) async {
        if state.withLock({ s in defer { s.pending = false }; return s.pending }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForFire() }
            await group.next()
            group.cancelAll()
            self.fire()  // release the other child if it is the waiter
        }
        state.withLock { $0.pending = false }
    }

    private func waitForFire() async {
        await withCheckedContinuation { continuation in
            let fired: Bool = state.withLock { s in
                if s.pending { s.pending = false; return true }
                s.waiter = continuation
                return false
            }
            if fired { continuation.resume() }
        }
    }
}
