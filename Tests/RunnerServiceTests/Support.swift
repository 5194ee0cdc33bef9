import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Synchronization
import SecretService
import Testing
@testable import RunnerService
// Exported: every test file of the target sees LogCapture and its members (MemberImportVisibility).
@_exported import TestSupport

#if canImport(Glibc)
import Glibc
#endif

enum Env {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var venv: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_VENV"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return packageRoot.appendingPathComponent(".venv")
    }

    static var fixtures: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_SHARED"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent("fixtures/experiments")
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/experiments")
    }

    static func validFixtures() -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: fixtures, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        // Short: run directories hold the control socket (path < 108 bytes).
        let url = URL(fileURLWithPath: "/tmp/fl-\(label)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The layout the Chaos Toolkit fixtures expect as their working directory (they come from
    /// its repository): tests/conftest.py, tests/fixtures/dummy.txt, tests/fixtures/force_failure.py.
    static func fixtureWorkspace() throws -> URL {
        let directory = try temporaryDirectory("ws")
        let fixtureDir = directory.appendingPathComponent("tests/fixtures")
        try FileManager.default.createDirectory(at: fixtureDir, withIntermediateDirectories: true)
        try Data().write(to: directory.appendingPathComponent("tests/conftest.py"))
        try Data("dummy\n".utf8).write(to: fixtureDir.appendingPathComponent("dummy.txt"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("chaostoolkit__tests_fixtures_force_failure.py"),
                                         to: fixtureDir.appendingPathComponent("force_failure.py"))
        return directory
    }

    /// A plain `chaos run` of `experiment` in a copy of `workspace`: its journal.
    static func plainRun(_ experiment: URL, workspace: URL) throws -> [String: Any] {
        let directory = try temporaryDirectory("plain")
        defer { try? FileManager.default.removeItem(at: directory) }
        for item in try FileManager.default.contentsOfDirectory(atPath: workspace.path) {
            try FileManager.default.copyItem(at: workspace.appendingPathComponent(item), to: directory.appendingPathComponent(item))
        }
        let process = Process()
        process.executableURL = venv.appendingPathComponent("bin/chaos")
        process.arguments = ["--no-version-check", "--log-file", directory.appendingPathComponent("chaos.log").path, "run",
                             "--journal-path", directory.appendingPathComponent("journal.json").path, experiment.path]
        process.currentDirectoryURL = directory
        process.environment = ["PATH": "\(venv.path)/bin:/usr/bin:/bin", "PYTHONPATH": directory.path, "HOME": directory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let data = try Data(contentsOf: directory.appendingPathComponent("journal.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Processes whose command line is exactly `arguments`.
    static func processes(commandLine arguments: [String]) -> [Int32] {
        let wanted = Data(arguments.joined(separator: "\u{0}").utf8 + [0])
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") == wanted
        }
    }
}

/// ExperimentService over a real socket, on a fixed port so it can be stopped and started again.
final class ExperimentEndpoint: Sendable {
    let server: ExperimentServer
    private let task = Mutex<Task<Void, any Error>?>(nil)
    let port: Int

    init(database: PostgresClient) async throws {
        server = ExperimentServer(database: database, logger: Self.quiet)
        port = try await Self.start(server, port: 0, into: task)
    }

    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    private static func start(_ server: ExperimentServer, port: Int, into slot: borrowing Mutex<Task<Void, any Error>?>) async throws -> Int {
        let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: port), services: server.services, logger: quiet)
        let task = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                group.addTask { try await rpc.run() }
                try await group.next()
                group.cancelAll()
            }
        }
        slot.withLock { $0 = task }
        return try await rpc.listeningPort
    }

    func stop() async {
        let task = task.withLock { $0 }
        task?.cancel()
        _ = await task?.result
    }

    func restart() async throws {
        _ = try await Self.start(server, port: port, into: task)
    }
}

/// A real SecretService on the platform's database, over its own socket.
final class SecretEndpoint: Sendable {
    static let credential = "runner-credential-for-runner-tests-4f1c"
    private let task: Task<Void, any Error>
    let port: Int

