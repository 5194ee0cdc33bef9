public import Foundation

/// A Swift value that can be sent as a bound parameter (`$n`) or a `COPY` field.
///
/// Values travel in Postgres' text format, the one its input functions read, so the same bytes
/// serve `PQsendQueryParams` and `COPY … FROM STDIN`.
public protocol PostgresEncodable: Sendable {
    /// The type the parameter is declared with; `.unknown` lets the server infer it, which is
    /// what a string needs to land in a `jsonb`, `uuid` or enum column.
    static var postgresType: PostgresType { get }
    /// Appends the value's text representation.
    func encode(into buffer: inout [UInt8])
}

extension String: PostgresEncodable {
    public static var postgresType: PostgresType { .unknown }
    public func encode(into buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Substring: PostgresEncodable {
    public static var postgresType: PostgresType { .unknown }
    public func encode(into buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Bool: PostgresEncodable {
    public static var postgresType: PostgresType { .bool }
    public func encode(into buffer: inout [UInt8]) { buffer.append(self ? UInt8(ascii: "t") : UInt8(ascii: "f")) }
}

extension FixedWidthInteger where Self: SignedInteger {
    fileprivate func encodeDecimal(into buffer: inout [UInt8]) {
        if self < 0 {
            buffer.append(UInt8(ascii: "-"))
            if self == .min {  // its magnitude does not fit in Int64 for Int64.min
                buffer.append(contentsOf: String(self).utf8.dropFirst())
                return
            }
        }
        Timestamp.writeDigits(Int64(self.magnitude), width: 1, into: &buffer)
    }
}

extension Int: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) { encodeDecimal(into: &buffer) }
}

extension Int64: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) { encodeDecimal(into: &buffer) }
}

extension Int32: PostgresEncodable {
    public static var postgresType: PostgresType { .int4 }
    public func encode(into buffer: inout [UInt8]) { encodeDecimal(into: &buffer) }
}

extension Int16: PostgresEncodable {
    public static var postgresType: PostgresType { .int2 }
    public func encode(into buffer: inout [UInt8]) { encodeDecimal(into: &buffer) }
}

extension Double: PostgresEncodable {
    public static var postgresType: PostgresType { .float8 }
    public func encode(into buffer: inout [UInt8]) {
        // Swift's description is the shortest text that round-trips; only the specials differ.
        if isNaN { buffer.append(contentsOf: "NaN".utf8) }
        else if self == .infinity { buffer.append(contentsOf: "Infinity".utf8) }
        else if self == -.infinity { buffer.append(contentsOf: "-Infinity".utf8) }
        else { buffer.append(contentsOf: description.utf8) }
    }
}

extension Date: PostgresEncodable {
    public static var postgresType: PostgresType { .timestamptz }
    public func encode(into buffer: inout [UInt8]) { Timestamp.write(self, into: &buffer) }
}

extension UUID: PostgresEncodable {
    public static var postgresType: PostgresType { .uuid }
    public func encode(into buffer: inout [UInt8]) {
        withUnsafeBytes(of: uuid) { bytes in
            for (i, byte) in bytes.enumerated() {
                if i == 4 || i == 6 || i == 8 || i == 10 { buffer.append(UInt8(ascii: "-")) }
                buffer.append(hexDigit(byte >> 4))
                buffer.append(hexDigit(byte & 0xF))
            }
        }
    }
}

/// A `jsonb` value as raw JSON text. The server validates it; nothing is parsed here.
public struct JSONB: Hashable, Sendable, PostgresEncodable, CustomStringConvertible {
    public var text: String
    public init(_ text: String) { self.text = text }
    public init(bytes: some Sequence<UInt8>) { self.text = String(decoding: Array(bytes), as: UTF8.self) }
    /// Encodes a value with `JSONEncoder` (sorted keys, so equal values give equal text).
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self.text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }
    public var bytes: [UInt8] { Array(text.utf8) }
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    public static var postgresType: PostgresType { .jsonb }
    public func encode(into buffer: inout [UInt8]) { buffer.append(contentsOf: text.utf8) }
    public var description: String { text }
}

/// Arrays map to one Postgres type each, chosen by their element: `[UInt8]` is `bytea` and
/// `[String]` is `text[]`. (A type conforms to a protocol once, so the element decides.)
public protocol PostgresArrayElement: Sendable {
    static var arrayType: PostgresType { get }
    static func encodeArray(_ elements: [Self], into buffer: inout [UInt8])
    static func decodeArray(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> [Self]
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresType { Element.arrayType }
    public func encode(into buffer: inout [UInt8]) { Element.encodeArray(self, into: &buffer) }
}

/// `bytea` in hex form (`\x0a1b…`).
extension UInt8: PostgresArrayElement {
    public static var arrayType: PostgresType { .bytea }
    public static func encodeArray(_ elements: [UInt8], into buffer: inout [UInt8]) {
        buffer.reserveCapacity(buffer.count + 2 + elements.count * 2)
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(UInt8(ascii: "x"))
        for byte in elements {
            buffer.append(hexDigit(byte >> 4))
            buffer.append(hexDigit(byte & 0xF))
        }
    }
}

/// `text[]`: every element is quoted, so no element can read as `NULL` or split the array.
extension String: PostgresArrayElement {
    public static var arrayType: PostgresType { .textArray }
    public static func encodeArray(_ elements: [String], into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        for (i, element) in elements.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(UInt8(ascii: "\""))
            for byte in element.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { buffer.append(UInt8(ascii: "\\")) }
                buffer.append(byte)
            }
            buffer.append(UInt8(ascii: "\""))
        }
        buffer.append(UInt8(ascii: "}"))
    }
}

/// Lower-case hex digit of a nibble, without a lookup table to allocate or guard.
@inline(__always)
func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
}
