import FaultlineProto
import FaultlineRPC
import NIOCore
import Testing

/// Bytes that are not a valid message must give INVALID_ARGUMENT, never a crash or a hang.
@Suite("Decoding hostile bytes")
struct HostileInputTests {
    typealias Kinds = TestingV1.FieldKinds

    func expectInvalid(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: RPCError.self, sourceLocation: sourceLocation) { try Kinds(serializedBytes: bytes) }
        #expect(error?.code == .invalidArgument, sourceLocation: sourceLocation)
    }

    @Test func everyTruncationOfAValidMessage() throws {
        let bytes = Array(buffer: try Samples.full.serializedBytes())
        var failures = 0
        for length in 0..<bytes.count {
            do throws(RPCError) {
                _ = try Kinds(serializedBytes: Array(bytes[..<length]))
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message == "cannot decode faultline.testing.v1.FieldKinds")
                failures += 1
            }
        }
        // Cuts between fields decode (to a prefix of the message); cuts inside one must not.
        #expect(failures > bytes.count / 2)
    }

    @Test func wrongWireType() {
        expectInvalid([0x70, 0x01])  // f_string (14) sent as a varint
        expectInvalid([0x1A, 0x01, 0x00])  // f_int32 (3) sent length-delimited
        expectInvalid([0x75, 0x01, 0x02])  // f_string as fixed32, and 2 of its 4 bytes missing
        expectInvalid([0x72 | 0x00, 0x05])  // f_string, length 5, no bytes
        expectInvalid([0x92, 0x01, 0x02, 0x08])  // point (18) claims 2 bytes, has 1
        expectInvalid([0x0B])  // wire type 3 (start group) with no end
        expectInvalid([0x0F])  // wire type 7 does not exist
    }

    @Test func hugeLengthPrefixes() {
        // f_bytes (15) with lengths of 2^32-1, 2^63 and an 11-byte varint.
        expectInvalid([0x7A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00])
        expectInvalid([0x7A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
        expectInvalid([0x7A] + Array(repeating: 0xFF, count: 10) + [0x01])
        // A packed repeated field whose length overruns the message.
        expectInvalid([0xA2, 0x01, 0xFF, 0xFF, 0x03, 0x01])
    }

    @Test func invalidUTF8InAString() {
        expectInvalid([0x72, 0x02, 0xC3, 0x28])  // f_string = C3 28
        expectInvalid([0xCA, 0x01, 0x01, 0xFF])  // r_string element = FF
        expectInvalid([0xC2, 0x02, 0x05, 0x0A, 0x01, 0xC0, 0x12, 0x00])  // m_string key = C0
    }

    @Test func stringsHoldingNULAreRefusedNotCutShort() throws {
        // protobuf-c keeps strings NUL-terminated: "a\0b" would silently read as "a".
        let cases: [[UInt8]] = [
            [0x72, 0x03, 0x61, 0x00, 0x62],  // f_string
            [0x72, 0x01, 0x00],  // f_string, only NUL
            [0xCA, 0x01, 0x01, 0x61, 0xCA, 0x01, 0x02, 0x62, 0x00],  // second r_string element
            [0x92, 0x01, 0x03, 0x1A, 0x01, 0x00],  // point.label
            [0xC2, 0x02, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x00],  // m_string value
            [0xC2, 0x02, 0x03, 0x0A, 0x01, 0x00],  // m_string key
            [0x92, 0x03, 0x02, 0x00, 0x61],  // oneof c_text
            [0xE2, 0x01, 0x03, 0x1A, 0x01, 0x00],  // r_point[0].label
        ]
        for bytes in cases {
            let error = #expect(throws: RPCError.self) { try Kinds(serializedBytes: bytes) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == "cannot decode faultline.testing.v1.FieldKinds: a string field contains a NUL character")
        }
        // The same shapes without NUL decode.
        #expect(try Kinds(serializedBytes: [0x72, 0x03, 0x61, 0x01, 0x62]).fString == "a\u{1}b")
        #expect(try Kinds(serializedBytes: [0xC2, 0x02, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76]).mString == ["k": "v"])
    }

    @Test func fieldNumberZeroAndOversizedTags() {
        expectInvalid([0x00, 0x01])  // field 0
        expectInvalid([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])  // tag varint past 32 bits
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Field 999 as varint, then f_int32 = 1: a newer peer's fields do not break us.
        let bytes: [UInt8] = [0xB8, 0x3E, 0x05, 0x18, 0x01]
        #expect(try Kinds(serializedBytes: bytes).fInt32 == 1)
    }

    @Test func seededGarbageNeverCrashes() {
        var rng = SplitMix64(seed: 0x5EED)
        var decoded = 0, rejected = 0
        for _ in 0..<5_000 {
            let count = Int(rng.next() % 64)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            do throws(RPCError) {
                let message = try Kinds(serializedBytes: bytes)
                _ = try message.serializedBytes()  // whatever decoded must encode again
                decoded += 1
            } catch {
                #expect(error.code == .invalidArgument)
                rejected += 1
            }
        }
        #expect(decoded + rejected == 5_000)
        #expect(rejected > 0)
    }

    @Test func mutatedValidMessagesNeverCrash() throws {
        let valid = Array(buffer: try Samples.full.serializedBytes())
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2_000 {
            var bytes = valid
            for _ in 0..<(1 + rng.next() % 4) {
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            do throws(RPCError) {
                _ = try Kinds(serializedBytes: bytes).serializedBytes()
            } catch {
                #expect(error.code == .invalidArgument)
            }
        }
    }
}

/// A small deterministic generator, so a failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