    init(database: PostgresClient) async throws {
        try await SecretServer.migrations.apply(on: database)
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let server = SecretServer(database: database, keyring: try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY": key]),
                                  runner: RunnerCredential(Self.credential), logger: ExperimentEndpoint.quiet)
        let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), services: server.services, logger: ExperimentEndpoint.quiet)
        task = Task { try await rpc.run() }
        port = try await rpc.listeningPort
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// Where the runner under test gets secrets from.
enum SecretMode: Sendable {
    /// No SecretService configured.
    case none
    /// A real SecretService.
    case service
    /// A SecretService address nothing listens on.
    case unreachable
    /// A real SecretService, and a runner with the wrong credential.
    case wrongCredential
}

/// A real ExperimentService (Postgres) and a real runner, each over its own socket; with
/// `.service`, a real SecretService too.
struct Platform: Sendable {
    static let org = OrganizationID("org-run")!
    static var options: CallOptions { .on(behalfOf: org, timeout: .seconds(60)) }

    let experiments: ExperimentsV1.ExperimentClient
    let runner: RunnersV1.RunnerClient
    let runnerServer: RunnerServer
    let endpoint: ExperimentEndpoint
    let stateDirectory: URL
    /// SecretService for setting up environments and integrations (no runner role).
    let secrets: SecretsV1.SecretClient?
    /// What the runner logged.
    let logs: LogCapture
    /// The runner's RPC server and its `run()` (which owns the runs); cancel it to kill the runner.
    let lifecycle: Task<Void, any Error>

