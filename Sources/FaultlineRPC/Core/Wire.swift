import NIOCore

/// One header field as it goes on or comes off the wire (lower-case name).
typealias HeaderField = (name: String, value: String)

/// gRPC's wire encodings that are not HTTP/2 framing: timeouts, `grpc-message`, binary metadata.
enum Wire {
    // MARK: grpc-timeout

    /// Parses `grpc-timeout`: 1 to 8 digits and a unit. `nil` for anything else.
    static func parseTimeout(_ value: String) -> Duration? {
        let utf8 = Array(value.utf8)
        guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
        var amount: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(amount * 3600)
        case UInt8(ascii: "M"): return .seconds(amount * 60)
        case UInt8(ascii: "S"): return .seconds(amount)
        case UInt8(ascii: "m"): return .milliseconds(amount)
        case UInt8(ascii: "u"): return .microseconds(amount)
        case UInt8(ascii: "n"): return .nanoseconds(amount)
        default: return nil
        }
    }

    /// Encodes a timeout with the finest unit whose amount fits in 8 digits (rounding up, so the
    /// peer never sees a tighter deadline than ours).
    static func encodeTimeout(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return "1n" }
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = nanos.overflow ? Int64.max : nanos.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
        let limit: Int64 = 99_999_999
        for (divisor, unit) in [(Int64(1), "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"), (3_600_000_000_000, "H")] {
            let amount = total / divisor + (total % divisor == 0 ? 0 : 1)
            if amount <= limit { return "\(max(amount, 1))\(unit)" }
        }
        return "\(limit)H"
    }

    // MARK: grpc-message

    /// Percent-encodes bytes outside 0x20...0x7E and `%` itself.
    static func percentEncode(_ message: String) -> String {
        let utf8 = message.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: "%") }) { return message }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * 3)
        for byte in utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `grpc-message`. Never fails: a malformed escape is kept verbatim and invalid UTF-8
    /// becomes U+FFFD.
    static func percentDecode(_ value: String) -> String {
        let utf8 = Array(value.utf8)
        guard utf8.contains(UInt8(ascii: "%")) else { return value }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count,
               let hi = hexValue(utf8[i + 1]), let lo = hexValue(utf8[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: binary metadata (base64; padding optional on input)

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func base64Encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func base64Decode(_ string: String) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator: UInt32 = 0, bits = 0
        for byte in string.utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }

    // MARK: metadata <-> header fields

    /// Custom metadata from received headers: pseudo-headers, `grpc-*`, and transport headers
    /// (`te`, `content-type`, `user-agent`) excluded. Undecodable `-bin` values are dropped.
    static func metadata(from fields: [HeaderField]) -> Metadata {
        var metadata = Metadata()
        for field in fields {
            let name = field.name
            guard let first = name.utf8.first, first != UInt8(ascii: ":") else { continue }
            if name.hasPrefix("grpc-") || name == "te" || name == "content-type" || name == "user-agent" { continue }
            if name.hasSuffix("-bin") {
                if let bytes = base64Decode(field.value) { metadata.addBinary(bytes, forKey: name) }
            } else {
                metadata.addString(field.value, forKey: name)
            }
        }
        return metadata
    }

    /// Appends metadata as header fields, skipping reserved names and invalid values.
    static func append(_ metadata: Metadata, to fields: inout [HeaderField]) {
        for (key, value) in metadata {
            guard isValidMetadataKey(key), !key.hasPrefix("grpc-") else { continue }
            switch value {
            case .string(let string):
                guard !key.hasSuffix("-bin"), string.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { continue }
                fields.append((key, string))
            case .binary(let bytes):
                guard key.hasSuffix("-bin") else { continue }
                fields.append((key, base64Encode(bytes)))
            }
        }
    }

    private static func isValidMetadataKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        } && key != "te" && key != "content-type" && key != "user-agent"
    }

    // MARK: message framing

    /// Frames a message: flag 0 (uncompressed), 4-byte big-endian length, the encoded bytes.
    static func frame(_ message: any RPCMessage, maxSize: Int) throws(RPCError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(0))
        try message.serialize(into: &buffer)
        let length = buffer.readableBytes - 5
        guard length <= maxSize else {
            throw RPCError(.resourceExhausted, "message of \(length) bytes exceeds the limit of \(maxSize) bytes")
        }
        buffer.setInteger(UInt32(length), at: buffer.readerIndex + 1)
        return buffer
    }

    /// The HTTP status a peer answered with, mapped as gRPC's HTTP-to-status table says.
    static func code(forHTTPStatus status: Int) -> RPCError.Code {
        switch status {
        case 400: .internalError
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
    }
}

/// Reassembles length-prefixed gRPC messages from DATA chunks that split them anywhere.
struct MessageDeframer {
    let maxMessageSize: Int
    /// Messages may carry the compressed flag only when a `grpc-encoding` was negotiated; none is
    /// supported, so the flag is always an error.
    private var pending: ByteBuffer?
    private var expected: Int?  // length of the message being reassembled, once its prefix is read

    init(maxMessageSize: Int) { self.maxMessageSize = maxMessageSize }

    var hasPartialMessage: Bool { (pending?.readableBytes ?? 0) > 0 || expected != nil }

    /// Appends the messages completed by `chunk`. Throws the status the stream fails with.
    mutating func process(_ chunk: ByteBuffer, into messages: inout [ByteBuffer]) throws(RPCError) {
        var buffer: ByteBuffer
        if pending != nil {
            // Append in place: `pending` is the only reference, so this never copies what is buffered.
            var chunk = chunk
            pending!.writeBuffer(&chunk)
            buffer = pending!
            pending = nil
        } else {
            buffer = chunk
        }
        while true {
            if expected == nil {
                guard buffer.readableBytes >= 5 else { break }
                let flag = buffer.readInteger(as: UInt8.self)!
                let length = Int(buffer.readInteger(as: UInt32.self)!)
                guard flag == 0 else {
                    throw flag == 1
                        ? RPCError(.internalError, "a compressed message arrived but no grpc-encoding was negotiated")
                        : RPCError(.internalError, "invalid message flag \(flag)")
                }
                guard length <= maxMessageSize else {
                    throw RPCError(.resourceExhausted, "message of \(length) bytes exceeds the limit of \(maxMessageSize) bytes")
                }
                expected = length
            }
            guard let length = expected, buffer.readableBytes >= length else { break }
            messages.append(buffer.readSlice(length: length)!)
            expected = nil
        }
        guard buffer.readableBytes > 0 else { return }
        if buffer.readerIndex == 0 {
            pending = buffer
        } else {
            // Copy the unread tail once. Reserve for the announced message only up to a bound: a
            // hostile prefix must not make the server allocate its full limit per stream up front.
            var tail = ByteBufferAllocator().buffer(capacity: max(buffer.readableBytes, min(expected ?? 0, 256 * 1024)))
            tail.writeBuffer(&buffer)
            pending = tail
        }
    }
}
