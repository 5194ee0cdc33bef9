import Foundation
import Testing
import FaultlineRPC
@testable import FaultlinePostgres

@Suite struct ClientTests {
    @Test func exhaustedPoolWaitsInOrderThenTimesOutClearly() async throws {
        var configuration = try await TestPostgres.freshDatabase(named: "pg_pool")
        configuration.maximumConnections = 1
        configuration.checkoutTimeout = .seconds(30)
        let client = PostgresClient(configuration: configuration)
        let order = OrderRecorder()
        // Hold the only connection until both waiters are queued, then release it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (holding, held) = AsyncStream.makeStream(of: Void.self)
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            group.addTask {
                try await client.withConnection { _ in
                    held.yield()
                    for await _ in released { break }
                }
            }
            for await _ in holding { break }
            group.addTask { _ = try await client.query("SELECT 1"); await order.record("first") }
            try await eventually("first waiter queued") { client.waitingCount == 1 }
            group.addTask { _ = try await client.query("SELECT 2"); await order.record("second") }
            try await eventually("second waiter queued") { client.waitingCount == 2 }
            release.yield()
            try await group.waitForAll()
        }
        #expect(await order.entries == ["first", "second"])
        #expect(client.openConnections == 1)
        await client.close()

        // With a short timeout, a waiter fails with a clear, UNAVAILABLE-mapped error.
        configuration.checkoutTimeout = .milliseconds(200)
        let impatient = PostgresClient(configuration: configuration)
        try await impatient.withConnection { _ in
            let error = await expectDatabaseError { try await impatient.execute("SELECT 1") }
            #expect(error?.code == .poolTimeout)
            #expect(error?.rpcErrorCode == .unavailable)
            #expect(error?.description.contains("busy") == true)
        }
        #expect(try await impatient.query("SELECT 1").count == 1)  // usable again once released
        await impatient.close()
        let closed = await expectDatabaseError { try await impatient.execute("SELECT 1") }
        #expect(closed?.code == .clientClosed)
    }

    @Test func cancellingTheTaskCancelsTheQuery() async throws {
        try await TestPostgres.withClient(database: "pg_cancel") { client in
            let marker = "cancel-me-\(UUID().uuidString)"
            let sleeper = Task {
                try await client.query("SELECT pg_sleep(600) \(unescaped: "/* \(marker) */")")
            }
            try await eventually("the sleep is running") { try await isRunning(marker, on: client) }
            sleeper.cancel()
            let result = await sleeper.result
            guard case .failure(let error as DatabaseError) = result else {
                Issue.record("expected a DatabaseError, got \(result)")
                return
            }
            #expect(error.sqlState == "57014")
            #expect(error.rpcErrorCode == .cancelled)
            #expect(try await !isRunning(marker, on: client))
            #expect(try await client.query("SELECT 1").count == 1)
        }
    }

    @Test func statementTimeoutComesFromTheConfiguration() async throws {
        var configuration = try await TestPostgres.freshDatabase(named: "pg_statement_timeout")
        configuration.statementTimeout = .milliseconds(100)
        let client = PostgresClient(configuration: configuration)
        let error = await expectDatabaseError { try await client.execute("SELECT pg_sleep(60)") }
        #expect(error?.sqlState == "57014")
        let setting = try await client.query("SHOW statement_timeout")[0].decode(String.self, at: 0)
        #expect(setting == "100ms")
        await client.close()
    }

    @Test func transactionsCommitOrRollBack() async throws {
        try await TestPostgres.withClient(database: "pg_transactions") { client in
            try await client.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            try await client.withTransaction { tx in
                try await tx.execute("INSERT INTO accounts VALUES (1, 100)")
                try await tx.execute("INSERT INTO accounts VALUES (2, 0)")
            }
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await client.withTransaction { tx in
                    try await tx.execute("UPDATE accounts SET balance = balance - 50 WHERE id = 1")
                    throw Refused()
                }
            }
            let failed = await expectDatabaseError {
                try await client.withTransaction { tx in
                    try await tx.execute("UPDATE accounts SET balance = balance + 50 WHERE id = 2")
                    try await tx.execute("INSERT INTO accounts VALUES (1, 1)")  // duplicate key
                }
            }
            #expect(failed?.rpcErrorCode == .alreadyExists)
            // A transaction left open by a withConnection body is rolled back on release.
            try await client.withConnection { connection in
                try await connection.execute("BEGIN")
                try await connection.execute("UPDATE accounts SET balance = 0")
            }
            let balances = try await client.query("SELECT balance FROM accounts ORDER BY id").map { try $0.decode(Int.self, at: 0) }
            #expect(balances == [100, 0])
            // So is a failed one whose error the body swallowed: the next lease is not stuck in it.
            try await client.withConnection { connection in
                try await connection.execute("BEGIN")
                _ = try? await connection.execute("INSERT INTO accounts VALUES (1, 1)")
            }
            #expect(try await client.query("SELECT count(*) FROM accounts")[0].decode(Int.self, at: 0) == 2)
        }
    }

    @Test func serializationFailureMapsToAborted() async throws {
        try await TestPostgres.withClient(database: "pg_serializable", maximumConnections: 2) { client in
            try await client.execute("CREATE TABLE doctors (name text PRIMARY KEY, on_call bool NOT NULL)")
            try await client.execute("INSERT INTO doctors VALUES ('alice', true), ('bob', true)")
            // Write skew: each transaction reads both rows, then takes a different doctor off call.
            let error = await expectDatabaseError {
                try await client.withConnection { other in
                    try await other.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                    _ = try await other.query("SELECT count(*) FROM doctors WHERE on_call")
                    try await client.withTransaction(isolation: .serializable) { tx in
                        _ = try await tx.query("SELECT count(*) FROM doctors WHERE on_call")
                        try await tx.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
                        try await other.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
                        try await other.execute("COMMIT")
                    }  // this COMMIT must fail
                }
            }
            #expect(error?.sqlState == "40001")
            #expect(error?.rpcErrorCode == .aborted)
            let onCall = try await client.query("SELECT count(*) FROM doctors WHERE on_call")[0].decode(Int.self, at: 0)
            #expect(onCall == 1)
        }
    }

    @Test func aConnectionLostInsideATransactionIsNotSilentlyReopenedForTheRestOfIt() async throws {
        try await TestPostgres.withClient(database: "pg_lost_tx", maximumConnections: 1) { client in
            try await client.execute("CREATE TABLE ledger (entry text PRIMARY KEY)")
            let admin = PostgresClient(configuration: client.configuration)
            let outcome: [DatabaseError?] = try await client.withConnection { connection in
                try await connection.execute("BEGIN")
                try await connection.execute("INSERT INTO ledger VALUES ('debit')")
                let pid = try await connection.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
                try await admin.execute("SELECT pg_terminate_backend(\(pid))")
                try await eventually("the backend is gone") {
                    try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)")[0].decode(Int.self, at: 0) == 0
                }
                // Reconnecting here would commit the credit alone, outside the lost transaction.
                let credit = await expectDatabaseError { try await connection.execute("INSERT INTO ledger VALUES ('credit')") }
                let commit = await expectDatabaseError { try await connection.execute("COMMIT") }
                return [credit, commit]
            }
            #expect(outcome.map { $0?.code } == [.connectionLost, .connectionLost])
            // The pool took the connection back: the next lease reconnects, and nothing of the lost
            // transaction landed.
            #expect(try await client.query("SELECT count(*) FROM ledger")[0].decode(Int.self, at: 0) == 0)
            await admin.close()
        }
    }

    @Test func concurrentTransactionsAllLand() async throws {
        try await TestPostgres.withClient(database: "pg_concurrent", maximumConnections: 4) { client in
            try await client.execute("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
            try await client.execute("INSERT INTO counter VALUES (1, 0)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        try await client.withTransaction { tx in
                            let n = try await tx.query("SELECT n FROM counter WHERE id = 1 FOR UPDATE")[0].decode(Int.self, at: 0)
                            try await tx.execute("UPDATE counter SET n = \(n + 1) WHERE id = 1")
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.query("SELECT n FROM counter")[0].decode(Int.self, at: 0) == 40)
            #expect(client.openConnections <= 4)
        }
    }

    @Test func wrongPasswordNeverAppearsInErrors() async throws {
        var configuration = try await TestPostgres.server()
        let secret = "definitely-wrong-\(UUID().uuidString)"
        configuration.password = secret
        configuration.user = "faultline_no_such_role"
        let client = PostgresClient(configuration: configuration)
        let error = await expectDatabaseError { try await client.execute("SELECT 1") }
        #expect(error?.code == .connectionFailed)
        #expect(error?.rpcErrorCode == .unavailable)
        for text in [error?.description, error?.debugDescription, error?.rpcErrorMessage, error?.serverMessage,
                     "\(configuration)", String(reflecting: error as Any)] {
            #expect(text?.contains(secret) == false)
        }
        await client.close()
    }
}

actor OrderRecorder {
    var entries: [String] = []
    func record(_ entry: String) { entries.append(entry) }
}
