import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging

struct Options {
    var events = 100_000
    var batch = 1_000
    var runs = 5
    var executions = 10
    /// Call the handler in the benchmark's process instead of over RPC (isolates the transport).
    var inProcess = false

    init(_ arguments: [String]) {
        var i = 0
        while i < arguments.count {
            let value = i + 1 < arguments.count ? Int(arguments[i + 1]) : nil
            if arguments[i] == "--in-process" { inProcess = true; i += 1; continue }
            switch (arguments[i], value) {
            case ("--events", let v?) where v > 0: events = v
            case ("--batch", let v?) where v > 0: batch = v
            case ("--runs", let v?) where v > 0: runs = v
            case ("--executions", let v?) where v > 0: executions = v
            default:
                FileHandle.standardError.write(Data("usage: EventsBenchmark [--events N] [--batch N] [--runs N] [--executions N] [--in-process]\n".utf8))
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

func fmt(_ x: Double) -> String { String(format: "%10.0f", x) }

let options = Options(Array(CommandLine.arguments.dropFirst()))
var embedded: EmbeddedPostgres?
var server: PostgresConfiguration
if let configured = try PostgresConfiguration.fromEnvironment() {
    server = configured
} else {
    let directory = NSTemporaryDirectory() + "faultline-eventsbench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o755])
    let cluster = EmbeddedPostgres(directory: directory)
    server = try await cluster.start()
    embedded = cluster
}
var configuration = server
configuration.maximumConnections = 4
let client = PostgresClient(configuration: configuration)
try await client.execute("DROP SCHEMA IF EXISTS experiments CASCADE")
try await client.execute("DROP SCHEMA IF EXISTS events_ceiling CASCADE")
try await ExperimentServer.migrations.apply(on: client)
try await client.execute("CREATE SCHEMA events_ceiling")
try await client.execute("CREATE TABLE events_ceiling.events (LIKE experiments.events INCLUDING ALL)")

// The service on a real RPC server (loopback, free port), reached by the generated client.
var quiet = Logger(label: "bench")
quiet.logLevel = .critical
let experimentServer = ExperimentServer(database: client, logger: quiet)
let rpcServer = RPCServer(configuration: .init(), services: experimentServer.services, logger: quiet)
let serverTask = Task { try await rpcServer.run() }
let port = try await rpcServer.listeningPort
let rpcClient = RPCClient(host: "127.0.0.1", port: port, logger: quiet)
let service = ExperimentsV1.ExperimentClient(rpcClient)
var callOptions = CallOptions(timeout: .seconds(600))
callOptions.metadata.addString("bench-org", forKey: "x-faultline-org")
let options_ = callOptions

// Executions to report to, as a runner would have created them.
let experiment = try await service.createExperiment(.init(source: .init(text: """
    {"title": "bench", "description": "d", "method": []}
    """)), options: callOptions).experiment!
var executionIDs: [String] = []
for _ in 0..<options.executions {
    let created = try await service.createExecution(.init(experimentId: experiment.id), options: callOptions)
    executionIDs.append(created.execution!.id)
}

// The same rows for both paths: sequence numbers 1... per execution.
let types = ["before-activity", "after-activity", "log", "before-hypothesis", "after-hypothesis"]
var events: [ExperimentsV1.ExecutionEvent] = []
events.reserveCapacity(options.events)
for i in 0..<options.events {
    let execution = executionIDs[i % executionIDs.count]
    let sequence = Int64(i / executionIDs.count + 1)
    let payload = #"{"activity": "probe-\#(i % 37)", "status": "succeeded", "duration_ms": \#(i % 997), "# +
        #""output": {"value": \#(i), "healthy": \#(i % 2 == 0), "note": "response within tolerance"}}"#
    events.append(.init(executionId: execution, sequence: sequence, type: types[i % types.count],
                        occurredAtUs: 1_767_225_600_000_000 + Int64(i), payloadJson: payload, activityName: "probe-\(i % 37)"))
}
let messages = stride(from: 0, to: events.count, by: options.batch).map {
    ExperimentsV1.ReportEventsRequest(events: Array(events[$0..<min(events.count, $0 + options.batch)]))
}

if ProcessInfo.processInfo.environment["EVENTS_BENCH_PARSE"] != nil {
    let clock = ContinuousClock()
    let t = try clock.measure { for e in events { _ = try JSONValue.parse(jsonBytes: Array(e.payloadJson.utf8)) } }
    print("parse only: \(Double(events.count) / seconds(t)) payloads/s")
}
let file = NSTemporaryDirectory() + "faultline-eventsbench-\(getpid()).copy"
do {
    var out = ""
    out.reserveCapacity(events.count * 256)
    let received = 1_767_225_600_000_000
    for e in events {
        precondition(!e.payloadJson.contains("\\") && !e.payloadJson.contains("\t"))
        out += "\(e.executionId)\t\(e.sequence)\t\(e.type)\t\(e.occurredAtUs)\t\(received)\t\(e.activityName)\t\(e.payloadJson)\n"
    }
    try out.write(toFile: file, atomically: true, encoding: .utf8)
    if geteuid() == 0 { chmod(file, 0o644) }
}

@MainActor func reset() async throws {
    try await client.execute("TRUNCATE experiments.events, events_ceiling.events")
    try await client.execute("UPDATE experiments.executions SET events_received = 0, contiguous_seq = 0")
}

@MainActor func reportEvents() async throws -> Double {
    let clock = ContinuousClock()
    var response = ExperimentsV1.ReportEventsResponse()
    let messages = messages
    let elapsed = try await clock.measure {
        if options.inProcess {
            let stream = AsyncThrowingStream<ExperimentsV1.ReportEventsRequest, any Error> { continuation in
                for message in messages { continuation.yield(message) }
                continuation.finish()
            }
            var metadata = Metadata()
            metadata.addString("bench-org", forKey: "x-faultline-org")
            let context = ServerContext(method: ExperimentsV1.ExperimentMethods.reportEvents, metadata: metadata,
                                        deadline: nil, peer: "in-process", logger: quiet)
            let handlers = experimentServer.services.first as! any ExperimentsV1.ExperimentService
            response = try await handlers.reportEvents(RPCAsyncSequence(wrapping: stream), context: context)
        } else {
            response = try await service.reportEvents(options: options_) { writer in
                for message in messages { try await writer.write(message) }
            }
        }
    }
    guard response.accepted == Int64(events.count), response.duplicates == 0,
          response.progress.allSatisfy({ $0.gaps.isEmpty && $0.contiguousSequence == Int64(events.count / executionIDs.count) })
    else { fatalError("ReportEvents stored \(response.accepted), duplicates \(response.duplicates), progress \(response.progress)") }
    // Outside the timing: the rows are really there.
    let stored = try await client.query("SELECT count(*) FROM experiments.events")[0].decode(Int.self, at: 0)
    guard stored == events.count else { fatalError("\(stored) rows persisted, expected \(events.count)") }
    return Double(events.count) / seconds(elapsed)
}

@MainActor func psqlCopy() throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                         "-h", configuration.host, "-p", String(configuration.port), "-U", configuration.user,
                         "-d", configuration.database,
                         "-c", "\\copy events_ceiling.events (execution_id, seq, type, occurred_us, received_us, activity_name, payload) from '\(file)'"]
    var environment = ProcessInfo.processInfo.environment
    if let password = configuration.password { environment["PGPASSWORD"] = password }
    process.environment = environment
    let clock = ContinuousClock()
    let elapsed = try clock.measure {
        try process.run()
        process.waitUntilExit()
    }
    guard process.terminationStatus == 0 else { throw DatabaseError(.server, reason: "psql \\copy failed") }
    return Double(events.count) / seconds(elapsed)
}

print(options.inProcess
      ? "client: ReportEvents handler called in process (--in-process: no RPC transport), one call per run"
      : "client: ReportEvents over a real RPC connection (FaultlineRPC client -> RPCServer on 127.0.0.1:\(port)), one call per run")
print("server: \(server)  events: \(options.events) in messages of \(options.batch), \(options.executions) executions, runs: \(options.runs)")
// Warm-up: one of each, not counted.
try await reset(); _ = try await reportEvents()
try await reset(); _ = try psqlCopy()
var serviceRates: [Double] = [], ceilingRates: [Double] = [], ratios: [Double] = []
for run in 0..<options.runs {
    var s = 0.0, c = 0.0
    if run % 2 == 0 {
        try await reset(); s = try await reportEvents()
        try await reset(); c = try psqlCopy()
    } else {
        try await reset(); c = try psqlCopy()
        try await reset(); s = try await reportEvents()
    }
    serviceRates.append(s); ceilingRates.append(c); ratios.append(s / c)
    print("run \(run + 1): ReportEvents \(fmt(s)) events/s   psql \\copy \(fmt(c)) rows/s   ratio \(String(format: "%.2f", s / c))")
}

print("")
print("ReportEvents -> rows   \(fmt(median(serviceRates))) events/s (median of \(serviceRates.count))")
print("psql \\copy (ceiling)   \(fmt(median(ceilingRates))) rows/s (median of \(ceilingRates.count))")
print("ratio                  \(String(format: "%.2f", median(ratios))) (median of per-run ratios; target >= 0.50)")

try await client.execute("DROP SCHEMA events_ceiling CASCADE")
await rpcClient.close()
serverTask.cancel()
_ = await serverTask.result
await client.close()
try? FileManager.default.removeItem(atPath: file)
if let embedded {
    try await embedded.stop()
    try? FileManager.default.removeItem(atPath: embedded.directory)
}
