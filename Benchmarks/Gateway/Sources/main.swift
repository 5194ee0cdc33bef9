import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Gateway
import Hummingbird
import Logging
import ServiceKit

// See Benchmarks/Gateway/run.
let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    arguments.firstIndex(of: name).flatMap { arguments.indices.contains($0 + 1) ? Int(arguments[$0 + 1]) : nil } ?? fallback
}
let requests = option("--requests", 20_000)
let clients = option("--clients", 8)
let runs = option("--runs", 3)

var logger = Logger(label: "gateway-bench")
logger.logLevel = .critical

struct Measurement { var rps: Double; var p99Ms: Double }

/// Runs h2load over HTTP/1.1 and reads requests/s from its summary and p99 from its log.
func load(_ url: String, token: String?) throws -> Measurement {
    let log = NSTemporaryDirectory() + "gw-bench-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/h2load")
    var args = ["--h1", "-n", "\(requests)", "-c", "\(clients)", "-t", "1", "--log-file", log]
    if let token { args += ["-H", "authorization: Bearer \(token)"] }
    process.arguments = args + [url]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard output.contains("\(requests) succeeded"), output.contains("status codes: \(requests) 2xx") else {
        fatalError("h2load did not get \(requests) 2xx answers:\n\(output)")
    }
    // "finished in 1.23s, 8123.45 req/s, ..."
    let finished = output.split(separator: "\n").first { $0.hasPrefix("finished in") } ?? ""
    let rps = Double(finished.split(separator: ",")[1].split(separator: " ")[0]) ?? 0
    // Log lines: start time (us), status, latency (us).
    let latencies = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        .compactMap { line in line.split(separator: "\t").last.flatMap { Double($0) } }.sorted()
    let p99 = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))] / 1000
    return Measurement(rps: rps, p99Ms: p99)
}

/// The run with the median requests/s, and the median p99 of all runs.
func median(_ runs: [Measurement]) -> Measurement {
    let rps = runs.map(\.rps).sorted(), p99 = runs.map(\.p99Ms).sorted()
    return Measurement(rps: rps[rps.count / 2], p99Ms: p99[p99.count / 2])
}

func fetch(_ url: String, token: String) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sf", "-H", "authorization: Bearer \(token)", url]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    precondition(process.terminationStatus == 0, "curl \(url) failed")
    return data
}

/// 1, 5 and 15 minute load averages: the machine is shared, so say how busy it was.
func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
}

var configuration = try await TestPostgres.freshDatabase(named: "gw_bench")
configuration.maximumConnections = 8
let database = PostgresClient(configuration: configuration)
_ = try await ExperimentServer.migrations.apply(on: database)
_ = try await TokenStore.migrations.apply(on: database)
let tokens = TokenStore(database: database)
let organization = try await tokens.createOrganization(name: "bench")
let token = try await tokens.createToken(in: organization, name: "bench", role: .viewer).value
let server = ExperimentServer(database: database, logger: logger)
let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), services: server.services, logger: logger)

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await rpc.run() }
    group.addTask { try await server.run() }
    let rpcClient = RPCClient(host: "127.0.0.1", port: try await rpc.listeningPort, logger: logger)
    let experiments = ExperimentsV1.ExperimentClient(rpcClient)
    var firstID = ""
    for index in 0..<50 {
        let text = #"{"title": "bench \#(index)", "description": "d", "tags": ["bench"], "method": [{"type": "action", "name": "a", "provider": {"type": "process", "path": "true"}}]}"#
        let created = try await experiments.createExperiment(.init(source: .init(text: text, format: .json)), options: .on(behalfOf: organization))
        if index == 0 { firstID = created.experiment!.id }
    }

    var gatewayConfiguration = GatewayConfiguration()
    gatewayConfiguration.port = 0
    let gateway = Gateway(configuration: gatewayConfiguration, tokens: tokens, experiments: experiments, runners: nil,
                          dependencies: [], logger: logger)
    let (gatewayPorts, gatewayPort) = AsyncStream<Int>.makeStream()
    group.addTask { try await gateway.application { gatewayPort.yield($0) }.run() }
    var iterator = gatewayPorts.makeAsyncIterator()
    let port = await iterator.next()!
    let base = "http://127.0.0.1:\(port)/api/v1"
    let one = try fetch("\(base)/experiments/\(firstID)", token: token)
    let page = try fetch("\(base)/experiments?page_size=50", token: token)
    let caller = try fetch("\(base)/organization", token: token)

    // The ceiling: Hummingbird serving the same bytes with no work behind them.
    let router = Router()
    router.get("one") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: one))) }
    router.get("page") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: page))) }
    router.get("caller") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: caller))) }
    let (barePorts, barePort) = AsyncStream<Int>.makeStream()
    let bare = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { barePort.yield($0.localAddress?.port ?? 0) }, logger: logger)
    group.addTask { try await bare.run() }
    var bareIterator = barePorts.makeAsyncIterator()
    let bareBase = "http://127.0.0.1:\(await bareIterator.next()!)"

    print("gateway benchmark: \(requests) requests, \(clients) connections, HTTP/1.1 (h2load), median of \(runs) runs each")
    print("response sizes: one experiment \(one.count) B, page of 50 \(page.count) B")
    print("load average before: \(loadAverage())")
    // "caller" is GET /organization: the token check and the middleware, no RPC, a tiny body;
    // what it costs over the bare route is the gateway's own share of every request.
    for (name, path, barePath) in [("caller", "\(base)/organization", "\(bareBase)/caller"),
                                   ("get one", "\(base)/experiments/\(firstID)", "\(bareBase)/one"),
                                   ("list 50", "\(base)/experiments?page_size=50", "\(bareBase)/page")] {
        _ = try load(path, token: token)  // warm-up
        _ = try load(barePath, token: nil)
        // Alternating runs, so drift in the machine's load hits both sides alike.
        var gatewayRuns: [Measurement] = [], bareRuns: [Measurement] = []
        for _ in 0..<max(1, runs) {
            gatewayRuns.append(try load(path, token: token))
            bareRuns.append(try load(barePath, token: nil))
        }
        let through = median(gatewayRuns), ceiling = median(bareRuns)
        print(String(format: "%@: gateway %.0f req/s (p99 %.2f ms) | bare Hummingbird %.0f req/s (p99 %.2f ms) | ratio %.3f",
                     name, through.rps, through.p99Ms, ceiling.rps, ceiling.p99Ms, through.rps / ceiling.rps))
    }
    print("load average after: \(loadAverage())")
    await rpcClient.close()
    group.cancelAll()
}
await database.close()
