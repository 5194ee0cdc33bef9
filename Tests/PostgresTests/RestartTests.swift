import Foundation
import Testing
import FaultlineRPC
import FaultlinePostgres

/// Restarts need a cluster of their own: the shared test cluster serves other suites meanwhile.
@Suite(.serialized) struct RestartTests {
    @Test func restartFailsTheInFlightQueryAndTheNextOneSucceeds() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("postgres-restart")
        let server = EmbeddedPostgres(directory: directory, durable: false)
        var configuration = try await server.start()
        configuration.maximumConnections = 3
        let client = PostgresClient(configuration: configuration)
        // Warm the pool so idle connections exist that the restart breaks too.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { try await client.execute("SELECT pg_sleep(0.05)") } }
            try await group.waitForAll()
        }
        let marker = "restart-\(UUID().uuidString)"
        let busy = Task { try await client.query("SELECT pg_sleep(600) \(unescaped: "/* \(marker) */")") }
        try await eventually("the sleep is running") { try await isRunning(marker, on: client) }
        try await server.restart()
        let result = await busy.result
        guard case .failure(let error as DatabaseError) = result else {
            Issue.record("expected a DatabaseError, got \(result)")
            return
        }
        #expect(error.rpcErrorCode == .unavailable)
        // Every pooled connection died with the old server; each statement still succeeds.
        for _ in 0..<5 {
            #expect(try await client.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { _ = try await client.query("SELECT 1") } }
            try await group.waitForAll()
        }

        // Server down: statements fail fast and UNAVAILABLE, without the password anywhere.
        try await server.stop()
        let down = await expectDatabaseError { try await client.execute("SELECT 1") }
        #expect(down?.rpcErrorCode == .unavailable)
        let password = try #require(configuration.password)
        for text in [down?.description, down?.debugDescription, down?.serverMessage, String(reflecting: down as Any)] {
            #expect(text?.contains(password) == false)
        }
        await client.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func listenerListensAgainAfterRestart() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("postgres-relisten")
        let server = EmbeddedPostgres(directory: directory, durable: false)
        let configuration = try await server.start()
        let client = PostgresClient(configuration: configuration)
        let payload = try await client.listen(to: ["events"]) { notifications in
            try await client.notify(channel: "events", payload: "before")
            var iterator = notifications.makeAsyncIterator()
            #expect(await iterator.next()?.payload == "before")
            try await server.restart()
            // NOTIFY is not durable: keep notifying until the listener is back and hears one.
            return try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await client.notify(channel: "events", payload: "after")
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return nil
                }
                group.addTask {
                    var after = notifications.makeAsyncIterator()
                    return await after.next()?.payload
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
        #expect(payload == "after")
        await client.close()
        try await server.stop(immediate: true)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func embeddedDataSurvivesStopAndStart() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("postgres-state")
        let first = EmbeddedPostgres(directory: directory)
        let database = try await first.createDatabaseAfterStart("keep")
        let client = PostgresClient(configuration: database)
        try await client.execute("CREATE TABLE kept (note text)")
        try await client.execute("INSERT INTO kept VALUES (\("survives"))")
        await client.close()
        try await first.stop()

        let second = EmbeddedPostgres(directory: directory)
        try await second.start()
        let again = try await second.createDatabase("keep")  // exists: left alone
        #expect(again.password == database.password)  // the generated password is kept
        let reopened = PostgresClient(configuration: again)
        #expect(try await reopened.query("SELECT note FROM kept")[0].decode(String.self, at: 0) == "survives")
        await reopened.close()
        try await second.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension EmbeddedPostgres {
    func createDatabaseAfterStart(_ name: String) async throws -> PostgresConfiguration {
        try await start()
        return try await createDatabase(name)
    }
}

@Suite struct EmbeddedSetupTests {
    @Test(.enabled(if: geteuid() == 0, "only root runs the server as another user"))
    func unreachableDirectoryFailsClearly() async throws {
        let parent = try TestPostgres.makeTemporaryDirectory("postgres-private")
        chmod(parent, 0o700)  // root-only: the postgres user cannot pass
        let server = EmbeddedPostgres(directory: parent + "/state")
        let error = await expectDatabaseError { try await server.start() }
        #expect(error?.code == .embeddedServer)
        #expect(error?.reason?.contains("cannot reach") == true)
        try? FileManager.default.removeItem(atPath: parent)
    }
}
