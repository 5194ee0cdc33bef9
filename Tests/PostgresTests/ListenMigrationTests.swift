import Foundation
import Testing
import FaultlinePostgres

@Suite struct ListenTests {
    @Test func notificationsArriveInOrderOnTheirChannels() async throws {
        try await TestPostgres.withClient(database: "pg_listen") { client in
            let received = try await client.listen(to: ["runs", "Plans"]) { notifications in
                try await client.notify(channel: "runs", payload: "one")
                try await client.notify(channel: "ignored", payload: "nobody listens")
                try await client.notify(channel: "Plans", payload: "ünï 🚀")
                try await client.withTransaction { tx in  // delivered at commit, in order
                    try await tx.execute("SELECT pg_notify('runs', 'two')")
                    try await tx.execute("SELECT pg_notify('runs', 'three')")
                }
                var received: [PostgresNotification] = []
                for await notification in notifications {
                    received.append(notification)
                    if received.count == 4 { break }
                }
                return received
            }
            #expect(received.map(\.channel) == ["runs", "Plans", "runs", "runs"])
            #expect(received.map(\.payload) == ["one", "ünï 🚀", "two", "three"])
        }
    }

    @Test func cancellingTheConsumerEndsTheSequence() async throws {
        try await TestPostgres.withClient(database: "pg_listen_cancel") { client in
            let ended = try await client.listen(to: ["quiet"]) { notifications in
                let consumer = Task {
                    var count = 0
                    for await _ in notifications { count += 1 }
                    return count
                }
                consumer.cancel()
                return await consumer.value
            }
            #expect(ended == 0)
        }
    }
}

@Suite struct MigrationTests {
    static let migrations = Migrations(schema: "svc", [
        Migration(version: 1, name: "items", sql: """
            CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL);
            CREATE INDEX items_name ON items (name);
            """),
        Migration(version: 2, name: "item state", sql: "ALTER TABLE items ADD COLUMN state text NOT NULL DEFAULT 'new'"),
        // Slow on purpose, so concurrent starters really overlap inside the lock.
        Migration(version: 3, name: "seed", sql: "SELECT pg_sleep(0.2); INSERT INTO items (name) VALUES ('seed')"),
    ])

    @Test func concurrentStartersApplyEachMigrationOnce() async throws {
        let configuration = try await TestPostgres.freshDatabase(named: "pg_migrations")
        let clients = (0..<4).map { _ in PostgresClient(configuration: configuration) }
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in clients { group.addTask { try await Self.migrations.apply(on: client) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(applied.flatMap { $0 }.sorted() == [1, 2, 3])
        let client = clients[0]
        let recorded = try await client.query("SELECT version, name FROM svc.schema_migrations ORDER BY version")
        #expect(try recorded.map { try $0.decode(Int.self, at: 0) } == [1, 2, 3])
        #expect(try recorded.map { try $0.decode(String.self, at: 1) } == ["items", "item state", "seed"])
        #expect(try await client.query("SELECT count(*) FROM svc.items")[0].decode(Int.self, at: 0) == 1)
        #expect(try await Self.migrations.apply(on: client) == [])  // idempotent

        let next = Migrations(schema: "svc", Self.migrations.migrations + [
            Migration(version: 4, name: "flag", sql: "ALTER TABLE items ADD COLUMN flag bool"),
        ])
        #expect(try await next.apply(on: client) == [4])
        for client in clients { await client.close() }
    }

    @Test func brokenMigrationRollsBackAndBadListsAreRefused() async throws {
        try await TestPostgres.withClient(database: "pg_migrations_bad") { client in
            let broken = Migrations(schema: "bad", [
                Migration(version: 1, name: "ok", sql: "CREATE TABLE a (x int)"),
                Migration(version: 2, name: "broken", sql: "CREATE TABLE b (x int); SELEC oops"),
            ])
            let error = await expectDatabaseError { try await broken.apply(on: client) }
            #expect(error?.sqlState == "42601")
            let versions = try await client.query("SELECT version FROM bad.schema_migrations").map { try $0.decode(Int.self, at: 0) }
            #expect(versions == [1])
            #expect(try await client.query("SELECT to_regclass('bad.b') IS NULL")[0].decode(Bool.self, at: 0))
            // The lock was released: another apply gets through.
            let renamed = Migrations(schema: "bad", [Migration(version: 1, name: "renamed", sql: "")])
            #expect(await expectDatabaseError { try await renamed.apply(on: client) }?.code == .invalidMigrations)
            let unordered = Migrations(schema: "bad", [Migration(version: 2, name: "b", sql: ""), Migration(version: 1, name: "a", sql: "")])
            #expect(await expectDatabaseError { try await unordered.apply(on: client) }?.code == .invalidMigrations)
        }
    }
}
