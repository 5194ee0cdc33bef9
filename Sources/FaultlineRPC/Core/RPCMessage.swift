public import NIOCore

/// A protobuf message the runtime can put on the wire. Generated types conform; the bytes are
/// produced and parsed by libprotobuf-c, never by hand.
public protocol RPCMessage: Sendable {
    /// Decodes one message. Bytes that are not this message throw `INVALID_ARGUMENT`.
    init(serializedBytes: ByteBuffer) throws(RPCError)

    /// Appends the encoded message to `buffer`.
    func serialize(into buffer: inout ByteBuffer) throws(RPCError)
}
