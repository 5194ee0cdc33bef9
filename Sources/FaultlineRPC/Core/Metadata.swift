/// gRPC metadata: ordered, repeatable, case-insensitive keys. Keys ending in `-bin` carry
/// binary values (base64 on the wire); all other values are printable ASCII.
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public enum Value: Sendable, Hashable, ExpressibleByStringLiteral {
        case string(String)
        case binary([UInt8])

        public init(stringLiteral value: String) { self = .string(value) }
    }

    public typealias Element = (key: String, value: Value)
    private var entries: [(key: String, value: Value)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, Value)...) {
        entries = elements.map { ($0.0.lowercased(), $0.1) }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    public mutating func addString(_ value: String, forKey key: String) {
        entries.append((key.lowercased(), .string(value)))
    }

    public mutating func addBinary(_ value: [UInt8], forKey key: String) {
        entries.append((key.lowercased(), .binary(value)))
    }

    /// Replaces every value stored under `key`.
    public mutating func replaceOrAddString(_ value: String, forKey key: String) {
        removeAll(key)
        addString(value, forKey: key)
    }

    public mutating func removeAll(_ key: String) {
        let key = key.lowercased()
        entries.removeAll { $0.key == key }
    }

    /// The first string value stored under `key`.
    public subscript(stringValue key: String) -> String? {
        let key = key.lowercased()
        for entry in entries where entry.key == key {
            if case .string(let value) = entry.value { return value }
        }
        return nil
    }

    /// Every value stored under `key`, in order.
    public subscript(key: String) -> [Value] {
        let key = key.lowercased()
        return entries.filter { $0.key == key }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        entries.makeIterator()
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}
