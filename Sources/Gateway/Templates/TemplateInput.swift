import Foundation

/// One field of a template's form: what it asks for, its default, its bounds, and how a typed
/// value is checked. Values arrive as text (a form field or a JSON string or number).
struct TemplateInput: Sendable {
    enum Kind: Sendable {
        /// An http:// or https:// address.
        case url
        /// One line of text, at most `maxLength` characters.
        case text(maxLength: Int)
        /// A whole number within the bounds.
        case integer(ClosedRange<Int>)
        /// A duration (`500ms`, `5s`, `2m`, `1h`; a bare number is seconds) within these seconds.
        case duration(ClosedRange<Double>)
        /// A shell command, run with `sh -c`; may span lines.
        case command
        /// One of a fixed list.
        case choice([String])
        /// An absolute directory path.
        case path

        var name: String {
            switch self {
            case .url: "url"
            case .text: "text"
            case .integer: "integer"
            case .duration: "duration"
            case .command: "command"
            case .choice: "choice"
            case .path: "path"
            }
        }

        /// The most bytes a value may have.
        var maxBytes: Int {
            switch self {
            case .url: 2048
            case .text(let maxLength): maxLength * 4
            case .command: 4096
            case .path: 1024
            case .integer, .duration, .choice: 64
            }
        }
    }

    /// A configuration key too (`[a-z_][a-z0-9_]*`), so `${name}` can refer to it.
    let name: String
    let label: String
    let kind: Kind
    /// As typed in the form; empty only for an optional input.
    let defaultValue: String
    let help: String
    /// An optional input may be left empty; the steps that need it are then left out.
    var required = true

    /// The value of `raw`; nil when blank (the input is empty) and optional.
    func parse(_ raw: String?) throws(InputProblem) -> TemplateValue? {
        var text = raw ?? ""
        if case .command = kind {
            // Browsers send a textarea's lines with CRLF.
            text = text.replacingOccurrences(of: "\r\n", with: "\n")
        }
        text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else {
            if required { throw problem("required", "\(label) is required") }
            return nil
        }
        guard text.utf8.count <= kind.maxBytes else {
            throw problem("too_long", "\(label) is too long (at most \(kind.maxBytes) bytes)")
        }
        let allowsLineBreaks = if case .command = kind { true } else { false }
        if text.unicodeScalars.contains(where: { Self.isControl($0, allowingLineBreaks: allowsLineBreaks) }) {
            throw problem("control_character", allowsLineBreaks
                ? "\(label) may not contain control characters other than tabs and line breaks"
                : "\(label) must be one line without control characters")
        }
        switch kind {
        case .url:
            guard let components = URLComponents(string: text),
                  let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  let host = components.host, !host.isEmpty,
                  !text.unicodeScalars.contains(where: { $0 == " " }) else {
                throw problem("url_invalid", "\(label) must be an http:// or https:// address with a host, e.g. http://localhost:8080/health")
            }
            return .text(text)
        case .text(let maxLength):
            guard text.count <= maxLength else {
                throw problem("too_long", "\(label) is too long (at most \(maxLength) characters)")
            }
            return .text(text)
        case .integer(let bounds):
            guard let value = Int(text), bounds.contains(value) else {
                throw problem("out_of_range", "\(label) must be a whole number from \(bounds.lowerBound) to \(bounds.upperBound)")
            }
            return .integer(value)
        case .duration(let bounds):
            guard let seconds = Self.seconds(text), bounds.contains(seconds) else {
                throw problem("out_of_range", "\(label) must be a duration from \(Self.describe(bounds.lowerBound)) to \(Self.describe(bounds.upperBound)), e.g. 500ms, 5s or 2m")
            }
            return .seconds(seconds)
        case .command:
            return .text(text)
        case .choice(let options):
            guard options.contains(text) else {
                throw problem("not_a_choice", "\(label) must be one of \(options.joined(separator: ", "))")
            }
            return .text(text)
        case .path:
            let parts = text.split(separator: "/", omittingEmptySubsequences: true)
            guard text.hasPrefix("/"), !parts.contains(where: { $0 == "." || $0 == ".." }) else {
                throw problem("path_invalid", "\(label) must be an absolute path without . or .. parts, e.g. /var/lib/my-service")
            }
            return .text("/" + parts.joined(separator: "/"))
        }
    }

    private func problem(_ code: String, _ message: String) -> InputProblem {
        InputProblem(input: name, code: "template.input.\(code)", message: message)
    }

    private static func isControl(_ scalar: Unicode.Scalar, allowingLineBreaks: Bool) -> Bool {
        switch scalar.value {
        case 0x09: false
        case 0x0A: !allowingLineBreaks
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: true
        default: false
        }
    }

    /// Seconds of `500ms`, `1.5s`, `2m`, `1h` or a bare number of seconds; nil when not one.
    static func seconds(_ text: String) -> Double? {
        let lower = text.lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(lower), scale = 1.0
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            number = lower.dropLast(suffix.count)
            scale = factor
            break
        }
        // Digits with at most one point: no signs, exponents, "nan" or "inf".
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1, number.contains(where: \.isNumber),
              let value = Double(number) else { return nil }
        // Milliseconds are the finest grain a pause or timeout needs.
        return (value * scale * 1000).rounded() / 1000
    }

    /// A number of seconds as people write it: 500ms, 5s, 1.5s, 2m, 1h.
    static func describe(_ seconds: Double) -> String {
        if seconds > 0, seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds >= 3600, seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        if seconds >= 60, seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60))m" }
        if seconds == seconds.rounded() { return "\(Int(seconds))s" }
        return "\(seconds)s"
    }
}

/// A checked input value.
enum TemplateValue: Sendable, Equatable {
    case text(String)
    case integer(Int)
    case seconds(Double)
}

/// What is wrong with one input, for the field it concerns.
struct InputProblem: Error, Sendable, Equatable {
    /// The input's name; `$.inputs.<input>` in the API.
    var input: String
    /// Stable: `template.input.required`, `…url_invalid`, `…out_of_range`, `…unknown`, …
    var code: String
    var message: String
}

/// Every problem with a template's inputs, in the order of the form.
struct InputProblems: Error, Sendable, Equatable {
    var problems: [InputProblem]
}
