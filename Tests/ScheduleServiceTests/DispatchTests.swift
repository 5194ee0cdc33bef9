import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import ScheduleService

/// Dispatch over real sockets: ScheduleService replicas on one Postgres, stand-in runners serving
/// the real RunnersV1 protocol, a ManualClock moved by hand.
@Suite(.serialized) struct DispatchTests {
    @Test func twoReplicasDispatchAThousandDueOccurrencesExactlyOnce() async throws {
        try await Platform.with(database: "sched_exactly_once", replicas: 2, configure: { $0.batchSize = 100 }) { p in
            let runners = [StandInRunner(), StandInRunner()]
            for (i, runner) in runners.enumerated() {
                try await p.register(try await runner.serve(), id: "runner-\(i)", capacity: 100_000)
            }
            // 1,000 plans, all due at 10:01:00, created straight in the store (the RPC path is
            // tested elsewhere; this is about dispatch).
            let store = PlanStore(database: p.database)
            var planIDs: Set<String> = []
            for i in 0..<1000 {
                let definition = try PlanDefinition(Platform.spec(name: "plan \(i)"), activeSince: p.clock.now())
                let plan = try await store.create(Platform.org, definition, paused: false, requestID: "", actor: .init(), now: p.clock.now())
                planIDs.insert(plan.id)
            }
            p.clock.set(utc("2026-06-01T10:01:00.2Z"))
            // Both replicas, concurrently, several passes each.
            try await p.dispatch()
            try await p.dispatch()

            let started = runners.flatMap(\.started)
            #expect(started.count == 1000)
            #expect(Set(started.map(\.requestId)).count == 1000, "every plan run started once")
            #expect(Set(started.map(\.planId)) == planIDs, "every plan's occurrence started once")
            #expect(runners.allSatisfy { !$0.started.isEmpty }, "both runners took runs")
            let rows = try await p.database.query("SELECT count(*), count(DISTINCT (plan_id, occurrence_us)) FROM schedules.plan_runs WHERE state = 3")
            #expect(try rows[0].decode(Int64.self, at: 0) == 1000)
            #expect(try rows[0].decode(Int64.self, at: 1) == 1000)

            // The next minute: again exactly one each.
            p.clock.set(utc("2026-06-01T10:02:00.1Z"))
            try await p.dispatch()
            #expect(runners.flatMap(\.started).count == 2000)
            #expect(Set(runners.flatMap(\.started).map(\.requestId)).count == 2000)
            for runner in runners { await runner.stop() }
        }
    }

