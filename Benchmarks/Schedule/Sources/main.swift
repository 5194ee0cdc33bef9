// Dispatch lateness: 10,000 cron plans (`* * * * *`) all due at the same minute boundary, served by
// one and then two ScheduleService replicas on one Postgres, dispatching over real sockets to a
// stand-in runner that records when each StartRun arrives (on the StartRuns stream the dispatcher
// uses, or as a unary call). Lateness = arrival - due time.
//
// Peers in the same run: the RPC floor (the same StartRun calls straight from RPC clients) and the
// streamed floor (the same messages on one stream). Environment: SCHEDULE_BENCH_PLANS (10000),
// SCHEDULE_BENCH_REPLICAS (1,2), SCHEDULE_BENCH_FLOOR (connections x in flight, e.g. 1x64,4x256),
// SCHEDULE_BENCH_FLOOR_NO_DEADLINE, SCHEDULE_BENCH_FLOOR_ONLY, SCHEDULE_BENCH_MARKS (perf marks).
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Glibc
import Logging
import NIOCore
import ScheduleService
import ServiceKit
import ServiceLifecycle
import Synchronization

let plans = Int(ProcessInfo.processInfo.environment["SCHEDULE_BENCH_PLANS"] ?? "") ?? 10_000
let targetP99 = 250.0
let credential = "schedule-benchmark"
let logger: Logger = {
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    return logger
}()

/// Records the first arrival of each plan run, and how many StartRun calls came in all (exactly-once
/// dispatch across replicas means one per plan run).
final class Recorder: RunnersV1.RunnerService, Sendable {
    let arrivals = Mutex<[String: Int64]>([:])
    let calls = Atomic<Int>(0)

    func startRun(_ request: RunnersV1.StartRunRequest, context: ServerContext) async throws -> RunnersV1.StartRunResponse {
        let now = WallClock.nowMicros()
        calls.add(1, ordering: .relaxed)
        arrivals.withLock { if $0[request.requestId] == nil { $0[request.requestId] = now } }
        return .init(run: .init(executionId: "exe-" + request.requestId, planRunId: request.planRunId, state: .running))
    }

    /// Each streamed request is recorded as a StartRun call is (the dispatcher streams when it can).
    func startRuns(_ requests: RPCAsyncSequence<RunnersV1.StartRunRequest>, responses: RPCWriter<RunnersV1.StartRunsResponse>,
                   context: ServerContext) async throws {
        try await StartRunsStream.serve(requests, responses: responses) { try await self.startRun($0, context: context) }
    }

    func cancelRun(_ request: RunnersV1.CancelRunRequest, context: ServerContext) async throws -> RunnersV1.CancelRunResponse { .init() }
    func listRuns(_ request: RunnersV1.ListRunsRequest, context: ServerContext) async throws -> RunnersV1.ListRunsResponse { .init() }
}

/// The stand-in runner is another process in production: it gets an event-loop thread of its own, so
/// that its HTTP/2 work never shares a thread with the dispatcher's client side of the same
/// connection (with NIO's shared two-thread group that happened or not depending on how many
/// channels came before).
let runnerListen: RPCServer.Configuration = {
    var configuration = RPCServer.Configuration()
    configuration.eventLoopThreads = 1
    return configuration
}()

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// CLOCK_MONOTONIC seconds on stderr with SCHEDULE_BENCH_MARKS set, to slice a `perf record -k CLOCK_MONOTONIC` profile.
func mark(_ name: String) {
    guard ProcessInfo.processInfo.environment["SCHEDULE_BENCH_MARKS"] != nil else { return }
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    FileHandle.standardError.write(Data(String(format: "mark %@ %.6f\n", name, Double(now.tv_sec) + Double(now.tv_nsec) / 1e9).utf8))
}

/// CPU seconds this process has used (user + system, every thread).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

