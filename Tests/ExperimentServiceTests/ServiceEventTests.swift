import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import Testing
@testable import ExperimentService

@Suite("ExperimentService: control events and watchers", .serialized)
struct ServiceEventTests {
    @Test("10,000 events in one ReportEvents call, out of order with duplicates: stored once, gaps reported, retries harmless")
    func tenThousandEvents() async throws {
        try await ServiceHarness.with(database: "svc_events") { h in
            let run = try await h.runningExecution()
            let missing: Set<Int64> = [1234, 5000, 5001, 9999]
            var sequences = (1...10_000).map(Int64.init).filter { !missing.contains($0) }
            var generator = SystemRandomNumberGenerator()
            sequences.shuffle(using: &generator)
            let repeats = (0..<1_000).map { _ in sequences.randomElement(using: &generator)! }
            let all = (sequences + repeats).map { ServiceHarness.event(run.id, $0) }
            let batches = stride(from: 0, to: all.count, by: 700).map { Array(all[$0..<min(all.count, $0 + 700)]) }
            let response = try await h.report(batches)
            #expect(response.accepted == 10_000 - Int64(missing.count))
            #expect(response.duplicates == 1_000)
            let progress = try #require(response.progress.first)
            #expect(progress.contiguousSequence == 1233)
            #expect(progress.gaps == [.init(first: 1234, last: 1234), .init(first: 5000, last: 5001), .init(first: 9999, last: 9999)])

            let retry = try await h.report(batches)
            #expect(retry.accepted == 0 && retry.duplicates == Int64(all.count), "a retried call stores nothing twice")
            let filled = try await h.report([missing.sorted().map { ServiceHarness.event(run.id, $0) }])
            #expect(filled.accepted == 4 && filled.progress.first?.contiguousSequence == 10_000 && filled.progress.first?.gaps == [])

            let rows = try await h.database.query("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM experiments.events")
            let (count, distinct, low, high) = try rows[0].decode((Int, Int, Int64, Int64).self)
            #expect(count == 10_000 && distinct == 10_000 && low == 1 && high == 10_000)
            let execution = try #require(try await h.service.getExecution(.init(executionId: run.id), context: ServiceHarness.context()).execution)
            #expect(execution.eventsReceived == 10_000 && execution.contiguousSequence == 10_000)

            // Payloads come back as JSON objects with what was sent (tabs survive COPY's escaping).
            let page = try await h.service.listExecutionEvents(.init(executionId: run.id, afterSequence: 41, pageSize: 3), context: ServiceHarness.context())
            #expect(page.events.map(\.sequence) == [42, 43, 44])
            let payload = try JSONValue.parse(jsonBytes: Array(page.events[0].payloadJson.utf8))
            #expect(payload["text"]?.stringValue == "tab\there" && payload["n"] == 42)
            #expect(page.events[0].receivedAtUs > 0 && page.events[0].activityName == "a1" && page.events[0].type == "log")
            let next = try await h.service.listExecutionEvents(
                .init(executionId: run.id, afterSequence: 41, pageSize: 3, pageToken: page.nextPageToken), context: ServiceHarness.context())
            #expect(next.events.map(\.sequence) == [45, 46, 47])
        }
    }

