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

/// CPU seconds (user + system) of this process (the runner, ExperimentService, the benchmark's
/// polling) and of its reaped children (`chaos`). Postgres runs apart and is not counted.
func cpu() -> (own: Double, children: Double) {
    func seconds(_ who: Int32) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(who), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
    return (seconds(RUSAGE_SELF.rawValue), seconds(RUSAGE_CHILDREN.rawValue))
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
        // Followed as a client does (the Gateway's SSE): WatchExecution pushes the terminal
        // snapshot when CompleteExecution commits. Polling instead would compete with `chaos` for
        // the CPU and charge that to the runner.
        let execution = try await experiments.watchExecution(.init(executionId: run.executionId), options: call) { responses -> ExperimentsV1.Execution? in
            for try await response in responses {
                if case .execution(let execution) = response.item, ![.pending, .running, .unspecified].contains(execution.state) {
                    return execution
                }
            }
            return nil
        }
        let elapsed = seconds(clock.now - start)
        guard let execution, execution.state == .completed else {
            throw RPCError(.internalError, "run ended \(execution?.state ?? .unspecified): \(execution?.reason ?? "no terminal snapshot")")
        }
        return elapsed
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
    var bareCPU: [Double] = []
    var runnerChaosCPU: [Double] = []
    var runnerOwnCPU: [Double] = []
    for i in 1...options.runs {
        let c0 = cpu()
        let b = try runBare()
        let c1 = cpu()
        let r = try await runThroughRunner()
        let c2 = cpu()
        bare.append(b)
        viaRunner.append(r)
        bareCPU.append(c1.children - c0.children)
        runnerChaosCPU.append(c2.children - c1.children)
        runnerOwnCPU.append(c2.own - c1.own)
        print(String(format: "run %2d  bare chaos run %7.1f ms (cpu %5.1f)   via runner %7.1f ms (chaos cpu %5.1f, runner process cpu %5.1f)",
                     i, b * 1000, bareCPU.last! * 1000, r * 1000, runnerChaosCPU.last! * 1000, runnerOwnCPU.last! * 1000))
    }
    let (mb, mr) = (median(bare), median(viaRunner))
    print(String(format: "median  bare %.1f ms  runner %.1f ms  ratio %.3f  overhead %+.1f ms (%+.1f %%)",
                 mb * 1000, mr * 1000, mr / mb, (mr - mb) * 1000, (mr / mb - 1) * 100))
    // CPU is the steadier figure on a loaded machine: wall time there is mostly waiting for a core.
    print(String(format: "median cpu  bare chaos %.1f ms  chaos under the runner %.1f ms  runner process (runner + ExperimentService) %.1f ms",
                 median(bareCPU) * 1000, median(runnerChaosCPU) * 1000, median(runnerOwnCPU) * 1000))

    // A run counts against capacity until the runner has its CompleteExecution answer, a moment
    // after the execution shows terminal: start the burst on an idle runner.
    while try await !runners.listRuns(.init(), options: call).runs.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
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