func measure(replicas count: Int) async throws -> (p50: Double, p99: Double, max: Double, dispatched: Int) {
    var base = try await TestPostgres.freshDatabase(named: "schedule_bench_\(count)_\(WallClock.nowMicros())")
    base.maximumConnections = 8
    let setup = PostgresClient(configuration: base)
    try await ScheduleServer.migrations.apply(on: setup)

    var configuration = ScheduleServiceConfiguration()
    configuration.lease = .seconds(3600)
    let pools = (0..<count).map { _ in PostgresClient(configuration: base) }
    let replicas = pools.map { ScheduleServer(database: $0, runner: RunnerCredential(credential), logger: logger, configuration: configuration) }
    let servers = replicas.map { RPCServer(configuration: .init(), services: $0.services, logger: logger) }
    let recorder = Recorder()
    let runnerServer = RPCServer(configuration: runnerListen, services: [recorder], logger: logger)

    return try await withThrowingTaskGroup(of: Void.self) { group in
        for server in servers { group.addTask { try await server.run() } }
        group.addTask { try await runnerServer.run() }
        let runnerPort = try await runnerServer.listeningPort
        let rpc = RPCClient(host: "127.0.0.1", port: try await servers[0].listeningPort, logger: logger)
        let client = SchedulesV1.ScheduleClient(rpc)
        var runnerOptions = CallOptions(timeout: .seconds(30))
        runnerOptions.metadata = RunnerCredential.metadata(credential)
        _ = try await client.registerRunner(.init(runnerId: "bench-runner", address: "127.0.0.1:\(runnerPort)", capacity: 10_000_000),
                                            options: runnerOptions)

        // Start right after a minute boundary so that every plan is created before the next one.
        let second = Int(Date().timeIntervalSince1970) % 60
        if second > 5 { try await Task.sleep(for: .seconds(61 - second)) }
        let org = OrganizationID("bench")!
        let spec = SchedulesV1.PlanSpec(name: "bench", experimentId: "exp_bench",
                                        schedule: .init(kind: .cron(.init(expression: "* * * * *"))), concurrencyPolicy: .allow)
        try await withThrowingTaskGroup(of: Void.self) { creators in
            for worker in 0..<32 {
                creators.addTask {
                    for _ in stride(from: worker, to: plans, by: 32) {
                        _ = try await client.createPlan(.init(spec: spec), options: .on(behalfOf: org, timeout: .seconds(30)))
                    }
                }
            }
            try await creators.waitForAll()
        }
        // The measured occurrence leaves the dispatcher its whole lookahead and more; when creating
        // the plans ran close to a minute boundary, that minute fires first (not measured) and the
        // next one is measured.
        let created = WallClock.nowMicros()
        let firstDue = (created / 60_000_000 + 1) * 60_000_000
        let occurrences: Int64 = firstDue - created >= configuration.lookahead.components.seconds * 1_000_000 + 5_000_000 ? 1 : 2
        let due = firstDue + (occurrences - 1) * 60_000_000
        print(String(format: "  %d plans created %.1f s before the measured due time, %@", plans, Double(due - created) / 1e6,
                     "\(Date(timeIntervalSince1970: Double(due) / 1e6))"))
        mark("dispatch")
        for replica in replicas { group.addTask { try await replica.dispatcher.run() } }

        // How the lookahead's work goes: when the first run, all runs, and all claims were recorded
        // (polled every 100 ms), relative to the due time.
        let lookaheadMicros = configuration.lookahead.components.seconds * 1_000_000
        async let progress: (first: Int64?, recorded: Int64?, claimed: Int64?, atDue: (Int64, Int64)) = {
            try await Task.sleep(for: .microseconds(max(0, due - lookaheadMicros - 1_000_000 - WallClock.nowMicros())))
            var (first, recorded, claimed): (Int64?, Int64?, Int64?) = (nil, nil, nil)
            var atDue: (Int64, Int64) = (-1, -1)
            while claimed == nil, WallClock.nowMicros() < due + 60_000_000 {
                let counts = try await setup.query("""
                    SELECT count(*), count(*) FILTER (WHERE runner_id <> '') FROM schedules.plan_runs WHERE occurrence_us = \(due)
                    """).first.map { row -> (Int64, Int64) in try row.decode((Int64, Int64).self) } ?? (0, 0)
                let at = WallClock.nowMicros() - due
                if first == nil, counts.0 > 0 { first = at }
                if recorded == nil, counts.0 >= plans { recorded = at }
                if claimed == nil, counts.1 >= plans { claimed = at }
                if atDue.0 < 0, at >= -100_000 { atDue = counts }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (first, recorded, claimed, atDue)
        }()
        try await Task.sleep(for: .microseconds(max(0, due - WallClock.nowMicros())))
        let cpuAtDue = cpuSeconds()
        mark("due")

        // Wait for every first fire (plus a bound against hangs).
        let deadline = due + 90_000_000
        var cpuAtEnd = cpuAtDue
        while recorder.arrivals.withLock({ $0.count }) < plans * Int(occurrences) && WallClock.nowMicros() < deadline {
            try await Task.sleep(for: .milliseconds(5))
            cpuAtEnd = cpuSeconds()
        }
        mark("end")
        let lookahead = try await progress
        func ms(_ at: Int64?) -> String { at.map { String(format: "%+.0f ms", Double($0) / 1000) } ?? "never" }
        let atDue = lookahead.atDue.0 < 0 ? "" : "; at due-100ms \(lookahead.atDue.0) recorded, \(lookahead.atDue.1) claimed"
        print("  relative to due: first run recorded \(ms(lookahead.first)), all recorded \(ms(lookahead.recorded)), "
              + "all claimed \(ms(lookahead.claimed))" + atDue)
        print(String(format: "  CPU from due to last arrival %.0f ms; load average %@", (cpuAtEnd - cpuAtDue) * 1000, loadAverage()))
        // Only the occurrence at `due`: plan runs of later minutes are not counted.
        let rows = try await setup.query("SELECT id FROM schedules.plan_runs WHERE occurrence_us = \(due)")
        let ids = Set(try rows.map { try $0.decode(String.self, at: 0) })
        let arrivals = recorder.arrivals.withLock { $0 }
        let lateness = ids.compactMap { arrivals[$0] }.map { Double($0 - due) / 1000 }.sorted()
        await rpc.close()
        group.cancelAll()
        for replica in replicas { await replica.close() }
        for pool in pools { await pool.close() }
        await setup.close()
        guard !lateness.isEmpty else { return (.nan, .nan, .nan, 0) }
        print(String(format: "  first arrival %.1f ms; %d StartRun calls for %d plan runs", lateness.first!,
                     recorder.calls.load(ordering: .relaxed), arrivals.count))
        return (percentile(lateness, 0.5), percentile(lateness, 0.99), lateness.last!, lateness.count)
    }
}

/// The peer in the same run: the same StartRun calls straight from RPC clients to the same kind of
/// stand-in runner, no Postgres, no dispatcher — the floor the dispatcher's burst cannot beat.
func rpcFloor(connections: Int, inFlight: Int, timeout: Duration? = .seconds(30)) async throws -> (ms: Double, cpuMs: Double) {
    let recorder = Recorder()
    let server = RPCServer(configuration: runnerListen, services: [recorder], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let port = try await server.listeningPort
        let connected = (0..<connections).map { _ in RPCClient(host: "127.0.0.1", port: port, logger: logger) }
        let clients = connected.map(RunnersV1.RunnerClient.init)
        let org = OrganizationID("bench")!
        func call(_ i: Int) async throws {
            let id = "floor-\(i)"
            _ = try await clients[abs(i) % connections].startRun(.init(experimentId: "exp_bench", planId: "plan", planRunId: id, requestId: id),
                                                            options: .on(behalfOf: org, timeout: timeout))
        }
        for i in 0..<connections { try await call(-1 - i) }  // connect and warm up
        let (start, cpu) = (WallClock.nowMicros(), cpuSeconds())
        try await withThrowingTaskGroup(of: Void.self) { calls in
            var next = 0
            while next < min(inFlight, plans) { let i = next; calls.addTask { try await call(i) }; next += 1 }
            while try await calls.next() != nil {
                if next < plans { let i = next; calls.addTask { try await call(i) }; next += 1 }
            }
        }
        let result = (Double(WallClock.nowMicros() - start) / 1000, (cpuSeconds() - cpu) * 1000)
        for client in connected { await client.close() }
        group.cancelAll()
        return result
    }
}

/// What the same StartRun messages would cost on one stream instead of one call each (the Echo
/// service's bidirectional method; the server decodes each payload as a StartRunRequest, records
/// its arrival and answers a StartRunResponse): the floor of a streamed dispatch protocol.
final class StreamRecorder: TestingV1.EchoService, Sendable {
    let arrivals = Mutex<Int>(0)

    func update(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, responses: RPCWriter<TestingV1.EchoResponse>,
                context: ServerContext) async throws {
        for try await request in requests {
            let start = try RunnersV1.StartRunRequest(serializedBytes: request.payload)
            arrivals.withLock { $0 += 1 }
            let reply = RunnersV1.StartRunResponse(run: .init(executionId: "exe-" + start.requestId, planRunId: start.planRunId, state: .running))
            try await responses.write(.init(payload: Array(buffer: try reply.serializedBytes())))
        }
    }

    func get(_ request: TestingV1.EchoRequest, context: ServerContext) async throws -> TestingV1.EchoResponse {
        throw RPCError(.unimplemented, "not part of the benchmark")
    }
    func expand(_ request: TestingV1.EchoRequest, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
        throw RPCError(.unimplemented, "not part of the benchmark")
    }
    func collect(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, context: ServerContext) async throws -> TestingV1.EchoResponse {
        throw RPCError(.unimplemented, "not part of the benchmark")
    }
}

func streamFloor() async throws -> (ms: Double, cpuMs: Double) {
    let recorder = StreamRecorder()
    let server = RPCServer(configuration: runnerListen, services: [recorder], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let connection = RPCClient(host: "127.0.0.1", port: try await server.listeningPort, logger: logger)
        let client = TestingV1.EchoClient(connection)
        _ = try await client.update(requests: { try await $0.write(.init(payload: [])) }, responses: { try await $0.reduce(0) { n, _ in n + 1 } })
        let requests = try (0..<plans).map { i in
            let id = "stream-\(i)"
            return TestingV1.EchoRequest(payload: Array(buffer: try RunnersV1.StartRunRequest(
                experimentId: "exp_bench", planId: "plan", planRunId: id, requestId: id).serializedBytes()))
        }
        let (start, cpu) = (WallClock.nowMicros(), cpuSeconds())
        let answered = try await client.update(options: CallOptions(timeout: .seconds(30)), requests: { try await $0.write(contentsOf: requests) },
                                               responses: { responses in
            try await responses.reduce(0) { n, response in
                _ = try RunnersV1.StartRunResponse(serializedBytes: response.payload)
                return n + 1
            }
        })
        let result = (Double(WallClock.nowMicros() - start) / 1000, (cpuSeconds() - cpu) * 1000)
        precondition(answered == plans && recorder.arrivals.withLock { $0 } == plans + 1, "every streamed StartRun (and the warm-up) answered")
        await connection.close()
        group.cancelAll()
        return result
    }
}

print("ScheduleService dispatch lateness: \(plans) cron plans due at one minute boundary (release build)")
var floorMs = Double.nan
for spec in (ProcessInfo.processInfo.environment["SCHEDULE_BENCH_FLOOR"] ?? "1x64").split(separator: ",") {
    let parts = spec.split(separator: "x").compactMap { Int($0) }
    guard parts.count == 2 else { continue }
    let floor = try await rpcFloor(connections: parts[0], inFlight: parts[1])
    if floorMs.isNaN { floorMs = floor.ms }
    print(String(format: "  RPC floor: %d StartRun calls, %d connection(s), %d in flight: %.0f ms, %.0f ms CPU (%.0f µs per call); load %@",
                 plans, parts[0], parts[1], floor.ms, floor.cpuMs, floor.cpuMs * 1000 / Double(plans), loadAverage()))
}
if ProcessInfo.processInfo.environment["SCHEDULE_BENCH_FLOOR_NO_DEADLINE"] != nil {
    let floor = try await rpcFloor(connections: 1, inFlight: 64, timeout: nil)
    print(String(format: "  RPC floor without deadlines: %.0f ms, %.0f ms CPU (%.0f µs per call)", floor.ms, floor.cpuMs, floor.cpuMs * 1000 / Double(plans)))
}
let streamed = try await streamFloor()
print(String(format: "  streamed floor: the same %d StartRun messages on one bidirectional stream: %.0f ms, %.0f ms CPU (%.1f µs per run)",
             plans, streamed.ms, streamed.cpuMs, streamed.cpuMs * 1000 / Double(plans)))
if ProcessInfo.processInfo.environment["SCHEDULE_BENCH_FLOOR_ONLY"] != nil { exit(0) }
for replicas in (ProcessInfo.processInfo.environment["SCHEDULE_BENCH_REPLICAS"] ?? "1,2").split(separator: ",").compactMap({ Int($0) }) {
    let result = try await measure(replicas: replicas)
    print(String(format: "  replicas=%d dispatched=%d/%d  p50=%.1f ms  p99=%.1f ms  max=%.1f ms  p99/target(%.0f ms)=%.2f  p99/RPC floor=%.2f",
                 replicas, result.dispatched, plans, result.p50, result.p99, result.max, targetP99, result.p99 / targetP99,
                 result.p99 / floorMs))
}
