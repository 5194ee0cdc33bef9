import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import ScheduleService

/// Skipped occurrences as durable SKIPPED plan runs, through real replicas on a real Postgres.
@Suite(.serialized) struct SkipRecordTests {
    @Test func maxInFlightQueuesOneRoundThenSkips() async throws {
        try await Platform.with(database: "sched_skip_queue") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec { $0.concurrencyPolicy = .allow; $0.maxInFlight = 1 })
            for minute in 1...4 {
                p.clock.set(utc("2026-06-01T10:0\(minute):00Z"))
                try await p.dispatch()
            }
            let runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.skipped, .skipped, .queued, .dispatched])
            #expect(runs[0].reason == SkipText.queueFull(1) && runs[1].reason == SkipText.queueFull(1))
            #expect(runner.started.count == 1)
            await runner.stop()
        }
    }

    /// Two replicas decide 40 plans after a 150-minute outage at the same time: each missed
    /// occurrence is recorded once (100 one by one and one summary per plan), never twice, and
    /// the one occurrence still on time runs.
    @Test func twoReplicasRecordEachSkippedOccurrenceOnce() async throws {
        try await Platform.with(database: "sched_skip_replicas", replicas: 2, configure: { $0.batchSize = 7 }) { p in
            let store = PlanStore(database: p.database)
            var ids: [String] = []
            for i in 0..<40 {
                let definition = try PlanDefinition(Platform.spec(name: "plan \(i)"), activeSince: p.clock.now())
                ids.append(try await store.create(Platform.org, definition, paused: false, requestID: "", actor: .init(), now: p.clock.now()).id)
            }
            // Down from 10:00:30 to 12:30:30: 10:01 through 12:29 are missed (149 each); 12:30 is on time.
            p.clock.set(utc("2026-06-01T12:30:30Z"))
            let pass = try await p.dispatch()
            #expect(pass.fired == 40, "each plan decided once, by one replica")
            let rows = try await p.database.query("""
                SELECT count(*), count(DISTINCT (plan_id, occurrence_us)), count(DISTINCT plan_id),
                    count(*) FILTER (WHERE reason LIKE '%not recorded one by one%')
                FROM schedules.plan_runs WHERE state = 5
                """)
            let (total, distinct, plans, summaries) = try rows[0].decode((Int64, Int64, Int64, Int64).self)
            #expect(total == 40 * 101 && distinct == total && plans == 40 && summaries == 40)
            let history = try await p.runs(ids[0])
            #expect(history.count == 102)
            // Open (no runner is registered): PENDING, or QUEUED once a claim pass has looked at it.
            #expect([.pending, .queued].contains(history.first?.state) && history.first?.dueAtUs == utc("2026-06-01T12:30:00Z").micros)
            #expect(history[1].state == .skipped && history[1].dueAtUs == utc("2026-06-01T12:29:00Z").micros)
            let summary = try #require(history.last)
            #expect(summary.dueAtUs == utc("2026-06-01T10:01:00Z").micros)
            #expect(summary.reason.hasPrefix("49 earlier occurrences from 2026-06-01T10:01:00Z to 2026-06-01T10:49:00Z"))

            // Both replicas again, a minute later: one on-time run each, nothing recorded again.
            p.clock.set(utc("2026-06-01T12:31:00Z"))
            try await p.dispatch()
            let after = try await p.database.query("SELECT count(*), count(DISTINCT (plan_id, occurrence_us)) FROM schedules.plan_runs")
            #expect(try after[0].decode(Int64.self, at: 0) == 40 * 103 && after[0].decode(Int64.self, at: 1) == 40 * 103)
        }
    }

    /// The clock stepping back (an NTP correction, a replica behind the others) records nothing
    /// twice; the history pages cleanly through the SKIPPED filter.
    @Test func aClockSteppingBackRecordsNothingTwice() async throws {
        try await Platform.with(database: "sched_skip_backwards", replicas: 2) { p in
            let plan = try await p.createPlan(Platform.spec("*/5 * * * *"))
            p.clock.set(utc("2026-06-01T11:00:30Z"))
            try await p.dispatch()
            let before = try await p.runs(plan.id)
            #expect(before.count == 12 && before.filter { $0.state == .skipped }.count == 11)
            for back in ["10:30:00", "10:59:59", "11:00:30"] {
                p.clock.set(utc("2026-06-01T\(back)Z"))
                try await p.dispatch()
            }
            #expect(try await p.runs(plan.id).map(\.id) == before.map(\.id))

            var seen: [String] = []
            var token = ""
            repeat {
                let page = try await p.schedule.listPlanRuns(.init(pageSize: 4, pageToken: token, planId: plan.id, states: [.skipped]),
                                                             options: Platform.options())
                seen += page.runs.map(\.id)
                #expect(page.runs.allSatisfy { $0.state == .skipped && !$0.reason.isEmpty && $0.endedAtUs > 0 })
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(seen == before.filter { $0.state == .skipped }.map(\.id))
            // A page token of the unfiltered query does not page the SKIPPED one.
            let unfiltered = try await p.schedule.listPlanRuns(.init(pageSize: 2, planId: plan.id), options: Platform.options())
            await expectRPCError(.invalidArgument) {
                try await p.schedule.listPlanRuns(.init(pageSize: 2, pageToken: unfiltered.nextPageToken, planId: plan.id,
                                                        states: [.skipped]), options: Platform.options())
            }
        }
    }

    /// A runner reporting the end of a run that was skipped (it never held it): NOT_FOUND, and the
    /// record stays as it was.
    @Test func aReportForASkippedRunIsRefused() async throws {
        try await Platform.with(database: "sched_skip_report") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec("*/5 * * * *"))
            p.clock.set(utc("2026-06-01T10:20:30Z"))
            try await p.dispatch()
            let skipped = try #require(try await p.runs(plan.id).first { $0.state == .skipped })
            await expectRPCError(.notFound) {
                try await p.schedule.reportRunEnded(.init(runnerId: "r1", planRunId: skipped.id, executionId: "exe-forged",
                                                          executionState: .completed), options: Platform.runnerOptions)
            }
            let after = try #require(try await p.schedule.getPlanRun(.init(planRunId: skipped.id), options: Platform.options()).run)
            #expect(after == skipped)
            await runner.stop()
        }
    }

    @Test func pausedOccurrencesAreRecordedAsMissedOnResume() async throws {
        try await Platform.with(database: "sched_skip_pause") { p in
            let plan = try await p.createPlan(Platform.spec("*/10 * * * *"))
            _ = try await p.schedule.pausePlan(.init(planId: plan.id), options: Platform.options())
            p.clock.set(utc("2026-06-01T10:45:00Z"))
            try await p.dispatch()
            #expect(try await p.runs(plan.id).isEmpty)
            _ = try await p.schedule.resumePlan(.init(planId: plan.id), options: Platform.options())
            try await p.dispatch()
            let runs = try await p.runs(plan.id)
            #expect(runs.map(\.dueAtUs) == ["40", "30", "20", "10"].map { utc("2026-06-01T10:\($0):00Z").micros })
            #expect(runs.allSatisfy { $0.state == .skipped && $0.reason.contains("paused") && $0.trigger == .schedule })
        }
    }

    /// A blackout's reason is the user's text, quoted clipped and on one line; a manual trigger
    /// inside it says the same as a scheduled occurrence.
    @Test func aHostileBlackoutReasonIsQuotedSafely() async throws {
        try await Platform.with(database: "sched_skip_hostile") { p in
            let hostile = String(repeating: "freeze\u{1B}[2J\r\n\u{7F}ü", count: 66)  // 990 bytes, control characters included
            let plan = try await p.createPlan(Platform.spec { spec in
                spec.blackouts = [.init(startAtUs: utc("2026-06-01T10:00:00Z").micros, endAtUs: utc("2026-06-01T10:10:00Z").micros,
                                        reason: hostile)]
            })
            p.clock.set(utc("2026-06-01T10:05:30Z"))
            let manual = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            #expect(manual.state == .skipped && manual.trigger == .manual)
            p.clock.set(utc("2026-06-01T10:10:10Z"))
            try await p.dispatch()
            let all = try await p.runs(plan.id)
            #expect(all.first?.dueAtUs == utc("2026-06-01T10:10:00Z").micros && all.first?.state == .queued)
            let runs = Array(all.dropFirst())
            #expect(runs.count == 10, "the manual run and 10:01-10:09")
            for run in runs {
                #expect(run.state == .skipped)
                #expect(run.reason.hasPrefix("in a blackout: freeze"))
                #expect(run.reason.count <= 240 && !run.reason.unicodeScalars.contains { $0.properties.generalCategory == .control })
            }
            #expect(manual.reason == runs[0].reason)
            // A NUL in the reason is refused at the door, as before.
            await expectRPCError(.invalidArgument) {
                try await p.createPlan(Platform.spec { $0.blackouts = [.init(startAtUs: 1, endAtUs: 2, reason: "a\u{0}b")] })
            }
        }
    }
}
