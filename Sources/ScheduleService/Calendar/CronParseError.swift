/// One of the five fields of a cron expression.
public enum CronField: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case minute, hour, dayOfMonth, month, dayOfWeek

    var range: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7  // 7 is Sunday again, as in Vixie cron
        }
    }

    public var description: String {
        switch self {
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day-of-month"
        case .month: "month"
        case .dayOfWeek: "day-of-week"
        }
    }
}

/// Why a cron expression was rejected: which field, which token, and why.
public struct CronParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        public static let empty = Code("empty")
        public static let tooLong = Code("too-long")
        public static let invalidCharacter = Code("invalid-character")
        public static let wrongFieldCount = Code("wrong-field-count")
        public static let unknownAlias = Code("unknown-alias")
        public static let emptyElement = Code("empty-element")
        public static let invalidToken = Code("invalid-token")
        public static let outOfRange = Code("out-of-range")
        public static let zeroStep = Code("zero-step")
        public static let stepWithoutRange = Code("step-without-range")
        public static let reversedRange = Code("reversed-range")

        public var description: String { name }
    }

    public let code: Code
    /// The field the token belongs to; nil for errors about the whole expression.
    public let field: CronField?
    /// The offending token (clipped to 32 characters), if there is one.
    public let token: String?
    public let reason: String

    init(_ code: Code, field: CronField? = nil, token: String? = nil, _ reason: String) {
        self.code = code
        self.field = field
        self.token = token.map { $0.utf8.count > 32 ? String($0.prefix(32)) + "..." : $0 }
        self.reason = reason
    }

    public var description: String {
        var parts: [String] = []
        if let field { parts.append("\(field) field") }
        if let token { parts.append("token \"\(token)\"") }
        return parts.isEmpty ? reason : parts.joined(separator: ", ") + ": " + reason
    }
}
