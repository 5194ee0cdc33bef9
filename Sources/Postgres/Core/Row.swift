public import Foundation

/// Why one column could not become the requested Swift type. Never quotes the value.
public struct DecodingFailure: Error, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// A Swift type a column can be decoded into, from Postgres' text format.
public protocol PostgresDecodable: Sendable {
    static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Self
    /// What a SQL `NULL` becomes: an error unless the type is an `Optional`.
    static func decodeNull() throws(DecodingFailure) -> Self
}

extension PostgresDecodable {
    public static func decodeNull() throws(DecodingFailure) -> Self {
        throw DecodingFailure("is NULL; decode an Optional to accept NULL")
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Self {
        try Wrapped.decode(bytes, type: type)
    }
    public static func decodeNull() throws(DecodingFailure) -> Self { nil }
}

/// One result row: column names and types shared by all rows of the result, and the values'
/// text bytes in one buffer.
public struct Row: Sendable {
    final class Columns: Sendable {
        let names: [String]
        let types: [PostgresType]
        let lookup: [String: Int]
        init(names: [String], types: [PostgresType]) {
            self.names = names
            self.types = types
            // The first column of a name wins, as in `SELECT a.id, b.id`.
            self.lookup = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    let columns: Columns
    let storage: [UInt8]
    let ranges: [Range<Int>?]  // nil: SQL NULL

    public var count: Int { ranges.count }
    public var columnNames: [String] { columns.names }
    public func columnType(at index: Int) -> PostgresType { columns.types[index] }
    public func isNull(at index: Int) -> Bool { ranges[index] == nil }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at index: Int) throws(DatabaseError) -> T {
        guard ranges.indices.contains(index) else {
            throw DatabaseError(.decoding, reason: "no column at index \(index) (row has \(count))")
        }
        do {
            guard let range = ranges[index] else { return try T.decodeNull() }
            return try T.decode(storage[range], type: columns.types[index])
        } catch {
            throw DatabaseError(.decoding, reason:
                "column \"\(columns.names[index])\" (\(columns.types[index])) as \(T.self): \(error.reason)")
        }
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws(DatabaseError) -> T {
        guard let index = columns.lookup[name] else {
            throw DatabaseError(.decoding, reason: "no column named \"\(name)\"")
        }
        return try decode(type, at: index)
    }

    /// Decodes the leading columns in order: `let (id, name) = try row.decode((UUID, String).self)`.
    public func decode<each T: PostgresDecodable>(_ types: (repeat each T).Type) throws(DatabaseError) -> (repeat each T) {
        var index = 0
        func next<U: PostgresDecodable>(_ type: U.Type) throws(DatabaseError) -> U {
            defer { index += 1 }
            return try decode(type, at: index)
        }
        return (repeat try next((each T).self))
    }
}

// MARK: - Conformances

extension String: PostgresDecodable {
    /// Any column has a text form, so any type decodes as `String`.
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}

extension Bool: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Bool {
        guard type == .bool else { throw DecodingFailure("is not a bool column") }
        switch bytes.first {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw DecodingFailure("is not t or f")
        }
    }
}

extension FixedWidthInteger where Self: SignedInteger {
    static func decodeDecimal(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Self {
        guard [.int2, .int4, .int8, .oidType, .numeric].contains(type) else {
            throw DecodingFailure("is not an integer column")
        }
        var index = bytes.startIndex
        let negative = index < bytes.endIndex && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < bytes.endIndex else { throw DecodingFailure("is not an integer") }
        var value: Self = 0
        while index < bytes.endIndex {
            let c = bytes[index]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { throw DecodingFailure("is not an integer") }
            let digit = Self(c - UInt8(ascii: "0"))
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw DecodingFailure("is out of range") }
            value = next
            index += 1
        }
        return value
    }
}

extension Int: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Int {
        try decodeDecimal(bytes, type: type)
    }
}

extension Int64: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Int64 {
        try decodeDecimal(bytes, type: type)
    }
}

extension Int32: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Int32 {
        try decodeDecimal(bytes, type: type)
    }
}

