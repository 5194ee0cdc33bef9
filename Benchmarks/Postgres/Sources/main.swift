import FaultlinePostgres
import Foundation

// One event as services write them: the shape of ExperimentService's journal of a run.
struct Event: Sendable {
    let executionID: UUID
    let sequence: Int
    let type: String
    let payload: JSONB
    let at: Date
}

struct Options {
    var rows = 100_000
    var runs = 5
    var perRowRuns = 1
    var queries = 20_000
    var queryRuns = 3
    var preparedStatements = PostgresConfiguration(user: "", database: "").preparedStatements

    init(_ arguments: [String]) {
        var i = 0
        while i < arguments.count {
            let value = i + 1 < arguments.count ? Int(arguments[i + 1]) : nil
            switch (arguments[i], value) {
            case ("--rows", let v?): rows = v
            case ("--runs", let v?): runs = v
            case ("--per-row-runs", let v?): perRowRuns = v
            case ("--queries", let v?): queries = v
            case ("--query-runs", let v?): queryRuns = v
            case ("--prepared-statements", let v?): preparedStatements = v
            default:
                FileHandle.standardError.write(Data("usage: PostgresBenchmark [--rows N] [--runs N] [--per-row-runs N] [--queries N] [--query-runs N] [--prepared-statements N]\n".utf8))
                exit(2)
            }
            i += 2
        }
    }
}

func makeEvents(_ count: Int) -> [Event] {
    let types = ["activity-started", "activity-succeeded", "probe-output", "hypothesis-checked", "log-line"]
    let executions = (0..<max(1, count / 1000)).map { _ in UUID() }
    let start = Date(timeIntervalSince1970: 1_767_225_600)
    return (0..<count).map { i in
        let type = types[i % types.count]
        let payload = #"{"activity": "probe-\#(i % 37)", "status": "succeeded", "duration_ms": \#(i % 997), "# +
            #""output": {"value": \#(i), "healthy": \#(i % 2 == 0), "note": "response within tolerance"}}"#
        return Event(executionID: executions[i % executions.count], sequence: i, type: type,
                     payload: JSONB(payload), at: start.addingTimeInterval(Double(i) / 1000))
    }
}

let columns = ["execution_id", "seq", "type", "payload", "at"]

