public import CProtobufC
public import FaultlineRPC
public import NIOCore
internal import FaultlineProtoC

/// A generated protobuf message. Its bytes are produced and parsed by libprotobuf-c through the
/// `protoc-c` descriptor of the same message; the Swift value only copies fields in and out.
///
/// The C-level entry points are public so that a descriptor-driven codec (proto3 JSON in the
/// Gateway) can build or read a C message with `descriptor` and convert it with
/// `init(unpacked:)` / `makeUnpacked()`.
public protocol ProtoMessage: RPCMessage, Hashable {
    /// The fully qualified protobuf name, e.g. `grpc.health.v1.HealthCheckRequest`.
    static var protoName: String { get }
    /// The protoc-c descriptor (fields, offsets, names) of this message.
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { get }
    /// Every field at its proto3 default.
    init()
    /// Copies a C message of this type into a Swift value. Throws `INVALID_ARGUMENT` when it is
    /// another message type or holds a string that is not UTF-8.
    init(unpacked message: UnsafePointer<ProtobufCMessage>) throws(RPCError)
    /// A malloc'd C message with this value's fields; release it with
    /// `protobuf_c_message_free_unpacked(message, nil)`.
    func makeUnpacked() throws(RPCError) -> UnsafeMutablePointer<ProtobufCMessage>
}

extension ProtoMessage {
    /// `protobuf_c_message_unpack` (through `flpc_unpack`, which also refuses strings holding NUL),
    /// then the fields are copied out and the C message freed.
    public init(serializedBytes bytes: ByteBuffer) throws(RPCError) {
        var status: Int32 = 0
        let message = bytes.withUnsafeReadableBytes { raw in
            flpc_unpack(Self.descriptor, raw.count, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), &status)
        }
        guard let message else {
            let detail = status == Int32(FLPC_UNPACK_NUL_IN_STRING) ? ": a string field contains a NUL character" : ""
            throw RPCError(.invalidArgument, "cannot decode \(Self.protoName)\(detail)")
        }
        defer { flpc_free_unpacked(message) }
        try self.init(unpacked: message)
    }

    public init(serializedBytes bytes: [UInt8]) throws(RPCError) {
        try self.init(serializedBytes: ByteBuffer(bytes: bytes))
    }

    public func serialize(into buffer: inout ByteBuffer) throws(RPCError) {
        let message = try makeUnpacked()
        defer { protobuf_c_message_free_unpacked(message, nil) }
        let size = protobuf_c_message_get_packed_size(message)
        guard size > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            protobuf_c_message_pack(message, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// The encoded message in a buffer of its own.
    public func serializedBytes() throws(RPCError) -> ByteBuffer {
        var buffer = ByteBuffer()
        try serialize(into: &buffer)
        return buffer
    }
}

/// The copying between Swift values and protobuf-c structs that generated code shares.
/// Everything allocated here is released by `protobuf_c_message_free_unpacked` with the default
/// (malloc) allocator.
enum ProtoC {
    static func checkDescriptor<M: ProtoMessage>(_ message: UnsafePointer<ProtobufCMessage>, _: M.Type) throws(RPCError) {
        guard message.pointee.descriptor == M.descriptor else {
            throw RPCError(.invalidArgument, "expected a \(M.protoName) message")
        }
    }

    // MARK: C -> Swift

    /// libprotobuf-c does not check UTF-8; protobuf requires it of `string`, so bad bytes are
    /// rejected here rather than repaired silently.
    static func string(_ pointer: UnsafePointer<CChar>?, field: StaticString) throws(RPCError) -> String {
        guard let pointer else { return "" }
        guard let string = String(validatingCString: pointer) else {
            throw RPCError(.invalidArgument, "field \(field) is not valid UTF-8")
        }
        return string
    }

    static func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let base = data.data else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: data.len))
    }

    static func numbers<T>(_ pointer: UnsafePointer<T>?, _ count: Int) -> [T] {
        guard count > 0, let pointer else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    static func missing(_ field: StaticString) -> RPCError {
        RPCError(.invalidArgument, "field \(field) holds an empty element")
    }

    // MARK: Swift -> C

    static func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) throws(RPCError) -> UnsafeMutablePointer<T> {
        let pointer: UnsafeMutablePointer<T> = try array(count: 1)
        initialize(pointer)
        return pointer
    }

    /// Zeroed, so a partly filled array holds only NULLs and zeros past what was stored.
    static func array<T>(count: Int) throws(RPCError) -> UnsafeMutablePointer<T> {
        guard let raw = flpc_calloc(count, MemoryLayout<T>.stride) else { throw outOfMemory }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    static func copy<T>(_ values: [T]) throws(RPCError) -> UnsafeMutablePointer<T> {
        let pointer: UnsafeMutablePointer<T> = try array(count: values.count)
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: $0.count) }
        return pointer
    }

    /// A C string cannot hold NUL, so a string with one is refused instead of cut short.
    static func cString(_ string: String, field: StaticString) throws(RPCError) -> UnsafeMutablePointer<CChar> {
        var string = string
        let (hasNUL, copy) = string.withUTF8 { utf8 -> (Bool, UnsafeMutablePointer<CChar>?) in
            if utf8.contains(0) { return (true, nil) }
            let base = utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            return (false, flpc_strndup(base, utf8.count))
        }
        if hasNUL { throw RPCError(.invalidArgument, "field \(field) contains a NUL character") }
        guard let copy else { throw outOfMemory }
        return copy
    }

    static func cBytes(_ bytes: [UInt8]) throws(RPCError) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let data = try copy(bytes)
        return ProtobufCBinaryData(len: bytes.count, data: data)
    }

    static func free<T>(_ message: UnsafeMutablePointer<T>) {
        protobuf_c_message_free_unpacked(UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self), nil)
    }

    private static var outOfMemory: RPCError { RPCError(.resourceExhausted, "out of memory while encoding a message") }
}
