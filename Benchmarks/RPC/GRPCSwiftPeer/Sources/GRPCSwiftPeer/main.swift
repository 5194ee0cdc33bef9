// The grpc-swift-2 peer of the RPC benchmark: serves faultline.testing.v1.Echo/Get on
// 127.0.0.1 with the NIO Posix HTTP/2 transport, prints `port N` once bound, and runs until killed.
//
//   GRPCSwiftPeer [--port N] [--window BYTES] [--max-frame BYTES]
//
// Everything but the HTTP/2 window and frame sizes is the transport's default configuration
// (flush coalescing included), as an application would ship it.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf

struct Options {
    var port = 0
    var window = 4 * 1024 * 1024
    var maxFrame = 4 * 1024 * 1024

    init(_ arguments: ArraySlice<String>) {
        var arguments = arguments
        while let name = arguments.popFirst() {
            // The ranges HTTP/2 allows (RFC 9113 section 6.5.2).
            let range = switch name {
            case "--port": 0...65535
            case "--window": 1...Int(Int32.max)
            case "--max-frame": (1 << 14)...((1 << 24) - 1)
            default: Options.fail("unknown option \(name)")
            }
            guard let text = arguments.popFirst(), let value = Int(text), range.contains(value) else {
                Options.fail("\(name) needs an integer in \(range)")
            }
            switch name {
            case "--port": port = value
            case "--window": window = value
            default: maxFrame = value
            }
        }
    }

    static func fail(_ message: String) -> Never {
        print("GRPCSwiftPeer: \(message)\nusage: GRPCSwiftPeer [--port N] [--window BYTES] [--max-frame BYTES]")
        exit(2)
    }
}

struct EchoService: Faultline_Testing_V1_Echo.SimpleServiceProtocol {
    func get(
        request: Faultline_Testing_V1_EchoRequest,
        context: ServerContext
    ) async throws -> Faultline_Testing_V1_EchoResponse {
        .with { $0.payload = request.payload }
    }

    // The benchmark drives Get only.
    func expand(
        request: Faultline_Testing_V1_EchoRequest,
        response: RPCWriter<Faultline_Testing_V1_EchoResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "the benchmark peer serves Get only")
    }

    func collect(
        request: RPCAsyncSequence<Faultline_Testing_V1_EchoRequest, any Error>,
        context: ServerContext
    ) async throws -> Faultline_Testing_V1_EchoResponse {
        throw RPCError(code: .unimplemented, message: "the benchmark peer serves Get only")
    }

    func update(
        request: RPCAsyncSequence<Faultline_Testing_V1_EchoRequest, any Error>,
        response: RPCWriter<Faultline_Testing_V1_EchoResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "the benchmark peer serves Get only")
    }
}

let options = Options(CommandLine.arguments.dropFirst())
var config = HTTP2ServerTransport.Posix.Config.defaults
config.http2.targetWindowSize = options.window
config.http2.maxFrameSize = options.maxFrame
let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: options.port),
    transportSecurity: .plaintext,
    config: config
)
let server = GRPCServer(transport: transport, services: [EchoService()])

try await withThrowingDiscardingTaskGroup { group in
    group.addTask { try await server.serve() }
    guard let port = try await transport.listeningAddress.ipv4?.port else {
        fatalError("the transport is not listening on IPv4")
    }
    print("port \(port)")
    fflush(nil)  // all streams: stdout is a pipe, so block-buffered
}
