// ExperimentServer: the entry point of the `faultline experiment-service` command.
//
// ```swift
// let database = PostgresClient(configuration: try PostgresConfiguration(url: url))
// try await ExperimentServer.migrations.apply(on: database)   // schema `experiments`
// let server = ExperimentServer(database: database, logger: logger)
// let rpc = RPCServer(configuration: .init(host: host, port: port), services: server.services, logger: logger)
// // One ServiceGroup: [database, server, rpc]. `server.run()` listens for event notifications
// // (LISTEN faultline_experiment_events) and applies retention every hour.
// ```
//
// Layout: `Store/` owns SQL (schema `experiments`: experiments, revisions, executions, events,
// retention_policies; times as bigint µs; ids `exp_`/`exe_` + UUIDv7 hex), `Service/` owns the
// RPC handlers, reading/validating documents (Domain), completions (Domain outcome and score),
// event ingestion checks and watchers. Every statement is scoped by the caller's organisation.
//
// Events: each ReportEvents message is checked as a whole, then written in transactions of up to
// `ingestBatchRows` rows: COPY into a per-connection temp table, one INSERT … ON CONFLICT DO
// NOTHING into `events` (PRIMARY KEY (execution_id, seq)), counters advanced, and one
// `pg_notify(<execution>:<max seq>)` per execution, delivered at commit. Watchers re-query
// Postgres on a notification (or every `watchRecheckInterval`), send the contiguous prefix while
// the run goes on and everything once it is terminal, and get `resume_from` once more than
// `watchBacklogLimit` events that arrived since they started are still unsent.
public import FaultlinePostgres
public import FaultlineRPC
public import Logging
public import ServiceLifecycle

/// Limits and periods of the ExperimentService; the defaults suit production.
public struct ExperimentServiceConfiguration: Sendable {
    /// Experiment documents (JSON or YAML): larger ones are INVALID_ARGUMENT (`document.too_large`).
    public var documentLimits = DocumentLimits()
    /// Journals: larger or deeper ones are RESOURCE_EXHAUSTED.
    public var journalLimits = DocumentLimits(maxBytes: 32 << 20, maxDepth: 256, maxExpandedBytes: 32 << 20)
    /// The log kept per execution; beyond it the tail is dropped and a marker appended.
    public var maximumLogBytes = 1 << 20
    /// The longest pause; a pause asking for 0 or more gets this.
    public var maximumPauseUs: Int64 = 3_600_000_000
    /// One event's `payload_json`; larger is INVALID_ARGUMENT.
    public var maximumEventPayloadBytes = 64 << 10
    /// Events written per transaction when a ReportEvents message carries more.
    public var ingestBatchRows = 5_000
    /// How far (in events) a watcher may fall behind what is stored before it is told to resume.
    public var watchBacklogLimit: Int64 = 10_000
    /// Events read per query by a watcher.
    public var watchPageSize = 500
    /// A watcher re-checks this often even without a notification (lost NOTIFYs, no listener).
    public var watchRecheckInterval: Duration = .seconds(2)
    /// How often retention runs for every organisation with a policy.
    public var retentionInterval: Duration = .seconds(3600)

    public init() {}
}

/// The ExperimentService of one replica: its RPC handlers (`services`) and, as a `Service`, the
/// background work they rely on (the NOTIFY listener that wakes watchers, periodic retention).
public struct ExperimentServer: Service {
    /// The `experiments` schema; apply before serving.
    public static let migrations: Migrations = ExperimentSchema.migrations

    let handlers: ExperimentRPCService

    public init(database: PostgresClient, logger: Logger, configuration: ExperimentServiceConfiguration = .init()) {
        handlers = ExperimentRPCService(database: database, logger: logger, configuration: configuration, hub: WatchHub())
    }

    public var services: [any RPCService] { [handlers] }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await handlers.hub.run(database: handlers.database, logger: handlers.logger) }
            group.addTask { await handlers.retentionLoop() }
            group.addTask { try? await gracefulShutdown() }
            await group.next()
            group.cancelAll()
        }
    }
}
