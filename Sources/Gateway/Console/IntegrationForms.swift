import FaultlineProto
import Foundation

/// The fields of each integration kind, as the console's forms show them. Values travel through
/// the API's own JSON shape (`IntegrationConfigJSON`): a stored config is read from it, and a
/// form becomes one and is validated by the same `proto()` the JSON API uses.
struct IntegrationKind: Sendable {
    enum Input: Sendable {
        case text, url, textarea, number, boolean
        /// `NAME<separator>value` lines.
        case lines(separator: Character)
        /// Comma- or line-separated words.
        case words
        /// Comma-separated status codes.
        case statuses
        /// A duration in seconds, kept as `_us`.
        case seconds
        /// The name of a secret in the integration's environment; the form may set its value.
        case secretName
    }

    struct Field: Sendable {
        var path: [String]
        var label: String
        var input: Input
        var required = false
        var help = ""
        /// The form field's name: the JSON path joined, so it is flat (`probe_url`).
        var id: String { path.joined(separator: "_") }
    }

    var name: String
    var title: String
    var summary: String
    var fields: [Field]

    static func probe(_ purpose: String) -> [Field] {
        [
            Field(path: ["probe", "url"], label: "URL to probe", input: .url, required: true, help: purpose),
            Field(path: ["probe", "method"], label: "Method", input: .text, help: "GET when empty"),
            Field(path: ["probe", "headers"], label: "Headers, one Name: value a line", input: .lines(separator: ":")),
            Field(path: ["probe", "secret_headers"], label: "Secret headers, one Header: SECRET_NAME a line", input: .lines(separator: ":"),
                  help: "The header's value comes from that secret of the integration's environment."),
            Field(path: ["probe", "body"], label: "Request body", input: .textarea),
            Field(path: ["probe", "timeout_us"], label: "Timeout (seconds)", input: .seconds, help: "10 when empty"),
            Field(path: ["probe", "expected_status"], label: "Expected status codes", input: .statuses, help: "e.g. 200, 204; any 2xx when empty"),
            Field(path: ["probe", "expected_body_regex"], label: "The body must match (regular expression)", input: .text),
        ]
    }

    static let all: [IntegrationKind] = [
        IntegrationKind(name: "http_pre_check", title: "HTTP pre-check",
                        summary: "An HTTP request that must pass before the experiment starts.",
                        fields: probe("Asked once before the run; a failure interrupts it before any activity.")),
        IntegrationKind(name: "http_safeguard", title: "HTTP safeguard",
                        summary: "An HTTP request probed during the whole run; it interrupts the run when it keeps failing.",
                        fields: probe("Asked again and again during the run.") + [
                            Field(path: ["interval_us"], label: "Interval (seconds)", input: .seconds, help: "5 when empty"),
                            Field(path: ["failure_threshold"], label: "Consecutive failures that trip it", input: .number, help: "1 when empty"),
                            Field(path: ["skip_rollbacks"], label: "Stop without rollbacks when it trips", input: .boolean),
                        ]),
        IntegrationKind(name: "slack", title: "Slack notification", summary: "Posts run updates to a Slack channel.", fields: [
            Field(path: ["channel"], label: "Channel", input: .text, required: true, help: "e.g. #chaos"),
            Field(path: ["token_secret"], label: "Secret holding the bot token", input: .secretName, required: true),
            Field(path: ["events"], label: "Events", input: .words, help: "e.g. run-started, run-finished, deviated; start and end when empty"),
        ]),
        IntegrationKind(name: "webhook", title: "Signed webhook", summary: "POSTs run events as JSON to a URL, signed with HMAC-SHA256.", fields: [
            Field(path: ["url"], label: "URL", input: .url, required: true),
            Field(path: ["signing_secret"], label: "Secret holding the signing key", input: .secretName, required: true),
            Field(path: ["events"], label: "Events", input: .words, help: "all when empty"),
            Field(path: ["timeout_us"], label: "Timeout (seconds)", input: .seconds, help: "10 when empty"),
        ]),
        IntegrationKind(name: "prometheus", title: "Prometheus metrics", summary: "Pushes run metrics to a Prometheus Pushgateway.", fields: [
            Field(path: ["pushgateway_url"], label: "Pushgateway URL", input: .url, required: true),
            Field(path: ["job"], label: "Job", input: .text, help: "faultline when empty"),
            Field(path: ["labels"], label: "Labels, one name=value a line", input: .lines(separator: "=")),
        ]),
        IntegrationKind(name: "opentelemetry", title: "OpenTelemetry traces", summary: "Exports a trace of each run over OTLP/HTTP (JSON).", fields: [
            Field(path: ["endpoint"], label: "OTLP/HTTP endpoint", input: .url, required: true, help: "e.g. http://collector:4318"),
            Field(path: ["headers"], label: "Headers, one Name: value a line", input: .lines(separator: ":")),
            Field(path: ["secret_headers"], label: "Secret headers, one Header: SECRET_NAME a line", input: .lines(separator: ":")),
            Field(path: ["service_name"], label: "Service name", input: .text, help: "faultline when empty"),
            Field(path: ["resource_attributes"], label: "Resource attributes, one name=value a line", input: .lines(separator: "=")),
        ]),
    ]

