import Synchronization

/// One database connection, isolated to a thread of its own: libpq blocks there and nowhere else.
///
/// Lent out by `PostgresClient.withConnection`/`withTransaction`; do not keep it past the body.
public actor PostgresConnection {
    private let executor = DedicatedThreadExecutor()
    private let core: LibPQConnection
    /// Whether the session was left inside a transaction, so the pool can skip the hop to this
    /// thread on release when there is nothing to roll back (nearly always).
    private nonisolated let leftInTransaction = Atomic<Bool>(false)

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(configuration: PostgresConfiguration) {
        core = LibPQConnection(configuration: configuration)
    }

    /// Runs a statement and returns its rows. Cancelling the calling task sends `PQcancel`, and
    /// the statement fails with SQLSTATE 57014.
    public nonisolated func query(_ sql: SQL) async throws -> [Row] {
        try await run(sql).rows
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public nonisolated func execute(_ sql: SQL) async throws -> Int {
        try await run(sql).affectedRows
    }

    /// Streams rows into `table` with `COPY … FROM STDIN` (the batch path). `write` runs on the
    /// connection's thread; returns the number of rows copied.
    ///
    /// ```swift
    /// try await connection.copyIn(into: "events", schema: "experiments", columns: ["id", "body"]) { w in
    ///     for e in events { w.append(e.id); w.append(e.body); try w.endRow() }
    /// }
    /// ```
    @discardableResult
    public func copyIn(into table: String, schema: String? = nil, columns: [String],
                       _ write: (inout CopyWriter) throws -> Void) throws -> Int {
        let target = (schema.map { SQL.quoteIdentifier($0) + "." } ?? "") + SQL.quoteIdentifier(table)
        let columnList = columns.map(SQL.quoteIdentifier).joined(separator: ", ")
        defer { noteTransactionState() }
        try core.ensureConnected()
        return try core.copyIn("COPY \(target) (\(columnList)) FROM STDIN", produce: write)
    }

    /// `copyIn` for rows whose values are only known at run time.
    @discardableResult
    public func copyIn(into table: String, schema: String? = nil, columns: [String],
                       rows: [[(any PostgresEncodable)?]]) throws -> Int {
        try copyIn(into: table, schema: schema, columns: columns) { writer in
            for row in rows {
                for value in row { writer.append(any: value) }
                try writer.endRow()
            }
        }
    }

    private nonisolated func run(_ sql: SQL) async throws -> QueryResult {
        let cancellation = QueryCancellation()
        return try await withTaskCancellationHandler {
            try await self.runIsolated(sql, cancellation)
        } onCancel: {
            cancellation.request()
        }
    }

    private func runIsolated(_ sql: SQL, _ cancellation: QueryCancellation) throws -> QueryResult {
        guard !cancellation.isRequested else { throw CancellationError() }
        defer { noteTransactionState() }
        try core.ensureConnected()
        return try core.execute(sql, cancellation: cancellation)
    }

    private func noteTransactionState() {
        core.noteTransactionState()
        leftInTransaction.store(core.needsReset, ordering: .releasing)
    }

    // MARK: for the pool and migrations

    /// Rolls back what a lease left open. Connecting is left to the first statement, so a lease
    /// costs no hop to this thread beyond its statements'.
    nonisolated func resetAfterUse() async {
        guard leftInTransaction.load(ordering: .acquiring) else { return }
        await resetIsolated()
    }

    private func resetIsolated() {
        defer { noteTransactionState() }
        core.resetAfterUse()
    }

    /// Simple-protocol script (several statements, no parameters): trusted text only.
    func executeScript(_ script: String) throws(DatabaseError) {
        defer { noteTransactionState() }
        try core.ensureConnected()
        try core.executeScript(script)
    }

    /// Statements prepared on the current session (for tests).
    var cachedStatementCount: Int { core.cachedStatementCount }

    /// Closes the connection and ends its thread.
    nonisolated func close() async {
        await closeIsolated()
        await executor.shutdown()
    }

    private func closeIsolated() { core.close() }
}
