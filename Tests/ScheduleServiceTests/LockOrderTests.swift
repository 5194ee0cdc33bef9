import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Synchronization
import Testing
@testable import ScheduleService

/// Two replicas, one runner declared lost while the other replica takes up a claim that expired
/// on it. Before the lock order was fixed, one held the run and waited for the runner, the other
/// held the runner and waited for the run, and Postgres broke the deadlock by failing a pass.
@Suite(.serialized) struct LockOrderTests {
    /// How the runner is declared lost: its lease ran out (a replica's sweep), or it restarted
    /// (RegisterRunner with its id, which waits for the runner's row rather than skipping it).
    enum Loss: String, CaseIterable, Sendable { case leaseRanOut, restarted }

    @Test(arguments: Loss.allCases)
    func aRunnerDeclaredLostWhileAnotherReplicaTakesUpItsExpiredClaimDoesNotDeadlock(_ loss: Loss) async throws {
        try await Platform.with(database: "sched_lock_order", replicas: 2, configure: { $0.lease = .seconds(15) }) { p in
            let dying = StandInRunner()
            let busy = StandInRunner()
            let dyingAddress = try await dying.serve()
            try await p.register(dyingAddress, id: "r-dying")  // 10:00:30, lease to 10:00:45
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"))
            let run = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            // A replica claimed the run for r-dying and died before StartRun; its claim ran out.
            try await p.database.execute("""
                UPDATE schedules.plan_runs SET runner_id = 'r-dying', claim_until_us = \(p.clock.now().micros) WHERE id = \(run.id)
                """)
            p.clock.set(utc("2026-06-01T10:00:40Z"))
            try await p.register(try await busy.serve(), id: "a-busy")  // lease to 10:00:55

            // A heartbeat of a-busy in progress holds its row: whoever needs it waits there.
            let (locked, lockedSignal) = AsyncStream.makeStream(of: Void.self)
            let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
            let holder = Task {
                try await p.database.withTransaction { tx in
                    try await tx.execute("SELECT 1 FROM schedules.runners WHERE id = 'a-busy' FOR UPDATE")
                    lockedSignal.yield()
                    for await _ in release { break }
                }
            }
            for await _ in locked { break }

            // Replica 0 at 10:00:40 (r-dying still live): takes up the expired claim, waits for a-busy.
            let claimer = Task { try await p.replicas[0].dispatchOnce() }
            try await waitForLockWaiters(1, p.database)
            // The loser either queues up behind a lock too (with the old order: for the run the
            // claiming replica holds), or gets through.
            let finished = Mutex(false)
            let loser: Task<Void, any Error>
            switch loss {
            case .leaseRanOut:
                // Replica 1 at 10:00:50: r-dying's lease ran out, it is declared lost with its runs.
                p.clock.set(utc("2026-06-01T10:00:50Z"))
                loser = Task {
                    defer { finished.withLock { $0 = true } }
                    _ = try await p.replicas[1].dispatchOnce()
                }
            case .restarted:
                // r-dying restarts and registers again through replica 1: what it held is lost.
                let client = p.clients[1]
                loser = Task {
                    defer { finished.withLock { $0 = true } }
                    _ = try await client.registerRunner(.init(runnerId: "r-dying", name: "r-dying", address: dyingAddress, capacity: 100),
                                                        options: Platform.runnerOptions)
                }
            }
            try await waitForLockWaiters(2, p.database) { finished.withLock { $0 } }
            releaseSignal.finish()
            try await holder.value

            if case .failure(let error) = await claimer.result { Issue.record("the claiming replica's pass failed: \(error)") }
            if case .failure(let error) = await loser.result { Issue.record("declaring r-dying lost failed: \(error)") }
            let dyingNow = try #require(try await p.schedule.getRunner(.init(runnerId: "r-dying"), options: Platform.options()).runner)
            #expect(dyingNow.state == (loss == .leaseRanOut ? .lost : .active))
            // The run was started once, on a live runner.
            try await p.dispatch()
            let started = busy.started + dying.started
            #expect(started.map(\.requestId) == [run.id])
            let final = try #require(try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run)
            #expect(final.state == .dispatched && !final.runnerId.isEmpty)
            if loss == .leaseRanOut { #expect(final.runnerId == "a-busy") }
            await dying.stop()
            await busy.stop()
        }
    }
}

/// Waits (polling, no assertion on time) until `count` backends of this database wait for a lock,
/// or `done` holds.
func waitForLockWaiters(_ count: Int, _ database: PostgresClient, sourceLocation: SourceLocation = #_sourceLocation,
                        or done: () -> Bool = { false }) async throws {
    for _ in 0..<1200 {
        if done() { return }
        let rows = try await database.query("""
            SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
            """)
        if try rows[0].decode(Int64.self, at: 0) >= count { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("never saw \(count) backends waiting for a lock", sourceLocation: sourceLocation)
}
