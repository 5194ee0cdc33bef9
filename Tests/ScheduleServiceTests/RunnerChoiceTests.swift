import FaultlineProto
import FaultlineRPC
import ServiceKit
import Testing
import TestSupport
@testable import ScheduleService

/// How the dispatcher talks to runners across passes: a runner without StartRuns is asked once
/// per registration, and a broken stream is one log line, not one per run.
@Suite(.serialized) struct RunnerChoiceTests {
    /// Triggers `count` runs of a fresh plan of `org`; answers their ids.
    static func trigger(_ p: Platform, org: OrganizationID = Platform.org, _ count: Int) async throws -> [String] {
        let plan = try await p.createPlan(Platform.spec("0 0 1 1 *"), org: org)
        var ids: [String] = []
        for _ in 0..<count {
            ids.append(try #require(try await p.schedule.triggerPlan(.init(planId: plan.id), options: Platform.options(org)).run).id)
        }
        return ids
    }

    @Test func aRunnerWithoutStartRunsIsAskedOncePerRegistration() async throws {
        try await Platform.with(database: "sched_unary_memory") { p in
            let older = StandInRunner(unaryOnly: true)
            let address = try await older.serve()
            try await p.register(address, id: "older")
            let other = OrganizationID("org-b")!
            var triggered = try await Self.trigger(p, 2)
            try await p.dispatch()
            #expect(older.streams == 1)
            // Later passes, in two organisations: StartRun calls only.
            for _ in 0..<3 {
                triggered += try await Self.trigger(p, 2)
                triggered += try await Self.trigger(p, org: other, 2)
                try await p.dispatch()
            }
            #expect(older.streams == 1, "one StartRuns attempt across every pass")
            #expect(Set(older.started.map(\.requestId)) == Set(triggered))

            // It restarts (perhaps a newer build): asked again, once.
            p.clock.advance(by: 1)
            try await p.register(address, id: "older")
            for _ in 0..<2 {
                triggered += try await Self.trigger(p, 2)
                try await p.dispatch()
            }
            #expect(older.streams == 2)
            #expect(Set(older.started.map(\.requestId)) == Set(triggered))
            await older.stop()
        }
    }

    @Test func theMemoryOfRunnersWithoutStartRunsIsBounded() {
        let memory = UnaryOnlyRunners()
        for i in 0..<(UnaryOnlyRunners.limit + 10) { memory.remember(RunnerRegistration(id: "r\(i)", registeredUs: 1)) }
        #expect(memory.count == UnaryOnlyRunners.limit)
        let last = RunnerRegistration(id: "r\(UnaryOnlyRunners.limit + 9)", registeredUs: 1)
        #expect(memory.contains(last))
        #expect(!memory.contains(RunnerRegistration(id: last.id, registeredUs: 2)), "a new registration is asked again")
        memory.remember(RunnerRegistration(id: last.id, registeredUs: 2))
        #expect(memory.count == UnaryOnlyRunners.limit, "a runner is one entry, whatever its registrations")
        #expect(!memory.contains(last))
    }

    @Test func aBrokenStreamOfManyRunsIsOneNoticeLine() async throws {
        let capture = LogCapture()
        try await Platform.with(database: "sched_stream_log", logger: capture.logger("schedule")) { p in
            let breaking = StandInRunner()
            let healthy = StandInRunner()
            try await p.register(try await breaking.serve(), id: "a-breaking", capacity: 100)
            try await p.register(try await healthy.serve(), id: "b-healthy", capacity: 50)
            breaking.breakStreams(after: 2)
            let triggered = try await Self.trigger(p, 12)
            try await p.dispatch()
            #expect(breaking.started.count == 2)
            #expect(healthy.started.count == 10)

            let notices = capture.all.filter { $0.hasPrefix("notice ") }
            #expect(notices.count == 1, "\(notices)")
            let line = try #require(notices.first)
            #expect(line.contains("StartRuns stream failed") && line.contains("runner=a-breaking") && line.contains(" runs=10")
                        && line.contains("of=12 ") && line.contains("grpc.status=UNAVAILABLE") && line.contains("the stream broke"), "\(line)")
            let named = try #require(line.split(separator: " ").first { $0.hasPrefix("request_ids=") }?.dropFirst("request_ids=".count))
            let ids = named.split(separator: ",").map(String.init)
            #expect(ids.count == RunStarter.loggedRequestIDs + 1 && ids.last == "…", "\(line)")
            #expect(Set(ids.dropLast()).isSubset(of: Set(triggered)))
            // Each run in detail, at debug level.
            let detail = capture.all.filter { $0.hasPrefix("debug runner did not take a run") && $0.contains("runner=a-breaking") }
            #expect(detail.count == 10)
            await breaking.stop()
            await healthy.stop()
        }
    }
}
