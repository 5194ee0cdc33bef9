/// Writes rows for `COPY … FROM STDIN` in Postgres' text format and streams them to the server
/// in large chunks. Used only inside `PostgresConnection.copyIn`, on the connection's thread.
///
/// ```swift
/// for e in events {
///     w.append(e.executionID); w.append(e.sequence); w.append(e.payload)
///     try w.endRow()
/// }
/// ```
public struct CopyWriter: ~Copyable {
    private var buffer: [UInt8] = []
    private var fieldsInRow = 0
    private let send: (UnsafeRawBufferPointer) throws(DatabaseError) -> Void
    /// Bytes buffered before a `PQputCopyData`: big enough to amortise the call, small enough to
    /// keep memory flat for any number of rows.
    private static let chunkSize = 1 << 20

    init(send: @escaping (UnsafeRawBufferPointer) throws(DatabaseError) -> Void) {
        self.send = send
        buffer.reserveCapacity(Self.chunkSize + 64 * 1024)
    }

    /// Appends one field (`\N` for nil), escaping what the text format treats specially.
    public mutating func append<T: PostgresEncodable>(_ value: T?) {
        if fieldsInRow > 0 { buffer.append(UInt8(ascii: "\t")) }
        fieldsInRow += 1
        guard let value else {
            buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
            return
        }
        let start = buffer.count
        value.encode(into: &buffer)
        escape(from: start)
    }

    /// Appends a field whose type is only known at run time.
    public mutating func append(any value: (any PostgresEncodable)?) {
        guard let value else { return append(Optional<String>.none) }
        append(value)
    }

    /// Ends the row; sends the buffer once it is large enough.
    public mutating func endRow() throws(DatabaseError) {
        buffer.append(UInt8(ascii: "\n"))
        fieldsInRow = 0
        if buffer.count >= Self.chunkSize { try flush() }
    }

    mutating func flush() throws(DatabaseError) {
        guard !buffer.isEmpty else { return }
        // `withUnsafeBytes` only rethrows untyped errors, so the failure is carried out by hand.
        let failure: DatabaseError? = buffer.withUnsafeBytes { bytes in
            do throws(DatabaseError) { try send(bytes); return nil } catch { return error }
        }
        if let failure { throw failure }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Backslash, tab, newline and carriage return must be escaped; most values hold none, so the
    /// common case is one scan and no copy.
    private mutating func escape(from start: Int) {
        var needsEscape = false
        for i in start..<buffer.count {
            let b = buffer[i]
            if b == UInt8(ascii: "\\") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                needsEscape = true
                break
            }
        }
        guard needsEscape else { return }
        let raw = Array(buffer[start...])
        buffer.removeSubrange(start...)
        for b in raw {
            switch b {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\t"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case UInt8(ascii: "\n"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            default: buffer.append(b)
            }
        }
    }
}
