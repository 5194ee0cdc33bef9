/// A Chaos Toolkit experiment as imported: the exact text the user gave (what export returns by
/// default), the format it was in, and its JSON meaning (what is validated, stored as jsonb and run).
public struct ExperimentDocument: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable, CaseIterable {
        case json
        case yaml
    }

    /// How to read the bytes: a known format, or `.auto` (JSON when the text starts with `{`,
    /// falling back to YAML, of which JSON is nearly a subset; anything else is YAML).
    public enum InputFormat: Sendable, Hashable {
        case json
        case yaml
        case auto
    }

    public let originalText: String
    public let format: Format
    /// The experiment; always an object.
    public let definition: JSONObject

    public var value: JSONValue { .object(definition) }

    /// Reads an experiment. Fails on anything that is not a single JSON object within `limits`;
    /// whether that object is a *valid* experiment is `ExperimentValidator`'s question.
    public static func parse(
        bytes: [UInt8], format: InputFormat = .auto, limits: DocumentLimits = .default
    ) throws(DocumentError) -> ExperimentDocument {
        let (value, detected) = try readValue(bytes: bytes, format: format, limits: limits)
        guard case .object(let object) = value else {
            throw DocumentError(.notAnObject, "an experiment must be an object; this document is of type \(value.typeName)")
        }
        var body = bytes[...]
        if body.starts(with: UTF8Check.byteOrderMark) { body = body.dropFirst(3) }
        return ExperimentDocument(originalText: String(decoding: body, as: UTF8.self), format: detected, definition: object)
    }

    private static func readValue(
        bytes: [UInt8], format: InputFormat, limits: DocumentLimits
    ) throws(DocumentError) -> (JSONValue, Format) {
        switch format {
        case .json:
            return (try JSONParser.parse(bytes, limits: limits), .json)
        case .yaml:
            return (try YAMLConverter.parse(bytes, limits: limits), .yaml)
        case .auto:
            let first = bytes.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 || $0 == 0xEF || $0 == 0xBB || $0 == 0xBF }.first
            guard first == UInt8(ascii: "{") else { return (try YAMLConverter.parse(bytes, limits: limits), .yaml) }
            do {
                return (try JSONParser.parse(bytes, limits: limits), .json)
            } catch let jsonError {
                // A limit breach is final; a syntax error may be YAML flow style (`{title: x}`).
                guard jsonError.code == .jsonSyntax || jsonError.code == .jsonString || jsonError.code == .jsonNumber,
                    let value = try? YAMLConverter.parse(bytes, limits: limits)
                else { throw jsonError }
                return (value, .yaml)
            }
        }
    }

    /// The experiment in `format`. Same format as imported gives back the original text byte for
    /// byte; otherwise a rendering that reads back as the same JSONValue.
    public func export(as format: Format? = nil) -> String {
        let target = format ?? self.format
        if target == self.format { return originalText }
        switch target {
        case .json: return value.serialized(.pretty(indent: 2)) + "\n"
        case .yaml: return YAMLConverter.render(value)
        }
    }
}

extension JSONValue {
    /// YAML text that reads back (here and with PyYAML) as this same value.
    public func yamlText() -> String { YAMLConverter.render(self) }

    /// What to do with Python's `NaN`, `Infinity` and `-Infinity`, which are not JSON.
    public enum NonFiniteNumbers: Sendable, Hashable {
        case reject
        /// Read them as `null` (as JavaScript's JSON.stringify writes them). Chaos Toolkit writes
        /// its journal and events with Python's default `allow_nan=True`, so a probe returning
        /// `float("nan")` puts a bare `NaN` in the journal; Postgres jsonb has no NaN either.
        case readAsNull
    }

    /// Parses any JSON value (not only an object) under `limits`.
    public static func parse(
        jsonBytes: [UInt8], limits: DocumentLimits = .default, nonFiniteNumbers: NonFiniteNumbers = .reject
    ) throws(DocumentError) -> JSONValue {
        try JSONParser.parse(jsonBytes, limits: limits, nonFinite: nonFiniteNumbers)
    }

    /// Parses a journal (or an events line) written by `chaos run`: larger and deeper than an
    /// experiment (activity outputs are arbitrary), with Python's non-finite numbers read as null.
    public static func parse(journalBytes: [UInt8], limits: DocumentLimits = .journal) throws(DocumentError) -> JSONValue {
        try JSONParser.parse(journalBytes, limits: limits, nonFinite: .readAsNull)
    }

    /// Parses any YAML value, read as PyYAML `safe_load` would, under `limits`.
    public static func parse(yamlBytes: [UInt8], limits: DocumentLimits = .default) throws(DocumentError) -> JSONValue {
        try YAMLConverter.parse(yamlBytes, limits: limits)
    }
}
