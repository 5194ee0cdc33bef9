public import FaultlineProto
public import FaultlineRPC

/// `RunnerService.StartRuns` around a StartRun implementation, so a stream decides each request
/// exactly as StartRun does: the real runner and the stand-ins serve it through this.
public enum StartRunsStream {
    /// Requests of one stream decided at once; the next is read when one is answered.
    public static let concurrency = 64

    /// Runs each request through `start` as it arrives, answering each as soon as it is decided
    /// (out of order), until the client half-closes and every request is answered. A request that
    /// cannot be decoded ends the stream with INVALID_ARGUMENT once those before it are answered.
    /// One task writes the answers: the stream takes one writer at a time.
    public static func serve(
        _ requests: RPCAsyncSequence<RunnersV1.StartRunRequest>, responses: RPCWriter<RunnersV1.StartRunsResponse>,
        start: @escaping @Sendable (RunnersV1.StartRunRequest) async throws -> RunnersV1.StartRunResponse
    ) async throws {
        let (answers, answer) = AsyncStream.makeStream(of: RunnersV1.StartRunsResponse.self)
        try await withThrowingTaskGroup(of: Void.self) { writer in
            writer.addTask {
                for await message in answers { try await responses.write(message) }
            }
            let unreadable = await withTaskGroup(of: Void.self) { decisions -> (any Error)? in
                var inFlight = 0
                do {
                    for try await request in requests {
                        if inFlight >= concurrency {
                            await decisions.next()
                            inFlight -= 1
                        }
                        inFlight += 1
                        decisions.addTask { answer.yield(await decide(request, start: start)) }
                    }
                    return nil
                } catch {
                    return error
                }
            }
            answer.finish()
            try await writer.waitForAll()
            if let unreadable {
                let error = RPCError(from: unreadable)
                // A call the client cancelled (or that timed out) ends as it ended.
                if error.code == .cancelled || error.code == .deadlineExceeded { throw error }
                throw RPCError(.invalidArgument, "malformed StartRunRequest: \(error.message)")
            }
        }
    }

    private static func decide(
        _ request: RunnersV1.StartRunRequest, start: @Sendable (RunnersV1.StartRunRequest) async throws -> RunnersV1.StartRunResponse
    ) async -> RunnersV1.StartRunsResponse {
        guard !request.requestId.isEmpty else {
            return .init(result: .error(.init(RPCError(.invalidArgument, "request_id is required on StartRuns"))))
        }
        do {
            return .init(requestId: request.requestId, result: .started(try await start(request)))
        } catch {
            return .init(requestId: request.requestId, result: .error(.init(RPCError(from: error))))
        }
    }
}

extension RunnersV1.StartRunError {
    public init(_ error: RPCError) {
        self.init(code: Int32(error.code.rawValue), message: error.message)
    }
}

extension RunnersV1.StartRunsResponse {
    /// What unary StartRun would have answered; an answer with neither result (or an unknown
    /// code) is the runner's fault, as a malformed unary answer would be.
    public var outcome: Swift.Result<RunnersV1.StartRunResponse, RPCError> {
        switch result {
        case .started(let response): .success(response)
        case .error(let error):
            .failure(RPCError(RPCError.Code(rawValue: Int(error.code)).flatMap { $0 == .ok ? nil : $0 } ?? .unknown, error.message))
        case nil: .failure(RPCError(.internalError, "a StartRuns answer with no result"))
        }
    }
}
