import Foundation
import Yams

/// YAML <-> JSONValue, reading YAML exactly as Chaos Toolkit does (PyYAML `safe_load`, YAML 1.1
/// implicit types: `yes`/`on` are booleans, `012` is octal, `1e5` is a string, `1:30` is 90), so
/// the JSON kept by Faultline is what `chaos run` would have seen. Anything `safe_load` would turn
/// into a non-JSON value (timestamps, binary, sets, NaN/infinity, non-string keys) is refused with
/// the line and column, rather than silently changed.
enum YAMLConverter {
    /// PyYAML's implicit resolvers, in PyYAML's order (float is tried before int).
    /// `nonisolated(unsafe)`: Yams' `Resolver` predates Sendable, but it is an immutable list of
    /// compiled patterns, built once here and only read afterwards.
    nonisolated(unsafe) static let resolver: Resolver = {
        let rules: [(Tag.Name, String)] = [
            (.bool, "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
            (.float, #"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"#),
            (.int, "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"),
            (.merge, "^(?:<<)$"),
            (.null, "^(?:~|null|Null|NULL|)$"),
            (.timestamp, #"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"#),
            (.value, "^(?:=)$"),
        ]
        var resolver = Resolver.basic
        for (tag, pattern) in rules {
            // The patterns are constants checked by the tests; a typo must fail loudly at first use.
            resolver = try! resolver.appending(tag, pattern)
        }
        return resolver
    }()

    /// Yams composes recursively (one stack frame per nesting level, before our depth limit can
    /// act) and frees nested nodes recursively too, so a hostile `[[[[…` must not run on a small
    /// cooperative-pool stack. Both happen on a thread with this much (lazily committed) stack.
    static let composeStackSize = 512 << 20

    static func parse(_ bytes: [UInt8], limits: DocumentLimits) throws(DocumentError) -> JSONValue {
        guard bytes.count <= limits.maxBytes else {
            throw DocumentError(.tooLarge, "document is \(bytes.count) bytes; the limit is \(limits.maxBytes)")
        }
        if let bad = UTF8Check.firstInvalidOffset(in: bytes) {
            throw DocumentError(.invalidUTF8, "invalid UTF-8", at: JSONParser.location(of: bad, in: bytes))
        }
        var body = bytes[...]
        if body.starts(with: UTF8Check.byteOrderMark) { body = body.dropFirst(3) }
        if let offset = flowNestingExceeds(body, limit: limits.maxDepth) {
            throw DocumentError(.tooDeep, "nesting deeper than \(limits.maxDepth) levels",
                                at: JSONParser.location(of: offset, in: bytes))
        }
        if let offset = tabOutsideScalars(body) {
            throw DocumentError(.yamlSyntax,
                                "a tab outside quotes or block scalars: Chaos Toolkit's YAML reader (PyYAML) refuses it; use spaces",
                                at: JSONParser.location(of: offset, in: bytes))
        }
        let text = String(decoding: body, as: UTF8.self)
        let result = onLargeStack { () -> Result<JSONValue, DocumentError> in
            Result { () throws(DocumentError) -> JSONValue in
                let node: Node?
                do {
                    node = try Yams.compose(yaml: text, resolver, .default, .utf8)
                } catch let error as YamlError {
                    throw translate(error)
                } catch {
                    throw DocumentError(.yamlSyntax, "\(error)")
                }
                guard let node else { throw DocumentError(.empty, "the document is empty") }
                var budget = limits.maxExpandedBytes
                return try convert(node, depth: 0, limits: limits, budget: &budget)
            }
        }
        return try result.get()
    }

    /// libyaml checks every open flow level on every token, so `[[[[…` costs quadratic time
    /// before any node exists: count unclosed `[`/`{` outside quotes, comments and block-level
    /// plain scalars first. Flow depth never exceeds the real depth, so this refuses no document
    /// within the limit (short of block-scalar lines starting with dozens of unmatched brackets).
    static func flowNestingExceeds(_ bytes: ArraySlice<UInt8>, limit: Int) -> Int? {
        enum State { case structure, single, double, comment }
        var state = State.structure
        var depth = 0
        var inPlainScalar = false  // block context only: `a: x[0` holds no flow collection
        var previous: UInt8 = 0x0A
        var escaped = false
        func isBlank(_ b: UInt8?) -> Bool { b == nil || b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        for i in bytes.indices {
            let b = bytes[i]
            let next: UInt8? = i + 1 < bytes.endIndex ? bytes[i + 1] : nil
            defer { previous = b }
            if b == 0x0A { inPlainScalar = false }
            switch state {
            case .comment:
                if b == 0x0A { state = .structure }
            case .double:
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == 0x22 { state = .structure }
            case .single:
                // A doubled '' is an escaped quote: leaving and re-entering gives the same result.
                if b == 0x27 { state = .structure }
            case .structure:
                let startsScalar = isBlank(previous) || "[{,:-?".utf8.contains(previous)
                switch b {
                case UInt8(ascii: "#") where isBlank(previous):
                    state = .comment
                    inPlainScalar = false
                case UInt8(ascii: ":") where isBlank(next), UInt8(ascii: "-") where isBlank(next) && !inPlainScalar,
                    UInt8(ascii: "?") where isBlank(next) && !inPlainScalar:
                    inPlainScalar = false  // an indicator: a new node follows
                case _ where inPlainScalar:
                    break
                case 0x22 where startsScalar: state = .double
                case 0x27 where startsScalar: state = .single
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > limit { return i }  // slice indices are offsets into the whole input
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth = max(0, depth - 1)
                case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "&"), UInt8(ascii: "!"), UInt8(ascii: "*"):
                    break  // blanks, separators, and node properties that precede a node
                default:
                    // Anchors, tags and aliases run to the next blank and precede a node; anything
                    // else starts a plain scalar, which in block context may hold brackets.
                    if depth == 0, isBlank(previous) || previous == UInt8(ascii: ":") { inPlainScalar = true }
                }
            }
        }
        return nil
    }

    /// PyYAML never skips a tab between tokens and ends plain scalars at one, so it refuses any
    /// tab outside quoted scalars, comments and block scalar content; libyaml accepts many of
    /// them. Refuse them here too, or an experiment would import and then fail to load in chaos.
    static func tabOutsideScalars(_ bytes: ArraySlice<UInt8>) -> Int? {
        var quote: UInt8? = nil  // the open quote, kept across lines
        var escaped = false
        var blockScalarIndent: Int? = nil
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.endIndex
            let line = bytes[lineStart..<lineEnd]
            defer { lineStart = lineEnd + 1 }
            let indent = line.prefix { $0 == 0x20 }.count
            let blank = line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if let parent = blockScalarIndent, quote == nil {
                if blank || indent > parent { continue }
                blockScalarIndent = nil
            }
            var previous: UInt8 = 0x20
            var contentEnd = lineEnd  // end of the line before any comment
            for i in line.indices {
                let b = bytes[i]
                defer { previous = b }
                if let q = quote {
                    if escaped { escaped = false } else if q == 0x22, b == UInt8(ascii: "\\") { escaped = true } else if b == q { quote = nil }
                    continue
                }
                let afterBlank = previous == 0x20 || previous == 0x09
                if b == UInt8(ascii: "#"), afterBlank || i == line.startIndex {
                    contentEnd = i
                    break
                }
                if b == 0x09 { return i }
                if (b == 0x22 || b == 0x27), afterBlank || "[{,:-?".utf8.contains(previous) { quote = b }
            }
            if quote == nil, isBlockScalarHeader(bytes[lineStart..<contentEnd]) { blockScalarIndent = indent }
        }
        return nil
    }

    /// `key: |`, `- >-`, `|2` … at the end of a line: the lines after it are block scalar text.
    private static func isBlockScalarHeader(_ content: ArraySlice<UInt8>) -> Bool {
        var text = content
        while let last = text.last, last == 0x20 || last == 0x0D { text = text.dropLast() }
        let modifiers = text.reversed().prefix { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) }
        text = text.dropLast(modifiers.count)
        guard let indicator = text.last, indicator == UInt8(ascii: "|") || indicator == UInt8(ascii: ">") else { return false }
        var before = text.dropLast()
        guard before.isEmpty || before.last == 0x20 else { return false }
        while let last = before.last, last == 0x20 { before = before.dropLast() }
        guard let lead = before.last else { return true }
        return lead == UInt8(ascii: ":") || lead == UInt8(ascii: "-") || lead == UInt8(ascii: "?")
    }

    private static func onLargeStack<T: Sendable>(_ work: @escaping @Sendable () -> T) -> T {
        let done = ResultBox<T>()
        let thread = Thread {
            done.set(work())
        }
        thread.stackSize = composeStackSize
        thread.start()
        return done.wait()
    }

    private static func translate(_ error: YamlError) -> DocumentError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return DocumentError(.yamlSyntax, problem, at: location(mark))
        case .composer(let context, let problem, let mark, _):
            if context?.text == "expected a single document in the stream" {
                return DocumentError(.yamlMultipleDocuments, "only one YAML document is allowed", at: location(mark))
            }
            return DocumentError(.yamlSyntax, problem, at: location(mark))
        default:
            return DocumentError(.yamlSyntax, "\(error)")
        }
    }

    private static func location(_ mark: Mark?) -> DocumentError.Location? {
        mark.map { DocumentError.Location(line: $0.line, column: $0.column, offset: nil) }
    }

    private static func notJSON(_ message: String, _ node: Node) -> DocumentError {
        DocumentError(.yamlNotJSON, message, at: location(node.mark))
    }

    private static func spend(_ cost: Int, _ budget: inout Int, _ node: Node) throws(DocumentError) {
        budget -= cost
        guard budget >= 0 else {
            throw DocumentError(.tooLarge, "the document expands (through aliases) beyond the limit", at: location(node.mark))
        }
    }

    private static func convert(_ node: Node, depth: Int, limits: DocumentLimits, budget: inout Int) throws(DocumentError) -> JSONValue {
        let tag = node.tag.description
        if let scalar = node.scalar {
            try spend(scalar.string.utf8.count + 2, &budget, node)
            return try convertScalar(scalar.string, tag: tag, node: node)
        }
        guard depth < limits.maxDepth else {
            throw DocumentError(.tooDeep, "nesting deeper than \(limits.maxDepth) levels", at: location(node.mark))
        }
        try spend(2, &budget, node)
        if let sequence = node.sequence {
            guard tag == Tag.Name.seq.rawValue else { throw notJSON("a \(shortTag(tag)) sequence has no JSON form", node) }
            var elements: [JSONValue] = []
            elements.reserveCapacity(sequence.count)
            for element in sequence {
                elements.append(try convert(element, depth: depth + 1, limits: limits, budget: &budget))
            }
            return .array(elements)
        }
        if let mapping = node.mapping {
            guard tag == Tag.Name.map.rawValue else { throw notJSON("a \(shortTag(tag)) mapping has no JSON form", node) }
            return .object(try convertMapping(mapping, node: node, depth: depth, limits: limits, budget: &budget))
        }
        throw notJSON("unsupported YAML node", node)
    }

    private static func convertMapping(
        _ mapping: Node.Mapping, node: Node, depth: Int, limits: DocumentLimits, budget: inout Int
    ) throws(DocumentError) -> JSONObject {
        // `<<` merge keys, as PyYAML's flatten_mapping: merged pairs first, earlier sources win
        // among merged ones, and explicit keys override merged ones.
        var merged: [(key: String, value: JSONValue)] = []
        var explicit = JSONObject()
        for (keyNode, valueNode) in mapping {
            if let key = keyNode.scalar, keyNode.tag.description == Tag.Name.merge.rawValue, key.string == "<<" {
                let sources: [Node]
                if valueNode.mapping != nil {
                    sources = [valueNode]
                } else if let list = valueNode.sequence, list.allSatisfy({ $0.mapping != nil }) {
                    sources = Array(list)
                } else {
                    throw notJSON("a merge key '<<' needs a mapping or a list of mappings", valueNode)
                }
                for source in sources.reversed() {
                    let object = try convert(source, depth: depth, limits: limits, budget: &budget).objectValue ?? JSONObject()
                    merged.append(contentsOf: object.entries)
                }
                continue
            }
            guard let key = keyNode.scalar else {
                throw notJSON("a mapping key must be a string, not a collection", keyNode)
            }
            let keyTag = keyNode.tag.description
            guard keyTag == Tag.Name.str.rawValue else {
                throw notJSON(
                    "key '\(key.string.prefix(40))' is read as \(shortTag(keyTag)) by YAML 1.1; quote it to make it a string key",
                    keyNode)
            }
            guard !explicit.contains(key.string) else {
                throw DocumentError(.duplicateKey, "duplicate key '\(key.string.prefix(80))'", at: location(keyNode.mark))
            }
            try spend(key.string.utf8.count + 3, &budget, keyNode)
            explicit[key.string] = try convert(valueNode, depth: depth + 1, limits: limits, budget: &budget)
        }
        guard !merged.isEmpty else { return explicit }
        var result = JSONObject()
        for (key, value) in merged + explicit.entries {
            result[key] = value  // keeps the first position, takes the last value, as a Python dict
        }
        return result
    }

    private static func shortTag(_ tag: String) -> String {
        tag.hasPrefix("tag:yaml.org,2002:") ? "!!" + tag.dropFirst("tag:yaml.org,2002:".count) : tag
    }

    private static func convertScalar(_ text: String, tag: String, node: Node) throws(DocumentError) -> JSONValue {
        switch tag {
        case Tag.Name.str.rawValue:
            return .string(text)
        case Tag.Name.null.rawValue:
            return .null
        case Tag.Name.bool.rawValue:
            switch text.lowercased() {
            case "yes", "true", "on": return .bool(true)
            case "no", "false", "off": return .bool(false)
            default: throw notJSON("'\(text.prefix(40))' is not a boolean", node)
            }
        case Tag.Name.int.rawValue:
            guard let literal = integerLiteral(text) else {
                throw notJSON("'\(text.prefix(40))' is not an integer that fits in 64 bits", node)
            }
            return .number(JSONNumber(kind: .integer, validatedLiteral: literal))
        case Tag.Name.float.rawValue:
            guard let value = floatValue(text) else { throw notJSON("'\(text.prefix(40))' is not a float", node) }
            guard let number = JSONNumber(value) else {
                throw notJSON("'\(text.prefix(40))' (NaN or infinity) has no JSON form", node)
            }
            return .number(number)
        case Tag.Name.timestamp.rawValue:
            throw notJSON("'\(text.prefix(40))' is a YAML timestamp, which has no JSON form; quote it to keep a string", node)
        default:
            throw notJSON("a \(shortTag(tag)) value has no JSON form", node)
        }
    }

    /// PyYAML's construct_yaml_int, as decimal text (arbitrary length for plain decimals).
    static func integerLiteral(_ text: String) -> String? {
        var digits = text.replacingOccurrences(of: "_", with: "")
        var negative = false
        if let first = digits.first, first == "-" || first == "+" {
            negative = first == "-"
            digits.removeFirst()
        }
        guard !digits.isEmpty else { return nil }
        let magnitude: String
        if digits == "0" {
            return "0"
        } else if digits.hasPrefix("0b") {
            guard let v = UInt64(digits.dropFirst(2), radix: 2) else { return nil }
            magnitude = String(v)
        } else if digits.hasPrefix("0x") {
            guard let v = UInt64(digits.dropFirst(2), radix: 16) else { return nil }
            magnitude = String(v)
        } else if digits.hasPrefix("0") {
            guard let v = UInt64(digits.dropFirst(1), radix: 8) else { return nil }
            magnitude = String(v)
        } else if digits.contains(":") {
            var v: UInt64 = 0
            for part in digits.split(separator: ":") {
                guard let p = UInt64(part) else { return nil }
                let (m, o1) = v.multipliedReportingOverflow(by: 60)
                let (s, o2) = m.addingReportingOverflow(p)
                guard !o1, !o2 else { return nil }
                v = s
            }
            magnitude = String(v)
        } else {
            guard digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                digits.utf8.count <= JSONParser.maxIntegerDigits
            else { return nil }
            magnitude = digits
        }
        return negative && magnitude != "0" ? "-" + magnitude : magnitude
    }

    /// PyYAML's construct_yaml_float.
    static func floatValue(_ text: String) -> Double? {
        var value = text.replacingOccurrences(of: "_", with: "").lowercased()
        var sign = 1.0
        if let first = value.first, first == "-" || first == "+" {
            if first == "-" { sign = -1 }
            value.removeFirst()
        }
        if value == ".inf" { return sign * .infinity }
        if value == ".nan" { return .nan }
        if value.contains(":") {
            var result = 0.0
            for part in value.split(separator: ":") {
                guard let p = Double(part) else { return nil }
                result = result * 60 + p
            }
            return sign * result
        }
        // Swift's parser wants digits on both sides of the point.
        if value.hasPrefix(".") { value = "0" + value }
        value = value.replacingOccurrences(of: ".e", with: ".0e")
        if value.hasSuffix(".") { value += "0" }
        return Double(value).map { sign * $0 }
    }

    // MARK: - Rendering

    /// YAML text that PyYAML (and this parser) read back as the same JSONValue: strings that
    /// YAML 1.1 would read as something else are quoted, floats always carry a point.
    static func render(_ value: JSONValue) -> String {
        let node = yamlNode(value)
        do {
            return try Yams.serialize(node: node, width: -1, allowUnicode: true)
        } catch {
            // The emitter only fails on invalid event sequences, which yamlNode never builds.
            preconditionFailure("YAML emitter rejected a well-formed node: \(error)")
        }
    }

    private static func plainTag(_ text: String) -> String {
        Node.scalar(.init(text, Tag(.implicit, resolver, .default), .plain)).tag.description
    }

    private static func scalar(_ text: String, _ tag: Tag.Name, quoted: Bool = false) -> Node {
        .scalar(.init(text, Tag(tag, resolver, .default), quoted ? .doubleQuoted : .plain))
    }

    private static func stringNode(_ s: String) -> Node {
        // PyYAML refuses tabs in plain scalars, so never leave a tab to the emitter's choice.
        scalar(s, .str, quoted: s.contains("\t") || plainTag(s) != Tag.Name.str.rawValue)
    }

    private static func yamlNode(_ value: JSONValue) -> Node {
        switch value {
        case .null: return scalar("null", .null)
        case .bool(let b): return scalar(b ? "true" : "false", .bool)
        case .string(let s): return stringNode(s)
        case .number(let n) where n.kind == .integer: return scalar(n.literal, .int)
        case .number(let n): return scalar(yamlFloatText(n), .float)
        case .array(let elements):
            return .sequence(.init(elements.map(yamlNode), Tag(.seq, resolver, .default), .block))
        case .object(let object):
            let pairs = object.entries.map { (stringNode($0.key), yamlNode($0.value)) }
            return .mapping(.init(pairs, Tag(.map, resolver, .default), .block))
        }
    }

    /// YAML 1.1 floats need a point and a signed exponent (`1e5` would be read as a string).
    static func yamlFloatText(_ n: JSONNumber) -> String {
        if plainTag(n.literal) == Tag.Name.float.rawValue { return n.literal }
        var text = "\(n.doubleValue)"
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            var mantissa = String(text[..<e])
            var exponent = String(text[text.index(after: e)...])
            if !mantissa.contains(".") { mantissa += ".0" }
            if !exponent.hasPrefix("-") && !exponent.hasPrefix("+") { exponent = "+" + exponent }
            text = mantissa + "e" + exponent
        } else if !text.contains(".") {
            text += ".0"
        }
        return text
    }
}

/// One value handed from the parsing thread to the caller.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is written once by the worker before `signal` and read only after `wait`.
    private var value: T?
    private let ready = DispatchSemaphore(value: 0)

    func set(_ v: T) {
        value = v
        ready.signal()
    }

    func wait() -> T {
        ready.wait()
        return value!
    }
}