    static func named(_ name: String) -> IntegrationKind? { all.first { $0.name == name } }

    /// The kind of a stored config and its fields' values as JSON.
    static func of(_ config: SecretsV1.IntegrationConfig?) -> (IntegrationKind, JSONValue)? {
        guard let data = try? JSONEncoder.gateway.encode(IntegrationConfigJSON(config)),
              let json = try? JSONDecoder().decode(JSONValue.self, from: data), case .object(let members) = json else { return nil }
        for kind in all { if let value = members[kind.name] { return (kind, value) } }
        return nil
    }

    /// A field's stored value as the form shows it.
    static func display(_ value: JSONValue?, _ input: Input) -> String {
        guard let value else { return "" }
        switch (input, value) {
        case (.lines(let separator), .object(let members)):
            return KeyValueLines.render(members.compactMapValues(\.stringValue), separator: separator == ":" ? ": " : String(separator))
        case (.words, .array(let items)), (.statuses, .array(let items)):
            return items.map { $0.stringValue ?? $0.text }.joined(separator: ", ")
        case (.seconds, .int(let us)):
            return us == 0 ? "" : Self.seconds(us)
        case (.number, .int(let n)):
            return n == 0 ? "" : String(n)
        case (.boolean, .bool(let on)):
            return on ? "on" : ""
        case (_, .string(let text)):
            return text
        default:
            return value.text
        }
    }

    static func seconds(_ us: Int64) -> String {
        us % 1_000_000 == 0 ? String(us / 1_000_000) : String(Double(us) / 1_000_000)
    }

    /// The config a filled form describes, checked as the JSON API checks it.
    func config(from typed: FieldsForm) throws -> SecretsV1.IntegrationConfig {
        var object: [String: JSONValue] = [:]
        for field in fields {
            let text = typed[field.id]
            guard let value = try Self.value(text, field) else { continue }
            Self.set(&object, field.path[...], value)
        }
        let json = JSONValue.object([name: .object(object)])
        let config: IntegrationConfigJSON
        do {
            config = try JSONDecoder().decode(IntegrationConfigJSON.self, from: Data(json.text.utf8))
        } catch {
            throw FormError("The \(title) settings are incomplete")
        }
        return try config.proto()
    }

    private static func value(_ text: String, _ field: Field) throws -> JSONValue? {
        if case .boolean = field.input { return .bool(text == "on") }
        guard !text.isEmpty else {
            if field.required { throw FormError("\(field.label) is required") }
            return nil
        }
        switch field.input {
        case .text, .url, .textarea, .secretName, .boolean:
            return .string(text)
        case .lines(let separator):
            return .object(try KeyValueLines.parse(text, separator: separator, what: field.label).mapValues { .string($0) })
        case .words:
            return .array(Self.split(text).map { .string($0) })
        case .statuses:
            return .array(try Self.split(text).map { word in
                guard let code = Int64(word), (100...599).contains(code) else { throw FormError("\(field.label): \(word) is not an HTTP status") }
                return .int(code)
            })
        case .number:
            guard let n = Int64(text), (0...Int64(Int32.max)).contains(n) else { throw FormError("\(field.label) must be a whole number") }
            return .int(n)
        case .seconds:
            guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 86_400 else {
                throw FormError("\(field.label) must be a number of seconds up to a day")
            }
            return .int(Int64((seconds * 1_000_000).rounded()))
        }
    }

    private static func split(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0.isNewline || $0 == " " }).map(String.init)
    }

    private static func set(_ object: inout [String: JSONValue], _ path: ArraySlice<String>, _ value: JSONValue) {
        guard let key = path.first else { return }
        if path.count == 1 { object[key] = value; return }
        var child: [String: JSONValue] = if case .object(let members)? = object[key] { members } else { [:] }
        set(&child, path.dropFirst(), value)
        object[key] = .object(child)
    }
}
