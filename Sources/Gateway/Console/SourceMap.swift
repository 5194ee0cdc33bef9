import Foundation
import Yams

/// An experiment text read as a tree that keeps key order and source lines (JSON is read by
/// the YAML parser, of which it is a subset), so a validation problem's JSON path can be shown
/// next to the line it concerns, and a stored definition pretty-printed in its own key order.
struct SourceMap {
    private let root: Node?

    init(text: String) {
        root = try? Yams.compose(yaml: text)
    }

    var isReadable: Bool { root != nil }

    /// The 1-based line of the deepest node on `path` (`$.method[2].provider`, `$['a b']`):
    /// a missing member is reported where its parent is.
    func line(of path: String) -> Int? {
        guard var node = root, let components = Self.components(of: path) else { return nil }
        var line = node.mark?.line
        for component in components {
            switch (component, node) {
            case (.key(let key), .mapping(let mapping)):
                guard let pair = mapping.first(where: { $0.key.string == key }) else { return line }
                line = pair.key.mark?.line ?? line
                node = pair.value
            case (.index(let index), .sequence(let sequence)) where sequence.indices.contains(index):
                node = sequence[index]
                line = node.mark?.line ?? line
            default:
                return line
            }
        }
        return line
    }

    /// A parse error's line, from the `line N, column M` ExperimentService puts in its message.
    static func line(inMessage message: String) -> Int? {
        guard let range = message.range(of: #"line [0-9]+, column"#, options: .regularExpression) else { return nil }
        return Int(message[range].dropFirst(5).prefix { $0.isNumber })
    }

    enum Component: Equatable { case key(String), index(Int) }

    /// The components of a JSON path as ExperimentService writes them; nil when malformed.
    static func components(of path: String) -> [Component]? {
        var rest = Substring(path)
        guard rest.first == "$" else { return nil }
        rest = rest.dropFirst()
        var components: [Component] = []
        while let first = rest.first {
            if first == "." {
                let name = rest.dropFirst().prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { return nil }
                components.append(.key(String(name)))
                rest = rest.dropFirst(1 + name.count)
            } else if rest.hasPrefix("['") {
                rest = rest.dropFirst(2)
                var key = ""
                var closed = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "\\", let next = rest.first { key.append(next); rest = rest.dropFirst() }
                    else if c == "'" { closed = true; break }
                    else { key.append(c) }
                }
                guard closed, rest.first == "]" else { return nil }
                rest = rest.dropFirst()
                components.append(.key(key))
            } else if first == "[" {
                let digits = rest.dropFirst().prefix { $0.isNumber }
                guard let index = Int(digits), rest.dropFirst(1 + digits.count).first == "]" else { return nil }
                components.append(.index(index))
                rest = rest.dropFirst(2 + digits.count)
            } else {
                return nil
            }
        }
        return components
    }

    /// The JSON text indented two spaces per level, keys in their original order; nil when the
    /// text could not be read (then callers fall back to the text as stored).
    func prettyJSON() -> String? {
        guard let root else { return nil }
        var out = ""
        Self.write(root, indent: 0, into: &out)
        return out
    }

    private static func write(_ node: Node, indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch node {
        case .scalar(let scalar):
            out += scalar.style == .plain ? plain(scalar.string) : quoted(scalar.string)
        case .mapping(let mapping):
            guard !mapping.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (i, pair) in mapping.enumerated() {
                out += pad + quoted(pair.key.string ?? "") + ": "
                write(pair.value, indent: indent + 1, into: &out)
                out += i == mapping.count - 1 ? "\n" : ",\n"
            }
            out += end + "}"
        case .sequence(let sequence):
            guard !sequence.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (i, item) in sequence.enumerated() {
                out += pad
                write(item, indent: indent + 1, into: &out)
                out += i == sequence.count - 1 ? "\n" : ",\n"
            }
            out += end + "]"
        }
    }

    /// JSON's plain scalars are numbers, booleans and null; anything else is shown as a string.
    private static func plain(_ text: String) -> String {
        if ["true", "false", "null"].contains(text) || Double(text) != nil { return text }
        return quoted(text)
    }

    private static func quoted(_ text: String) -> String {
        (try? String(decoding: JSONEncoder.gateway.encode(text), as: UTF8.self)) ?? "\"\""
    }
}
