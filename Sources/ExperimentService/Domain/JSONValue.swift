/// A JSON value as Chaos Toolkit (Python) sees it, with nothing lost on the way through Faultline.
///
/// Equality is *semantic*, as Python compares what `json.load` returns, with one deliberate
/// difference: an integer never equals a float (`1 != 1.0`), because Chaos Toolkit treats them
/// differently (a float tolerance is invalid). Object keys keep their order for export, but the
/// order does not take part in equality.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The JSON type name used in messages ("object", "array", ...).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(let n): n.kind == .integer ? "integer" : "float"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { o } else { nil }
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { a } else { nil }
    }
    public var stringValue: String? {
        if case .string(let s) = self { s } else { nil }
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { b } else { nil }
    }
    public var numberValue: JSONNumber? {
        if case .number(let n) = self { n } else { nil }
    }
    public var isNull: Bool {
        if case .null = self { true } else { false }
    }

    /// Member of an object, nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// Python truthiness, which is what Chaos Toolkit's `if not x.get("title")` checks use.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .number(let n): !n.isZero
        case .string(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): !o.isEmpty
        }
    }
}

/// A JSON number that remembers whether it was written as an integer or a float, and its text.
///
/// Integers compare by exact value (any length, as Python ints); floats compare as IEEE doubles
/// (as Python floats). `literal` is always valid JSON number text.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable { case integer, float }

    public let kind: Kind
    public let literal: String

    /// Trusted constructor for callers that already checked the JSON number grammar.
    init(kind: Kind, validatedLiteral: String) {
        self.kind = kind
        self.literal = validatedLiteral
    }

    public init(_ value: Int) {
        self.kind = .integer
        self.literal = String(value)
    }

    /// A float; nil for NaN and infinities, which JSON cannot carry.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.kind = .float
        // Swift's description is the shortest round-tripping form, as Python's repr.
        var text = "\(value)"
        if !text.contains(".") && !text.contains("e") { text += ".0" }
        self.literal = text
    }

    public var description: String { literal }

    /// The value as an `Int`, when it is an integer that fits.
    public var intValue: Int? { kind == .integer ? Int(literal) : nil }

    public var doubleValue: Double { Double(literal) ?? .nan }

    var isZero: Bool { doubleValue == 0 }

    /// Integer text without a sign on zero, so `-0` equals `0` as in Python.
    private var canonicalInteger: String {
        literal.allSatisfy { $0 == "-" || $0 == "0" } ? "0" : literal
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        guard lhs.kind == rhs.kind else { return false }
        switch lhs.kind {
        case .integer: return lhs.canonicalInteger == rhs.canonicalInteger
        case .float: return lhs.doubleValue == rhs.doubleValue
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        switch kind {
        case .integer: hasher.combine(canonicalInteger)
        case .float: hasher.combine(doubleValue)
        }
    }
}

/// A JSON object that keeps its keys in document order. Keys are unique.
public struct JSONObject: Sendable, Hashable, Sequence {
    public typealias Element = (key: String, value: JSONValue)

    public private(set) var entries: [Element] = []
    private var positions: [String: Int] = [:]

    public init() {}

    /// Builds an object from ordered pairs; nil if a key repeats.
    public init?(orderedPairs: [Element]) {
        for pair in orderedPairs {
            guard positions[pair.key] == nil else { return nil }
            positions[pair.key] = entries.count
            entries.append(pair)
        }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    public func contains(_ key: String) -> Bool { positions[key] != nil }

    public subscript(key: String) -> JSONValue? {
        get { positions[key].map { entries[$0].value } }
        set {
            if let i = positions[key] {
                if let newValue {
                    entries[i].value = newValue
                } else {
                    entries.remove(at: i)
                    positions = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
                }
            } else if let newValue {
                positions[key] = entries.count
                entries.append((key, newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.entries.allSatisfy { rhs[$0.key] == $0.value }
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent, to agree with `==`.
        var sum = 0
        for (key, value) in entries {
            var entry = Hasher()
            entry.combine(key)
            entry.combine(value)
            sum &+= entry.finalize()
        }
        hasher.combine(count)
        hasher.combine(sum)
    }
}

// Literals keep hand-built journals and experiments in tests readable.
extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(floatLiteral value: Double) {
        guard let n = JSONNumber(value) else { preconditionFailure("JSON has no NaN or infinity") }
        self = .number(n)
    }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        guard let object = JSONObject(orderedPairs: elements.map { (key: $0.0, value: $0.1) }) else {
            preconditionFailure("duplicate key in an object literal")
        }
        self = .object(object)
    }
}
