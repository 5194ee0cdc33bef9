internal import CLibPQ
import Synchronization

/// One connection's `PGcancel` object, which `PQcancel` may use from any thread. The mutex keeps
/// it from being freed (on reconnect) while another thread sends a cancel through it, and the
/// generation makes sure a late cancel never hits the statement after the one it was meant for.
final class CancelHandle: Sendable {
    /// libpq documents `PQcancel` as safe from any thread (even a signal handler); the mutex
    /// below serialises it against `PQfreeCancel`.
    private struct CancelObject: @unchecked Sendable { let raw: OpaquePointer }
    private struct State {
        var raw: CancelObject?
        var generation: UInt64 = 0
        var running: UInt64?
    }
    private let state = Mutex(State())

    func install(from connection: OpaquePointer) {
        let fresh = PQgetCancel(connection).map(CancelObject.init)
        state.withLock { s in
            if let old = s.raw { PQfreeCancel(old.raw) }
            s.raw = fresh
        }
    }

    func remove() {
        state.withLock { s in
            if let old = s.raw { PQfreeCancel(old.raw) }
            s.raw = nil
        }
    }

    /// Marks a statement as sent; returns its generation.
    func begin() -> UInt64 {
        state.withLock { s in
            s.generation += 1
            s.running = s.generation
            return s.generation
        }
    }

    func end() { state.withLock { $0.running = nil } }

    /// Asks the server to cancel statement `generation` if it is still the one running.
    func cancel(generation: UInt64) {
        state.withLock { s in
            guard s.running == generation, let raw = s.raw else { return }
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(raw.raw, &buffer, Int32(buffer.count))  // best effort: the statement may just have ended
        }
    }

    deinit { remove() }
}

/// The cancellation of one statement, created by the calling task before it hops to the
/// connection's thread: the task's cancellation handler may fire before, during or after the
/// statement runs, and each case must do the right thing.
final class QueryCancellation: Sendable {
    private struct State {
        var requested = false
        var attached: (handle: CancelHandle, generation: UInt64)?
    }
    private let state = Mutex(State())

    /// From the task's cancellation handler.
    func request() {
        let target = state.withLock { s in
            s.requested = true
            return s.attached
        }
        target.map { $0.handle.cancel(generation: $0.generation) }
    }

    var isRequested: Bool { state.withLock { $0.requested } }

    /// From the connection's thread once the statement is sent: a request that came before is
    /// carried out now.
    func attach(_ handle: CancelHandle, generation: UInt64) {
        let requested = state.withLock { s in
            s.attached = (handle, generation)
            return s.requested
        }
        if requested { handle.cancel(generation: generation) }
    }

    func detach() { state.withLock { $0.attached = nil } }
}
