import FaultlineRPC
import Logging

/// How the runner delivers what it owes ExperimentService (events, CompleteExecution): retried
/// with backoff for as long as the service may still take it, given up on a final answer, so
/// one item the service refuses never blocks a run, the relay or a restart forever.
enum Delivery {
    enum Outcome<Value: Sendable>: Sendable {
        case delivered(Value)
        /// The service's final answer: the same request would be refused again.
        case refused(RPCError)
        /// The calling task was cancelled (the runner stops).
        case cancelled
    }

    /// The failure as the service's final answer about the request itself, if it is one. Everything
    /// else (unreachable, overloaded, timed out, a conflict or an internal failure that may pass,
    /// and any error that is no status) is retried.
    static func finalAnswer(_ error: any Error) -> RPCError? {
        guard let error = error as? RPCError else { return nil }
        switch error.code {
        case .invalidArgument, .notFound, .alreadyExists, .permissionDenied, .failedPrecondition,
             .outOfRange, .unimplemented, .unauthenticated:
            return error
        default:
            return nil
        }
    }

    /// RESOURCE_EXHAUSTED is either a peer asking to slow down (passes) or a message over a
    /// size limit (the journal's, the RPC message's: never passes). Retried, but this many in a
    /// row make it final (about 3 s of backoff).
    static let exhaustedAttempts = 6

    /// `body` until it succeeds, fails finally or the task is cancelled; between retryable
    /// failures, a backoff from 100 ms doubling up to 5 s.
    static func retrying<Value: Sendable>(_ what: String, logger: Logger, metadata: Logger.Metadata = [:],
                                          _ body: () async throws -> Value) async -> Outcome<Value> {
        var delay = Duration.milliseconds(100)
        var exhausted = 0
        while true {
            do {
                return .delivered(try await body())
            } catch {
                if Task.isCancelled { return .cancelled }
                if let final = finalAnswer(error) { return .refused(final) }
                if let error = error as? RPCError {
                    exhausted = error.code == .resourceExhausted ? exhausted + 1 : 0
                    if exhausted == exhaustedAttempts { return .refused(error) }
                }
                logger.info("\(what) not delivered yet; retrying", metadata: metadata.merging(["error": "\(error)"]) { $1 })
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// The one notice a run (or a replayed spool) gets when `NULEscapes` replaced any escapes.
    static func noticeReplacedNULs(_ counts: Logger.Metadata, total: Int, logger: Logger) {
        guard total > 0 else { return }
        logger.notice("replaced \\u0000 (NUL, which Postgres cannot store) with \\ufffd in what the run reported", metadata: counts)
    }
}
