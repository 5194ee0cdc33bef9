import NIOCore

/// The pool's bookkeeping as a value: each input returns what to do, and no I/O happens here.
/// Waiters are served strictly first come, first served.
struct PoolState<Connection: AnyObject, Waiter> {
    let capacity: Int
    private(set) var idle: [Connection] = []
    private(set) var all: [Connection] = []
    private(set) var waiters = CircularBuffer<(id: Int, waiter: Waiter)>()
    private(set) var isClosed = false
    private var nextWaiterID = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    enum CheckoutAction {
        case use(Connection)
        /// Wait; the id identifies the waiter for a timeout or cancellation.
        case wait(id: Int)
        case closed
    }

    /// A checkout that could not be served at once is queued behind earlier ones, even if a
    /// connection is idle at that moment: fairness is the contract.
    /// `make` runs when there is room for one more connection (it opens nothing yet).
    mutating func checkout(waiter: Waiter, make: () -> Connection) -> CheckoutAction {
        if isClosed { return .closed }
        if waiters.isEmpty, let connection = idle.popLast() { return .use(connection) }
        if waiters.isEmpty, all.count < capacity {
            let connection = make()
            all.append(connection)
            return .use(connection)
        }
        nextWaiterID += 1
        waiters.append((nextWaiterID, waiter))
        return .wait(id: nextWaiterID)
    }

    enum ReleaseAction {
        case handOver(Connection, to: Waiter)
        case keep
        case close(Connection)
    }

    mutating func release(_ connection: Connection) -> ReleaseAction {
        if isClosed {
            all.removeAll { $0 === connection }
            return .close(connection)
        }
        if let next = waiters.popFirst() { return .handOver(connection, to: next.waiter) }
        idle.append(connection)
        return .keep
    }

    /// The waiter gave up (timeout or cancellation); nil if it was served meanwhile.
    mutating func removeWaiter(id: Int) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).waiter
    }

    /// Closes the pool: idle connections to close now, waiters to fail. Leased ones close on release.
    mutating func close() -> (idle: [Connection], waiters: [Waiter]) {
        isClosed = true
        let closing = idle
        all.removeAll { connection in closing.contains { $0 === connection } }
        idle = []
        let failed = waiters.map(\.waiter)
        waiters.removeAll()
        return (closing, failed)
    }
}
