import Foundation

/// A statement whose interpolated values are bound parameters, never SQL text.
///
/// ```swift
/// let rows = try await client.query("SELECT id FROM \(identifier: schema).runs WHERE name = \(name)")
/// ```
/// `\(name)` becomes `$1`; `\(identifier:)` quotes a name as `PQescapeIdentifier` does; raw text
/// enters only through `\(unescaped:)` or `SQL(unescaped:)`, which say so where they are used.
public struct SQL: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    enum Segment: Sendable {
        case text(String)
        case bind(Bind)
    }

    /// One parameter's text-format bytes (nil for NULL) and declared type.
    struct Bind: Sendable {
        var bytes: [UInt8]?
        var type: PostgresType
    }

    private(set) var segments: [Segment]

    public init(stringLiteral value: String) { segments = [.text(value)] }

    public init(stringInterpolation: StringInterpolation) { segments = stringInterpolation.segments }

    /// Raw SQL text, for statements assembled from trusted parts only.
    public init(unescaped text: String) { segments = [.text(text)] }

    public struct StringInterpolation: StringInterpolationProtocol {
        var segments: [Segment] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            segments.reserveCapacity(interpolationCount * 2 + 1)
        }

        public mutating func appendLiteral(_ literal: String) { segments.append(.text(literal)) }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T) {
            var bytes: [UInt8] = []
            value.encode(into: &bytes)
            segments.append(.bind(Bind(bytes: bytes, type: T.postgresType)))
        }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T?) {
            guard let value else { return segments.append(.bind(Bind(bytes: nil, type: T.postgresType))) }
            appendInterpolation(value)
        }

        /// One bind per element, comma-separated: `IN (\(list: ids))` becomes `IN ($1, $2, $3)`.
        public mutating func appendInterpolation<T: PostgresEncodable>(list values: some Sequence<T>) {
            for (i, value) in values.enumerated() {
                if i > 0 { segments.append(.text(", ")) }
                appendInterpolation(value)
            }
        }

        /// A quoted identifier: `"name"`, with embedded quotes doubled.
        public mutating func appendInterpolation(identifier: String) {
            segments.append(.text(SQL.quoteIdentifier(identifier)))
        }

        /// A schema-qualified name: `"schema"."name"`.
        public mutating func appendInterpolation(identifier: String, in schema: String) {
            segments.append(.text(SQL.quoteIdentifier(schema) + "." + SQL.quoteIdentifier(identifier)))
        }

        /// Raw SQL text. Never pass anything that came from outside the program.
        public mutating func appendInterpolation(unescaped text: String) { segments.append(.text(text)) }

        /// Another statement fragment, with its binds renumbered into this one.
        public mutating func appendInterpolation(_ fragment: SQL) { segments.append(contentsOf: fragment.segments) }
    }

    public static func += (lhs: inout SQL, rhs: SQL) {
        lhs.segments.append(contentsOf: rhs.segments)
    }

    public static func + (lhs: SQL, rhs: SQL) -> SQL {
        var result = lhs
        result.segments.append(contentsOf: rhs.segments)
        return result
    }

    /// `PQescapeIdentifier` semantics: always quoted, `"` doubled, so any text is one identifier.
    /// NUL cannot be sent at all; it is dropped rather than letting libpq cut the statement there.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"").replacingOccurrences(of: "\0", with: "") + "\""
    }

    /// The statement text with `$1…$n` placeholders, and the parameters in order.
    func render() -> (text: String, binds: [Bind]) {
        var text = "", binds: [Bind] = []
        for segment in segments {
            switch segment {
            case .text(let t): text += t
            case .bind(let b):
                binds.append(b)
                text += "$\(binds.count)"
            }
        }
        return (text, binds)
    }

    /// The statement with placeholders; parameter values are never shown.
    public var description: String { render().text }
}
