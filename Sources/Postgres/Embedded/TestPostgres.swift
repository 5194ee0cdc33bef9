import Foundation
import Synchronization

/// The Postgres every test suite uses.
///
/// With `DATABASE_URL` set, that server. Otherwise one throwaway `EmbeddedPostgres` per test
/// process, started on first use under `$FAULTLINE_TEST_TMP` (or the temp directory) and stopped
/// when the process exits. Each suite takes a database of its own:
///
/// ```swift
/// let configuration = try await TestPostgres.freshDatabase(named: "experiments_tests")
/// try await TestPostgres.withClient(database: "experiments_tests") { client in … }
/// ```
public enum TestPostgres {
    private enum Phase {
        case idle
        case starting([CheckedContinuation<PostgresConfiguration, any Error>])
        case ready(PostgresConfiguration)
    }
    private static let phase = Mutex(Phase.idle)

    /// The server's superuser configuration (database `postgres`).
    public static func server() async throws -> PostgresConfiguration {
        if let configuration = try PostgresConfiguration.fromEnvironment() { return configuration }
        enum Step { case ready(PostgresConfiguration), wait, start }
        let step: Step = phase.withLock { phase in
            switch phase {
            case .ready(let configuration): return .ready(configuration)
            case .starting: return .wait
            case .idle:
                phase = .starting([])
                return .start
            }
        }
        switch step {
        case .ready(let configuration):
            return configuration
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<PostgresConfiguration, any Error>? = phase.withLock { phase in
                    switch phase {
                    case .ready(let configuration): return .success(configuration)
                    case .starting(var waiting):
                        waiting.append(continuation)
                        phase = .starting(waiting)
                        return nil
                    case .idle: return .failure(DatabaseError(.embeddedServer, reason: "the test cluster failed to start"))
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        case .start:
            let result: Result<PostgresConfiguration, any Error>
            do { result = .success(try await startCluster()) } catch { result = .failure(error) }
            let waiting: [CheckedContinuation<PostgresConfiguration, any Error>] = phase.withLock { phase in
                guard case .starting(let waiting) = phase else { return [] }
                if case .success(let configuration) = result { phase = .ready(configuration) } else { phase = .idle }
                return waiting
            }
            for continuation in waiting { continuation.resume(with: result) }
            return try result.get()
        }
    }

    /// Drops and recreates database `name`, so a suite starts empty even on a reused server.
    public static func freshDatabase(named name: String) async throws -> PostgresConfiguration {
        var configuration = try await DatabaseAdmin.create(name, on: try await server(), replacing: true)
        // Every suite shares this server and two cores: on a loaded machine a busy pool is slow, not
        // broken. Tests bound hangs with their own limits; the ones about the timeout set theirs.
        configuration.checkoutTimeout = .seconds(120)
        return configuration
    }

    /// A client on a fresh database `name`, closed after the body.
    public static func withClient<T: Sendable>(database name: String, maximumConnections: Int = 4,
                                               _ body: (PostgresClient) async throws -> T) async throws -> T {
        var configuration = try await freshDatabase(named: name)
        configuration.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// A directory for a test's own cluster or files, under `$FAULTLINE_TEST_TMP` when set;
    /// reachable by the `postgres` OS user when running as root.
    public static func makeTemporaryDirectory(_ prefix: String) throws -> String {
        let base = ProcessInfo.processInfo.environment["FAULTLINE_TEST_TMP"].flatMap { $0.isEmpty ? nil : $0 }
            ?? NSTemporaryDirectory()
        let path = (base as NSString).appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        return path
    }

    private static func startCluster() async throws -> PostgresConfiguration {
        let directory = try makeTemporaryDirectory("postgres")
        // Every suite of a test process runs in parallel on this one server, each with its pools,
        // listeners and the services it starts: Postgres's default of 100 clients runs out.
        let cluster = EmbeddedPostgres(directory: directory, durable: false, maxConnections: 500)
        atExit.withLock { $0 = cluster }
        atexit(stopTestClusterAtExit)
        return try await cluster.start()
    }

    fileprivate static let atExit = Mutex<EmbeddedPostgres?>(nil)
}

/// A C callback: file scope, no captures (swift-style §2, pitfall 4).
private func stopTestClusterAtExit() {
    guard let cluster = TestPostgres.atExit.withLock({ $0 }) else { return }
    try? cluster.stopBlocking(immediate: true)
    try? FileManager.default.removeItem(atPath: cluster.directory)
}
