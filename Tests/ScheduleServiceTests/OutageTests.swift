import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import ServiceLifecycle
import Testing
@testable import ScheduleService

/// Postgres stopped and started again under a running scheduler (the dispatch loop as the
/// executable runs it, a ManualClock for the schedule's time). A cluster of its own: the shared
/// test cluster serves other suites meanwhile.
@Suite(.serialized) struct OutageTests {
    @Test func postgresStopsAndComesBackWhileTheSchedulerRuns() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("schedule-outage")
        let server = EmbeddedPostgres(directory: directory, durable: false)
        try await server.start()
        var configuration = try await server.createDatabase("schedule_outage")
        configuration.maximumConnections = 8
        let database = PostgresClient(configuration: configuration)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try await Self.scenario(server, database)
        } catch {
            Issue.record("\(error)")
        }
        await database.close()
        try await server.stop(immediate: true)
    }

    static func scenario(_ server: EmbeddedPostgres, _ database: PostgresClient) async throws {
        try await Platform.with(client: database, start: utc("2026-06-01T10:00:30Z")) { p in
            let runner = StandInRunner()
            defer { runner.release() }  // never leave a StartRun hanging, whatever fails
            try await p.register(try await runner.serve(), id: "r1")
            let skip = try await p.createPlan(Platform.spec("*/3 * * * *", name: "skip") { $0.missedFirePolicy = .skip })
            let once = try await p.createPlan(Platform.spec("*/3 * * * *", name: "once") { $0.missedFirePolicy = .runOnce })
            let loop = Task { try await p.replicas[0].dispatcher.run() }

            // 10:03: both fire; their StartRuns reach the runner, which holds its answer.
            runner.set(.hold)
            p.clock.set(utc("2026-06-01T10:03:00.1Z"))
            try await eventually("both StartRuns held by the runner") { runner.heldCount == 2 }

            // Postgres goes away while the runner is answering: the dispatcher cannot record it.
            try await server.stop()
            runner.release()
            for (name, call) in Self.calls(p, skip.id) {
                let error = await expectRPCError(.unavailable, name) { try await call() }
                #expect(error?.message == "the database is unavailable", "\(name)")
            }
            // The schedule's time passes during the outage: 10:06 and 10:09 come due.
            p.clock.set(utc("2026-06-01T10:10:30Z"))
            try await eventually("the runner has answered") { runner.heldCount == 0 && runner.started.count == 2 }
            try await Task.sleep(for: .milliseconds(300))  // let the loop fail a few passes

            try await server.start()
            // The runs of 10:03 (claims expired meanwhile) are confirmed, through StartRun again
            // with the same request id; the gap follows the missed-fire policies.
            try await eventually("dispatch resumed") {
                let runs = try await p.runs(skip.id) + p.runs(once.id)
                return runs.filter { $0.state == .dispatched }.count == 3
            }

            let skipRuns = try await p.runs(skip.id)
            #expect(skipRuns.map(\.state) == [.skipped, .skipped, .dispatched])
            #expect(skipRuns.map(\.dueAtUs) == ["09", "06", "03"].map { utc("2026-06-01T10:\($0):00Z").micros })
            #expect(skipRuns[0].reason.hasPrefix("missed:") && skipRuns[1].reason.hasPrefix("missed:"))
            let onceRuns = try await p.runs(once.id)
            #expect(onceRuns.map(\.trigger) == [.missed, .schedule, .schedule])
            #expect(onceRuns.map(\.state) == [.dispatched, .skipped, .dispatched])
            #expect(onceRuns[1].reason.contains("catch-up run for the occurrence at 2026-06-01T10:09:00Z"))

            // Each occurrence once: one record per (plan, occurrence), one execution per run.
            let rows = try await p.database.query("""
                SELECT count(*), count(DISTINCT (plan_id, occurrence_us)) FROM schedules.plan_runs
                """)
            #expect(try rows[0].decode(Int64.self, at: 0) == 6 && rows[0].decode(Int64.self, at: 1) == 6)
            #expect(runner.started.count == 3)
            #expect(Set(runner.started.map(\.requestId)).count == 3)
            #expect(runner.calls > 3, "the 10:03 runs were asked again after the outage (idempotently)")

            // And the schedule carries on.
            p.clock.set(utc("2026-06-01T10:12:00.1Z"))
            try await eventually("10:12 dispatched") { runner.started.count == 5 }
            loop.cancel()
            try await loop.value
            await runner.stop()
        }
    }

    /// RPCs that need the database: each must answer UNAVAILABLE while it is down.
    static func calls(_ p: Platform, _ planID: String) -> [(String, @Sendable () async throws -> Void)] {
        let schedule = p.schedule
        return [
            ("GetPlan", { _ = try await schedule.getPlan(.init(planId: planID), options: Platform.options()) }),
            ("ListPlanRuns", { _ = try await schedule.listPlanRuns(.init(planId: planID), options: Platform.options()) }),
            ("CreatePlan", { _ = try await schedule.createPlan(.init(spec: Platform.spec()), options: Platform.options()) }),
            ("TriggerPlan", { _ = try await schedule.triggerPlan(.init(planId: planID), options: Platform.options()) }),
            ("Heartbeat", { _ = try await schedule.heartbeat(.init(runnerId: "r1", capacity: 10), options: Platform.runnerOptions) }),
            ("GetHaltStatus", { _ = try await schedule.getHaltStatus(.init(), options: Platform.options()) }),
        ]
    }
}

/// Polls `condition` until it holds (never asserting on time; gives up after a minute).
func eventually(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async throws {
    for _ in 0..<1200 {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("never happened: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}
