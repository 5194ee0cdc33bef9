import FaultlineProto
import FaultlineRPC
import Logging
import ServiceKit
import Synchronization

/// The claimed runs of one runner and organisation in a pass, in due order: the dispatcher adds
/// them as claims commit, the starter takes them. Unlike an AsyncStream's, a taker that is
/// cancelled (its stream broke) leaves the rest in place for whatever handles them next.
final class StartQueue: Sendable {
    private struct State {
        var runs: [Dispatcher.Assignment] = []
        var head = 0
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func add(_ run: Dispatcher.Assignment) {
        let waiter = state.withLock { state in
            state.runs.append(run)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// No more runs come (nothing more is claimed in this pass).
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The next run; nil once finished and empty, or when the task is cancelled (nothing taken).
    func next() async -> Dispatcher.Assignment? {
        while true {
            let taken = state.withLock { state -> Dispatcher.Assignment?? in
                if state.head < state.runs.count {
                    defer { state.head += 1 }
                    return .some(state.runs[state.head])
                }
                return state.finished ? .some(nil) : nil
            }
            if let taken { return taken }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state in
                        // Checked under the lock the cancellation handler takes too: no lost wake-up.
                        guard state.head == state.runs.count, !state.finished, !Task.isCancelled else { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }
}

/// Starts the runs of one StartQueue on their runner, each when due: on one StartRuns stream,
/// or with unary StartRun calls when the runner answers UNIMPLEMENTED (a runner from before
/// StartRuns; remembered in `unaryOnly` until it registers again). Every run taken gets an
/// answer, so the dispatcher records each as it would a unary call's outcome; a stream that
/// breaks leaves its unanswered runs with the stream's error.
struct RunStarter: Sendable {
    /// nil for an address that is not host:port.
    let runner: RunnersV1.RunnerClient?
    let registration: RunnerRegistration
    let address: String
    let organization: OrganizationID
    /// The stream's deadline: it carries the runs of one pass, which are claimed until then.
    let streamTimeout: Duration
    let unaryOnly: UnaryOnlyRunners
    let clock: any ScheduleClock
    let configuration: ScheduleServiceConfiguration
    let logger: Logger

    typealias Outcome = Result<String, RPCError>

    /// Request ids a log line names; the rest are counted.
    static let loggedRequestIDs = 3

    func start(_ queue: StartQueue) async -> [Dispatcher.Answer] {
        let (answers, streamFailure) = await answers(queue)
        report(answers, streamFailure: streamFailure)
        return answers
    }

    /// Every run of the queue with its outcome, and the error that broke the stream, if one did.
    private func answers(_ queue: StartQueue) async -> ([Dispatcher.Answer], RPCError?) {
        guard let runner else {
            return (await rest(of: queue) { _ in .failure(RPCError(.unavailable, "runner address '\(address)' is not host:port")) }, nil)
        }
        if unaryOnly.contains(registration) { return (await unary([], then: queue, runner: runner), nil) }
        // Taken from the queue, in order; answered, by request id.
        let taken = Mutex<[Dispatcher.Assignment]>([])
        let answered = Mutex<[String: Outcome]>([:])
        var failure: RPCError?
        do {
            try await runner.startRuns(
                options: .on(behalfOf: organization, timeout: streamTimeout),
                requests: { writer in
                    while let run = await queue.next() {
                        taken.withLock { $0.append(run) }
                        try await waitUntilDue(run)
                        try await writer.write(run.request)
                    }
                },
                responses: { answers in
                    for try await answer in answers {
                        answered.withLock { $0[answer.requestId] = answer.outcome.map { $0.run?.executionId ?? "" } }
                    }
                })
        } catch {
            failure = RPCError(from: error)
        }
        let (sent, outcomes) = (taken.withLock { $0 }, answered.withLock { $0 })
        if let failure, failure.code == .unimplemented, outcomes.isEmpty {
            unaryOnly.remember(registration)
            logger.info("runner has no StartRuns; starting its runs one call each until it registers again",
                        metadata: ["runner": "\(registration.id)", "address": "\(address)"])
            return (await unary(sent, then: queue, runner: runner), nil)
        }
        // Without an answer, a run is as a unary call that failed with the stream's error (the
        // runner may have started it: a retry is idempotent by request id).
        let missing = failure ?? RPCError(.internalError, "the runner ended StartRuns without answering this run")
        let answers = sent.map { run in (run, outcomes[run.request.requestId] ?? .failure(missing)) }
        return (answers + (await rest(of: queue) { _ in .failure(missing) }), failure)
    }

    /// One line for the runs of this lane the runner did not take, however many (a broken stream
    /// fails all its unanswered runs at once): how many, the first few request ids and the error.
    /// The dispatcher logs each run at debug level as it records it.
    private func report(_ answers: [Dispatcher.Answer], streamFailure: RPCError?) {
        let failed = answers.compactMap { answer -> (id: String, error: RPCError)? in
            guard case .failure(let error) = answer.result else { return nil }
            return (answer.assignment.request.requestId, error)
        }
        guard let first = failed.first else { return }
        let error = streamFailure ?? first.error
        var ids = failed.prefix(Self.loggedRequestIDs).map(\.id).joined(separator: ",")
        if failed.count > Self.loggedRequestIDs { ids += ",…" }
        logger.notice(streamFailure == nil ? "runner did not take runs" : "StartRuns stream failed; its unanswered runs were not taken",
                      metadata: ["runner": "\(registration.id)", "address": "\(address)", "org": "\(organization)",
                                 "runs": "\(failed.count)", "of": "\(answers.count)", "request_ids": "\(ids)",
                                 "grpc.status": "\(error.code)", "error": "\(error.message.prefix(300))"])
    }

    /// Claimed within the lookahead: started when due, never before.
    private func waitUntilDue(_ run: Dispatcher.Assignment) async throws {
        let early = run.notBefore - clock.now().micros
        if early > 0 { try await Task.sleep(for: .microseconds(early)) }
    }

    /// The runs left in the queue (until it is finished), each answered by `outcome`.
    private func rest(of queue: StartQueue, _ outcome: (Dispatcher.Assignment) -> Outcome) async -> [Dispatcher.Answer] {
        var answers: [Dispatcher.Answer] = []
        while let run = await queue.next() { answers.append((run, outcome(run))) }
        return answers
    }

    /// StartRun for `first`, then for the rest of the queue, each when due, at most
    /// `startConcurrency` calls in flight.
    private func unary(_ first: [Dispatcher.Assignment], then queue: StartQueue, runner: RunnersV1.RunnerClient) async -> [Dispatcher.Answer] {
        let options = CallOptions.on(behalfOf: organization, timeout: configuration.callTimeout)
        return await withTaskGroup(of: Dispatcher.Answer.self) { group in
            var answers: [Dispatcher.Answer] = []
            var inFlight = 0
            var pending = first[...]
            while true {
                let run: Dispatcher.Assignment
                if let next = pending.popFirst() {
                    run = next
                } else if let next = await queue.next() {
                    run = next
                } else {
                    break
                }
                if inFlight >= configuration.startConcurrency, let answer = await group.next() {
                    answers.append(answer)
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    try? await waitUntilDue(run)
                    do {
                        let response = try await runner.startRun(run.request, options: options)
                        return (run, .success(response.run?.executionId ?? ""))
                    } catch {
                        return (run, .failure(RPCError(from: error)))
                    }
                }
            }
            for await answer in group { answers.append(answer) }
            return answers
        }
    }
}