    @Test func forbidSkipsWhileARunIsInFlight() async throws {
        try await Platform.with(database: "sched_forbid") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec { $0.concurrencyPolicy = .forbid; $0.maxInFlight = 0 })
            p.clock.set(utc("2026-06-01T10:01:00Z"))
            try await p.dispatch()
            p.clock.set(utc("2026-06-01T10:02:00Z"))
            try await p.dispatch()
            var runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.skipped, .dispatched])
            #expect(runs[0].reason == SkipText.forbid && runs[0].dueAtUs == utc("2026-06-01T10:02:00Z").micros)
            #expect(runner.started.count == 1)

            // Once the first ended, the next occurrence runs.
            let first = runs[1]
            _ = try await p.schedule.reportRunEnded(.init(runnerId: "r1", planRunId: first.id, executionId: first.executionId,
                                                          executionState: .completed), options: Platform.runnerOptions)
            p.clock.set(utc("2026-06-01T10:03:00Z"))
            try await p.dispatch()
            runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.dispatched, .skipped, .ended])
            #expect(runs[2].executionState == .completed)
            await runner.stop()
        }
    }

    @Test func allowQueuesBeyondMaxInFlightAndStartsWhenASlotFrees() async throws {
        try await Platform.with(database: "sched_allow") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec { $0.concurrencyPolicy = .allow; $0.maxInFlight = 2 })
            for minute in 1...3 {
                p.clock.set(utc("2026-06-01T10:0\(minute):00Z"))
                try await p.dispatch()
            }
            var runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.queued, .dispatched, .dispatched])
            #expect(runner.started.count == 2)
            let oldest = runs[2]
            _ = try await p.schedule.reportRunEnded(.init(runnerId: "r1", planRunId: oldest.id, executionId: oldest.executionId,
                                                          executionState: .deviated), options: Platform.runnerOptions)
            try await p.dispatch()
            runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.dispatched, .dispatched, .ended])
            #expect(runner.started.count == 3)
            await runner.stop()
        }
    }

    @Test func replaceCancelsTheRunInFlightThroughItsRunner() async throws {
        try await Platform.with(database: "sched_replace") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec { $0.concurrencyPolicy = .replace; $0.maxInFlight = 1 })
            p.clock.set(utc("2026-06-01T10:01:00Z"))
            try await p.dispatch()
            p.clock.set(utc("2026-06-01T10:02:00Z"))
            try await p.dispatch()
            let runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.dispatched, .cancelled])
            #expect(runner.cancelled.map(\.executionId) == [runs[1].executionId])
            #expect(runner.cancelled.first?.skipRollbacks == false, "REPLACE plays rollbacks")
            // The runner also hears it with its next heartbeat.
            let beat = try await p.heartbeat("r1", executions: [runs[1].executionId, runs[0].executionId])
            #expect(beat.cancelExecutionIds == [runs[1].executionId])
            await runner.stop()
        }
    }

    @Test func windowsAndBlackoutsSkipOccurrencesOutsideThem() async throws {
        try await Platform.with(database: "sched_windows", start: utc("2026-06-01T08:58:30Z")) { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1", capacity: 1000)
            // Mondays (2026-06-01 is one) 11:00-11:03 Paris = 09:00-09:03 UTC; a blackout 09:01-09:02 UTC.
            let plan = try await p.createPlan(Platform.spec { spec in
                spec.windows = [.init(days: [.monday], startMinute: 11 * 60, endMinute: 11 * 60 + 3, timeZone: "Europe/Paris")]
                spec.blackouts = [.init(startAtUs: utc("2026-06-01T09:01:00Z").micros, endAtUs: utc("2026-06-01T09:02:00Z").micros, reason: "freeze")]
            })
            for minute in ["08:59", "09:00", "09:01", "09:02", "09:03", "09:04"] {
                p.clock.set(utc("2026-06-01T\(minute):00Z"))
                try await p.dispatch()
            }
            let runs = try await p.runs(plan.id)
            let due = runs.filter { $0.state != .skipped }.map(\.dueAtUs).sorted()
            #expect(due == [utc("2026-06-01T09:00:00Z").micros, utc("2026-06-01T09:02:00Z").micros])
            // The ones that did not run are on record with why (09:03 and later are decided when
            // the plan next wakes up).
            let skipped = Dictionary(uniqueKeysWithValues: runs.filter { $0.state == .skipped }.map { ($0.dueAtUs, $0.reason) })
            #expect(skipped == [utc("2026-06-01T08:59:00Z").micros: "outside the plan's run windows",
                                utc("2026-06-01T09:01:00Z").micros: "in a blackout: freeze"])
            // A week of closed minutes is longer than the planner walks at once (10,000
            // occurrences): it wakes up on the way, fires nothing, and then finds next Monday.
            let wake = try #require(try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options()).plan).nextFireAtUs
            #expect(wake > utc("2026-06-01T09:03:00Z").micros && wake <= utc("2026-06-08T09:00:00Z").micros)
            p.clock.set(Date(micros: wake))
            try await p.dispatch()
            let afterWake = try await p.runs(plan.id)
            #expect(afterWake.filter { $0.state != .skipped }.count == 2)
            // The closed minutes walked so far: the latest 100 one by one, one summary for the rest.
            let closed = afterWake.filter { $0.state == .skipped && $0.dueAtUs > utc("2026-06-01T09:02:00Z").micros }
            #expect(closed.count == SkipLedger.limit + 1)
            #expect(closed.filter { $0.reason.contains("not recorded one by one") }.count == 1)
            #expect(closed.first?.dueAtUs == wake)
            let next = try #require(try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options()).plan).nextFireAtUs
            #expect(next == utc("2026-06-08T09:00:00Z").micros)
            await runner.stop()
        }
    }

    @Test func missedFiresAreSkippedOrRunOnce() async throws {
        try await Platform.with(database: "sched_missed") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1", capacity: 1000)
            let skip = try await p.createPlan(Platform.spec("0 * * * *", name: "skip") { $0.missedFirePolicy = .skip })
            let once = try await p.createPlan(Platform.spec("0 * * * *", name: "once") { $0.missedFirePolicy = .runOnce })
            // Down from 10:00:30 to 13:30: 11:00, 12:00 and 13:00 are all more than a minute late.
            p.clock.set(utc("2026-06-01T13:30:00Z"))
            _ = try await p.heartbeat("r1")
            try await p.dispatch()
            let skipped = try await p.runs(skip.id)
            #expect(skipped.map(\.state) == [.skipped, .skipped, .skipped])
            #expect(skipped.map(\.dueAtUs) == ["13", "12", "11"].map { utc("2026-06-01T\($0):00:00Z").micros })
            #expect(skipped.allSatisfy { $0.reason.hasPrefix("missed:") && $0.reason.contains("policy SKIP") })
            let caughtUp = try await p.runs(once.id)
            #expect(caughtUp.map(\.trigger) == [.missed, .schedule, .schedule])
            #expect(caughtUp.map(\.state) == [.dispatched, .skipped, .skipped])
            #expect(caughtUp.dropFirst().allSatisfy { $0.reason.contains("catch-up run for the occurrence at 2026-06-01T13:00:00Z") })
            #expect(runner.started.map(\.requestId) == [caughtUp[0].id])
            // Both carry on at 14:00.
            p.clock.set(utc("2026-06-01T14:00:00Z"))
            _ = try await p.heartbeat("r1")
            try await p.dispatch()
            #expect(try await p.runs(skip.id).map(\.state) == [.dispatched, .skipped, .skipped, .skipped])
            #expect(try await p.runs(once.id).map(\.trigger) == [.schedule, .missed, .schedule, .schedule])
            await runner.stop()
        }
    }

    @Test func aRunnerThatStopsHeartbeatingLosesItsRunsAndTheyAreRetriedElsewhere() async throws {
        try await Platform.with(database: "sched_lost", configure: { $0.lease = .seconds(15) }) { p in
            let dying = StandInRunner()
            let healthy = StandInRunner()
            try await p.register(try await dying.serve(), id: "dying")
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *") { $0.retry = .init(maxRetries: 1, backoffUs: 5_000_000) })
            let run = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            try await p.dispatch()
            #expect(dying.started.map(\.requestId) == [run.id])

            try await p.register(try await healthy.serve(), id: "healthy")
            // 16 s later: the dying runner's 15 s lease ran out; the healthy one heartbeats.
            p.clock.advance(by: 16)
            _ = try await p.heartbeat("healthy")
            let pass = try await p.dispatch()
            #expect(pass.lostRunners == 1)
            #expect(try await p.schedule.getRunner(.init(runnerId: "dying"), options: Platform.options()).runner?.state == .lost)
            await expectRPCError(.notFound, "a lost runner must register again") { try await p.heartbeat("dying") }
            var runs = try await p.runs(plan.id)
            #expect(runs.count == 2)
            let retry = try #require(runs.first { $0.trigger == .retry })
            #expect(retry.retryOf == run.id && retry.attempt == 2 && retry.state == .pending)
            #expect(runs.first { $0.id == run.id }?.state == .lost)
            #expect(healthy.started.isEmpty, "the retry waits for its backoff")

            p.clock.advance(by: 5)
            _ = try await p.heartbeat("healthy")
            try await p.dispatch()
            #expect(healthy.started.map(\.requestId) == [retry.id])

            // Lost again: no retries left.
            p.clock.advance(by: 16)
            try await p.dispatch()
            runs = try await p.runs(plan.id)
            #expect(runs.map(\.state) == [.lost, .lost])
            await dying.stop()
            await healthy.stop()
        }
    }

    @Test func anUnreachableOrFullRunnerIsPassedOverForAnother() async throws {
        try await Platform.with(database: "sched_unreachable") { p in
            let down = StandInRunner()
            let full = StandInRunner()
            let up = StandInRunner()
            // The down runner has the most free capacity, so it is tried first.
            let downAddress = try await down.serve()
            await down.stop()
            try await p.register(downAddress, id: "a-down", capacity: 100)
            try await p.register(try await full.serve(), id: "b-full", capacity: 50)
            full.set(.full)
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"))
            let run = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            try await p.dispatch()
            #expect(try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run?.state == .queued)

            try await p.register(try await up.serve(), id: "c-up", capacity: 10)
            try await p.dispatch()
            let dispatched = try #require(try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run)
            #expect(dispatched.state == .dispatched && dispatched.runnerId == "c-up")
            #expect(up.started.count == 1)

            // A runner that refuses for good (e.g. the experiment is gone): the run FAILED.
            up.set(.refuse)
            let doomed = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            try await p.dispatch()
            let failed = try #require(try await p.schedule.getPlanRun(.init(planRunId: doomed.id), options: Platform.options()).run)
            #expect(failed.state == .failed && failed.reason.contains("no experiment"))
            await full.stop()
            await up.stop()
        }
    }

    @Test func runsGoOnOneStreamPerRunnerAndOrganisationAndUnaryToARunnerWithout() async throws {
        try await Platform.with(database: "sched_streams") { p in
            let streaming = StandInRunner()
            let older = StandInRunner(unaryOnly: true)
            try await p.register(try await streaming.serve(), id: "a-streaming", capacity: 100)
            let other = OrganizationID("org-b")!
            var triggered: [String] = []
            for org in [Platform.org, other] {
                let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"), org: org)
                for _ in 0..<3 {
                    triggered.append(try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options(org)).run).id)
                }
            }
            try await p.dispatch()
            #expect(Set(streaming.started.map(\.requestId)) == Set(triggered))
            #expect(streaming.calls == 6)
            #expect(streaming.streams == 2, "one stream per organisation")

            // A runner without StartRuns gets StartRun calls.
            await streaming.stop()
            try await p.register(try await older.serve(), id: "b-older", capacity: 100)
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"))
            var later: [String] = []
            for _ in 0..<3 {
                later.append(try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run).id)
            }
            try await p.dispatch()
            #expect(Set(older.started.map(\.requestId)) == Set(later))
            #expect(older.streams >= 1)
            for id in later {
                let run = try #require(try await p.schedule.getPlanRun(.init(planRunId: id), options: Platform.options()).run)
                #expect(run.state == .dispatched && run.runnerId == "b-older" && run.executionId == "exe-" + id)
            }
            await older.stop()
        }
    }

    @Test func runsLeftUnansweredByABrokenStreamAreRetriedOnAnotherRunner() async throws {
        try await Platform.with(database: "sched_stream_break") { p in
            let breaking = StandInRunner()
            let healthy = StandInRunner()
            // The breaking runner has the most free capacity, so it is tried first.
            try await p.register(try await breaking.serve(), id: "a-breaking", capacity: 100)
            try await p.register(try await healthy.serve(), id: "b-healthy", capacity: 50)
            breaking.breakStreams(after: 2)
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"))
            var triggered: [String] = []
            for _ in 0..<5 {
                triggered.append(try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run).id)
            }
            try await p.dispatch()
            #expect(breaking.started.count == 2)
            #expect(healthy.started.count == 3)
            #expect(Set((breaking.started + healthy.started).map(\.requestId)) == Set(triggered))
            for id in triggered {
                let run = try #require(try await p.schedule.getPlanRun(.init(planRunId: id), options: Platform.options()).run)
                let owner = breaking.started.contains { $0.requestId == id } ? "a-breaking" : "b-healthy"
                #expect(run.state == .dispatched && run.runnerId == owner)
            }
            await breaking.stop()
            await healthy.stop()
        }
    }

    @Test func runnerLabelsChooseTheRunner() async throws {
        try await Platform.with(database: "sched_labels") { p in
            let eu = StandInRunner()
            let us = StandInRunner()
            try await p.register(try await eu.serve(), id: "eu", capacity: 1, labels: ["zone": "eu"])
            try await p.register(try await us.serve(), id: "us", capacity: 100, labels: ["zone": "us"])
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *") { $0.runOptions = .init(runnerLabels: ["zone": "eu"]) })
            let first = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            // Open runs go in due order (ties in no promised order): the second is due later.
            p.clock.advance(by: 1)
            let second = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            try await p.dispatch()
            #expect(eu.started.map(\.requestId) == [first.id], "eu has one slot")
            #expect(us.started.isEmpty)
            #expect(try await p.schedule.getPlanRun(.init(planRunId: second.id), options: Platform.options()).run?.state == .queued)
            await eu.stop()
            await us.stop()
        }
    }

    @Test func haltCancelsRunningExecutionsAndBlocksDispatchUntilResume() async throws {
        try await Platform.with(database: "sched_halt") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "r1")
            let plan = try await p.createPlan(Platform.spec())
            let other = try await p.createPlan(Platform.spec(name: "other org"), org: OrganizationID("org-b")!)
            p.clock.set(utc("2026-06-01T10:01:00Z"))
            try await p.dispatch()
            #expect(runner.started.count == 2)

            let halt = try await p.schedule.halt(.init(skipRollbacks: true, reason: "incident 42"), options: Platform.options())
            #expect(halt.status?.halted == true && halt.status?.reason == "incident 42")
            #expect(halt.executionsTerminated == 1)
            let cancelled = runner.cancelled
            #expect(cancelled.count == 1 && cancelled[0].skipRollbacks)
            #expect(try await p.runs(plan.id).map(\.state) == [.cancelled])

            // While halted, occurrences are SKIPPED; the other organisation carries on.
            p.clock.set(utc("2026-06-01T10:02:00Z"))
            try await p.dispatch()
            #expect(try await p.runs(plan.id).map(\.state) == [.skipped, .cancelled])
            #expect(try await p.runs(plan.id).first?.reason == SkipText.halted)
            let manual = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            #expect(manual.state == .skipped)
            #expect(try await p.schedule.listPlanRuns(.init(planId: other.id), options: Platform.options(OrganizationID("org-b")!)).runs
                .map(\.state) == [.dispatched, .dispatched])
            let status = try #require(try await p.schedule.getHaltStatus(.init(), options: Platform.options()).status)
            #expect(status.halted && status.skipRollbacks)

            _ = try await p.schedule.resume(.init(), options: Platform.options())
            #expect(try await p.schedule.getHaltStatus(.init(), options: Platform.options()).status?.halted == false)
            p.clock.set(utc("2026-06-01T10:03:00Z"))
            try await p.dispatch()
            #expect(try await p.runs(plan.id).first?.state == .dispatched)
            await runner.stop()
        }
    }
}
