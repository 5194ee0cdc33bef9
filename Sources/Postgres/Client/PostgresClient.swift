import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The way services reach Postgres: a bounded pool of connections, each on its own thread.
///
/// ```swift
/// let client = PostgresClient(configuration: try PostgresConfiguration(url: url))
/// let rows = try await client.query("SELECT name FROM runs WHERE id = \(id)")
/// try await client.withTransaction { tx in
///     try await tx.execute("UPDATE runs SET state = \(state) WHERE id = \(id)")
/// }
/// ```
/// As a `Service`, `run()` waits for graceful shutdown and then closes the pool; without a
/// service group, call `close()`.
///
/// Each connection prepares a statement the first time it sees its text (and parameter types)
/// and executes it by name afterwards, so Postgres parses and plans it once per connection
/// (`PostgresConfiguration.preparedStatements`, least recently used out). Texts over 8 KiB, and new
/// texts inside a transaction once the cache is full, run unnamed. A statement whose result type a
/// migration changed (`SELECT *` after `ADD COLUMN`) is prepared again and retried outside a
/// transaction; inside one the error (SQLSTATE 0A000) aborts it and is thrown, and the next
/// attempt succeeds.
public final class PostgresClient: Sendable, Service {
    public let configuration: PostgresConfiguration
    private typealias Waiter = CheckedContinuation<PostgresConnection, any Error>
    private let state: Mutex<PoolState<PostgresConnection, Waiter>>
    private var logger: Logger { configuration.logger }

    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.state = Mutex(PoolState(capacity: configuration.maximumConnections))
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Fails every waiting checkout and closes every connection (leased ones when returned).
    public func close() async {
        let (idle, waiters) = state.withLock { $0.close() }
        for waiter in waiters { waiter.resume(throwing: DatabaseError(.clientClosed)) }
        for connection in idle { await connection.close() }
    }

    // MARK: leases

    /// Lends a connection for the body's duration. A connection that broke is reopened by its next
    /// statement; a transaction the body left open is rolled back.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await checkout()
        do {
            let result = try await body(connection)
            await release(connection)
            return result
        } catch {
            await release(connection)
            throw error
        }
    }

    public enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs the body in a transaction: committed when it returns, rolled back when it throws.
    /// A failing COMMIT (e.g. a serialization failure, ABORTED) is thrown.
    public func withTransaction<T: Sendable>(isolation: IsolationLevel = .readCommitted,
                                             _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { connection in
            try await connection.execute(SQL(unescaped: "BEGIN ISOLATION LEVEL \(isolation.rawValue)"))
            let result: T
            do {
                result = try await body(connection)
            } catch {
                // Best effort: if the connection broke, it is dropped on release anyway.
                _ = try? await connection.execute("ROLLBACK")
                throw error
            }
            try await connection.execute("COMMIT")
            return result
        }
    }

    public func query(_ sql: SQL) async throws -> [Row] {
        try await withConnection { try await $0.query(sql) }
    }

    @discardableResult
    public func execute(_ sql: SQL) async throws -> Int {
        try await withConnection { try await $0.execute(sql) }
    }

    // MARK: pool

    private func checkout() async throws -> PostgresConnection {
        // Only a queued checkout gets a timer (on a NIO event loop, which it never blocks). A timer
        // is not cancelled when its waiter is served: firing then finds nothing to fail.
        let id = Mutex<Int?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let action = state.withLock {
                    // Only spawns the connection's thread; connecting happens on that thread.
                    $0.checkout(waiter: continuation) { PostgresConnection(configuration: configuration) }
                }
                switch action {
                case .use(let connection):
                    continuation.resume(returning: connection)
                case .closed:
                    continuation.resume(throwing: DatabaseError(.clientClosed))
                case .wait(let waiterID):
                    id.withLock { $0 = waiterID }
                    if Task.isCancelled { return giveUp(waiterID, with: CancellationError()) }
                    let timeout = configuration.checkoutTimeout
                    let maximum = configuration.maximumConnections
                    MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
                        self.giveUp(waiterID, with: DatabaseError(.poolTimeout, reason:
                            "all \(maximum) connections stayed busy for \(timeout)"))
                    }
                }
            }
        } onCancel: {
            if let waiterID = id.withLock({ $0 }) { giveUp(waiterID, with: CancellationError()) }
        }
    }

    private func giveUp(_ waiterID: Int, with error: any Error) {
        // Only a waiter still queued is failed: one already served keeps its connection.
        state.withLock { $0.removeWaiter(id: waiterID) }?.resume(throwing: error)
    }

    private func release(_ connection: PostgresConnection) async {
        await connection.resetAfterUse()
        switch state.withLock({ $0.release(connection) }) {
        case .handOver(let connection, let waiter): waiter.resume(returning: connection)
        case .keep: break
        case .close(let connection): await connection.close()
        }
    }

    /// Checkouts queued behind busy connections (for tests and metrics).
    var waitingCount: Int { state.withLock { $0.waiters.count } }
    var openConnections: Int { state.withLock { $0.all.count } }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
