internal import CLibPQ
import Foundation
import Logging

/// `PG_DIAG_*` are character-literal macros, which the importer drops (swift-style §2, pitfall 2).
private enum Diag {
    static let sqlState = Int32(UInt8(ascii: "C"))
    static let messagePrimary = Int32(UInt8(ascii: "M"))
    static let messageDetail = Int32(UInt8(ascii: "D"))
    static let schemaName = Int32(UInt8(ascii: "s"))
    static let tableName = Int32(UInt8(ascii: "t"))
    static let columnName = Int32(UInt8(ascii: "c"))
    static let constraintName = Int32(UInt8(ascii: "n"))
    static let sourceFunction = Int32(UInt8(ascii: "R"))
}

struct QueryResult: Sendable {
    var rows: [Row] = []
    var affectedRows = 0
}

/// Sole owner of one `PGconn`. Blocking libpq calls happen here, so it must only ever run on a
/// dedicated thread (the `PostgresConnection` actor's executor). Not Sendable.
final class LibPQConnection {
    private var raw: OpaquePointer?
    let configuration: PostgresConfiguration
    let cancelHandle = CancelHandle()
    /// Statements prepared on the current session; a new session starts empty.
    private var statements: StatementCache
    /// The session was inside a transaction when last seen healthy. If it is lost then, the
    /// transaction is gone with it: reconnecting would run the lease's next statements outside
    /// it, so they fail until the pool takes the connection back (`resetAfterUse()` clears this).
    private var transactionOpen = false
    private var logger: Logger { configuration.logger }

