import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import ScheduleService

/// Plans over real RPC: CRUD, organisation scoping, pause/resume/trigger, history, and every
/// malformed or hostile request rejected with INVALID_ARGUMENT and nothing stored.
@Suite(.serialized) struct PlanRPCTests {
    @Test func createGetListUpdatePauseResumeDelete() async throws {
        try await Platform.with(database: "sched_plans_crud") { p in
            let plan = try await p.createPlan(Platform.spec("*/5 * * * *", zone: "Europe/Paris"))
            #expect(plan.state == .active)
            #expect(plan.version == 1)
            // 10:00:30 UTC → the next */5 minute is 10:05 UTC (Paris is on whole hours).
            #expect(plan.nextFireAtUs == utc("2026-06-01T10:05:00Z").micros)

            let got = try #require(try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options()).plan)
            #expect(got.spec == plan.spec)

            // Another organisation does not see it.
            let other = OrganizationID("org-b")!
            await expectRPCError(.notFound, "other org") { try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options(other)) }
            #expect(try await p.schedule.listPlans(.init(), options: Platform.options(other)).plans.isEmpty)

            let paused = try #require(try await p.schedule.pausePlan(.init(planId: plan.id), options: Platform.options()).plan)
            #expect(paused.state == .paused && paused.nextFireAtUs == 0)
            let resumed = try #require(try await p.schedule.resumePlan(.init(planId: plan.id), options: Platform.options()).plan)
            #expect(resumed.state == .active && resumed.nextFireAtUs == plan.nextFireAtUs)

            var spec = Platform.spec("0 12 * * *")
            spec.name = "noon"
            await expectRPCError(.aborted, "stale version") {
                try await p.schedule.updatePlan(.init(planId: plan.id, spec: spec, expectedVersion: 1), options: Platform.options())
            }
            let updated = try #require(try await p.schedule.updatePlan(.init(planId: plan.id, spec: spec, expectedVersion: resumed.version),
                                                                       options: Platform.options()).plan)
            #expect(updated.spec?.name == "noon")
            #expect(updated.nextFireAtUs == utc("2026-06-01T12:00:00Z").micros)

            // Paging: three more plans, pages of two, every plan once.
            for i in 0..<3 { _ = try await p.createPlan(Platform.spec(name: "p\(i)")) }
            var seen: [String] = []
            var token = ""
            repeat {
                let page = try await p.schedule.listPlans(.init(pageSize: 2, pageToken: token), options: Platform.options())
                seen += page.plans.map(\.id)
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(seen.count == 4 && Set(seen).count == 4)
            await expectRPCError(.invalidArgument, "foreign token") {
                try await p.schedule.listPlans(.init(pageSize: 2, pageToken: "bm90IGEgdG9rZW4=", experimentId: "x"), options: Platform.options())
            }

            _ = try await p.schedule.deletePlan(.init(planId: plan.id), options: Platform.options())
            await expectRPCError(.notFound, "deleted") { try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options()) }
            await expectRPCError(.notFound, "deleted twice") { try await p.schedule.deletePlan(.init(planId: plan.id), options: Platform.options()) }
        }
    }

    @Test func createIsIdempotentOnRequestID() async throws {
        try await Platform.with(database: "sched_plans_idem") { p in
            let first = try await p.schedule.createPlan(.init(spec: Platform.spec(), requestId: "req-1"), options: Platform.options())
            let again = try await p.schedule.createPlan(.init(spec: Platform.spec(), requestId: "req-1"), options: Platform.options())
            #expect(first.plan?.id == again.plan?.id)
            #expect(try await p.schedule.listPlans(.init(), options: Platform.options()).plans.count == 1)
        }
    }

    @Test func triggerRunsNowAndHistoryIsNewestFirst() async throws {
        try await Platform.with(database: "sched_plans_trigger") { p in
            let runner = StandInRunner()
            try await p.register(try await runner.serve(), id: "runner-1")
            defer { Task { await runner.stop() } }
            let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"))
            let run = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id, requestId: "t1"), options: Platform.options()).run)
            #expect(run.state == .pending && run.trigger == .manual && run.attempt == 1)
            let again = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id, requestId: "t1"), options: Platform.options()).run)
            #expect(again.id == run.id)
            try await p.dispatch()
            let dispatched = try #require(try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run)
            #expect(dispatched.state == .dispatched && dispatched.runnerId == "runner-1" && dispatched.executionId == "exe-" + run.id)
            #expect(runner.started.map(\.requestId) == [run.id])

            p.clock.advance(by: 60)
            let second = try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options()).run)
            let history = try await p.runs(plan.id)
            #expect(history.map(\.id) == [second.id, run.id])
            #expect(try await p.schedule.getPlan(.init(planId: plan.id), options: Platform.options()).plan?.lastRun?.id == second.id)

            // RunExperiment: a plan run without a plan, dispatched the same way.
            let direct = try #require(try await p.schedule.runExperiment(.init(experimentId: "exp_x", requestId: "d1"), options: Platform.options()).run)
            #expect(direct.planId.isEmpty)
            try await p.dispatch()
            #expect(runner.started.contains { $0.requestId == direct.id && $0.planId.isEmpty })
        }
    }

    @Test func malformedAndHostileInputIsInvalidArgumentOnEveryRPC() async throws {
        try await Platform.with(database: "sched_plans_bad") { p in
            let s = p.schedule
            let o = Platform.options()
            func spec(_ change: (inout SchedulesV1.PlanSpec) -> Void) -> SchedulesV1.PlanSpec { Platform.spec("* * * * *", change) }
            let badSpecs: [(String, SchedulesV1.PlanSpec)] = [
                ("no name", spec { $0.name = "" }),
                ("control chars in name", spec { $0.name = "a\u{7}b" }),
                ("oversized name", spec { $0.name = String(repeating: "n", count: 201) }),
                ("oversized description", spec { $0.description = String(repeating: "d", count: 5000) }),
                ("NUL in description", spec { $0.description = "a\u{0}b" }),
                ("no experiment", spec { $0.experimentId = "" }),
                ("experiment id with spaces", spec { $0.experimentId = "exp 1" }),
                ("negative revision", spec { $0.experimentRevision = -1 }),
                ("duplicate integrations", spec { $0.integrationIds = ["i", "i"] }),
                ("too many integrations", spec { $0.integrationIds = (0..<51).map { "i\($0)" } }),
                ("no schedule", spec { $0.schedule = nil }),
                ("bad cron", spec { $0.schedule = .init(kind: .cron(.init(expression: "61 * * * *"))) }),
                ("six-field cron", spec { $0.schedule = .init(kind: .cron(.init(expression: "0 * * * * *"))) }),
                ("@reboot", spec { $0.schedule = .init(kind: .cron(.init(expression: "@reboot"))) }),
                ("oversized cron", spec { $0.schedule = .init(kind: .cron(.init(expression: String(repeating: "1,", count: 400) + "1 * * * *"))) }),
                ("unknown zone", spec { $0.schedule = .init(kind: .cron(.init(expression: "* * * * *", timeZone: "Mars/Olympus"))) }),
                ("fixed offset zone", spec { $0.schedule = .init(kind: .cron(.init(expression: "* * * * *", timeZone: "GMT+2"))) }),
                ("hostile zone", spec { $0.schedule = .init(kind: .cron(.init(expression: "* * * * *", timeZone: "../../etc/passwd"))) }),
                ("zero interval", spec { $0.schedule = .init(kind: .interval(.init(everyUs: 0))) }),
                ("sub-second interval", spec { $0.schedule = .init(kind: .interval(.init(everyUs: 999_999))) }),
                ("negative interval start", spec { $0.schedule = .init(kind: .interval(.init(everyUs: 60_000_000, startAtUs: -1))) }),
                ("once at zero", spec { $0.schedule = .init(kind: .at(.init(atUs: 0))) }),
                ("once past year 9999", spec { $0.schedule = .init(kind: .at(.init(atUs: .max))) }),
                ("window minute out of range", spec { $0.windows = [.init(startMinute: 0, endMinute: 1440)] }),
                ("window negative minute", spec { $0.windows = [.init(startMinute: -1, endMinute: 60)] }),
                ("window unknown day", spec { $0.windows = [.init(days: [.unrecognized(9)], startMinute: 0, endMinute: 60)] }),
                ("window unknown zone", spec { $0.windows = [.init(startMinute: 0, endMinute: 60, timeZone: "Nowhere/Land")] }),
                ("too many windows", spec { $0.windows = Array(repeating: .init(startMinute: 0, endMinute: 60), count: 51) }),
                ("reversed blackout", spec { $0.blackouts = [.init(startAtUs: 2_000, endAtUs: 1_000)] }),
                ("oversized blackout reason", spec { $0.blackouts = [.init(startAtUs: 1, endAtUs: 2, reason: String(repeating: "r", count: 1001))] }),
                ("unknown concurrency", spec { $0.concurrencyPolicy = .unrecognized(7) }),
                ("max in flight too big", spec { $0.maxInFlight = 1001 }),
                ("negative max in flight", spec { $0.maxInFlight = -1 }),
                ("unknown missed-fire policy", spec { $0.missedFirePolicy = .unrecognized(3) }),
                ("too many retries", spec { $0.retry = .init(maxRetries: 11) }),
                ("negative backoff", spec { $0.retry = .init(maxRetries: 1, backoffUs: -1) }),
                ("negative max duration", spec { $0.runOptions = .init(maxDurationUs: -5) }),
                ("unknown rollback strategy", spec { $0.runOptions = .init(rollbackStrategy: .unrecognized(42)) }),
                ("bad label key", spec { $0.runOptions = .init(runnerLabels: ["a b": "c"]) }),
                ("oversized label value", spec { $0.runOptions = .init(runnerLabels: ["k": String(repeating: "v", count: 64)]) }),
            ]
            for (what, bad) in badSpecs {
                await expectRPCError(.invalidArgument, "create: \(what)") { try await s.createPlan(.init(spec: bad), options: o) }
            }
            #expect(try await s.listPlans(.init(), options: o).plans.isEmpty, "nothing was stored")
            let plan = try await p.createPlan(Platform.spec())
            for (what, bad) in badSpecs.prefix(12) {
                await expectRPCError(.invalidArgument, "update: \(what)") { try await s.updatePlan(.init(planId: plan.id, spec: bad), options: o) }
            }
            #expect(try await s.getPlan(.init(planId: plan.id), options: o).plan?.version == 1, "no update happened")

            let badIDs = ["", "plan_", "plan_XYZ", "prun_0193aaaabbbbccccddddeeeeffff0000", "plan_0193aaaabbbbccccddddeeeeffff0000' OR 1=1 --",
                          String(repeating: "x", count: 10_000)]
            for id in badIDs {
                await expectRPCError(.invalidArgument, "get \(id.prefix(20))") { try await s.getPlan(.init(planId: id), options: o) }
                await expectRPCError(.invalidArgument, "delete") { try await s.deletePlan(.init(planId: id), options: o) }
                await expectRPCError(.invalidArgument, "pause") { try await s.pausePlan(.init(planId: id), options: o) }
                await expectRPCError(.invalidArgument, "resume") { try await s.resumePlan(.init(planId: id), options: o) }
                await expectRPCError(.invalidArgument, "trigger") { try await s.triggerPlan(.init(planId: id), options: o) }
                await expectRPCError(.invalidArgument, "update") { try await s.updatePlan(.init(planId: id, spec: Platform.spec()), options: o) }
                if !id.hasPrefix("prun_") {
                    await expectRPCError(.invalidArgument, "get run") { try await s.getPlanRun(.init(planRunId: id), options: o) }
                }
            }
            await expectRPCError(.invalidArgument, "a plan id as a plan run id") {
                try await s.getPlanRun(.init(planRunId: plan.id), options: o)
            }
            await expectRPCError(.notFound, "unknown well-formed") {
                try await s.getPlan(.init(planId: "plan_0193aaaabbbbccccddddeeeeffff0000"), options: o)
            }
            await expectRPCError(.invalidArgument, "negative page size") { try await s.listPlans(.init(pageSize: -1), options: o) }
            await expectRPCError(.invalidArgument, "unknown state filter") { try await s.listPlans(.init(states: [.unrecognized(99)]), options: o) }
            await expectRPCError(.invalidArgument, "garbage page token") { try await s.listPlanRuns(.init(pageToken: "%%%"), options: o) }
            await expectRPCError(.invalidArgument, "negative expected version") {
                try await s.updatePlan(.init(planId: plan.id, spec: Platform.spec(), expectedVersion: -1), options: o)
            }
            await expectRPCError(.invalidArgument, "run experiment without id") { try await s.runExperiment(.init(), options: o) }
            await expectRPCError(.invalidArgument, "run experiment bad options") {
                try await s.runExperiment(.init(experimentId: "e", runOptions: .init(maxDurationUs: -1)), options: o)
            }
            await expectRPCError(.invalidArgument, "oversized request id") {
                try await s.triggerPlan(.init(planId: plan.id, requestId: String(repeating: "r", count: 201)), options: o)
            }
            await expectRPCError(.invalidArgument, "oversized halt reason") { try await s.halt(.init(reason: String(repeating: "r", count: 1001)), options: o) }

            // No organisation, or a malformed one: UNAUTHENTICATED before anything else.
            await expectRPCError(.unauthenticated, "no org") { try await s.listPlans(.init(), options: CallOptions(timeout: .seconds(10))) }
            var hostile = CallOptions(timeout: .seconds(10))
            hostile.metadata.addString("org'; DROP TABLE schedules.plans; --", forKey: OrganizationID.metadataKey)
            await expectRPCError(.unauthenticated, "hostile org") { try await s.getHaltStatus(.init(), options: hostile) }

            // Runner registry: only with the runner credential, and well-formed.
            await expectRPCError(.permissionDenied, "register without credential") {
                try await s.registerRunner(.init(address: "127.0.0.1:1", capacity: 1), options: o)
            }
            var wrong = CallOptions(timeout: .seconds(10))
            wrong.metadata = RunnerCredential.metadata("not-the-credential")
            await expectRPCError(.permissionDenied, "heartbeat with a wrong credential") { try await s.heartbeat(.init(runnerId: "r"), options: wrong) }
            let r = Platform.runnerOptions
            let badRegistrations: [(String, SchedulesV1.RegisterRunnerRequest)] = [
                ("no address", .init(capacity: 1)),
                ("address without port", .init(address: "runner.local", capacity: 1)),
                ("port out of range", .init(address: "127.0.0.1:70000", capacity: 1)),
                ("zero capacity", .init(address: "127.0.0.1:1", capacity: 0)),
                ("hostile id", .init(runnerId: "r'; --", address: "127.0.0.1:1", capacity: 1)),
                ("oversized id", .init(runnerId: String(repeating: "r", count: 129), address: "127.0.0.1:1", capacity: 1)),
                ("bad labels", .init(address: "127.0.0.1:1", labels: ["": "x"], capacity: 1)),
            ]
            for (what, bad) in badRegistrations {
                await expectRPCError(.invalidArgument, "register: \(what)") { try await s.registerRunner(bad, options: r) }
            }
            #expect(try await s.listRunners(.init(includeGone: true), options: o).runners.isEmpty)
            await expectRPCError(.invalidArgument, "heartbeat without id") { try await s.heartbeat(.init(), options: r) }
            await expectRPCError(.invalidArgument, "heartbeat negative capacity") { try await s.heartbeat(.init(runnerId: "r", capacity: -1), options: r) }
            await expectRPCError(.notFound, "heartbeat unknown runner") { try await s.heartbeat(.init(runnerId: "ghost"), options: r) }
            await expectRPCError(.invalidArgument, "deregister without id") { try await s.deregisterRunner(.init(), options: r) }
            await expectRPCError(.notFound, "deregister unknown") { try await s.deregisterRunner(.init(runnerId: "ghost"), options: r) }
            await expectRPCError(.invalidArgument, "report without plan run") {
                try await s.reportRunEnded(.init(runnerId: "r", executionId: "e", executionState: .completed), options: r)
            }
            await expectRPCError(.invalidArgument, "report non-final state") {
                try await s.reportRunEnded(.init(runnerId: "r", planRunId: "prun_0193aaaabbbbccccddddeeeeffff0000", executionId: "e",
                                                 executionState: .running), options: r)
            }
            await expectRPCError(.notFound, "report for a run it does not hold") {
                try await s.reportRunEnded(.init(runnerId: "r", planRunId: "prun_0193aaaabbbbccccddddeeeeffff0000", executionId: "e",
                                                 executionState: .completed), options: r)
            }
            await expectRPCError(.invalidArgument, "get runner hostile id") { try await s.getRunner(.init(runnerId: "a b"), options: o) }
            await expectRPCError(.notFound, "get unknown runner") { try await s.getRunner(.init(runnerId: "ghost"), options: o) }
            await expectRPCError(.invalidArgument, "list runners bad token") { try await s.listRunners(.init(pageToken: "x"), options: o) }
        }
    }
}
