import FaultlinePostgres
import FaultlineProto
import Foundation
import ServiceKit
import Testing
@testable import ScheduleService

/// The retention of SKIPPED plan runs, through real replicas on a real Postgres, with the clock
/// moved by hand.
@Suite(.serialized) struct ScheduleRetentionTests {
    static let day: Int64 = 86_400_000_000

    /// Inserts `count` plan runs of one plan: occurrences (and due times) one minute apart from
    /// `due`, all recorded at `created`.
    static func insert(_ database: PostgresClient, org: String = Platform.org.rawValue, plan: String, state: SchedulesV1.PlanRunState,
                       count: Int = 1, due: Int64, created: Int64, trigger: SchedulesV1.PlanRunTrigger = .schedule,
                       execution: String = "") async throws {
        try await database.execute("""
            INSERT INTO schedules.plan_runs (org, id, plan_id, experiment_id, options, state, trigger, occurrence_us, due_us,
                not_before_us, created_us, execution_id)
            SELECT \(org), 'run_' || \(plan) || '_' || \(Int64(state.rawValue)) || '_' || (\(due) + k * 60000000), \(plan), 'exp_x',
                '\\x'::bytea, \(state.rawValue), \(trigger.rawValue), \(due) + k * 60000000, \(due) + k * 60000000,
                \(due) + k * 60000000, \(created), \(execution)
            FROM generate_series(0, \(count - 1)) AS k
            """)
    }

    static func states(_ database: PostgresClient, plan: String) async throws -> [Int32] {
        try await database.query("SELECT state FROM schedules.plan_runs WHERE plan_id = \(plan) ORDER BY due_us, id")
            .map { try $0.decode(Int32.self, at: 0) }
    }

    static func count(_ database: PostgresClient, _ condition: SQL = "true") async throws -> Int64 {
        try await database.query("SELECT count(*) FROM schedules.plan_runs WHERE \(condition)")[0].decode(Int64.self, at: 0)
    }

    /// Real SKIPPED runs of a plan closed outside its window: after the retention age they go,
    /// the run that is still open stays, and runs recorded within the age stay.
    @Test func oldSkippedRunsAreDeletedAndRecentOnesKept() async throws {
        try await Platform.with(database: "sched_retention_real") { p in
            let plan = try await p.createPlan(Platform.spec())
            // Down from 10:00:30 to 12:30:30: 100 listed skips, a summary, and the 12:30 run.
            p.clock.set(utc("2026-06-01T12:30:30Z"))
            try await p.dispatch()
            let recorded = try await p.runs(plan.id)
            #expect(recorded.count == 102 && recorded.filter { $0.state == .skipped }.count == 101)
            // 29 days later nothing is old enough.
            p.clock.advance(by: 29 * 86_400)
            #expect(try await p.replicas[0].pruneOnce() == 0)
            // 30 days and a second later all 101 are; the open run is not SKIPPED.
            p.clock.set(utc("2026-07-01T12:30:31Z"))
            #expect(try await p.replicas[0].pruneOnce() == 101)
            let left = try await p.runs(plan.id)
            #expect(left.map(\.id) == [recorded[0].id] && [.pending, .queued].contains(left[0].state))
            #expect(try await p.replicas[0].pruneOnce() == 0)
        }
    }

