/// Why a document could not be read. `code` is stable (clients and tests match on it);
/// `message` is for people and never contains more of the document than the offending token.
public struct DocumentError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let tooLarge = Code(rawValue: "document.too_large")
        public static let tooDeep = Code(rawValue: "document.too_deep")
        public static let empty = Code(rawValue: "document.empty")
        public static let invalidUTF8 = Code(rawValue: "document.invalid_utf8")
        public static let notAnObject = Code(rawValue: "document.not_object")
        public static let duplicateKey = Code(rawValue: "document.duplicate_key")
        /// A string or key holds U+0000 (NUL): valid JSON that Postgres stores neither as jsonb nor as text.
        public static let nul = Code(rawValue: "document.nul")
        public static let jsonSyntax = Code(rawValue: "json.syntax")
        public static let jsonNumber = Code(rawValue: "json.number")
        public static let jsonString = Code(rawValue: "json.string")
        public static let yamlSyntax = Code(rawValue: "yaml.syntax")
        public static let yamlMultipleDocuments = Code(rawValue: "yaml.multiple_documents")
        /// YAML that has no JSON equivalent: timestamps, binary, sets, NaN/infinity, non-string keys, custom tags.
        public static let yamlNotJSON = Code(rawValue: "yaml.not_json")
    }

    /// Position of the problem: 1-based line and column; `offset` is the 0-based byte offset when known.
    public struct Location: Sendable, Hashable, CustomStringConvertible {
        public let line: Int
        public let column: Int
        public let offset: Int?

        public var description: String {
            if let offset { "line \(line), column \(column) (byte \(offset))" } else { "line \(line), column \(column)" }
        }
    }

    public let code: Code
    public let message: String
    public let location: Location?

    public init(_ code: Code, _ message: String, at location: Location? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    public var description: String {
        if let location { "\(code): \(message) at \(location)" } else { "\(code): \(message)" }
    }
}

/// Size and shape limits for a document, checked before and while it is read.
public struct DocumentLimits: Sendable, Hashable {
    /// Largest accepted input, in bytes.
    public var maxBytes: Int
    /// Deepest accepted nesting of arrays and objects (the root object is depth 1).
    public var maxDepth: Int
    /// Largest JSON text a YAML document may expand to through aliases (a "billion laughs" guard).
    public var maxExpandedBytes: Int

    public init(maxBytes: Int = 1 << 20, maxDepth: Int = 64, maxExpandedBytes: Int = 4 << 20) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxExpandedBytes = maxExpandedBytes
    }

    public static let `default` = DocumentLimits()

    /// For journals: activity outputs (HTTP bodies, process output, API objects) make them far
    /// larger and deeper than the experiment they record.
    public static let journal = DocumentLimits(maxBytes: 64 << 20, maxDepth: 256, maxExpandedBytes: 64 << 20)
}
