import Foundation

/// A JSON value whose objects keep their members in the order given, so a rendered experiment
/// reads top down (title, description, …, rollbacks) as people write one. Only structure goes
/// in: every string is escaped by `JSONEncoder`, so text from a form can never end a string,
/// add a member or break the document.
indirect enum OrderedJSON: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case array([OrderedJSON])
    case object([Member])

    struct Member: Sendable, Equatable {
        var key: String
        var value: OrderedJSON
    }

    /// An object from `(key, value)` pairs, in that order.
    static func object(_ members: KeyValuePairs<String, OrderedJSON>) -> OrderedJSON {
        .object(members.map { Member(key: $0.key, value: $0.value) })
    }

    /// The document as pretty JSON (two spaces, one member per line), ending in a newline.
    var prettyText: String {
        var out = ""
        write(into: &out, indent: 0)
        out += "\n"
        return out
    }

    private func write(into out: inout String, indent: Int) {
        let inner = String(repeating: "  ", count: indent + 1)
        let outer = String(repeating: "  ", count: indent)
        switch self {
        case .string(let value): out += Self.quoted(value)
        case .integer(let value): out += String(value)
        case .number(let value): out += Self.numberText(value)
        case .bool(let value): out += value ? "true" : "false"
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += inner
                item.write(into: &out, indent: indent + 1)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += outer + "]"
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (index, member) in members.enumerated() {
                out += inner + Self.quoted(member.key) + ": "
                member.value.write(into: &out, indent: indent + 1)
                out += index == members.count - 1 ? "\n" : ",\n"
            }
            out += outer + "}"
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    /// A string literal, escaped by the Foundation encoder (quotes, backslashes, controls).
    private static func quoted(_ value: String) -> String {
        // Encoding a String cannot fail; the fallback keeps the document valid regardless.
        (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "\"\""
    }

    /// A finite number as JSON: whole numbers without a fraction, others in Swift's shortest form.
    static func numberText(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
