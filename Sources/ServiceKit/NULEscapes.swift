/// The `\u0000` escapes (U+0000, NUL) in JSON text. Postgres' jsonb cannot store U+0000
/// (SQLSTATE 22P05), so ExperimentService refuses JSON holding one and the runner replaces them
/// before it sends a journal or an event. One scanner for both, so they agree on what an escape
/// is: `\\u0000` is an escaped backslash followed by the text `u0000`, and stays.
///
/// Assumes JSON text: raw control bytes and malformed escapes are the JSON parser's to report.
public struct NULEscapes: Sequence, IteratorProtocol {
    private var bytes: String.UTF8View.Iterator
    private var offset = 0

    public init(in text: String) {
        bytes = text.utf8.makeIterator()
    }

    /// The UTF-8 offset of the next escape's backslash; an escape is 6 bytes.
    public mutating func next() -> Int? {
        while let byte = read() {
            guard byte == UInt8(ascii: "\\") else { continue }
            let start = offset - 1
            guard read() == UInt8(ascii: "u") else { continue }  // skips the escaped byte
            var zeros = 0
            while zeros < 4, read() == UInt8(ascii: "0") { zeros += 1 }
            if zeros == 4 { return start }
        }
        return nil
    }

    private mutating func read() -> UInt8? {
        guard let byte = bytes.next() else { return nil }
        offset += 1
        return byte
    }

    /// Whether `text` holds the escape `\u0000`.
    public static func occur(in text: String) -> Bool {
        var escapes = NULEscapes(in: text)
        return escapes.next() != nil
    }

    /// `text` with each `\u0000` escape replaced by `\ufffd` (U+FFFD REPLACEMENT CHARACTER, the
    /// same 6 bytes long), and how many were replaced; everything else stays byte for byte.
    public static func replaced(in text: String) -> (text: String, count: Int) {
        let starts = Array(NULEscapes(in: text))
        guard !starts.isEmpty else { return (text, 0) }
        var bytes = Array(text.utf8)
        for start in starts {
            bytes.replaceSubrange(start + 2..<start + 6, with: "fffd".utf8)
        }
        return (String(decoding: bytes, as: UTF8.self), starts.count)
    }
}
