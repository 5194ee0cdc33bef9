import Testing
@testable import FaultlinePostgres

@Suite struct PoolStateTests {
    final class Conn {}

    @Test func servesWaitersFirstComeFirstServed() throws {
        var pool = PoolState<Conn, String>(capacity: 2)
        guard case .use(let a) = pool.checkout(waiter: "a", make: Conn.init),
              case .use(let b) = pool.checkout(waiter: "b", make: Conn.init) else { Issue.record("expected two connections"); return }
        #expect(a !== b)
        guard case .wait(let c) = pool.checkout(waiter: "c", make: Conn.init),
              case .wait = pool.checkout(waiter: "d", make: Conn.init) else { Issue.record("expected waits"); return }
        #expect(pool.all.count == 2)
        guard case .handOver(let first, to: "c") = pool.release(a) else { Issue.record("c is first in line"); return }
        #expect(first === a)
        #expect(pool.removeWaiter(id: c) == nil)  // already served: a late timeout does nothing
        guard case .handOver(_, to: "d") = pool.release(b) else { Issue.record("d is next"); return }
        guard case .keep = pool.release(a) else { Issue.record("nobody waits"); return }
        guard case .use(let reused) = pool.checkout(waiter: "e", make: Conn.init) else { Issue.record("idle connection reused"); return }
        #expect(reused === a)
        #expect(pool.all.count == 2)
    }

    @Test func timedOutWaitersLeaveTheQueueAndCloseFailsTheRest() {
        var pool = PoolState<Conn, String>(capacity: 1)
        guard case .use(let a) = pool.checkout(waiter: "a", make: Conn.init),
              case .wait(let b) = pool.checkout(waiter: "b", make: Conn.init),
              case .wait = pool.checkout(waiter: "c", make: Conn.init) else { Issue.record("setup"); return }
        #expect(pool.removeWaiter(id: b) == "b")
        #expect(pool.removeWaiter(id: b) == nil)
        let (idle, waiters) = pool.close()
        #expect(idle.isEmpty)
        #expect(waiters == ["c"])
        guard case .close(let closing) = pool.release(a) else { Issue.record("leased connection closes on release"); return }
        #expect(closing === a)
        guard case .closed = pool.checkout(waiter: "d", make: Conn.init) else { Issue.record("closed pool"); return }
        #expect(pool.all.isEmpty)
    }
}