    init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.statements = StatementCache(capacity: configuration.preparedStatements)
    }

    deinit { close() }

    var isConnected: Bool { raw.map { PQstatus($0) == CONNECTION_OK } ?? false }

    var cachedStatementCount: Int { statements.count }

    /// Inside a transaction (or in an unknown state): `resetAfterUse` has something to do.
    var isInTransaction: Bool { raw.map { PQtransactionStatus($0) != PQTRANS_IDLE } ?? false }

    /// The lease left something for `resetAfterUse`: an open transaction, or one lost with its session.
    var needsReset: Bool { transactionOpen || isInTransaction }

    /// Records whether a healthy session is inside a transaction; a lost one keeps what was seen last.
    func noteTransactionState() {
        guard let raw, PQstatus(raw) == CONNECTION_OK else { return }
        let status = PQtransactionStatus(raw)
        transactionOpen = status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    func close() {
        cancelHandle.remove()
        if let raw { PQfinish(raw) }
        raw = nil
        statements.removeAll()
    }

    // MARK: connecting

    func connect() throws(DatabaseError) {
        close()
        var pairs = configuration.libpqParameters
        pairs.append(("client_encoding", "UTF8"))
        let connection = withCStrings(pairs.map(\.0)) { keys in
            withCStrings(pairs.map(\.1)) { values in PQconnectdbParams(keys, values, 0) }
        }
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let message = connection.map { configuration.redact(String(cString: PQerrorMessage($0))) }
            PQfinish(connection)
            var error = DatabaseError(.connectionFailed, reason: "cannot connect to \(configuration.host):\(configuration.port)")
            error.serverMessage = message?.trimmingCharacters(in: .whitespacesAndNewlines)
            logger.warning("postgres connect failed", metadata: ["db.url": "\(configuration)", "db.error": "\(message ?? "")"])
            throw error
        }
        raw = connection
        cancelHandle.install(from: connection)
        // Server notices go to the log, not to stderr. `self` outlives the PGconn (closed in deinit).
        PQsetNoticeProcessor(connection, onNotice, Unmanaged.passUnretained(self).toOpaque())
        // Decoding relies on ISO timestamps in UTC; the timeout is the client's policy.
        var setup = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET bytea_output = 'hex';"
        if let timeout = configuration.statementTimeout {
            let ms = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            setup += " SET statement_timeout = \(ms);"
        }
        try executeScript(setup)
    }

    /// Opens the connection if it is closed or broken, and notices a server that went away while
    /// the connection sat idle (its EOF is already in the socket), so a stale connection is
    /// replaced before a statement is lost on it.
    func ensureConnected() throws(DatabaseError) {
        if let raw, PQstatus(raw) == CONNECTION_OK {
            var fd = pollfd(fd: PQsocket(raw), events: Int16(POLLIN), revents: 0)
            var rounds = 0
            while rounds < 4, poll(&fd, 1, 0) > 0 {
                rounds += 1
                if PQconsumeInput(raw) == 0 || PQstatus(raw) != CONNECTION_OK { break }
                while let notice = PQnotifies(raw) { PQfreemem(notice) }  // not ours to deliver
            }
            if PQstatus(raw) == CONNECTION_OK { return }
            guard !transactionOpen else { throw Self.transactionLost }
            logger.info("postgres connection went away while idle; reconnecting")
        } else if transactionOpen {
            throw Self.transactionLost
        }
        try connect()
    }

    static let transactionLost = DatabaseError(.connectionLost, reason:
        "the connection was lost inside a transaction, which is gone with it; nothing more runs on this lease")

    /// Returns the connection to a clean state after a lease: a transaction the body left open is
    /// rolled back, and a connection in an unknown state is dropped.
    func resetAfterUse() {
        transactionOpen = false
        guard let raw else { return }
        switch PQtransactionStatus(raw) {
        case PQTRANS_IDLE:
            return
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            if (try? executeScript("ROLLBACK")) == nil { close() }
        default:
            close()
        }
    }

    // MARK: statements

    /// Runs one statement. A cacheable one is prepared under a name the first time this session
    /// sees it, and executed by name afterwards, so the server parses and plans it once.
    func execute(_ sql: SQL, cancellation: QueryCancellation?) throws(DatabaseError) -> QueryResult {
        guard let raw, PQstatus(raw) == CONNECTION_OK else {
            throw DatabaseError(.connectionLost, reason: "the connection is closed")
        }
        let (text, binds) = sql.render()
        let parameters = try Parameters(binds)
        let key = StatementCache.Key(text: text, types: parameters.types)
        guard statements.capacity > 0, StatementCache.isCacheable(key) else {
            return try roundTrip(cancellation) { raw in parameters.send(raw, text: text) }
        }
        if let name = statements.lookup(key) {
            // Outside a transaction the failed statement was rolled back whole, so it may run again.
            let mayRetry = PQtransactionStatus(raw) == PQTRANS_IDLE
            do throws(DatabaseError) {
                return try roundTrip(cancellation) { raw in parameters.send(raw, statement: name) }
            } catch {
                guard Self.invalidatesStatement(error) else { throw error }
                // The server dropped or outgrew the statement (a migration changed what
                // `SELECT *` returns; `DEALLOCATE ALL`): forget it, and prepare it afresh once.
                _ = statements.remove(key)
                if error.sqlState == "0A000" { statements.markStale(name) }  // the server still holds it
                guard mayRetry, self.raw != nil else { throw error }
            }
        }
        guard let name = try prepare(key, cancellation) else {
            return try roundTrip(cancellation) { raw in parameters.send(raw, text: text) }
        }
        return try roundTrip(cancellation) { raw in parameters.send(raw, statement: name) }
    }

    /// Prepares `key` under a new name and records it; nil when it should run unnamed this time.
    /// A statement the server refused is not recorded.
    private func prepare(_ key: StatementCache.Key, _ cancellation: QueryCancellation?) throws(DatabaseError) -> String? {
        guard let raw else { throw DatabaseError(.connectionLost, reason: "the connection is closed") }
        switch PQtransactionStatus(raw) {
        case PQTRANS_IDLE:
            // `DEALLOCATE` of a name the server forgot fails; outside a transaction that harms nothing.
            if statements.isFull, let evicted = statements.evictLeastRecent() { statements.markStale(evicted) }
            let stale = statements.takeStale()
            if !stale.isEmpty {
                do throws(DatabaseError) {
                    try executeScript(stale.map { "DEALLOCATE " + SQL.quoteIdentifier($0) + ";" }.joined(separator: " "))
                } catch {
                    if error.code != .server { throw error }
                }
            }
        case PQTRANS_INTRANS:
            // A failing `DEALLOCATE` would abort the caller's transaction: no eviction in here.
            if statements.isFull { return nil }
        default:
            return nil  // a failed transaction refuses to parse anything but its end
        }
        let name = statements.makeName()
        _ = try roundTrip(cancellation) { raw in
            PQsendPrepare(raw, name, key.text, Int32(key.types.count), key.types)
        }
        statements.insert(key, name: name)
        return name
    }

    /// "cached plan must not change result type" and "prepared statement does not exist", told
    /// apart by the reporting routine from the same SQLSTATEs raised by the statement itself.
    private static func invalidatesStatement(_ error: DatabaseError) -> Bool {
        guard error.code == .server else { return false }
        switch (error.sqlState, error.sourceFunction) {
        case ("0A000", "RevalidateCachedQuery"), ("26000", "FetchPreparedStatement"): return true
        default: return false
        }
    }

    /// Sends one request and reads its results; cancelling the caller cancels it on the server.
    private func roundTrip(_ cancellation: QueryCancellation?,
                           _ send: (OpaquePointer) -> Int32) throws(DatabaseError) -> QueryResult {
        guard let raw else { throw DatabaseError(.connectionLost, reason: "the connection is closed") }
        guard send(raw) == 1 else { throw connectionError("cannot send the statement") }
        let generation = cancelHandle.begin()
        cancellation?.attach(cancelHandle, generation: generation)
        defer {
            cancellation?.detach()
            cancelHandle.end()
        }
        return try drainResults()
    }

    /// Runs SQL through the simple query protocol: several statements, no parameters. Only for
    /// text this program wrote (session setup, migrations); never for anything from outside.
    func executeScript(_ script: String) throws(DatabaseError) {
        guard let raw, PQstatus(raw) == CONNECTION_OK else {
            throw DatabaseError(.connectionLost, reason: "the connection is closed")
        }
        guard PQsendQuery(raw, script) == 1 else { throw connectionError("cannot send the statement") }
        _ = try drainResults()
    }

    /// Reads every result up to the terminating NULL, even after an error, so the connection is
    /// ready for the next statement; the first error wins.
    private func drainResults() throws(DatabaseError) -> QueryResult {
        guard let raw else { throw DatabaseError(.connectionLost, reason: "the connection is closed") }
        var result = QueryResult()
        var failure: DatabaseError?
        while let res = PQgetResult(raw) {
            defer { PQclear(res) }
            switch PQresultStatus(res) {
            case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
                result.rows += Self.rows(of: res)
                result.affectedRows = Int(String(cString: PQcmdTuples(res))) ?? result.rows.count
            case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                result.affectedRows = Int(String(cString: PQcmdTuples(res))) ?? 0
            case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
                // COPY through query(): libpq repeats this result until the COPY ends, so end it
                // (or drop the connection) rather than loop forever.
                failure = failure ?? DatabaseError(.invalidParameter, reason: "COPY runs only through copyIn")
                if !abandonCopy(raw, PQresultStatus(res)) {
                    close()
                    throw failure!
                }
            default:
                failure = failure ?? serverError(res)
            }
        }
        if PQstatus(raw) != CONNECTION_OK {
            var lost = failure ?? DatabaseError(.connectionLost)
            lost.code = .connectionLost
            close()
            throw lost
        }
        if let failure { throw failure }
        return result
    }

    /// Ends a COPY nobody asked for: refuses COPY IN, discards COPY OUT. False if it cannot.
    private func abandonCopy(_ raw: OpaquePointer, _ status: ExecStatusType) -> Bool {
        switch status {
        case PGRES_COPY_IN:
            return PQputCopyEnd(raw, "COPY is only supported through copyIn") == 1
        case PGRES_COPY_OUT:
            while true {
                var buffer: UnsafeMutablePointer<CChar>?
                let length = PQgetCopyData(raw, &buffer, 0)
                if let buffer { PQfreemem(buffer) }
                if length == -1 { return true }
                if length < -1 { return false }
            }
        default:
            return false
        }
    }

    private func serverError(_ res: OpaquePointer) -> DatabaseError {
        func field(_ code: Int32) -> String? { PQresultErrorField(res, code).map { String(cString: $0) } }
        var error = DatabaseError(.server, sqlState: field(Diag.sqlState))
        error.serverMessage = field(Diag.messagePrimary).map(configuration.redact)
            ?? configuration.redact(String(cString: PQresultErrorMessage(res))).trimmingCharacters(in: .whitespacesAndNewlines)
        error.serverDetail = field(Diag.messageDetail).map(configuration.redact)
        error.schemaName = field(Diag.schemaName)
        error.tableName = field(Diag.tableName)
        error.columnName = field(Diag.columnName)
        error.constraintName = field(Diag.constraintName)
        error.sourceFunction = field(Diag.sourceFunction)
        if error.sqlState == nil { error.code = .connectionLost }  // libpq's own errors: the link failed
        return error
    }

    private func connectionError(_ reason: String) -> DatabaseError {
        var error = DatabaseError(.connectionLost, reason: reason)
        if let raw { error.serverMessage = configuration.redact(String(cString: PQerrorMessage(raw))) }
        close()
        return error
    }

    private static func rows(of res: OpaquePointer) -> [Row] {
        let rowCount = Int(PQntuples(res)), columnCount = Int(PQnfields(res))
        let columns = Row.Columns(
            names: (0..<columnCount).map { String(cString: PQfname(res, Int32($0))) },
            types: (0..<columnCount).map { PostgresType(oid: UInt32(PQftype(res, Int32($0)))) })
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<Int32(rowCount) {
            var storage: [UInt8] = []
            var ranges: [Range<Int>?] = []
            ranges.reserveCapacity(columnCount)
            for c in 0..<Int32(columnCount) {
                if PQgetisnull(res, r, c) == 1 { ranges.append(nil); continue }
                let length = Int(PQgetlength(res, r, c))
                let start = storage.count
                if let value = PQgetvalue(res, r, c) {
                    storage.append(contentsOf: UnsafeRawBufferPointer(start: value, count: length))
                }
                ranges.append(start..<storage.count)
            }
            rows.append(Row(columns: columns, storage: storage, ranges: ranges))
        }
        return rows
    }

    // MARK: notifications

    var socket: Int32? { raw.flatMap { PQstatus($0) == CONNECTION_OK ? PQsocket($0) : nil } }

    /// Reads whatever the server sent and returns the notifications in it; throws when the
    /// connection broke (the server went away).
    func readNotifications() throws(DatabaseError) -> [PostgresNotification] {
        guard let raw, PQconsumeInput(raw) == 1, PQstatus(raw) == CONNECTION_OK else {
            throw connectionError("the listening connection was lost")
        }
        var received: [PostgresNotification] = []
        while let notify = PQnotifies(raw) {
            let n = notify.pointee
            received.append(PostgresNotification(
                channel: String(cString: n.relname), payload: String(cString: n.extra), processID: n.be_pid))
            PQfreemem(notify)
        }
        return received
    }

    // MARK: COPY FROM STDIN

    /// Runs `COPY … FROM STDIN` (text format), streaming what `produce` writes; returns the row count.
    func copyIn(_ statement: String, produce: (inout CopyWriter) throws -> Void) throws -> Int {
        guard let raw, PQstatus(raw) == CONNECTION_OK else {
            throw DatabaseError(.connectionLost, reason: "the connection is closed")
        }
        guard PQsendQuery(raw, statement) == 1 else { throw connectionError("cannot send COPY") }
        guard let start = PQgetResult(raw) else { throw connectionError("no answer to COPY") }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            let error = serverError(start)
            PQclear(start)
            _ = try? drainResults()
            throw error
        }
        PQclear(start)
        var writer = CopyWriter { (bytes: UnsafeRawBufferPointer) throws(DatabaseError) in
            let sent = bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(raw, $0.baseAddress, Int32($0.count)) }
            guard sent == 1 else { throw self.connectionError("COPY data could not be sent") }
        }
        do {
            try produce(&writer)
            try writer.flush()
        } catch {
            if self.raw != nil {
                PQputCopyEnd(raw, "aborted by the client")
                _ = try? drainResults()
            }
            throw error
        }
        guard PQputCopyEnd(raw, nil) == 1 else { throw connectionError("COPY could not be completed") }
        return try drainResults().affectedRows
    }
}

