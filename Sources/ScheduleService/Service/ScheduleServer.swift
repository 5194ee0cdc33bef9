// ScheduleServer: the entry point of the `faultline schedule-service` command.
//
// ```swift
// try await ScheduleServer.migrations.apply(on: database)               // schema `schedules`
// let server = ScheduleServer(database: database, runner: RunnerCredential(env["FAULTLINE_RUNNER_CREDENTIAL"]),
//                             logger: logger)
// // serve `server.services` with an RPCServer; run `server.dispatcher` beside it
// ```
public import FaultlinePostgres
public import FaultlineRPC
import Foundation
public import Logging
public import ServiceKit
public import ServiceLifecycle

/// Limits and timings of the ScheduleService; the defaults suit production.
public struct ScheduleServiceConfiguration: Sendable {
    /// A runner's lease: without a heartbeat for this long it is LOST, with its runs.
    public var lease: Duration = .seconds(15)
    /// What runners are told to keep to (a third of the lease).
    public var heartbeatInterval: Duration = .seconds(5)
    /// How often an idle dispatcher looks for due work.
    public var pollInterval: Duration = .milliseconds(50)
    /// How far ahead occurrences are fired and their runs claimed, so that at the due time only
    /// StartRun is left to do. Concurrency policies and halts are then judged up to this much
    /// early (a halt in between still cancels the run right after it started). 0 = at the due time.
    public var lookahead: Duration = .seconds(5)
    /// Plans or plan runs one transaction takes.
    public var batchSize = 500
    /// StartRun calls in flight at once per runner and organisation, for runners without StartRuns.
    public var startConcurrency = 64
    /// StartRun and CancelRun deadline.
    public var callTimeout: Duration = .seconds(10)
    /// How long a runner that refused or could not be reached is passed over for a run.
    public var unreachableBackoff: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(2)
    /// SKIPPED plan runs recorded longer ago than this are deleted (a plan's latest run is always
    /// kept); nil keeps them forever. `FAULTLINE_SCHEDULE_SKIPPED_RETENTION` (`SkippedRetention`).
    public var skippedRetention: Duration? = .seconds(30 * 86_400)
    /// Plan runs one prune statement deletes: small, so that no statement holds its locks for long.
    public var pruneBatchSize = 1_000
    /// How often the dispatch loop prunes when the last prune found nothing more to delete.
    public var pruneInterval: Duration = .seconds(60)

    public init() {}
}

/// The ScheduleService of one replica: its RPC handlers and its dispatcher. Any number of
/// replicas may serve one database; Postgres row locks keep them from firing anything twice.
public struct ScheduleServer: Sendable {
    /// The `schedules` schema; apply before serving.
    public static let migrations: Migrations = ScheduleSchema.migrations

    let handlers: ScheduleRPCService
    let loop: DispatchLoop

    public init(database: PostgresClient, runner: RunnerCredential, logger: Logger,
                clock: any ScheduleClock = SystemClock(), configuration: ScheduleServiceConfiguration = .init()) {
        let connections = RunnerConnections(logger: logger, connectTimeout: configuration.connectTimeout)
        let dispatcher = Dispatcher(database: database, clock: clock, connections: connections, configuration: configuration, logger: logger)
        handlers = ScheduleRPCService(database: database, runner: runner, clock: clock, dispatcher: dispatcher, logger: logger)
        let retention = configuration.skippedRetention.map {
            PlanRunRetention(database: database, age: $0, batchSize: configuration.pruneBatchSize)
        }
        loop = DispatchLoop(dispatcher: dispatcher, retention: retention, logger: logger)
    }

    public var services: [any RPCService] { [handlers] }

    /// The dispatch loop, as a ServiceLifecycle service (stops on graceful shutdown).
    public var dispatcher: any Service { loop }

    /// One dispatch pass now, at the clock's time: what tests call after moving a ManualClock.
    @discardableResult
    public func dispatchOnce() async throws -> DispatchPass {
        let pass = try await loop.dispatcher.tick()
        return DispatchPass(lostRunners: pass.lostRunners, fired: pass.fired, dispatched: pass.dispatched, queued: pass.queued, failed: pass.failed)
    }

    /// One prune batch now, at the clock's time (what the dispatch loop does every `pruneInterval`):
    /// how many SKIPPED plan runs it deleted; 0 when retention is off.
    @discardableResult
    public func pruneOnce() async throws -> Int {
        try await loop.retention?.pruneBatch(now: loop.dispatcher.clock.now()) ?? 0
    }

    /// Closes the connections to runners.
    public func close() async { await loop.dispatcher.connections.closeAll() }
}

/// What one dispatch pass did.
public struct DispatchPass: Sendable, Equatable {
    public var lostRunners: Int
    public var fired: Int
    public var dispatched: Int
    public var queued: Int
    public var failed: Int
}

/// Runs dispatch passes until shutdown: at once again while a pass found work, else after the
/// poll interval. A failing pass (Postgres down) is logged and retried, never fatal. Between passes
/// it prunes old SKIPPED plan runs: one batch after a pass, every `pruneInterval`, or after every
/// pass while batches come back full.
struct DispatchLoop: Service {
    let dispatcher: Dispatcher
    let retention: PlanRunRetention?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            var timer = retention.map {
                PruneTimer(interval: dispatcher.configuration.pruneInterval, batchSize: $0.batchSize, next: dispatcher.clock.now())
            }
            while !Task.isCancelled {
                do {
                    let pass = try await dispatcher.tick()
                    failures = 0
                    let now = dispatcher.clock.now()
                    if let retention, timer?.isDue(now) == true {
                        let pruned = try await retention.pruneBatch(now: now)
                        timer?.pruned(pruned, at: now)
                        if pruned > 0 { logger.debug("pruned skipped plan runs", metadata: ["count": "\(pruned)"]) }
                    }
                    if pass.fired > 0 || pass.dispatched > 0 { continue }
                    try? await Task.sleep(for: dispatcher.configuration.pollInterval)
                } catch {
                    // Postgres down (or a deadlock with another replica, which Postgres breaks):
                    // back off up to five seconds, logging once per failure streak step.
                    failures += 1
                    logger.warning("dispatch pass failed; retrying", metadata: ["error": "\(RPCError(from: error))", "failures": "\(failures)"])
                    try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures, 6)), .seconds(5)))
                }
            }
        }
        await dispatcher.connections.closeAll()
    }
}
