import ArgumentParser
import Foundation

/// What every client command takes: where the Gateway is, the token, and `--json`.
struct ClientOptions: ParsableArguments {
    @Option(help: "The Gateway's base URL (env FAULTLINE_URL; default http://127.0.0.1:8080).")
    var url: String?

    @Option(help: "API token (env FAULTLINE_TOKEN). Prefer the environment: flags show up in `ps`.")
    var token: String?

    @Flag(help: "Print the Gateway's JSON instead of text, for scripts.")
    var json = false

    func client() throws(ClientError) -> GatewayClient {
        let environment = ProcessInfo.processInfo.environment
        let url = url ?? environment["FAULTLINE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:8080"
        let token = token ?? environment["FAULTLINE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let token, token.contains(where: { $0.isNewline || $0 == "\0" }) {
            throw ClientError(.usage, "the token holds a line break (was it read from a file with one?)")
        }
        return GatewayClient(endpoint: try .init(parsing: url), token: token)
    }
}

/// Runs a client command's body; a `ClientError` is printed once, clearly, and becomes the exit
/// code of its kind instead of ArgumentParser's generic "Error:" and 1.
func clientCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ClientError {
        Output.error(error.description)
        throw ExitCode(error.kind.exitCode)
    }
}

/// Standard output for results, standard error for progress and errors, unbuffered line by line.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data(("error: " + text + "\n").utf8))
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// `--json`: the Gateway's own bytes, one document per line.
    static func raw(_ data: Data) {
        var data = data
        while data.last == UInt8(ascii: "\n") { data.removeLast() }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// A small aligned table; the last column is never padded.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        for row in all {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            line(cells.joined(separator: "  "))
        }
    }
}

/// A decoded JSON value the commands read fields from for their text output (the shapes are
/// the Gateway's, documented in its openapi.json); `--json` never goes through it.
enum JSON: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSON].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSON].self)) }
    }

    /// A Gateway answer that must be a JSON object.
    init(object data: Data) throws(ClientError) {
        guard let value = try? JSONDecoder().decode(JSON.self, from: data), case .object = value else {
            throw ClientError(.protocolViolation, "the Gateway's answer is not a JSON object")
        }
        self = value
    }

    subscript(_ key: String) -> JSON? {
        if case .object(let fields) = self { fields[key] } else { nil }
    }

    var string: String? { if case .string(let text) = self { text } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int: Int64? { if case .number(let value) = self, let exact = Int64(exactly: value.rounded()) { exact } else { nil } }
    var array: [JSON] { if case .array(let items) = self { items } else { [] } }

    /// For a table cell: strings bare, numbers without a needless `.0`, the rest as compact JSON.
    var text: String {
        switch self {
        case .null: "-"
        case .bool(let value): value ? "true" : "false"
        // Integers exactly (microsecond times are ~1.8e15, below 2^53), others in their shortest form.
        case .number(let value): value == value.rounded() && abs(value) < 9e15 ? String(Int64(value)) : "\(value)"
        case .string(let text): text
        case .array, .object: compact
        }
    }

    var compact: String {
        switch self {
        case .null: "null"
        case .bool, .number: text
        case .string(let text):
            String(decoding: (try? JSONEncoder().encode(text)) ?? Data(), as: UTF8.self)
        case .array(let items): "[" + items.map(\.compact).joined(separator: ",") + "]"
        case .object(let fields):
            "{" + fields.keys.sorted().map { JSON.string($0).compact + ":" + fields[$0]!.compact }.joined(separator: ",") + "}"
        }
    }
}

extension Optional where Wrapped == JSON {
    /// A missing field reads as `-` in text output.
    var text: String { self?.text ?? "-" }
}

/// Times on the wire are microseconds since the epoch (UTC).
func formatTime(_ microseconds: Int64?) -> String {
    guard let microseconds, microseconds > 0 else { return "-" }
    let date = Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeSeparator(.colon).dateTimeSeparator(.space))
}

/// The paging flags of every list command, and how a page says there is more.
struct PageOptions: ParsableArguments {
    @Option(help: "Page size (1-200).")
    var pageSize: Int = 50

    @Option(help: "Continue from a previous page's next_page_token.")
    var pageToken: String?

    var query: [(String, String)] {
        [("page_size", String(pageSize))] + (pageToken.map { [("page_token", $0)] } ?? [])
    }

    func noteNextPage(_ page: JSON) {
        if let next = page["next_page_token"]?.string { Output.note("more: --page-token \(next)") }
    }
}
