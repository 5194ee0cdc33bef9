import CProtobufC
import FaultlineProto
import FaultlineRPC
import NIOCore
import Testing

@Suite("Generated messages round-trip through libprotobuf-c")
struct RoundTripTests {
    typealias Kinds = TestingV1.FieldKinds
    typealias Point = TestingV1.FieldKinds.Point

    func roundTrip<M: ProtoMessage>(_ message: M) throws -> M {
        try M(serializedBytes: try message.serializedBytes())
    }

    @Test("every sample decodes to what was encoded", arguments: Samples.all.map(\.name))
    func samples(name: String) throws {
        let message = Samples.all.first { $0.name == name }!.message
        #expect(try roundTrip(message) == message)
    }

    @Test func defaultMessageIsEmptyOnTheWire() throws {
        #expect(try Kinds().serializedBytes().readableBytes == 0)
        #expect(try Kinds(serializedBytes: ByteBuffer()) == Kinds())
        // A message whose fields are all at their defaults is empty too (proto3 has no presence).
        var m = Kinds()
        m.fString = ""
        m.point = nil
        #expect(try m.serializedBytes().readableBytes == 0)
    }

    @Test func serializeAppendsToTheBuffer() throws {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        let message = TestingV1.EchoRequest(payload: [9], text: "t")
        try message.serialize(into: &buffer)
        #expect(buffer.readBytes(length: 3) == [1, 2, 3])
        #expect(try TestingV1.EchoRequest(serializedBytes: buffer) == message)
    }

    @Test func presenceOfNestedMessages() throws {
        var m = Kinds()
        m.point = Point()  // set but empty: still present
        let decoded = try roundTrip(m)
        #expect(decoded.point == Point())
        #expect(try roundTrip(Kinds()).point == nil)
    }

    @Test("each oneof case survives, including zero values", arguments: [
        Kinds.Choice.cText(""), .cText("ß"), .cNumber(0), .cNumber(-9), .cPoint(Point()),
        .cBlob([]), .cBlob([0, 0]), .cColour(.unspecified), .cColour(.unrecognized(-3)), .cFlag(false), .cFlag(true),
    ])
    func oneofCases(choice: Kinds.Choice) throws {
        var m = Kinds()
        m.choice = choice
        m.other = .oPoint(Point(x: 1, y: 0, label: ""))
        let decoded = try roundTrip(m)
        #expect(decoded.choice == choice)
        #expect(decoded.other == m.other)
    }

    @Test func lastOneofMemberOnTheWireWins() throws {
        // c_text = "a" (field 50), then c_number = 5 (field 51): the later member replaces the first.
        let bytes: [UInt8] = [0x92, 0x03, 0x01, 0x61, 0x98, 0x03, 0x05]
        #expect(try Kinds(serializedBytes: bytes).choice == .cNumber(5))
    }

    @Test func unrecognizedEnumValuesSurvive() throws {
        var m = Kinds()
        m.colour = .unrecognized(4242)
        m.shape = .unrecognized(-1)
        m.rColour = [.unrecognized(Int32.max), .unrecognized(Int32.min)]
        m.mColour = [1: .unrecognized(77)]
        let decoded = try roundTrip(m)
        #expect(decoded.colour == .unrecognized(4242))
        #expect(decoded.shape.rawValue == -1)
        #expect(decoded.rColour.map(\.rawValue) == [Int32.max, Int32.min])
        #expect(decoded.mColour[1]?.rawValue == 77)
        // Named and numeric spellings of one value are the same value.
        #expect(TestingV1.Colour.unrecognized(1) == .red)
        #expect(TestingV1.Colour(rawValue: 300) == .ultraviolet)
        #expect(TestingV1.Colour.knownCases.map(\.rawValue) == [0, 1, 2, 300])
    }

    @Test func largeBytesField() throws {
        let decoded = try roundTrip(Samples.big)
        #expect(decoded.fBytes.count == 3 << 20)
        #expect(decoded.fBytes == Samples.threeMiB)
        #expect(decoded.rBytes == [Samples.threeMiB])
    }

    @Test func stringsWithNULAreRefusedNotTruncated() throws {
        var m = Kinds()
        m.fString = "a\u{0}b"
        let error = #expect(throws: RPCError.self) { try m.serializedBytes() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("faultline.testing.v1.FieldKinds.f_string") == true)

        // Also deep inside repeated, map and oneof values, after other parts were allocated.
        var deep = Samples.full
        deep.mString["zz"] = "\u{0}"
        #expect(throws: RPCError.self) { try deep.serializedBytes() }
        deep = Samples.full
        deep.rPoint.append(Point(x: 1, y: 1, label: "x\u{0}"))
        #expect(throws: RPCError.self) { try deep.serializedBytes() }
        deep = Samples.full
        deep.choice = .cText("\u{0}")
        #expect(throws: RPCError.self) { try deep.serializedBytes() }
    }

    @Test func descriptorsAreTheGeneratedOnes() {
        let descriptor = Kinds.descriptor
        #expect(descriptor == Kinds.descriptor)  // a stable address, not a copy
        #expect(String(cString: descriptor.pointee.name) == "faultline.testing.v1.FieldKinds")
        #expect(Kinds.protoName == "faultline.testing.v1.FieldKinds")
        #expect(descriptor.pointee.n_fields == 43)
        #expect(String(cString: Point.descriptor.pointee.name) == "faultline.testing.v1.FieldKinds.Point")
    }

    @Test func cLevelEntryPointsRoundTrip() throws {
        let unpacked = try Samples.full.makeUnpacked()
        defer { protobuf_c_message_free_unpacked(unpacked, nil) }
        #expect(protobuf_c_message_check(unpacked) != 0)
        #expect(try Kinds(unpacked: unpacked) == Samples.full)
        // A C message of another type is refused, not misread.
        let error = #expect(throws: RPCError.self) { try Point(unpacked: unpacked) }
        #expect(error?.code == .invalidArgument)
    }
}
