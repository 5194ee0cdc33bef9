import Foundation

/// A fragment of HTML. Built only from string literals (trusted markup) and interpolations,
/// where every `String`, number or other value is escaped and only another `HTML` goes in as
/// is: an experiment title with `<script>` in it is shown as text, never run.
struct HTML: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    private(set) var text: String

    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: Interpolation) { text = stringInterpolation.text }
    private init(trusted text: String) { self.text = text }

    var description: String { text }

    static let empty = HTML(trusted: "")

    /// `values` joined, each already HTML.
    static func join(_ values: some Sequence<HTML>, separator: HTML = .empty) -> HTML {
        HTML(trusted: values.map(\.text).joined(separator: separator.text))
    }

    /// Text escaped for element content and quoted attribute values alike.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // NUL and other C0 controls (but tab and newlines) are not allowed in HTML text.
            case "\u{0}"..."\u{8}", "\u{B}", "\u{C}", "\u{E}"..."\u{1F}", "\u{7F}": out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    struct Interpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ html: HTML) { text += html.text }
        mutating func appendInterpolation(_ html: [HTML]) { text += html.map(\.text).joined() }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: Substring) { text += HTML.escape(String(value)) }
        mutating func appendInterpolation<T: BinaryInteger>(_ value: T) { text += String(value) }
        mutating func appendInterpolation(_ value: Double) { text += HTML.escape(String(value)) }
        /// Anything else: its description, escaped.
        mutating func appendInterpolation(describing value: some CustomStringConvertible) { text += HTML.escape(value.description) }
    }
}

extension HTML {
    /// `html` when `condition`, else nothing.
    static func when(_ condition: Bool, _ html: @autoclosure () -> HTML) -> HTML { condition ? html() : .empty }

    /// A JSON text safe inside `<script type="application/json">`: `<`, `>` and `&` as `\u003c`…,
    /// so no `</script>` or `<!--` can close or bend the element.
    static func scriptJSON(_ json: String) -> HTML {
        HTML(trusted: json.replacingOccurrences(of: "<", with: "\\u003c").replacingOccurrences(of: ">", with: "\\u003e")
            .replacingOccurrences(of: "&", with: "\\u0026"))
    }
}