/// The same rows in COPY text format, for psql. Built from the library's own encoders, and
/// checked to need no escaping, so both paths send identical bytes.
func copyFile(for events: [Event], at path: String) throws {
    var out: [UInt8] = []
    out.reserveCapacity(events.count * 256)
    for e in events {
        let start = out.count
        e.executionID.encode(into: &out); out.append(9)
        e.sequence.encode(into: &out); out.append(9)
        e.type.encode(into: &out); out.append(9)
        e.payload.encode(into: &out); out.append(9)
        e.at.encode(into: &out)
        precondition(!out[start...].contains { $0 == 10 || $0 == 13 || $0 == UInt8(ascii: "\\") })
        out.append(10)
    }
    try Data(out).write(to: URL(fileURLWithPath: path))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func perRow(_ events: [Event], _ client: PostgresClient) async throws -> Double {
    let clock = ContinuousClock()
    // One transaction: this measures a statement per row, not a commit (and fsync) per row.
    let elapsed = try await clock.measure {
        try await client.withTransaction { tx in
            for e in events {
                try await tx.execute("""
                    INSERT INTO events (execution_id, seq, type, payload, at)
                    VALUES (\(e.executionID), \(e.sequence), \(e.type), \(e.payload), \(e.at))
                    """)
            }
        }
    }
    return Double(events.count) / seconds(elapsed)
}

func batch(_ events: [Event], _ client: PostgresClient) async throws -> Double {
    let clock = ContinuousClock()
    let elapsed = try await clock.measure {
        let copied = try await client.withConnection { connection in
            try await connection.copyIn(into: "events", columns: columns) { w in
                for e in events {
                    w.append(e.executionID); w.append(e.sequence); w.append(e.type); w.append(e.payload); w.append(e.at)
                    try w.endRow()
                }
            }
        }
        precondition(copied == events.count)
    }
    return Double(events.count) / seconds(elapsed)
}

/// Point lookups by primary key, each through `client.query` (a pool checkout and one statement):
/// the per-query cost services pay, from `tasks` concurrent callers.
func pointQueries(_ events: [Event], count: Int, tasks: Int, _ client: PostgresClient) async throws -> Double {
    let clock = ContinuousClock()
    let elapsed = try await clock.measure {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in stride(from: t, to: count, by: tasks) {
                        let e = events[(i &* 7919) % events.count]
                        let rows = try await client.query(
                            "SELECT type, payload, at FROM events WHERE execution_id = \(e.executionID) AND seq = \(e.sequence)")
                        precondition(rows.count == 1)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
    return Double(count) / seconds(elapsed)
}

func psqlCopy(_ count: Int, file: String, _ configuration: PostgresConfiguration) throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                         "-h", configuration.host, "-p", String(configuration.port), "-U", configuration.user,
                         "-d", configuration.database,
                         "-c", "\\copy events (\(columns.joined(separator: ", "))) from '\(file)'"]
    var environment = ProcessInfo.processInfo.environment
    if let password = configuration.password { environment["PGPASSWORD"] = password }
    process.environment = environment
    let clock = ContinuousClock()
    let elapsed = try clock.measure {
        try process.run()
        process.waitUntilExit()
    }
    guard process.terminationStatus == 0 else { throw DatabaseError(.server, reason: "psql \\copy failed") }
    return Double(count) / seconds(elapsed)
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var embedded: EmbeddedPostgres?
var server: PostgresConfiguration
if let configured = try PostgresConfiguration.fromEnvironment() {
    server = configured
} else {
    let directory = NSTemporaryDirectory() + "faultline-pgbench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o755])
    let cluster = EmbeddedPostgres(directory: directory)
    server = try await cluster.start()
    embedded = cluster
}

var configuration = server
configuration.maximumConnections = 2
configuration.preparedStatements = options.preparedStatements
let client = PostgresClient(configuration: configuration)
try await client.execute("DROP TABLE IF EXISTS events")
try await client.execute("""
    CREATE TABLE events (
        execution_id uuid NOT NULL, seq bigint NOT NULL, type text NOT NULL,
        payload jsonb NOT NULL, at timestamptz NOT NULL,
        PRIMARY KEY (execution_id, seq))
    """)

let events = makeEvents(options.rows)
let file = NSTemporaryDirectory() + "faultline-pgbench-\(getpid()).copy"
try copyFile(for: events, at: file)
if geteuid() == 0 { chmod(file, 0o644) }

func truncate() async throws { try await client.execute("TRUNCATE events") }
func fmt(_ x: Double) -> String { String(format: "%10.0f", x) }

print("server: \(server)  rows: \(options.rows)  runs: \(options.runs)  prepared statements: \(options.preparedStatements)")
var perRowRates: [Double] = []
for _ in 0..<options.perRowRuns {
    try await truncate()
    perRowRates.append(try await perRow(events, client))
}
var batchRates: [Double] = [], ceilingRates: [Double] = [], ratios: [Double] = []
for run in 0..<options.runs {
    // Alternate the order so neither path always meets a freshly truncated, colder table.
    var b = 0.0, c = 0.0
    if run % 2 == 0 {
        try await truncate(); b = try await batch(events, client)
        try await truncate(); c = try psqlCopy(events.count, file: file, configuration)
    } else {
        try await truncate(); c = try psqlCopy(events.count, file: file, configuration)
        try await truncate(); b = try await batch(events, client)
    }
    batchRates.append(b); ceilingRates.append(c); ratios.append(b / c)
    print("run \(run + 1): batch \(fmt(b)) rows/s   psql \\copy \(fmt(c)) rows/s   ratio \(String(format: "%.2f", b / c))")
}
let stored = try await client.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
precondition(stored == options.rows)
var serialQueryRates: [Double] = [], concurrentQueryRates: [Double] = []
for run in 0..<options.queryRuns where options.queries > 0 {
    serialQueryRates.append(try await pointQueries(events, count: options.queries, tasks: 1, client))
    concurrentQueryRates.append(try await pointQueries(events, count: options.queries, tasks: 8, client))
    print("run \(run + 1): point query \(fmt(serialQueryRates.last!)) q/s (1 task)   \(fmt(concurrentQueryRates.last!)) q/s (8 tasks)")
}

print("")
print("one INSERT per row     \(fmt(median(perRowRates))) rows/s (median of \(perRowRates.count))")
print("batch (COPY FROM STDIN)\(fmt(median(batchRates))) rows/s (median of \(batchRates.count))")
print("psql \\copy (ceiling)   \(fmt(median(ceilingRates))) rows/s (median of \(ceilingRates.count))")
print("ratio batch/ceiling     \(String(format: "%.2f", median(ratios))) (median of per-run ratios; target >= 0.70)")
if !serialQueryRates.isEmpty {
    print("point query, 1 task    \(fmt(median(serialQueryRates))) queries/s (median of \(serialQueryRates.count))")
    print("point query, 8 tasks   \(fmt(median(concurrentQueryRates))) queries/s (median of \(concurrentQueryRates.count), pool of 2)")
}

try await client.execute("DROP TABLE events")
await client.close()
try? FileManager.default.removeItem(atPath: file)
if let embedded {
    try await embedded.stop()
    try? FileManager.default.removeItem(atPath: embedded.directory)
}