    static func with(database: String, secrets mode: SecretMode = .none, configure: (inout RunnerConfiguration) -> Void = { _ in },
                     _ body: (Platform) async throws -> Void) async throws {
        try await TestPostgres.withClient(database: database, maximumConnections: 8) { client in
            _ = try await ExperimentServer.migrations.apply(on: client)
            let endpoint = try await ExperimentEndpoint(database: client)
            var clientConfiguration = RPCClient.Configuration()
            clientConfiguration.backoff = .init(initial: .milliseconds(50), maximum: .milliseconds(500))
            let toExperiments = RPCClient(host: "127.0.0.1", port: endpoint.port, configuration: clientConfiguration,
                                          logger: ExperimentEndpoint.quiet)
            var secretEndpoint: SecretEndpoint?
            var toSecrets: RPCClient?
            switch mode {
            case .none:
                break
            case .service, .wrongCredential:
                let secrets = try await SecretEndpoint(database: client)
                secretEndpoint = secrets
                toSecrets = RPCClient(host: "127.0.0.1", port: secrets.port, configuration: clientConfiguration, logger: ExperimentEndpoint.quiet)
            case .unreachable:
                // Bound and closed at once: nothing listens there.
                let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), services: [], logger: ExperimentEndpoint.quiet)
                let serving = Task { try await rpc.run() }
                let port = try await rpc.listeningPort
                serving.cancel()
                _ = await serving.result
                toSecrets = RPCClient(host: "127.0.0.1", port: port, configuration: clientConfiguration, logger: ExperimentEndpoint.quiet)
            }
            let state = try Env.temporaryDirectory("st")
            var configuration = RunnerConfiguration(runnerID: "runner-test", venv: Env.venv, stateDirectory: state)
            configure(&configuration)
            let logs = LogCapture()
            var failure: (any Error)?
            do {
                let credential = mode == .wrongCredential ? "not-" + SecretEndpoint.credential : SecretEndpoint.credential
                let source = toSecrets.map { SecretSource(client: SecretsV1.SecretClient($0), credential: credential) }
                let runnerServer = try RunnerServer(configuration: configuration, experiments: ExperimentsV1.ExperimentClient(toExperiments),
                                                    secrets: source, logger: logs.logger("runner"))
                let rpc = RPCServer(configuration: .init(), services: [runnerServer], logger: ExperimentEndpoint.quiet)
                let serving = Task {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await rpc.run() }
                        group.addTask { try await runnerServer.run() }
                        try await group.waitForAll()
                    }
                }
                let toRunner = RPCClient(host: "127.0.0.1", port: try await rpc.listeningPort, logger: ExperimentEndpoint.quiet)
                let platform = Platform(experiments: ExperimentsV1.ExperimentClient(toExperiments),
                                        runner: RunnersV1.RunnerClient(toRunner), runnerServer: runnerServer,
                                        endpoint: endpoint, stateDirectory: state,
                                        secrets: secretEndpoint == nil ? nil : toSecrets.map(SecretsV1.SecretClient.init), logs: logs,
                                        lifecycle: serving)
                do { try await body(platform) } catch { failure = error }
                await runnerServer.drain()
                await toRunner.close()
                serving.cancel()
                _ = await serving.result
            } catch {
                failure = error
            }
            await toSecrets?.close()
            await secretEndpoint?.stop()
            await toExperiments.close()
            await endpoint.stop()
            try? FileManager.default.removeItem(at: state)
            if let failure { throw failure }
        }
    }

    func createExperiment(_ text: String) async throws -> String {
        let response = try await experiments.createExperiment(.init(source: .init(text: text)), options: Self.options)
        return try #require(response.experiment?.id)
    }

    func execution(_ id: String) async throws -> ExperimentsV1.Execution {
        try #require(try await experiments.getExecution(.init(executionId: id), options: Self.options).execution)
    }

    static let terminal: Set<ExperimentsV1.ExecutionState> = [.completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut]

    /// Polls until `condition` holds (a bound against hangs, not a timing assertion). UNAVAILABLE
    /// counts as "not yet": the client backs off after ExperimentService restarts.
    func waitFor<T>(_ what: String, _ probe: () async throws -> T?) async throws -> T {
        for _ in 0..<1200 {
            do {
                if let value = try await probe() { return value }
            } catch let error as RPCError where error.code == .unavailable {}
            try await Task.sleep(for: .milliseconds(100))
        }
        throw WaitError(what: what)
    }

    func waitUntilTerminal(_ id: String) async throws -> ExperimentsV1.Execution {
        try await waitFor("execution \(id) terminal") {
            let execution = try await execution(id)
            return Self.terminal.contains(execution.state) ? execution : nil
        }
    }

    func events(_ id: String) async throws -> [ExperimentsV1.ExecutionEvent] {
        var all: [ExperimentsV1.ExecutionEvent] = []
        var token = ""
        repeat {
            let page = try await experiments.listExecutionEvents(.init(executionId: id, pageSize: 500, pageToken: token),
                                                                 options: Self.options)
            all += page.events
            token = page.nextPageToken
        } while !token.isEmpty
        return all
    }

    func journal(_ id: String) async throws -> [String: Any] {
        let text = try await experiments.getExecutionJournal(.init(executionId: id), options: Self.options).journalJson
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func start(_ experimentID: String, _ configure: (inout RunnersV1.StartRunRequest) -> Void = { _ in }) async throws -> RunnersV1.Run {
        var request = RunnersV1.StartRunRequest(experimentId: experimentID)
        configure(&request)
        return try #require(try await runner.startRun(request, options: Self.options).run)
    }
}

struct WaitError: Error, CustomStringConvertible {
    let what: String
    var description: String { "gave up waiting for \(what)" }
}

/// The state a journal maps to (ExperimentService's rules, SCORING.md).
func expectedState(journal: [String: Any]) -> ExperimentsV1.ExecutionState {
    let status = journal["status"] as? String
    let deviated = journal["deviated"] as? Bool ?? false
    let before = ((journal["steady_states"] as? [String: Any])?["before"] as? [String: Any])?["steady_state_met"] as? Bool
    switch (status, deviated) {
    case (_, true): return .deviated
    case ("completed", false) where before == false: return .deviated
    case ("completed", false): return .completed
    case ("failed", false): return .failed
    case ("aborted", false): return .aborted
    default: return .interrupted
    }
}