    @Test("bad events reject their message and store nothing of it")
    func hostileEvents() async throws {
        try await ServiceHarness.with(database: "svc_events_hostile") { h in
            let run = try await h.runningExecution()
            func with(_ change: (inout ExperimentsV1.ExecutionEvent) -> Void) -> [[ExperimentsV1.ExecutionEvent]] {
                var bad = ServiceHarness.event(run.id, 3)
                change(&bad)
                return [[ServiceHarness.event(run.id, 2), bad]]
            }
            let cases: [(String, [[ExperimentsV1.ExecutionEvent]])] = [
                ("not JSON", with { $0.payloadJson = "{oops" }),
                ("not an object", with { $0.payloadJson = "[1, 2]" }),
                ("NUL escape", with { $0.payloadJson = #"{"a": "\u0000"}"# }),
                ("sequence 0", with { $0.sequence = 0 }),
                ("negative sequence", with { $0.sequence = -7 }),
                ("no type", with { $0.type = "" }),
                ("malformed execution id", with { $0.executionId = "nope" }),
                ("oversized payload", with { $0.payloadJson = "{\"x\": \"" + String(repeating: "y", count: 70_000) + "\"}" }),
            ]
            for (what, batches) in cases {
                await expectRPCError(.invalidArgument, what) { try await h.report(batches) }
            }
            await expectRPCError(.notFound, "unknown execution") {
                try await h.report(with { $0.executionId = "exe_0193a0d0e0f07000800000000000dead" })
            }
            let rows = try await h.database.query("SELECT count(*) FROM experiments.events")
            #expect(try rows[0].decode(Int.self, at: 0) == 0)
            let ok = try await h.report([[ServiceHarness.event(run.id, 1)]])
            #expect(ok.accepted == 1, "still serving")
        }
    }

    /// Watches until the stream ends, reconnecting after `resume_from` as a client should.
    static func follow(_ h: ServiceHarness, _ id: String, after: Int64 = 0) async throws -> (events: [Int64], resumes: Int, items: [ExperimentsV1.WatchExecutionResponse.Item]) {
        var after = after, resumes = 0
        var events: [Int64] = [], items: [ExperimentsV1.WatchExecutionResponse.Item] = []
        while true {
            let collector = WatchCollector()
            try await h.service.watchExecution(.init(executionId: id, afterSequence: after),
                                               responses: RPCWriter { collector.append($0.item) }, context: ServiceHarness.context())
            events += collector.events
            items += collector.all
            guard case .resumeFrom(let resume)? = collector.all.last else { return (events, resumes, items) }
            resumes += 1
            after = resume.afterSequence
        }
    }

    @Test("watchers see every event exactly once and in order, from the start or joining mid-run, until the run ends")
    func watchers() async throws {
        try await ServiceHarness.with(database: "svc_watch") { h in
            let run = try await h.runningExecution()
            let total: Int64 = 3_000
            // Out of order within a window, with duplicates: the watcher must still see 1...total in order.
            var order = (1...total).map { $0 }
            for start in stride(from: 0, to: order.count, by: 50) {
                order[start..<min(order.count, start + 50)].shuffle()
            }
            let batches = stride(from: 0, to: order.count, by: 100).map { start in
                order[start..<min(order.count, start + 100)].map { ServiceHarness.event(run.id, $0) } + [ServiceHarness.event(run.id, order[start])]
            }
            try await withThrowingTaskGroup(of: (String, [Int64], [ExperimentsV1.WatchExecutionResponse.Item]).self) { group in
                group.addTask {
                    let result = try await Self.follow(h, run.id)
                    return ("from the start", result.events, result.items)
                }
                _ = try await h.report(Array(batches.prefix(15)))
                group.addTask {
                    let result = try await Self.follow(h, run.id)
                    return ("joined mid-run", result.events, result.items)
                }
                group.addTask {
                    let result = try await Self.follow(h, run.id, after: 1_000)
                    return ("resumed at 1000", result.events, result.items)
                }
                for batch in batches.dropFirst(15) { _ = try await h.report([batch]) }
                _ = try await h.service.pauseExecution(.init(executionId: run.id), context: ServiceHarness.context())
                _ = try await h.service.completeExecution(
                    .init(executionId: run.id, journalJson: ServiceExecutionTests.journal()), context: ServiceHarness.context())
                for try await (name, events, items) in group {
                    let expected = Array((name == "resumed at 1000" ? 1_001 : 1)...total)
                    #expect(events == expected, "\(name): \(events.count) events")
                    guard case .execution(let first)? = items.first, case .execution(let last)? = items.last else {
                        Issue.record("\(name): the stream starts and ends with the execution")
                        continue
                    }
                    #expect(first.id == run.id && last.state == .completed, "\(name)")
                    #expect(items.contains { if case .caughtUp = $0 { true } else { false } }, "\(name): caught_up sent")
                }
            }
        }
    }

    @Test("a slow watcher never slows ingestion: past its backlog it is told where to resume")
    func slowWatcher() async throws {
        var configuration = ExperimentServiceConfiguration()
        configuration.watchBacklogLimit = 50
        configuration.watchPageSize = 20
        try await ServiceHarness.with(database: "svc_watch_slow", configuration: configuration) { h in
            let run = try await h.runningExecution()
            _ = try await h.report([[ServiceHarness.event(run.id, 1)]])
            let gate = Gate(), stuck = Gate()
            let collector = WatchCollector()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await h.service.watchExecution(.init(executionId: run.id), responses: RPCWriter { response in
                        collector.append(response.item)
                        // The watcher's client stops reading at its first event.
                        if case .event? = response.item {
                            stuck.open()
                            await gate.wait()
                        }
                    }, context: ServiceHarness.context())
                }
                await stuck.wait()
                // Ingestion completes while the watcher is stuck.
                let stored = try await h.report(stride(from: 2, through: 1_001, by: 100).map { start in
                    (Int64(start)..<Int64(start + 100)).map { ServiceHarness.event(run.id, $0) }
                })
                #expect(stored.accepted == 1_000)
                gate.open()
                try await group.waitForAll()
            }
            guard case .resumeFrom(let resume)? = collector.all.last else {
                Issue.record("the slow watcher was not told to resume: \(collector.all.count) items")
                return
            }
            #expect(resume.afterSequence == collector.events.last)
            #expect(collector.events == Array(1...resume.afterSequence), "what it got was in order and complete")
            let rest = try await Self.followUntil(h, run.id, after: resume.afterSequence, upTo: 1_001)
            #expect(rest == Array((resume.afterSequence + 1)...1_001), "resuming picks up exactly where it stopped")
        }
    }

