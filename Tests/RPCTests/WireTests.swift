@testable import FaultlineRPC
import NIOCore
import Testing

@Suite("gRPC wire encodings")
struct WireTests {
    @Test func timeouts() {
        #expect(Wire.parseTimeout("1S") == .seconds(1))
        #expect(Wire.parseTimeout("250m") == .milliseconds(250))
        #expect(Wire.parseTimeout("99999999H") == .seconds(Int64(99_999_999) * 3600))
        #expect(Wire.parseTimeout("7u") == .microseconds(7))
        #expect(Wire.parseTimeout("3n") == .nanoseconds(3))
        #expect(Wire.parseTimeout("2M") == .seconds(120))
        for bad in ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", " 1S", "1SS", "１S"] {
            #expect(Wire.parseTimeout(bad) == nil, "\(bad)")
        }
        for duration: Duration in [.nanoseconds(1), .milliseconds(1500), .seconds(59), .seconds(100_000_000), .seconds(Int64(1) << 40)] {
            let encoded = Wire.encodeTimeout(duration)
            let parsed = Wire.parseTimeout(encoded)
            #expect(parsed != nil, "\(encoded)")
            if let parsed, duration < .seconds(Int64(99_999_999) * 3600) { #expect(parsed >= duration, "\(encoded)") }
        }
        #expect(Wire.encodeTimeout(.zero - .seconds(1)) == "1n")
    }

    @Test func grpcMessagePercentEncoding() {
        for message in ["plain", "100%", "Grüße 日本語 🚀", "line\nbreak\ttab", "%41 stays", ""] {
            let encoded = Wire.percentEncode(message)
            #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
            #expect(Wire.percentDecode(encoded) == message)
        }
        #expect(Wire.percentEncode("a%b") == "a%25b")
        // Decoding never fails: bad escapes stay as they are, invalid UTF-8 is replaced.
        #expect(Wire.percentDecode("50%") == "50%")
        #expect(Wire.percentDecode("%zz%4") == "%zz%4")
        #expect(Wire.percentDecode("%FF") == "\u{FFFD}")
    }

    @Test func binaryMetadata() {
        for bytes: [UInt8] in [[], [0], [0, 1], [0, 1, 2], Array(0...255)] {
            let encoded = Wire.base64Encode(bytes)
            #expect(Wire.base64Decode(encoded) == bytes)
            #expect(Wire.base64Decode(String(encoded.filter { $0 != "=" })) == bytes)
        }
        #expect(Wire.base64Decode("not base64!") == nil)
    }

    @Test func deframerReassemblesAcrossChunks() throws {
        var bytes: [UInt8] = []
        let payloads: [[UInt8]] = [[], Array("hello".utf8), [UInt8](repeating: 9, count: 70_000), [1]]
        for payload in payloads { bytes += grpcFrame(payload) }
        for chunkSize in [1, 2, 5, 7, 4096, 16_384, bytes.count] {
            var deframer = MessageDeframer(maxMessageSize: 100_000)
            var messages: [ByteBuffer] = []
            var index = 0
            while index < bytes.count {
                let end = min(index + chunkSize, bytes.count)
                try deframer.process(ByteBuffer(bytes: bytes[index..<end]), into: &messages)
                index = end
            }
            #expect(messages.map { Array($0.readableBytesView) } == payloads, "chunk size \(chunkSize)")
            #expect(!deframer.hasPartialMessage)
        }
    }

    @Test func deframerRejects() {
        var deframer = MessageDeframer(maxMessageSize: 10)
        var messages: [ByteBuffer] = []
        #expect(throws: RPCError.self) { try deframer.process(ByteBuffer(bytes: grpcFrame([UInt8](repeating: 0, count: 11))), into: &messages) }
        var compressed = MessageDeframer(maxMessageSize: 10)
        #expect(throws: RPCError.self) { try compressed.process(ByteBuffer(bytes: grpcFrame([1], flag: 1)), into: &messages) }
        var partial = MessageDeframer(maxMessageSize: 10)
        try? partial.process(ByteBuffer(bytes: [0, 0, 0]), into: &messages)
        #expect(partial.hasPartialMessage)
    }

    @Test func metadataFromHeaders() {
        let fields: [HeaderField] = [
            (":path", "/a/b"), ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "1S"),
            ("x-one", "1"), ("x-two-bin", Wire.base64Encode([1, 2])), ("x-bad-bin", "%%%"), ("x-one", "again"),
        ]
        let metadata = Wire.metadata(from: fields)
        #expect(metadata["x-one"] == [.string("1"), .string("again")])
        #expect(metadata["x-two-bin"] == [.binary([1, 2])])
        #expect(metadata["x-bad-bin"].isEmpty)
        #expect(metadata.count == 3)
        var out: [HeaderField] = []
        var outgoing: Metadata = ["x-ok": "fine", "grpc-status": "0", "Bad Key": "x", "x-ctl": "a\nb"]
        outgoing.addBinary([255], forKey: "x-raw-bin")
        Wire.append(outgoing, to: &out)
        #expect(out.map(\.name) == ["x-ok", "x-raw-bin"])
    }
}
