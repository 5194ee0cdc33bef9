/// A strict RFC 8259 parser that keeps what `JSONSerialization` would lose: key order, integer
/// versus float and the exact number text. It rejects duplicate keys (Python would silently keep
/// the last one, so what the user sees and what runs could differ), lone surrogates, NaN and
/// infinities, and enforces the size and depth limits before it can be made to recurse deeply.
struct JSONParser {
    /// Python refuses to convert integers longer than this (`sys.int_info.default_max_str_digits`).
    static let maxIntegerDigits = 4300

    private let bytes: [UInt8]
    private let limits: DocumentLimits
    private let nonFinite: JSONValue.NonFiniteNumbers
    private var position = 0

    private init(bytes: [UInt8], limits: DocumentLimits, nonFinite: JSONValue.NonFiniteNumbers) {
        self.bytes = bytes
        self.limits = limits
        self.nonFinite = nonFinite
    }

    static func parse(
        _ bytes: [UInt8], limits: DocumentLimits = .default, nonFinite: JSONValue.NonFiniteNumbers = .reject
    ) throws(DocumentError) -> JSONValue {
        guard bytes.count <= limits.maxBytes else {
            throw DocumentError(.tooLarge, "document is \(bytes.count) bytes; the limit is \(limits.maxBytes)")
        }
        if let bad = UTF8Check.firstInvalidOffset(in: bytes) {
            throw DocumentError(.invalidUTF8, "invalid UTF-8", at: location(of: bad, in: bytes))
        }
        var parser = JSONParser(bytes: bytes, limits: limits, nonFinite: nonFinite)
        if bytes.starts(with: UTF8Check.byteOrderMark) { parser.position = 3 }
        parser.skipWhitespace()
        guard parser.position < bytes.count else { throw DocumentError(.empty, "the document is empty") }
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.error(.jsonSyntax, "unexpected data after the JSON value")
        }
        return value
    }

    static func location(of offset: Int, in bytes: [UInt8]) -> DocumentError.Location {
        var line = 1, lineStart = 0
        for i in 0..<min(offset, bytes.count) where bytes[i] == UInt8(ascii: "\n") {
            line += 1
            lineStart = i + 1
        }
        // Columns count characters, not bytes: skip UTF-8 continuation bytes.
        let column = bytes[lineStart..<min(offset, bytes.count)].filter { $0 & 0xC0 != 0x80 }.count + 1
        return DocumentError.Location(line: line, column: column, offset: offset)
    }

    private func error(_ code: DocumentError.Code, _ message: String, at offset: Int? = nil) -> DocumentError {
        DocumentError(code, message, at: Self.location(of: offset ?? position, in: bytes))
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { position += 1 }
    }

    private func describeCurrent() -> String {
        guard let b = current else { return "end of document" }
        return b >= 0x21 && b < 0x7F ? "'\(Character(UnicodeScalar(b)))'" : "byte 0x\(String(b, radix: 16))"
    }

    private mutating func parseValue(depth: Int) throws(DocumentError) -> JSONValue {
        switch current {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "N") where nonFinite == .readAsNull: try expectLiteral("NaN"); return .null
        case UInt8(ascii: "I") where nonFinite == .readAsNull: try expectLiteral("Infinity"); return .null
        case UInt8(ascii: "-") where nonFinite == .readAsNull && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "I"):
            try expectLiteral("-Infinity"); return .null
        case let b? where b == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b):
            return .number(try parseNumber())
        default:
            throw error(.jsonSyntax, "expected a value, found \(describeCurrent())")
        }
    }

    private mutating func expectLiteral(_ word: String) throws(DocumentError) {
        let start = position
        for expected in word.utf8 {
            guard current == expected else { throw error(.jsonSyntax, "invalid literal, expected '\(word)'", at: start) }
            position += 1
        }
    }

    private mutating func enter(_ depth: Int) throws(DocumentError) {
        guard depth <= limits.maxDepth else {
            throw error(.tooDeep, "nesting deeper than \(limits.maxDepth) levels")
        }
        position += 1
        skipWhitespace()
    }

    private mutating func parseObject(depth: Int) throws(DocumentError) -> JSONValue {
        try enter(depth)
        var object = JSONObject()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(object)
        }
        while true {
            guard current == UInt8(ascii: "\"") else {
                throw error(.jsonSyntax, "expected a string key, found \(describeCurrent())")
            }
            let keyOffset = position
            let key = try parseString()
            guard !object.contains(key) else {
                throw error(.duplicateKey, "duplicate key '\(key)'", at: keyOffset)
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error(.jsonSyntax, "expected ':', found \(describeCurrent())") }
            position += 1
            skipWhitespace()
            object[key] = try parseValue(depth: depth)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                position += 1
                skipWhitespace()
            case UInt8(ascii: "}"):
                position += 1
                return .object(object)
            default:
                throw error(.jsonSyntax, "expected ',' or '}', found \(describeCurrent())")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(DocumentError) -> JSONValue {
        try enter(depth)
        var elements: [JSONValue] = []
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                position += 1
                skipWhitespace()
            case UInt8(ascii: "]"):
                position += 1
                return .array(elements)
            default:
                throw error(.jsonSyntax, "expected ',' or ']', found \(describeCurrent())")
            }
        }
    }

    private mutating func parseString() throws(DocumentError) -> String {
        let start = position
        position += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard let b = current else { throw error(.jsonString, "unterminated string", at: start) }
            switch b {
            case UInt8(ascii: "\""):
                position += 1
                // Input was validated as UTF-8 and escapes produce valid scalars.
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try parseEscape(into: &out)
            case 0..<0x20:
                throw error(.jsonString, "control character 0x\(String(b, radix: 16)) must be escaped in a string")
            default:
                out.append(b)
                position += 1
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(DocumentError) {
        let escapeStart = position - 1
        guard let e = current else { throw error(.jsonString, "unterminated escape", at: escapeStart) }
        position += 1
        let simple: UInt8? = switch e {
        case UInt8(ascii: "\""): 0x22
        case UInt8(ascii: "\\"): 0x5C
        case UInt8(ascii: "/"): 0x2F
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
        if let simple {
            out.append(simple)
            return
        }
        guard e == UInt8(ascii: "u") else { throw error(.jsonString, "invalid escape sequence", at: escapeStart) }
        var scalar = try parseHex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                throw error(.jsonString, "unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
            }
            position += 2
            let low = try parseHex4()
            guard (0xDC00..<0xE000).contains(low) else {
                throw error(.jsonString, "unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
            throw error(.jsonString, "unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
        }
        // Non-surrogate values below 0x110000 are always valid scalars.
        out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
    }

    private mutating func parseHex4() throws(DocumentError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let b = current, let digit = Self.hexValue(b) else {
                throw error(.jsonString, "\\u must be followed by four hex digits")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    private mutating func parseNumber() throws(DocumentError) -> JSONNumber {
        let start = position
        func isDigit(_ b: UInt8?) -> Bool { b.map { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false }
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
            if isDigit(current) { throw error(.jsonNumber, "leading zeros are not allowed", at: start) }
        } else if isDigit(current) {
            while isDigit(current) { position += 1 }
        } else {
            throw error(.jsonNumber, "a number needs digits", at: start)
        }
        var kind = JSONNumber.Kind.integer
        if current == UInt8(ascii: ".") {
            kind = .float
            position += 1
            guard isDigit(current) else { throw error(.jsonNumber, "a fraction needs digits after '.'", at: start) }
            while isDigit(current) { position += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            kind = .float
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard isDigit(current) else { throw error(.jsonNumber, "an exponent needs digits", at: start) }
            while isDigit(current) { position += 1 }
        }
        let literal = String(decoding: bytes[start..<position], as: UTF8.self)
        switch kind {
        case .integer:
            guard literal.utf8.count - (literal.hasPrefix("-") ? 1 : 0) <= Self.maxIntegerDigits else {
                throw error(.jsonNumber, "integer longer than \(Self.maxIntegerDigits) digits", at: start)
            }
        case .float:
            guard let d = Double(literal), d.isFinite else {
                throw error(.jsonNumber, "number \(literal.prefix(40)) is out of the range of a double", at: start)
            }
        }
        return JSONNumber(kind: kind, validatedLiteral: literal)
    }
}

/// UTF-8 well-formedness with the offset of the first bad byte (Swift's validating initialisers
/// say only that the input is bad, not where).
enum UTF8Check {
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    static func firstInvalidOffset(in bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F  // no surrogates
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F  // nothing above U+10FFFF
            default: return i
            }
            guard i + length <= n else { return i }
            guard (lower...upper).contains(bytes[i + 1]) else { return i }
            for k in 2..<max(2, length) where bytes[i + k] & 0xC0 != 0x80 { return i }
            i += length
        }
        return nil
    }
}