    @Test func keepsTheLatestRunOtherStatesRunsOfNoPlanAndRunsWithAnExecution() async throws {
        try await Platform.with(database: "sched_retention_keeps") { p in
            let now = p.clock.now().micros
            let old = now - 40 * Self.day
            // Only SKIPPED runs: the latest of them stays.
            try await Self.insert(p.database, plan: "plan_only_skipped", state: .skipped, count: 5, due: old, created: old)
            // Every terminal state, old, and an old SKIPPED run after them: the SKIPPED one is the
            // latest and stays; the others are not SKIPPED.
            for (offset, state) in [SchedulesV1.PlanRunState.ended, .cancelled, .lost, .failed].enumerated() {
                try await Self.insert(p.database, plan: "plan_states", state: state, due: old + Int64(offset) * 60_000_000, created: old)
            }
            try await Self.insert(p.database, plan: "plan_states", state: .skipped, due: old + 3_600_000_000, created: old)
            // Old SKIPPED runs before a recent latest SKIPPED one: the old go.
            try await Self.insert(p.database, plan: "plan_mixed", state: .skipped, count: 3, due: old, created: old)
            try await Self.insert(p.database, plan: "plan_mixed", state: .skipped, due: now, created: now)
            // Due late but recorded long ago: recorded time counts, and the later DISPATCHED run is
            // the latest, so the old SKIPPED one before it goes.
            try await Self.insert(p.database, plan: "plan_recent_due", state: .skipped, due: now - Self.day, created: old)
            try await Self.insert(p.database, plan: "plan_recent_due", state: .dispatched, due: now, created: now)
            // Recorded within the age: stays.
            try await Self.insert(p.database, plan: "plan_recent", state: .skipped, count: 3, due: now - 29 * Self.day,
                                  created: now - 29 * Self.day)
            // RunExperiment while halted (no plan), and a SKIPPED run carrying an execution: stay.
            try await Self.insert(p.database, plan: "", state: .skipped, count: 2, due: old, created: old, trigger: .manual)
            try await Self.insert(p.database, plan: "plan_execution", state: .skipped, due: old, created: old,
                                  execution: "exe_referenced")
            try await Self.insert(p.database, plan: "plan_execution", state: .ended, due: now, created: now)
            // Another organisation's plan of the same id is not "a later run".
            try await Self.insert(p.database, org: "org-b", plan: "plan_only_skipped", state: .skipped, due: now, created: now)

            #expect(try await p.replicas[0].pruneOnce() == 4 + 3 + 1)
            let skipped = SchedulesV1.PlanRunState.skipped.rawValue
            #expect(try await Self.states(p.database, plan: "plan_only_skipped") == [skipped, skipped])  // one per org
            #expect(try await Self.states(p.database, plan: "plan_states") == [4, 6, 7, 8, skipped])
            #expect(try await Self.states(p.database, plan: "plan_mixed") == [skipped])
            #expect(try await Self.states(p.database, plan: "plan_recent_due") == [SchedulesV1.PlanRunState.dispatched.rawValue])
            #expect(try await Self.states(p.database, plan: "plan_recent").count == 3)
            #expect(try await Self.states(p.database, plan: "").count == 2)
            #expect(try await Self.states(p.database, plan: "plan_execution") == [skipped, 4])
            #expect(try await p.replicas[0].pruneOnce() == 0)
        }
    }

    @Test func deletesInBatchesOfTheConfiguredSize() async throws {
        try await Platform.with(database: "sched_retention_batches", configure: { $0.pruneBatchSize = 1_000 }) { p in
            let old = p.clock.now().micros - 31 * Self.day
            try await Self.insert(p.database, plan: "plan_busy", state: .skipped, count: 2_501, due: old, created: old)
            var batches: [Int] = []
            while true {
                let pruned = try await p.replicas[0].pruneOnce()
                batches.append(pruned)
                if pruned == 0 { break }
            }
            #expect(batches == [1_000, 1_000, 500, 0])
            #expect(try await Self.count(p.database) == 1)
            #expect(try await Self.count(p.database, "due_us = \(old + 2_500 * 60_000_000)") == 1, "the latest stays")
        }
    }

    @Test func offKeepsEverything() async throws {
        try await Platform.with(database: "sched_retention_off", configure: { $0.skippedRetention = nil }) { p in
            let old = p.clock.now().micros - 400 * Self.day
            try await Self.insert(p.database, plan: "plan_old", state: .skipped, count: 10, due: old, created: old)
            #expect(try await p.replicas[0].pruneOnce() == 0)
            #expect(try await Self.count(p.database) == 10)
        }
    }

    @Test func aShorterAgeFromConfiguration() async throws {
        try await Platform.with(database: "sched_retention_hours", configure: { $0.skippedRetention = .seconds(12 * 3600) }) { p in
            let now = p.clock.now().micros
            try await Self.insert(p.database, plan: "plan_h", state: .skipped, count: 3, due: now - 13 * 3_600_000_000,
                                  created: now - 13 * 3_600_000_000)
            try await Self.insert(p.database, plan: "plan_h", state: .skipped, count: 3, due: now - 11 * 3_600_000_000,
                                  created: now - 11 * 3_600_000_000)
            #expect(try await p.replicas[0].pruneOnce() == 3)
            #expect(try await Self.count(p.database) == 3)
        }
    }