extension Int16: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Int16 {
        try decodeDecimal(bytes, type: type)
    }
}

extension Double: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Double {
        guard [.float4, .float8, .numeric, .int2, .int4, .int8].contains(type) else {
            throw DecodingFailure("is not a numeric column")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text) else { throw DecodingFailure("is not a number") }
            return value
        }
    }
}

extension Date: PostgresDecodable {
    /// `timestamptz`, and `timestamp` read as UTC.
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> Date {
        guard type == .timestamptz || type == .timestamp else { throw DecodingFailure("is not a timestamp column") }
        guard let date = Timestamp.parse(bytes) else {
            throw DecodingFailure("is not a finite ISO timestamp")
        }
        return date
    }
}

extension UUID: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> UUID {
        guard type == .uuid || type == .text || type == .varchar || type == .unknown else {
            throw DecodingFailure("is not a uuid column")
        }
        guard let uuid = UUID(uuidString: String(decoding: bytes, as: UTF8.self)) else {
            throw DecodingFailure("is not a UUID")
        }
        return uuid
    }
}

extension JSONB: PostgresDecodable {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> JSONB {
        guard type == .jsonb || type == .json else { throw DecodingFailure("is not a json or jsonb column") }
        return JSONB(bytes: bytes)
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public static func decode(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> [Element] {
        try Element.decodeArray(bytes, type: type)
    }
}

extension UInt8 {
    public static func decodeArray(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> [UInt8] {
        guard type == .bytea else { throw DecodingFailure("is not a bytea column") }
        // bytea_output = hex, the default since 9.0: `\x` then two hex digits per byte.
        guard bytes.count >= 2, bytes.count % 2 == 0,
              bytes[bytes.startIndex] == UInt8(ascii: "\\"), bytes[bytes.startIndex + 1] == UInt8(ascii: "x")
        else { throw DecodingFailure("is not in bytea hex format") }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity((bytes.count - 2) / 2)
        var i = bytes.startIndex + 2
        while i < bytes.endIndex {
            guard let high = nibble(bytes[i]), let low = nibble(bytes[i + 1]) else {
                throw DecodingFailure("is not in bytea hex format")
            }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}

extension String {
    /// Reads a one-dimensional array literal: `{a,"b c",NULL}`. NULL elements are an error.
    public static func decodeArray(_ bytes: ArraySlice<UInt8>, type: PostgresType) throws(DecodingFailure) -> [String] {
        guard [.textArray, .varcharArray, PostgresType(oid: 1003) /* name[] */, PostgresType(oid: 1014) /* bpchar[] */]
            .contains(type) else { throw DecodingFailure("is not a text[] column") }
        var i = bytes.startIndex
        let end = bytes.endIndex
        guard i < end, bytes[i] == UInt8(ascii: "{"), bytes[end - 1] == UInt8(ascii: "}") else {
            throw DecodingFailure("is not a one-dimensional array literal")
        }
        i += 1
        var result: [String] = []
        if i == end - 1 { return result }
        while i < end - 1 {
            var element: [UInt8] = []
            if bytes[i] == UInt8(ascii: "\"") {
                i += 1
                while true {
                    guard i < end - 1 else { throw DecodingFailure("has an unterminated quoted element") }
                    let c = bytes[i]
                    if c == UInt8(ascii: "\\") { i += 1; guard i < end - 1 else { break }; element.append(bytes[i]) }
                    else if c == UInt8(ascii: "\"") { i += 1; break }
                    else { element.append(c) }
                    i += 1
                }
            } else {
                while i < end - 1, bytes[i] != UInt8(ascii: ",") {
                    guard bytes[i] != UInt8(ascii: "{") else { throw DecodingFailure("is a multi-dimensional array") }
                    element.append(bytes[i])
                    i += 1
                }
                if element == Array("NULL".utf8) { throw DecodingFailure("has a NULL element") }
            }
            result.append(String(decoding: element, as: UTF8.self))
            if i < end - 1 {
                guard bytes[i] == UInt8(ascii: ",") else { throw DecodingFailure("is not a valid array literal") }
                i += 1
            }
        }
        return result
    }
}
