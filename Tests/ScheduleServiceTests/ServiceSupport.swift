import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Synchronization
import Testing
@testable import ScheduleService

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessInfo.processInfo.environment["FAULTLINE_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// A stand-in runner: the real RunnersV1 protocol on a real socket, recording every call.
final class StandInRunner: RunnersV1.RunnerService, Sendable {
    /// `hold`: StartRun waits until `release()`, then accepts.
    enum Mode: Sendable { case accept, unavailable, full, refuse, hold }

    struct State {
        var started: [RunnersV1.StartRunRequest] = []
        var byRequest: [String: String] = [:]
        var cancelled: [RunnersV1.CancelRunRequest] = []
        var mode = Mode.accept
        /// Every StartRun that arrived, repeats included.
        var calls = 0
        var held: [CheckedContinuation<Void, Never>] = []
        /// StartRuns streams opened (refused ones included).
        var streams = 0
        /// A StartRuns stream fails UNAVAILABLE on the request after this many.
        var streamBreaksAfter: Int?
        /// The organisations ListRuns was called for.
        var listedFor: [String] = []
    }

    let state = Mutex(State())
    private let served = Mutex<Served?>(nil)
    /// Answers StartRuns with UNIMPLEMENTED, as a runner from before it did.
    let unaryOnly: Bool

    init(unaryOnly: Bool = false) {
        self.unaryOnly = unaryOnly
    }

    /// Serves it on a free port; answers `127.0.0.1:port`.
    func serve() async throws -> String {
        let served = try await Served.start([self])
        self.served.withLock { $0 = served }
        return served.address
    }

    var started: [RunnersV1.StartRunRequest] { state.withLock { $0.started } }
    var cancelled: [RunnersV1.CancelRunRequest] { state.withLock { $0.cancelled } }
    var calls: Int { state.withLock { $0.calls } }
    var streams: Int { state.withLock { $0.streams } }
    var heldCount: Int { state.withLock { $0.held.count } }
    var listedFor: [String] { state.withLock { $0.listedFor } }
    func set(_ mode: Mode) { state.withLock { $0.mode = mode } }
    func breakStreams(after answered: Int?) { state.withLock { $0.streamBreaksAfter = answered } }

    /// Lets held StartRuns go on; later ones are accepted at once.
    func release() {
        let held = state.withLock { state in
            state.mode = .accept
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    func startRun(_ request: RunnersV1.StartRunRequest, context: ServerContext) async throws -> RunnersV1.StartRunResponse {
        _ = try context.organization()
        let hold = state.withLock { state in
            state.calls += 1
            return state.mode == .hold
        }
        if hold {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    guard state.mode == .hold else { return true }
                    state.held.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        return try state.withLock { state throws(RPCError) in
            switch state.mode {
            case .accept, .hold: break
            case .unavailable: throw RPCError(.unavailable, "stand-in is down")
            case .full: throw RPCError(.resourceExhausted, "stand-in is full")
            case .refuse: throw RPCError(.notFound, "no experiment")
            }
            if let execution = state.byRequest[request.requestId] {
                return .init(run: .init(executionId: execution, planRunId: request.planRunId, state: .running))
            }
            let execution = "exe-" + request.requestId
            state.byRequest[request.requestId] = execution
            state.started.append(request)
            return .init(run: .init(executionId: execution, experimentId: request.experimentId, planId: request.planId,
                                    planRunId: request.planRunId, state: .running))
        }
    }

    func startRuns(_ requests: RPCAsyncSequence<RunnersV1.StartRunRequest>, responses: RPCWriter<RunnersV1.StartRunsResponse>,
                   context: ServerContext) async throws {
        let breaksAfter = state.withLock { state in
            state.streams += 1
            return state.streamBreaksAfter
        }
        guard !unaryOnly else { throw RPCError(.unimplemented, "method not found: StartRuns") }
        guard let breaksAfter else {
            return try await StartRunsStream.serve(requests, responses: responses) { try await self.startRun($0, context: context) }
        }
        var answered = 0
        for try await request in requests {
            guard answered < breaksAfter else { throw RPCError(.unavailable, "the stream broke") }
            try await responses.write(.init(requestId: request.requestId, result: .started(try await startRun(request, context: context))))
            answered += 1
        }
    }

    func cancelRun(_ request: RunnersV1.CancelRunRequest, context: ServerContext) async throws -> RunnersV1.CancelRunResponse {
        state.withLock { $0.cancelled.append(request) }
        return .init(run: .init(executionId: request.executionId, state: .cancelling))
    }

    func listRuns(_ request: RunnersV1.ListRunsRequest, context: ServerContext) async throws -> RunnersV1.ListRunsResponse {
        let organization = try context.organization()
        state.withLock { $0.listedFor.append(organization.rawValue) }
        return .init()
    }

    func stop() async { await served.withLock { $0 }?.stop() }
}

/// RPC services on a real socket of their own.
struct Served: Sendable {
    let address: String
    let port: Int
    let task: Task<Void, any Error>

    static func start(_ services: [any RPCService]) async throws -> Served {
        let server = RPCServer(configuration: .init(), services: services, logger: quietLogger)
        let task = Task { try await server.run() }
        let port = try await server.listeningPort
        return Served(address: "127.0.0.1:\(port)", port: port, task: task)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// ScheduleService replicas on one fresh database, each on its own socket, all reading one
/// ManualClock: tests move the clock and run dispatch passes by hand, never sleeping.
struct Platform: Sendable {
    static let org = OrganizationID("org-a")!
    static let credential = "runner-credential-for-schedule-tests"

    let database: PostgresClient
    let clock: ManualClock
    let replicas: [ScheduleServer]
    let clients: [SchedulesV1.ScheduleClient]

    var schedule: SchedulesV1.ScheduleClient { clients[0] }

    static func with(database name: String, replicas count: Int = 1, start: Date = utc("2026-06-01T10:00:30Z"),
                     configure: (inout ScheduleServiceConfiguration) -> Void = { _ in }, logger: Logger = quietLogger,
                     _ body: (Platform) async throws -> Void) async throws {
        try await TestPostgres.withClient(database: name, maximumConnections: 8) { database in
            try await with(client: database, replicas: count, start: start, configure: configure, logger: logger, body)
        }
    }

    /// The same on a client the test made (a Postgres of its own).
    static func with(client database: PostgresClient, replicas count: Int = 1, start: Date = utc("2026-06-01T10:00:30Z"),
                     configure: (inout ScheduleServiceConfiguration) -> Void = { _ in }, logger: Logger = quietLogger,
                     _ body: (Platform) async throws -> Void) async throws {
        do {
            try await ScheduleServer.migrations.apply(on: database)
            var configuration = ScheduleServiceConfiguration()
            configuration.callTimeout = .seconds(20)
            // Tests that are not about leases move the clock freely without heartbeats.
            configuration.lease = .seconds(3600)
            // Decisions exactly at the ManualClock's time (the lookahead is measured in the benchmark).
            configuration.lookahead = .zero
            configure(&configuration)
            let clock = ManualClock(start)
            var replicas: [ScheduleServer] = []
            var served: [Served] = []
            var rpcClients: [RPCClient] = []
            for _ in 0..<count {
                // Each replica gets its own pool, as separate processes would.
                let replica = ScheduleServer(database: database, runner: RunnerCredential(credential), logger: logger,
                                             clock: clock, configuration: configuration)
                let endpoint = try await Served.start(replica.services)
                replicas.append(replica)
                served.append(endpoint)
                rpcClients.append(RPCClient(host: "127.0.0.1", port: endpoint.port, logger: quietLogger))
            }
            let platform = Platform(database: database, clock: clock, replicas: replicas,
                                    clients: rpcClients.map { SchedulesV1.ScheduleClient($0) })
            var failure: (any Error)?
            do { try await body(platform) } catch { failure = error }
            for client in rpcClients { await client.close() }
            for replica in replicas { await replica.close() }
            for endpoint in served { await endpoint.stop() }
            if let failure { throw failure }
        }
    }

    static func options(_ org: OrganizationID = org) -> CallOptions { .on(behalfOf: org, timeout: .seconds(30)) }

    static var runnerOptions: CallOptions {
        var options = CallOptions(timeout: .seconds(30))
        options.metadata = RunnerCredential.metadata(credential)
        return options
    }

    @discardableResult
    func register(_ address: String, id: String, capacity: Int32 = 100, labels: [String: String] = [:],
                  organizations: [String] = []) async throws -> SchedulesV1.Runner {
        try #require(try await schedule.registerRunner(
            .init(runnerId: id, name: id, address: address, labels: labels, capacity: capacity, version: "test", organizations: organizations),
            options: Self.runnerOptions).runner)
    }

    func heartbeat(_ id: String, capacity: Int32 = 100, executions: [String] = []) async throws -> SchedulesV1.HeartbeatResponse {
        try await schedule.heartbeat(.init(runnerId: id, capacity: capacity, executionIds: executions), options: Self.runnerOptions)
    }

    /// Dispatch passes on every replica at once until one round does nothing.
    @discardableResult
    func dispatch() async throws -> DispatchPass {
        var total = DispatchPass(lostRunners: 0, fired: 0, dispatched: 0, queued: 0, failed: 0)
        for _ in 0..<50 {
            let passes = try await withThrowingTaskGroup(of: DispatchPass.self) { group in
                for replica in replicas { group.addTask { try await replica.dispatchOnce() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let round = passes.reduce(DispatchPass(lostRunners: 0, fired: 0, dispatched: 0, queued: 0, failed: 0)) {
                DispatchPass(lostRunners: $0.lostRunners + $1.lostRunners, fired: $0.fired + $1.fired,
                             dispatched: $0.dispatched + $1.dispatched, queued: $0.queued + $1.queued, failed: $0.failed + $1.failed)
            }
            total = DispatchPass(lostRunners: total.lostRunners + round.lostRunners, fired: total.fired + round.fired,
                                 dispatched: total.dispatched + round.dispatched, queued: total.queued + round.queued,
                                 failed: total.failed + round.failed)
            if round.fired == 0 && round.dispatched == 0 && round.lostRunners == 0 { break }
        }
        return total
    }

    func createPlan(_ spec: SchedulesV1.PlanSpec, org: OrganizationID = org) async throws -> SchedulesV1.Plan {
        try #require(try await schedule.createPlan(.init(spec: spec), options: Self.options(org)).plan)
    }

    func runs(_ planID: String) async throws -> [SchedulesV1.PlanRun] {
        try await schedule.listPlanRuns(.init(pageSize: 500, planId: planID), options: Self.options()).runs
    }

    static func spec(_ cron: String = "* * * * *", zone: String = "UTC", name: String = "every minute",
                     _ configure: (inout SchedulesV1.PlanSpec) -> Void = { _ in }) -> SchedulesV1.PlanSpec {
        var spec = SchedulesV1.PlanSpec(name: name, experimentId: "exp_0193aaaabbbbccccddddeeeeffff0000",
                                        schedule: .init(kind: .cron(.init(expression: cron, timeZone: zone))),
                                        concurrencyPolicy: .allow, maxInFlight: 1000)
        configure(&spec)
        return spec
    }
}

/// Expects an `RPCError` with `code` from `body`.
@discardableResult
func expectRPCError<T>(_ code: RPCError.Code, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> T) async -> RPCError? {
    do {
        _ = try await body()
        Issue.record("\(what): expected \(code), the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(what): \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("\(what): expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
