/// Where a value sits in a document, printed as a JSONPath: `$.method[2].provider.module`.
/// Keys that are not plain identifiers use bracket notation: `$['steady-state-hypothesis']`, with
/// control characters written as JSON escapes (`$['a\u0000b']`).
public struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public private(set) var components: [Component]

    public static let root = JSONPath(components: [])

    public init(components: [Component]) {
        self.components = components
    }

    public func key(_ key: String) -> JSONPath {
        JSONPath(components: components + [.key(key)])
    }

    public func index(_ index: Int) -> JSONPath {
        JSONPath(components: components + [.index(index)])
    }

    public var description: String {
        var text = "$"
        for component in components {
            switch component {
            case .index(let i):
                text += "[\(i)]"
            case .key(let k) where Self.isIdentifier(k):
                text += ".\(k)"
            case .key(let k):
                text += "['"
                for c in k.unicodeScalars {
                    if c == "\\" || c == "'" { text += "\\" }
                    // Control characters as JSON escapes: a path is shown and sent in messages
                    // and metadata, where NUL in particular cannot travel.
                    if c.properties.generalCategory == .control {
                        text += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16)
                    } else {
                        text.unicodeScalars.append(c)
                    }
                }
                text += "']"
            }
        }
        return text
    }

    private static func isIdentifier(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return key.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }
}

/// Lookup along a path (used by tests and by callers that point at a reported problem).
extension JSONValue {
    public subscript(path: JSONPath) -> JSONValue? {
        var current: JSONValue? = self
        for component in path.components {
            switch component {
            case .key(let k): current = current?[k]
            case .index(let i):
                guard let a = current?.arrayValue, a.indices.contains(i) else { return nil }
                current = a[i]
            }
        }
        return current
    }
}

extension JSONValue {
    /// The path of the first string or key holding U+0000 (NUL); nil when none does.
    public func pathOfNUL(from path: JSONPath = .root) -> JSONPath? {
        switch self {
        case .string(let text):
            return text.utf8.contains(0) ? path : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = item.pathOfNUL(from: path.index(index)) { return found }
            }
            return nil
        case .object(let members):
            for (key, value) in members {
                if key.utf8.contains(0) { return path.key(key) }
                if let found = value.pathOfNUL(from: path.key(key)) { return found }
            }
            return nil
        case .null, .bool, .number:
            return nil
        }
    }
}
