import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import RunnerService
import ServiceKit

struct Options {
    var runs = 10
    var concurrent = 20
    /// The runner's debug log (with each run's "run phases") on standard error.
    var phases = false

    init(_ arguments: [String]) {
        var i = 0
        while i < arguments.count {
            if arguments[i] == "--phases" {
                phases = true
                i += 1
                continue
            }
            let value = i + 1 < arguments.count ? Int(arguments[i + 1]) : nil
            switch (arguments[i], value) {
            case ("--runs", let v?) where v > 0: runs = v
            case ("--concurrent", let v?) where v > 0: concurrent = v
            default:
                FileHandle.standardError.write(Data("usage: Benchmarks/Runner/run [--runs N] [--concurrent N] [--phases] [--debug]\n".utf8))
                exit(2)
            }
            i += 2
        }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let environment = ProcessInfo.processInfo.environment
let venv = URL(fileURLWithPath: environment["FAULTLINE_VENV"].flatMap { $0.isEmpty ? nil : $0 } ?? ".venv")
var quiet = Logger(label: "bench")
quiet.logLevel = .critical

var embedded: EmbeddedPostgres?
var database: PostgresConfiguration
if let configured = try PostgresConfiguration.fromEnvironment() {
    database = configured
} else {
    let directory = NSTemporaryDirectory() + "faultline-runnerbench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    let cluster = EmbeddedPostgres(directory: directory)
    database = try await cluster.start()
    embedded = cluster
}
database.maximumConnections = 8
let postgres = PostgresClient(configuration: database)
try await postgres.execute("DROP SCHEMA IF EXISTS experiments CASCADE")
_ = try await ExperimentServer.migrations.apply(on: postgres)

let experimentServer = ExperimentServer(database: postgres, logger: quiet)
let experimentRPC = RPCServer(configuration: .init(), services: experimentServer.services, logger: quiet)
let state = URL(fileURLWithPath: "/tmp/fl-bench-\(getpid())")
var configuration = RunnerConfiguration(runnerID: "bench", venv: venv, stateDirectory: state)
configuration.capacity = max(options.concurrent, 1)

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await experimentServer.run() }
    group.addTask { try await experimentRPC.run() }
    let experimentsPort = try await experimentRPC.listeningPort
    let client = RPCClient(host: "127.0.0.1", port: experimentsPort, logger: quiet)
    let experiments = ExperimentsV1.ExperimentClient(client)
    var runnerLogger = Logger(label: "runner", factory: { label in StreamLogHandler.standardError(label: label) })
    runnerLogger.logLevel = options.phases ? .debug : .critical
    let runner = try RunnerServer(configuration: configuration, experiments: experiments, logger: runnerLogger)
    let runnerRPC = RPCServer(configuration: .init(), services: [runner], logger: quiet)
    group.addTask { try await runnerRPC.run() }
    // The runner owns its runs' tasks: it must run for StartRun to start anything.
    group.addTask { try await runner.run() }
    let runnerClient = RPCClient(host: "127.0.0.1", port: try await runnerRPC.listeningPort, logger: quiet)
    let runners = RunnersV1.RunnerClient(runnerClient)
    let org = OrganizationID("bench")!
    let call = CallOptions.on(behalfOf: org, timeout: .seconds(120))

    let text = #"{"title": "trivial", "description": "bench", "method": [{"type": "action", "name": "cwd", "provider": {"type": "python", "module": "os", "func": "getcwd"}}]}"#
    let experimentID = try await experiments.createExperiment(.init(source: .init(text: text)), options: call).experiment!.id

    func runThroughRunner() async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let run = try await runners.startRun(.init(experimentId: experimentID), options: call).run!
        while true {
            let execution = try await experiments.getExecution(.init(executionId: run.executionId), options: call).execution!
            if ![.pending, .running, .unspecified].contains(execution.state) {
                guard execution.state == .completed else { throw RPCError(.internalError, "run ended \(execution.state): \(execution.reason)") }
                return seconds(clock.now - start)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    let bareDirectory = URL(fileURLWithPath: "/tmp/fl-bench-bare-\(getpid())")
    try FileManager.default.createDirectory(at: bareDirectory, withIntermediateDirectories: true)
    let bareExperiment = bareDirectory.appendingPathComponent("experiment.json")
    try Data(text.utf8).write(to: bareExperiment)
    func runBare() throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let process = Process()
        process.executableURL = venv.appendingPathComponent("bin/chaos")
        process.arguments = ["--no-version-check", "--log-file", bareDirectory.appendingPathComponent("chaos.log").path, "run",
                             "--journal-path", bareDirectory.appendingPathComponent("journal.json").path, bareExperiment.path]
        process.currentDirectoryURL = bareDirectory
        process.environment = ["PATH": "\(venv.path)/bin:/usr/bin:/bin", "HOME": bareDirectory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RPCError(.internalError, "bare chaos run exited \(process.terminationStatus)") }
        return seconds(clock.now - start)
    }

    // Warm-up (imports, bytecode, connections), then alternate so load drifts hit both alike.
    _ = try runBare()
    _ = try await runThroughRunner()
    var bare: [Double] = []
    var viaRunner: [Double] = []
    for i in 1...options.runs {
        let b = try runBare()
        let r = try await runThroughRunner()
        bare.append(b)
        viaRunner.append(r)
        print(String(format: "run %2d  bare chaos run %7.1f ms   via runner %7.1f ms", i, b * 1000, r * 1000))
    }
    let (mb, mr) = (median(bare), median(viaRunner))
    print(String(format: "median  bare %.1f ms  runner %.1f ms  ratio %.3f  overhead %+.1f ms (%+.1f %%)",
                 mb * 1000, mr * 1000, mr / mb, (mr - mb) * 1000, (mr / mb - 1) * 100))

    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Double.self) { runs in
        for _ in 0..<options.concurrent { runs.addTask { try await runThroughRunner() } }
        for try await _ in runs {}
    }
    let elapsed = seconds(clock.now - start)
    print(String(format: "%d concurrent runs on one runner: %.2f s wall, %.2f runs/s (one bare run: %.1f ms)",
                 options.concurrent, elapsed, Double(options.concurrent) / elapsed, mb * 1000))

    try? FileManager.default.removeItem(at: bareDirectory)
    await runner.drain()
    await runnerClient.close()
    await client.close()
    group.cancelAll()
}
await postgres.close()
try? FileManager.default.removeItem(at: state)
if let embedded { try await embedded.stop() }
