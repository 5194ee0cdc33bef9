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
    /// This task is the one writer (the stream takes one at a time), and a request is read only
    /// while fewer than `concurrency` are undecided or unwritten: a client that does not read its
    /// answers stops being read, rather than have them pile up here.
    public static func serve(
        _ requests: RPCAsyncSequence<RunnersV1.StartRunRequest>, responses: RPCWriter<RunnersV1.StartRunsResponse>,
        start: @escaping @Sendable (RunnersV1.StartRunRequest) async throws -> RunnersV1.StartRunResponse
    ) async throws {
        enum Event: Sendable {
            case read(RunnersV1.StartRunRequest?)
            case unreadable(RPCError)
            case decided(RunnersV1.StartRunsResponse)
        }
        let reader = RequestReader(requests.makeAsyncIterator())
        try await withThrowingTaskGroup(of: Event.self) { group in
            func read() {
                group.addTask {
                    do { return .read(try await reader.next()) } catch { return .unreadable(RPCError(from: error)) }
                }
            }
            var open = 0  // requests read and not yet answered
            var paused = false
            var unreadable: RPCError?
            read()
            while let event = try await group.next() {
                switch event {
                case .read(let request?):
                    open += 1
                    group.addTask { .decided(await decide(request, start: start)) }
                    if open < concurrency { read() } else { paused = true }
                case .read(nil):
                    break
                case .unreadable(let error):
                    unreadable = error
                case .decided(let answer):
                    try await responses.write(answer)
                    open -= 1
                    if paused {
                        paused = false
                        read()
                    }
                }
            }
            guard let unreadable else { return }
            // A call the client cancelled (or that timed out) ends as it ended.
            if unreadable.code == .cancelled || unreadable.code == .deadlineExceeded { throw unreadable }
            throw RPCError(.invalidArgument, "malformed StartRunRequest: \(unreadable.message)")
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

/// The request side of one StartRuns call. Unchecked: one read at a time, each started only after
/// the last one ended (`serve` reads again only on its result).
private final class RequestReader: @unchecked Sendable {
    private var iterator: RPCAsyncSequence<RunnersV1.StartRunRequest>.AsyncIterator

    init(_ iterator: RPCAsyncSequence<RunnersV1.StartRunRequest>.AsyncIterator) {
        self.iterator = iterator
    }

    func next() async throws -> RunnersV1.StartRunRequest? { try await iterator.next() }
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