/// A statement's parameters in the form libpq takes: NUL-terminated text values and type OIDs.
private struct Parameters {
    let types: [Oid]
    private let storage: [UInt8]
    private let offsets: [Int?]

    init(_ binds: [SQL.Bind]) throws(DatabaseError) {
        guard binds.count <= Int(UInt16.max) else {
            throw DatabaseError(.invalidParameter, reason: "\(binds.count) parameters; at most 65535 are allowed")
        }
        // Text-format values are NUL-terminated C strings: a NUL inside one would cut it short.
        var storage: [UInt8] = []
        var offsets: [Int?] = []
        for (i, bind) in binds.enumerated() {
            guard let bytes = bind.bytes else { offsets.append(nil); continue }
            guard !bytes.contains(0) else {
                throw DatabaseError(.invalidParameter, reason: "parameter $\(i + 1) contains a NUL byte, which Postgres text cannot hold")
            }
            offsets.append(storage.count)
            storage.append(contentsOf: bytes)
            storage.append(0)
        }
        self.types = binds.map { Oid($0.type.oid) }
        self.storage = storage
        self.offsets = offsets
    }

    /// `PQsendQueryParams`: an unnamed statement, parsed and planned for this execution only.
    func send(_ raw: OpaquePointer, text: String) -> Int32 {
        withValues { PQsendQueryParams(raw, text, Int32(types.count), types, $0, nil, nil, 0) }
    }

    /// `PQsendQueryPrepared`: a statement this session prepared.
    func send(_ raw: OpaquePointer, statement name: String) -> Int32 {
        withValues { PQsendQueryPrepared(raw, name, Int32(types.count), $0, nil, nil, 0) }
    }

    private func withValues(_ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> Int32) -> Int32 {
        storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in offset.flatMap { base?.advanced(by: $0) } }
            return values.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}

/// Calls `body` with a `const char * const *` array of the strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers = duplicates.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// libpq's notice callback: file scope, no captures (swift-style §2).
private func onNotice(_ context: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let context, let message else { return }
    let connection = Unmanaged<LibPQConnection>.fromOpaque(context).takeUnretainedValue()
    let text = connection.configuration.redact(String(cString: message)).trimmingCharacters(in: .whitespacesAndNewlines)
    connection.configuration.logger.debug("postgres notice", metadata: ["db.notice": "\(text)"])
}
