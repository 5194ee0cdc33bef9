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
import FaultlineProto
import FaultlineRPC
import Logging

/// Echo/Get with the generated contract types, decoded and encoded by libprotobuf-c — the same
/// work the grpc-swift-2 peer does with SwiftProtobuf.
struct EchoService: TestingV1.EchoService {
    func get(_ request: TestingV1.EchoRequest, context: ServerContext) async throws -> TestingV1.EchoResponse {
        TestingV1.EchoResponse(payload: request.payload)
    }

    func expand(_ request: TestingV1.EchoRequest, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
        throw RPCError(.unimplemented, "the benchmark server serves Get only")
    }

    func collect(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, context: ServerContext) async throws -> TestingV1.EchoResponse {
        throw RPCError(.unimplemented, "the benchmark server serves Get only")
    }

    func update(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
        throw RPCError(.unimplemented, "the benchmark server serves Get only")
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
