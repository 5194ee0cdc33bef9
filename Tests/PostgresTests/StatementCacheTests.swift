import Foundation
import Testing
@testable import FaultlinePostgres

/// The per-connection prepared-statement cache, observed on the server through
/// `pg_prepared_statements` of the connection itself.
@Suite struct StatementCacheTests {
    /// This session's cached statements: text → executions (generic + custom plans). The
    /// inspecting statement leaves itself out.
    static func prepared(on connection: PostgresConnection) async throws -> [String: Int] {
        let rows = try await connection.query("""
            SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements
            WHERE name LIKE 'fl\\_%' AND statement NOT LIKE '%pg_prepared_statements%'
            """)
        var result: [String: Int] = [:]
        for row in rows { result[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1) }
        return result
    }

    @Test func aRepeatedStatementIsPreparedOnceAndReusedAcrossLeases() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_hit", maximumConnections: 1) { client in
            try await client.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
            try await client.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
            let lookup = { (id: Int32) in try await client.query("SELECT name FROM items WHERE id = \(id)") }
            #expect(try await lookup(1)[0].decode(String.self, at: 0) == "one")
            #expect(try await lookup(2)[0].decode(String.self, at: 0) == "two")
            #expect(try await lookup(3).isEmpty)
            try await client.withConnection { connection in
                let statements = try await Self.prepared(on: connection)
                #expect(statements["SELECT name FROM items WHERE id = $1"] == 3)  // one statement, three executions
                #expect(await connection.cachedStatementCount == statements.count + 1)  // + the inspecting one
            }
        }
    }

    @Test func theLeastRecentlyUsedStatementIsDeallocatedAtTheBound() async throws {
        var configuration = try await TestPostgres.freshDatabase(named: "pg_stmt_evict")
        configuration.maximumConnections = 1
        configuration.preparedStatements = 4
        let client = PostgresClient(configuration: configuration)
        let statement = { (i: Int) -> SQL in "SELECT \(unescaped: String(i)) + \(Int32(1))" }
        try await client.withConnection { connection in
            for i in 1...4 { _ = try await connection.query(statement(i)) }
            _ = try await connection.query(statement(1))  // now 2 is the least recently used
            for i in 5...6 { _ = try await connection.query(statement(i)) }
            #expect(await connection.cachedStatementCount == 4)
            // Inspecting prepares one more statement, which evicts 3; the server holds the same four.
            let rows = try await connection.query("SELECT statement FROM pg_prepared_statements ORDER BY statement")
            let onServer = try rows.map { try $0.decode(String.self, at: 0) }
            #expect(onServer.count == 4)
            #expect(Set(onServer.filter { !$0.contains("pg_prepared_statements") }) ==
                    Set([1, 5, 6].map { statement($0).description }))
            // An evicted statement still runs: it is prepared again.
            #expect(try await connection.query(statement(2))[0].decode(Int32.self, at: 0) == 3)
        }
        await client.close()

        // 0 turns the cache off: every statement runs unnamed.
        configuration.preparedStatements = 0
        let uncached = PostgresClient(configuration: configuration)
        try await uncached.withConnection { connection in
            _ = try await connection.query(statement(1))
            #expect(try await connection.query("SELECT count(*) FROM pg_prepared_statements")[0].decode(Int.self, at: 0) == 0)
        }
        await uncached.close()
    }

    @Test func longAndDynamicallyBuiltTextsStayUncached() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_long", maximumConnections: 1) { client in
            let ids = Array(Int32(0)..<2_000)
            let long: SQL = "SELECT count(*) FROM generate_series(0, 5000) g WHERE g IN (\(list: ids))"
            #expect(long.description.utf8.count > StatementCache.maximumTextLength)
            #expect(try await client.query(long)[0].decode(Int.self, at: 0) == 2_000)
            // The same text with other parameter types is another statement.
            #expect(try await client.query("SELECT \(Int32(5))::text")[0].decode(String.self, at: 0) == "5")
            #expect(try await client.query("SELECT \("5")::text")[0].decode(String.self, at: 0) == "5")
            try await client.withConnection { connection in
                let statements = try await Self.prepared(on: connection)
                #expect(!statements.keys.contains { $0.contains("generate_series") })
                let rows = try await connection.query(
                    "SELECT parameter_types::text FROM pg_prepared_statements WHERE statement = 'SELECT $1::text' ORDER BY 1")
                #expect(try rows.map { try $0.decode(String.self, at: 0) } == ["{integer}", "{text}"])
            }
        }
    }

    @Test func aReconnectedConnectionStartsWithAnEmptyCache() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_reconnect", maximumConnections: 1) { client in
            let admin = PostgresClient(configuration: client.configuration)
            try await client.withConnection { connection in
                for i in 1...3 { _ = try await connection.query("SELECT \(unescaped: String(i))") }
                #expect(await connection.cachedStatementCount == 3)
                let pid = try await connection.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
                try await admin.execute("SELECT pg_terminate_backend(\(pid))")
                try await eventually("the backend is gone") {
                    try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)")[0].decode(Int.self, at: 0) == 0
                }
                // The next statement notices the lost session (or, if the server's EOF is not in
                // the socket yet, fails with connectionLost and closes it), reconnects and prepares
                // afresh: the `SELECT 1` cached on the old session is not executed by name.
                let one: SQL = "SELECT \(unescaped: "1")"
                let rows: [Row]
                do {
                    rows = try await connection.query(one)
                } catch let error as DatabaseError where error.code == .connectionLost {
                    rows = try await connection.query(one)
                }
                #expect(try rows[0].decode(Int.self, at: 0) == 1)
                #expect(await connection.cachedStatementCount == 1)
                #expect(try await connection.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0) != pid)
            }
            await admin.close()
        }
    }

    @Test func aSchemaChangeUnderACachedStatementIsRetriedOutsideTransactions() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_schema", maximumConnections: 1) { client in
            try await client.execute("CREATE TABLE runs (id int)")
            try await client.execute("INSERT INTO runs VALUES (\(Int32(1)))")
            let all: SQL = "SELECT * FROM runs WHERE id > \(Int32(0))"
            #expect(try await client.query(all)[0].count == 1)
            try await client.execute("ALTER TABLE runs ADD COLUMN note text DEFAULT 'added'")
            let row = try await client.query(all)[0]  // "cached plan must not change result type", retried
            #expect(row.count == 2)
            #expect(try row.decode(String.self, column: "note") == "added")

            // Inside a transaction the error cannot be retried (it aborted the transaction); it is
            // surfaced once, and the statement is prepared afresh next time.
            try await client.execute("ALTER TABLE runs ADD COLUMN extra int DEFAULT 7")
            let error = await expectDatabaseError {
                try await client.withTransaction { tx in _ = try await tx.query(all) }
            }
            #expect(error?.sqlState == "0A000")
            #expect(try await client.query(all)[0].count == 3)

            // Statements the server dropped (`DEALLOCATE ALL`) are prepared again, transparently.
            try await client.execute("DEALLOCATE ALL")
            #expect(try await client.query(all)[0].count == 3)
            let statements = try await client.withConnection { try await Self.prepared(on: $0) }
            #expect(statements[all.description] == 1)  // prepared once more, the stale ones gone
        }
    }

    @Test func failingStatementsAreNotCachedAndLeaveTheConnectionUsable() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_failures", maximumConnections: 1) { client in
            try await client.execute("CREATE TABLE keys (id int PRIMARY KEY)")
            let syntax = await expectDatabaseError { try await client.execute("SELEC \(Int32(1))") }
            #expect(syntax?.sqlState == "42601")
            let insert = { (id: Int32) in _ = try await client.execute("INSERT INTO keys VALUES (\(id))") }
            try await insert(1)
            #expect(await expectDatabaseError { try await insert(1) }?.sqlState == "23505")
            try await insert(2)  // the statement stayed valid and cached

            try await client.withConnection { connection in
                // In a transaction: the failure aborts it, statements in the failed transaction
                // are not prepared, and the cache survives the rollback.
                try await connection.execute("BEGIN")
                try await connection.execute("SELECT 10")
                #expect(await expectDatabaseError { try await connection.execute("SELEC 2") }?.sqlState == "42601")
                #expect(await expectDatabaseError { try await connection.execute("SELECT 11") }?.sqlState == "25P02")
                try await connection.execute("ROLLBACK")
                try await connection.execute("SELECT 10")
                let statements = try await Self.prepared(on: connection)
                #expect(statements["SELECT 10"] == 2)
                #expect(statements["SELECT 11"] == nil)
                #expect(!statements.keys.contains { $0.hasPrefix("SELEC ") })
                #expect(statements["INSERT INTO keys VALUES ($1)"] == 3)
            }
            #expect(try await client.query("SELECT 11")[0].decode(Int.self, at: 0) == 11)
            #expect(try await client.query("SELECT count(*) FROM keys")[0].decode(Int.self, at: 0) == 2)
        }
    }

    @Test func cancellingACachedStatementCancelsItAndKeepsTheCache() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_cancel", maximumConnections: 1) { client in
            let marker = "cached-cancel-\(UUID().uuidString)"
            let sleep: @Sendable (Double) async throws -> Void = { seconds in
                _ = try await client.execute("SELECT pg_sleep(\(seconds)) \(unescaped: "/* \(marker) */")")
            }
            try await sleep(0)
            let observer = PostgresClient(configuration: client.configuration)
            let sleeper = Task { try await sleep(600) }
            try await eventually("the sleep is running") { try await isRunning(marker, on: observer) }
            sleeper.cancel()
            guard case .failure(let error as DatabaseError) = await sleeper.result else {
                Issue.record("expected a DatabaseError")
                await observer.close()
                return
            }
            #expect(error.sqlState == "57014")
            try await sleep(0)
            try await client.withConnection { connection in
                let statements = try await Self.prepared(on: connection)
                #expect(statements.first { $0.key.contains(marker) }?.value == 3)
            }
            await observer.close()
        }
    }

    @Test func concurrentUseThroughThePoolGetsTheRightRows() async throws {
        try await TestPostgres.withClient(database: "pg_stmt_concurrent", maximumConnections: 4) { client in
            try await client.execute("CREATE TABLE squares (n int PRIMARY KEY, sq int NOT NULL)")
            try await client.execute("INSERT INTO squares SELECT g, g * g FROM generate_series(1, 100) g")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for i in 0..<40 {
                            let n = Int32((task * 40 + i) % 100 + 1)
                            let sq = try await client.query("SELECT sq FROM squares WHERE n = \(n)")[0].decode(Int32.self, at: 0)
                            #expect(sq == n * n)
                            // Several texts per connection, in and out of transactions.
                            try await client.withTransaction { tx in
                                let twice = try await tx.query("SELECT sq * 2 FROM squares WHERE n = \(n)")[0].decode(Int32.self, at: 0)
                                #expect(twice == 2 * n * n)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(client.openConnections <= 4)
        }
    }

    @Test func theCacheBookkeepingEvictsLeastRecentFirst() {
        var cache = StatementCache(capacity: 2)
        let a = StatementCache.Key(text: "a", types: []), b = StatementCache.Key(text: "b", types: [23])
        let c = StatementCache.Key(text: "b", types: [25])
        let names = [a, b].map { key in
            let name = cache.makeName()
            cache.insert(key, name: name)
            return name
        }
        #expect(cache.isFull)
        #expect(cache.lookup(a) == names[0])  // b is now the least recent
        #expect(cache.lookup(c) == nil)  // same text, other types: another statement
        #expect(cache.evictLeastRecent() == names[1])
        let fresh = cache.makeName()
        #expect(!names.contains(fresh))  // names are never reused
        cache.insert(c, name: fresh)
        #expect(cache.lookup(b) == nil)
        #expect(cache.remove(a) == names[0])
        cache.markStale(names[0])
        cache.removeAll()
        #expect(cache.count == 0 && cache.takeStale().isEmpty)
        #expect(!StatementCache.isCacheable(.init(text: "", types: [])))
        #expect(!StatementCache.isCacheable(.init(text: String(repeating: "x", count: StatementCache.maximumTextLength + 1), types: [])))
    }
}