    @Test("a watcher on another replica follows ingestion through LISTEN/NOTIFY alone")
    func acrossReplicas() async throws {
        try await ServiceHarness.with(database: "svc_watch_replicas") { a in
            // Replica B re-checks only once an hour: nothing but a notification can wake it.
            var slow = ExperimentServiceConfiguration()
            slow.watchRecheckInterval = .seconds(3600)
            let replicaB = ExperimentServer(database: a.database, logger: Logger(label: "replica-b"), configuration: slow)
            let run = try await a.runningExecution()
            let seen = try await withThrowingTaskGroup(of: [Int64]?.self) { group in
                group.addTask { try await replicaB.run(); return nil }
                let watching = Gate()
                group.addTask {
                    let collector = WatchCollector()
                    try await replicaB.handlers.watchExecution(.init(executionId: run.id), responses: RPCWriter {
                        collector.append($0.item)
                        if case .caughtUp? = $0.item { watching.open() }
                    }, context: ServiceHarness.context())
                    return collector.events
                }
                group.addTask {
                    // A guard, not a measurement: a lost notification would otherwise hang the test.
                    try await Task.sleep(for: .seconds(120))
                    Issue.record("the watcher on replica B was never woken")
                    return []
                }
                await watching.wait()  // caught up with nothing: all that follows must be woken for
                for start in stride(from: 1, through: 500, by: 100) {
                    _ = try await a.report([(Int64(start)..<Int64(start + 100)).map { ServiceHarness.event(run.id, $0) }])
                }
                _ = try await a.service.completeExecution(.init(executionId: run.id), context: ServiceHarness.context())  // no journal, no exit: LOST
                var result: [Int64] = []
                while let next = try await group.next() {
                    if let events = next { result = events; break }
                }
                group.cancelAll()
                return result
            }
            #expect(seen == Array(1...500))
        }
    }

    /// Reads a running execution's events up to `upTo` with ListExecutionEvents (the watcher would
    /// not end while the run goes on).
    static func followUntil(_ h: ServiceHarness, _ id: String, after: Int64, upTo: Int64) async throws -> [Int64] {
        var seen: [Int64] = [], token = ""
        repeat {
            let page = try await h.service.listExecutionEvents(.init(executionId: id, afterSequence: after, pageSize: 500, pageToken: token),
                                                               context: ServiceHarness.context())
            seen += page.events.map(\.sequence)
            token = page.nextPageToken
        } while !token.isEmpty
        return seen.filter { $0 <= upTo }
    }
}
