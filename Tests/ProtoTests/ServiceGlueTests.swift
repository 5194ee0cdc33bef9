import FaultlineProto
import FaultlineRPC
import Logging
import NIOCore
import Testing

/// The generated service protocol, its `methods` and the generated client, joined in process by
/// an `RPCCaller` that hands bytes straight to the registered handlers. The wire itself (HTTP/2,
/// grpcio peers) is the RPC runtime's suite; this checks the generated glue for all four call kinds.
@Suite("Generated services and clients")
struct ServiceGlueTests {
    struct Echo: TestingV1.EchoService {
        func fail(_ request: TestingV1.EchoRequest) throws {
            if request.failWithCode != 0, let code = RPCError.Code(rawValue: Int(request.failWithCode)) {
                throw RPCError(code, request.text)
            }
        }

        func get(_ request: TestingV1.EchoRequest, context: ServerContext) async throws -> TestingV1.EchoResponse {
            try fail(request)
            return TestingV1.EchoResponse(payload: request.payload, text: context.method.method, index: 0)
        }

        func expand(_ request: TestingV1.EchoRequest, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
            try fail(request)
            for i in 0..<request.count {
                try await responses.write(TestingV1.EchoResponse(payload: request.payload, text: request.text, index: i))
            }
        }

        func collect(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, context: ServerContext) async throws -> TestingV1.EchoResponse {
            var response = TestingV1.EchoResponse()
            for try await request in requests {
                try fail(request)
                response.payload += request.payload
                response.index += 1
            }
            return response
        }

        func update(_ requests: RPCAsyncSequence<TestingV1.EchoRequest>, responses: RPCWriter<TestingV1.EchoResponse>, context: ServerContext) async throws {
            var index: Int32 = 0
            for try await request in requests {
                try fail(request)
                try await responses.write(TestingV1.EchoResponse(payload: request.payload, text: request.text.uppercased(), index: index))
                index += 1
            }
        }
    }

    /// Requests and responses cross as encoded bytes, exactly what the runtime would frame.
    struct LoopbackCaller: RPCCaller {
        let methods: [String: RegisteredMethod]

        init(_ service: some RPCService) {
            methods = Dictionary(uniqueKeysWithValues: service.methods.map { ($0.descriptor.path, $0) })
        }

        static func encode(_ message: any RPCMessage) throws -> ByteBuffer {
            var buffer = ByteBuffer()
            try message.serialize(into: &buffer)
            return buffer
        }

