// The Faultline server of the RPC benchmark: serves faultline.testing.v1.Echo/Get with
// RPCServer on 127.0.0.1, prints `port N` once bound, and runs until killed.
//
//   RPCBenchmarkServer [--port N]
//
// It runs with RPCServer's default configuration; `Benchmarks/RPC/run` reads the HTTP/2 window
// and frame sizes every server actually advertises off the wire and prints them.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import FaultlineRPC
import Logging
import NIOCore

// TODO(lead): switch to TestingV1 generated types once merged
/// `EchoRequest` and `EchoResponse` as far as the benchmark needs them: field 1, `bytes payload`.
/// Both messages give field 1 the same number and type, so one type reads the request and
/// writes the reply. Other fields of the request are skipped by wire type, as protobuf does.
struct EchoPayload: RPCMessage {
    var payload: ByteBuffer

    init(payload: ByteBuffer) {
        self.payload = payload
    }

    init(serializedBytes: ByteBuffer) throws(RPCError) {
        var bytes = serializedBytes
        var payload = ByteBuffer()
        while bytes.readableBytes > 0 {
            let key = try Self.readVarint(&bytes)
            guard key >> 3 != 0 else { throw Self.invalid("field number 0") }
            switch (key >> 3, key & 7) {
            case (1, 2): payload = try Self.readLengthDelimited(&bytes)
            case (_, 0): _ = try Self.readVarint(&bytes)
            case (_, 1): _ = try Self.readSlice(8, &bytes)
            case (_, 2): _ = try Self.readLengthDelimited(&bytes)
            case (_, 5): _ = try Self.readSlice(4, &bytes)
            default: throw Self.invalid("unsupported wire type \(key & 7)")
            }
        }
        self.payload = payload
    }

    func serialize(into buffer: inout ByteBuffer) throws(RPCError) {
        guard payload.readableBytes > 0 else { return }  // proto3 omits default values
        buffer.writeInteger(UInt8(0x0A))
        var length = UInt64(payload.readableBytes)
        while length >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        buffer.writeInteger(UInt8(length))
        buffer.writeImmutableBuffer(payload)
    }

    private static func readVarint(_ bytes: inout ByteBuffer) throws(RPCError) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard let byte = bytes.readInteger(as: UInt8.self) else { throw invalid("truncated varint") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
        }
        throw invalid("varint longer than 10 bytes")
    }

    private static func readLengthDelimited(_ bytes: inout ByteBuffer) throws(RPCError) -> ByteBuffer {
        let length = try readVarint(&bytes)
        guard length <= UInt64(bytes.readableBytes) else { throw invalid("length past the end") }
        return try readSlice(Int(length), &bytes)
    }

    private static func readSlice(_ count: Int, _ bytes: inout ByteBuffer) throws(RPCError) -> ByteBuffer {
        guard let slice = bytes.readSlice(length: count) else { throw invalid("truncated field") }
        return slice
    }

    private static func invalid(_ reason: String) -> RPCError {
        RPCError(.invalidArgument, "not a faultline.testing.v1.EchoRequest: \(reason)")
    }
}

struct EchoService: RPCService {
    var methods: [RegisteredMethod] {
        [
            .unary(MethodDescriptor(service: "faultline.testing.v1.Echo", method: "Get")) {
                (request: EchoPayload, _) in EchoPayload(payload: request.payload)
            },
        ]
    }
}

var port = 0
var arguments = CommandLine.arguments.dropFirst()
while let name = arguments.popFirst() {
    guard name == "--port", let text = arguments.popFirst(), let value = Int(text), (0...65535).contains(value) else {
        print("usage: RPCBenchmarkServer [--port N]")
        exit(2)
    }
    port = value
}

// Logs go to stderr: stdout carries the `port N` line the benchmark waits for.
LoggingSystem.bootstrap(StreamLogHandler.standardError)
var logger = Logger(label: "faultline.rpc-benchmark")
logger.logLevel = .warning
let server = RPCServer(
    configuration: .init(host: "127.0.0.1", port: port),
    services: [EchoService()],
    logger: logger
)

try await withThrowingDiscardingTaskGroup { group in
    group.addTask { try await server.run() }
    print("port \(try await server.listeningPort)")
    fflush(nil)  // all streams: stdout is a pipe, so block-buffered
}
