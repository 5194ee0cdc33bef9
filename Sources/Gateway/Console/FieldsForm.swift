import Foundation

/// A console form whose fields are not known in advance (a row per secret, a field per
/// integration kind): every field by name. Names are flat (`secret_name_0`), so a bracketed name
/// (`a[b]`) cannot nest and is refused as a malformed form.
struct FieldsForm: ConsoleForm {
    var fields: [String: String]
    var csrf: String? { fields["csrf"] }

    init(fields: [String: String]) { self.fields = fields }

    init(from decoder: any Decoder) throws {
        fields = try [String: String](from: decoder)
    }

    /// The field trimmed of surrounding white space; empty when absent.
    subscript(_ name: String) -> String {
        fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// The field exactly as sent (a secret's value keeps its spaces); nil when absent or empty.
    func raw(_ name: String) -> String? {
        guard let value = fields[name], !value.isEmpty else { return nil }
        return value
    }

    func checked(_ name: String) -> Bool { fields[name] == "on" }
}

/// What a person typed that cannot be used, said next to the form it came from.
struct FormError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `NAME<separator>value` lines (variables, headers, labels) to a dictionary and back.
enum KeyValueLines {
    static func parse(_ text: String, separator: Character, what: String) throws(FormError) -> [String: String] {
        var result: [String: String] = [:]
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let cut = trimmed.firstIndex(of: separator) else {
                throw FormError("\(what), line \(index + 1): write it as NAME\(separator)value")
            }
            let key = trimmed[..<cut].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: cut)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw FormError("\(what), line \(index + 1): the name is empty") }
            guard result[key] == nil else { throw FormError("\(what), line \(index + 1): \(key) is given twice") }
            result[key] = value
        }
        return result
    }

    static func render(_ values: [String: String], separator: String) -> String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)\(separator)\($0.value)" }.joined(separator: "\n")
    }
}
