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

/// Runners shared by every organisation (the default) or dedicated to some: dispatch, visibility,
/// and the organisation lists a runner may register with.
@Suite(.serialized) struct RunnerTenancyTests {
    static let other = OrganizationID("org-b")!

    @Test func aDedicatedRunnerNeverGetsAnotherOrganisationsRuns() async throws {
        try await Platform.with(database: "sched_tenancy_dispatch") { p in
            let dedicated = StandInRunner()
            let shared = StandInRunner()
            // The dedicated runner has the most free capacity: it would win every run on capacity alone.
            try await p.register(try await dedicated.serve(), id: "a-dedicated", capacity: 100, organizations: [Platform.org.rawValue, "org-c"])
            try await p.register(try await shared.serve(), id: "b-shared", capacity: 10)
            let mine = try await RunnerChoiceTests.trigger(p, 3)
            let theirs = try await RunnerChoiceTests.trigger(p, org: Self.other, 3)
            try await p.dispatch()
            #expect(Set(dedicated.started.map(\.requestId)) == Set(mine))
            #expect(Set(shared.started.map(\.requestId)) == Set(theirs), "a shared runner still takes every organisation's runs")

            // With the shared runner gone, the other organisation's runs wait rather than go to it.
            _ = try await p.schedule.deregisterRunner(.init(runnerId: "b-shared"), options: Platform.runnerOptions)
            let waiting = try await RunnerChoiceTests.trigger(p, org: Self.other, 2)
            try await p.dispatch()
            #expect(Set(dedicated.started.map(\.requestId)) == Set(mine))
            for id in waiting {
                let run = try #require(try await p.schedule.getPlanRun(.init(planRunId: id), options: Platform.options(Self.other)).run)
                #expect(run.state == .queued && run.reason.contains("for this organisation"), "\(run.reason)")
            }

            // Registered again as shared (its configuration changed), it takes them.
            p.clock.advance(by: 1)
            try await p.register(try await shared.serve(), id: "a-dedicated", capacity: 100)
            try await p.dispatch()
            #expect(Set(dedicated.started.map(\.requestId)) == Set(mine))
            #expect(Set(shared.started.map(\.requestId)) == Set(theirs + waiting))
            await dedicated.stop()
            await shared.stop()
        }
    }

    @Test func anOrganisationSeesTheSharedRunnersAndItsOwn() async throws {
        try await Platform.with(database: "sched_tenancy_visibility") { p in
            let registered = try await p.register("127.0.0.1:9", id: "a-dedicated", organizations: ["org-c", Platform.org.rawValue])
            #expect(registered.organizations == [Platform.org.rawValue, "org-c"], "sorted")
            try await p.register("127.0.0.1:9", id: "b-shared")
            func listed(_ org: OrganizationID) async throws -> [String] {
                try await p.schedule.listRunners(.init(pageSize: 100, includeGone: true), options: Platform.options(org)).runners.map(\.id)
            }
            #expect(try await listed(Platform.org) == ["a-dedicated", "b-shared"])
            #expect(try await listed(Self.other) == ["b-shared"])
            // Paged one at a time, the filter holds on every page.
            let first = try await p.schedule.listRunners(.init(pageSize: 1), options: Platform.options(Self.other))
            #expect(first.runners.map(\.id) == ["b-shared"] && first.nextPageToken.isEmpty)
            let own = try await p.schedule.getRunner(.init(runnerId: "a-dedicated"), options: Platform.options())
            #expect(own.runner?.organizations == [Platform.org.rawValue, "org-c"])
            await expectRPCError(.notFound, "another organisation's dedicated runner") {
                try await p.schedule.getRunner(.init(runnerId: "a-dedicated"), options: Platform.options(Self.other))
            }
            #expect(try await p.schedule.getRunner(.init(runnerId: "b-shared"), options: Platform.options(Self.other)).runner?.organizations == [])
        }
    }

    @Test func haltAsksOnlyTheRunnersThatServeTheOrganisation() async throws {
        try await Platform.with(database: "sched_tenancy_halt") { p in
            let dedicated = StandInRunner()
            let shared = StandInRunner()
            try await p.register(try await dedicated.serve(), id: "a-dedicated", organizations: [Platform.org.rawValue])
            try await p.register(try await shared.serve(), id: "b-shared")
            _ = try await p.schedule.halt(.init(reason: "incident"), options: Platform.options(Self.other))
            #expect(dedicated.listedFor.isEmpty, "a runner dedicated to another organisation is not asked")
            #expect(shared.listedFor == [Self.other.rawValue])
            _ = try await p.schedule.halt(.init(reason: "incident"), options: Platform.options())
            #expect(dedicated.listedFor == [Platform.org.rawValue])
            await dedicated.stop()
            await shared.stop()
        }
    }

    @Test func malformedOrganisationListsAreRefusedAtRegistration() async throws {
        try await Platform.with(database: "sched_tenancy_refused") { p in
            let hostile: [(String, [String])] = [
                ("an empty id", [""]),
                ("a space", ["org a"]),
                ("NUL", ["org\u{0}a"]),
                ("an escape sequence", ["org\u{1B}[31m"]),
                ("SQL", ["x' OR '1'='1"]),
                ("too long", [String(repeating: "o", count: 65)]),
                ("non-ASCII", ["orgé"]),
                ("a repeat", ["org-a", "org-a"]),
                ("too many", (0...RunnerTenancy.maximumOrganizations).map { "org-\($0)" }),
            ]
            for (what, organizations) in hostile {
                let error = await expectRPCError(.invalidArgument, what) {
                    try await p.schedule.registerRunner(.init(runnerId: "r", name: "r", address: "127.0.0.1:9", capacity: 1,
                                                              organizations: organizations), options: Platform.runnerOptions)
                }
                // NUL is refused by the message decoding already, naming the field too.
                #expect(error?.message.contains("organizations") == true, "\(what): \(String(describing: error))")
            }
            // Nothing was registered.
            let listed = try await p.schedule.listRunners(.init(pageSize: 10, includeGone: true), options: Platform.options())
            #expect(listed.runners.isEmpty)
        }
    }
}
