extension JSONValue {
    public enum Layout: Sendable, Hashable {
        case compact
        /// Indented by `indent` spaces, one member per line, as `json.dumps(indent=…)`.
        case pretty(indent: Int)
    }

    /// JSON text in key order, numbers exactly as they were written.
    public func serialized(_ layout: Layout = .compact) -> String {
        var out = ""
        write(into: &out, layout: layout, level: 0)
        return out
    }

    private func write(into out: inout String, layout: Layout, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.literal
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let elements):
            writeContainer(elements, open: "[", close: "]", into: &out, layout: layout, level: level) { e, out in
                e.write(into: &out, layout: layout, level: level + 1)
            }
        case .object(let object):
            let separator = layout == .compact ? ":" : ": "
            writeContainer(object.entries, open: "{", close: "}", into: &out, layout: layout, level: level) { e, out in
                Self.writeString(e.key, into: &out)
                out += separator
                e.value.write(into: &out, layout: layout, level: level + 1)
            }
        }
    }

    private func writeContainer<Element>(
        _ elements: [Element], open: String, close: String, into out: inout String, layout: Layout, level: Int,
        writeElement: (Element, inout String) -> Void
    ) {
        out += open
        guard !elements.isEmpty else {
            out += close
            return
        }
        for (i, element) in elements.enumerated() {
            if i > 0 { out += "," }
            if case .pretty(let indent) = layout {
                out += "\n" + String(repeating: " ", count: indent * (level + 1))
            }
            writeElement(element, &out)
        }
        if case .pretty(let indent) = layout {
            out += "\n" + String(repeating: " ", count: indent * level)
        }
        out += close
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