        func call<Result: Sendable>(
            _ method: MethodDescriptor,
            options: CallOptions,
            requests: @escaping @Sendable (RPCWriter<any RPCMessage>) async throws -> Void,
            responses: @escaping @Sendable (ClientResponse) async throws -> Result
        ) async throws -> Result {
            guard let registered = methods[method.path] else { throw RPCError(.unimplemented, "\(method) is not served") }
            let (requestStream, requestSink) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
            let (responseStream, responseSink) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
            let context = ServerContext(method: method, metadata: options.metadata, deadline: nil, peer: "loopback", logger: Logger(label: "test"))
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await requests(RPCWriter { requestSink.yield(try Self.encode($0)) })
                        requestSink.finish()
                    } catch {
                        requestSink.finish(throwing: error)
                    }
                }
                group.addTask {
                    do {
                        try await registered.handle(
                            RPCAsyncSequence(wrapping: requestStream),
                            RPCWriter { responseSink.yield(try Self.encode($0)) },
                            context)
                        responseSink.finish()
                    } catch {
                        responseSink.finish(throwing: RPCError(from: error))
                    }
                }
                let result = try await responses(ClientResponse(metadata: [:], messages: RPCAsyncSequence(wrapping: responseStream)))
                try await group.waitForAll()
                return result
            }
        }
    }

    /// The example of protos/README.md.
    struct Health: HealthV1.HealthService {
        func check(_ request: HealthV1.HealthCheckRequest, context: ServerContext) async throws -> HealthV1.HealthCheckResponse {
            HealthV1.HealthCheckResponse(status: request.service.isEmpty ? .serving : .serviceUnknown)
        }

        func watch(_ request: HealthV1.HealthCheckRequest, responses: RPCWriter<HealthV1.HealthCheckResponse>,
                   context: ServerContext) async throws {
            try await responses.write(HealthV1.HealthCheckResponse(status: .serving))
            try await responses.write(HealthV1.HealthCheckResponse(status: .notServing))
        }
    }

    let client = TestingV1.EchoClient(LoopbackCaller(Echo()))

    @Test func health() async throws {
        let health = HealthV1.HealthClient(LoopbackCaller(Health()))
        #expect(try await health.check(.init()).status == .serving)
        #expect(try await health.check(.init(service: "faultline.experiments.v1.ExperimentService")).status == .serviceUnknown)
        let statuses = try await health.watch(.init()) { stream in
            var statuses: [HealthV1.HealthCheckResponse.ServingStatus] = []
            for try await response in stream { statuses.append(response.status) }
            return statuses
        }
        #expect(statuses == [.serving, .notServing])
    }

    @Test func methodsAreRegisteredUnderTheirPaths() {
        #expect(Echo().methods.map(\.descriptor.path) == ["/faultline.testing.v1.Echo/Get", "/faultline.testing.v1.Echo/Expand",
                                                         "/faultline.testing.v1.Echo/Collect", "/faultline.testing.v1.Echo/Update"])
        #expect(TestingV1.EchoMethods.all == Echo().methods.map(\.descriptor))
        #expect(HealthV1.HealthMethods.check.path == "/grpc.health.v1.Health/Check")
    }

    @Test func unary() async throws {
        let response = try await client.get(TestingV1.EchoRequest(payload: [1, 2, 3]))
        #expect(response == TestingV1.EchoResponse(payload: [1, 2, 3], text: "Get", index: 0))
    }

    @Test func unaryError() async throws {
        let error = await #expect(throws: RPCError.self) {
            try await client.get(TestingV1.EchoRequest(text: "nope", failWithCode: 5))
        }
        #expect(error?.code == .notFound)
        #expect(error?.message == "nope")
    }

    @Test func serverStreaming() async throws {
        let indices = try await client.expand(TestingV1.EchoRequest(text: "x", count: 4)) { responses in
            var seen: [Int32] = []
            for try await response in responses { seen.append(response.index) }
            return seen
        }
        #expect(indices == [0, 1, 2, 3])
    }

    @Test func clientStreaming() async throws {
        let response = try await client.collect { writer in
            for byte: UInt8 in 1...5 { try await writer.write(TestingV1.EchoRequest(payload: [byte])) }
        }
        #expect(response.payload == [1, 2, 3, 4, 5])
        #expect(response.index == 5)
    }

    @Test func bidirectional() async throws {
        let texts = try await client.update { writer in
            for text in ["a", "b", "c"] { try await writer.write(TestingV1.EchoRequest(text: text)) }
        } responses: { responses in
            var texts: [String] = []
            for try await response in responses { texts.append("\(response.index):\(response.text)") }
            return texts
        }
        #expect(texts == ["0:A", "1:B", "2:C"])
    }

    @Test func undecodableRequestIsInvalidArgument() async throws {
        let method = try #require(Echo().methods.first { $0.descriptor == TestingV1.EchoMethods.get })
        let requests = RPCAsyncSequence(wrapping: AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            continuation.yield(ByteBuffer(bytes: [0x0A, 0xFF]))  // payload claims 255 bytes, has none
            continuation.finish()
        })
        let context = ServerContext(method: method.descriptor, metadata: [:], deadline: nil, peer: "test", logger: Logger(label: "test"))
        let error = await #expect(throws: RPCError.self) {
            try await method.handle(requests, RPCWriter { _ in }, context)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "cannot decode faultline.testing.v1.EchoRequest")
    }
}