    /// Two replicas prune the same backlog at once while both fire and record new SKIPPED runs for
    /// the same plans: no error (no deadlock, no serialization failure), every old run deleted
    /// exactly once, the new history and each plan's latest run intact.
    @Test func twoReplicasPruneAtOnceWhileDispatching() async throws {
        try await Platform.with(database: "sched_retention_replicas", replicas: 2, configure: { $0.pruneBatchSize = 200 }) { p in
            var plans: [String] = []
            for i in 0..<8 { plans.append(try await p.createPlan(Platform.spec(name: "plan \(i)")).id) }
            let old = p.clock.now().micros - 60 * Self.day
            for plan in plans {
                try await Self.insert(p.database, plan: plan, state: .skipped, count: 500, due: old, created: old)
            }
            let backlog = Int64(plans.count * 500)
            // Two hours and a half later the plans skip again (missed), while the old runs are pruned.
            p.clock.set(utc("2026-06-01T12:30:30Z"))
            async let dispatched = p.dispatch()
            let pruned = try await withThrowingTaskGroup(of: Int.self) { group in
                for replica in p.replicas {
                    group.addTask {
                        var total = 0
                        while true {
                            let batch = try await replica.pruneOnce()
                            total += batch
                            if batch == 0 { return total }
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            let pass = try await dispatched
            #expect(pass.fired == plans.count)
            #expect(Int64(pruned) <= backlog)
            // A replica's loop may have stopped on an empty batch while the other held the rest
            // locked, or while a plan's newest run was still an old one (kept as its latest until the
            // 12:30 run landed): those go in the passes after.
            var after = 0
            for replica in p.replicas {
                while case let batch = try await replica.pruneOnce(), batch > 0 { after += batch }
            }
            for replica in p.replicas { #expect(try await replica.pruneOnce() == 0) }
            #expect(try await Self.count(p.database, "created_us = \(old)") == 0)
            #expect(Int64(pruned + after) == backlog, "each old run deleted once, by one replica")
            for plan in plans {
                let runs = try await p.runs(plan)
                #expect(runs.count == 102 && runs.filter { $0.state == .skipped }.count == 101)
            }
        }
    }

    /// The loop's timing, by the clock: every interval while there is little to do, at once while
    /// batches come back full, at once after the clock stepped back.
    @Test func pruneTimer() {
        let start = utc("2026-06-01T10:00:00Z")
        var timer = PruneTimer(interval: .seconds(60), batchSize: 1_000, next: start)
        #expect(timer.isDue(start))
        timer.pruned(12, at: start)
        #expect(!timer.isDue(start.addingTimeInterval(59)))
        #expect(timer.isDue(start.addingTimeInterval(60)))
        timer.pruned(1_000, at: start.addingTimeInterval(60))
        #expect(timer.isDue(start.addingTimeInterval(60)), "a full batch: more is left")
        timer.pruned(0, at: start.addingTimeInterval(60))
        #expect(!timer.isDue(start.addingTimeInterval(119)) && !timer.isDue(start.addingTimeInterval(60)))
        #expect(timer.isDue(start.addingTimeInterval(-1)), "the clock stepped back past the interval")
    }

    @Test(arguments: [
        ("30d", Duration?.some(.seconds(30 * 86_400))), ("1d", .seconds(86_400)), ("12h", .seconds(12 * 3600)), ("1h", .seconds(3600)),
        ("3650d", .seconds(3650 * 86_400)), ("87600h", .seconds(87_600 * 3600)), ("0", nil), ("off", nil),
    ])
    func retentionValues(text: String, expected: Duration?) throws {
        #expect(try SkippedRetention.parse(text) == expected)
    }

    static let hostile = [
        "", " ", "d", "h", "30", "00", "0d", "0h", "030d", "30 d", " 30d", "30d ", "30d\n", "30d\0", "\t30d", "+30d", "-1d", "1.5d",
        "1e3d", "0x1Ed", "30D", "30H", "30m", "30s", "1w", "30dd", "30dh", "OFF", "Off", "none", "never", "false", "3651d", "87601h",
        "9999999d", "99999999999999999999d", "３０d", "٣٠d", "30ｄ", "30d\u{1B}[31m", "30\u{301}d", String(repeating: "9", count: 300) + "d",
    ]

    @Test(arguments: hostile)
    func malformedRetentionIsRefusedNamingTheVariable(text: String) {
        do {
            let parsed = try SkippedRetention.parse(text)
            Issue.record("'\(text.debugDescription)' was accepted as \(String(describing: parsed))")
        } catch {
            #expect(error.description.contains("FAULTLINE_SCHEDULE_SKIPPED_RETENTION"))
            #expect(error.description.count < 300, "a huge value is clipped")
            #expect(!error.description.unicodeScalars.contains { $0.properties.generalCategory == .control })
        }
    }
}
