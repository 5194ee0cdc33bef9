import NIOCore

/// One server-sent event (WHATWG HTML §9.2): the Gateway sends `event`, `data` and, for control
/// events, `id`.
struct ServerSentEvent: Sendable, Equatable {
    var event: String = "message"
    var data: String = ""
    var id: String?
}

/// A value-type parser for `text/event-stream`: feed it bytes as they arrive, take the events
/// that completed. Lines end in LF, CRLF or CR (a CRLF split across two chunks counts once);
/// comments and unknown fields are ignored; a line longer than `maximumLineBytes` is a
/// protocol violation rather than unbounded memory.
struct ServerSentEventParser {
    static let maximumLineBytes = 4 << 20

    private var line: [UInt8] = []
    private var afterCR = false
    private var pending = ServerSentEvent()
    private var dataLines: [String] = []
    private var hasData = false
    /// The last `id` seen, kept across events as the spec says (it is what `Last-Event-ID` sends).
    private(set) var lastEventID: String?

    mutating func feed(_ buffer: ByteBuffer) throws(ClientError) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in buffer.readableBytesView {
            if afterCR {
                afterCR = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                afterCR = byte == UInt8(ascii: "\r")
                if let event = endLine() { events.append(event) }
            default:
                guard line.count < Self.maximumLineBytes else {
                    throw ClientError(.protocolViolation, "an event-stream line exceeds \(Self.maximumLineBytes) bytes")
                }
                line.append(byte)
            }
        }
        return events
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {  // blank line: dispatch
            defer { pending = ServerSentEvent(); dataLines = []; hasData = false }
            guard hasData else { return nil }
            pending.data = dataLines.joined(separator: "\n")
            pending.id = lastEventID
            return pending
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = String(decoding: line[..<colon], as: UTF8.self)
        var valueStart = colon == line.endIndex ? colon : line.index(after: colon)
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = String(decoding: line[valueStart...], as: UTF8.self)
        switch field {
        case "event": pending.event = value.isEmpty ? "message" : value
        case "data": dataLines.append(value); hasData = true
        case "id" where !value.contains("\0"): lastEventID = value
        default: break
        }
        return nil
    }
}
