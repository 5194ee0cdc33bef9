import FaultlinePostgres
import FaultlineProto
import FaultlineRPC

extension ExecutionStatus {
    init?(_ state: ExperimentsV1.ExecutionState) {
        switch state {
        case .pending: self = .pending
        case .running: self = .running
        case .completed: self = .completed
        case .deviated: self = .deviated
        case .failed: self = .failed
        case .aborted: self = .aborted
        case .interrupted: self = .interrupted
        case .lost: self = .lost
        case .timedOut: self = .timedOut
        default: return nil
        }
    }

    var proto: ExperimentsV1.ExecutionState {
        switch self {
        case .pending: .pending
        case .running: .running
        case .completed: .completed
        case .deviated: .deviated
        case .failed: .failed
        case .aborted: .aborted
        case .interrupted: .interrupted
        case .lost: .lost
        case .timedOut: .timedOut
        }
    }
}

extension ExecutionStatus {
    /// The Domain transition table, with an illegal move as FAILED_PRECONDITION.
    func moving(to next: ExecutionStatus) throws(RPCError) -> TransitionResult {
        do { return try transition(to: next) } catch { throw RPCError(.failedPrecondition, error.description) }
    }

    /// `completing(to:external:)`, with an illegal move as FAILED_PRECONDITION.
    func completingMove(to final: ExecutionStatus, external: Bool) throws(RPCError) -> Completing {
        do { return try completing(to: final, external: external) } catch { throw RPCError(.failedPrecondition, error.description) }
    }
}

/// What a `CompleteExecution` request ends an execution with: the state decided from the journal
/// (Domain `ExecutionOutcome`; exit and stop request only without a journal), the score, and the
/// log cut to its cap.
struct Completion {
    let status: ExecutionStatus
    let reason: String
    let outcome: ExperimentsV1.ExecutionOutcome
    let score: Double?
    let scoreParts: StoredScore?
    let journalText: String?
    let journalCompact: String?
    let log: String
    let logTruncated: Bool
    let logSize: Int64

    static let truncationMarker = "\n[faultline: log truncated]\n"

    init(_ request: ExperimentsV1.CompleteExecutionRequest, logCap: Int, journalLimits: DocumentLimits) throws(RPCError) {
        let stop: ExecutionOutcome.StopRequest? = switch request.stopRequest {
        case .cancelled: .cancelled
        case .timeLimit: .timeLimit
        case .unspecified: nil
        case .unrecognized(let value): throw RPCError(.invalidArgument, "unknown stop_request \(value)")
        }
        var journal: JSONValue?
        if !request.journalJson.isEmpty {
            do {
                journal = try JSONValue.parse(jsonBytes: Array(request.journalJson.utf8), limits: journalLimits)
            } catch where error.code == .tooLarge || error.code == .tooDeep {
                throw RPCError(.resourceExhausted, "journal_json exceeds the service's journal limits")
            } catch {
                journal = nil  // kept as text; classified as unreadable below
            }
        }
        let unreadable = !request.journalJson.isEmpty && journal == nil
        let decided: ExecutionOutcome
        if unreadable {
            decided = ExecutionOutcome(status: .failed, reason: .journalUnreadable)
        } else {
            decided = ExecutionOutcome.classify(
                journal: journal, exitCode: request.exit?.signal == 0 ? request.exit?.exitCode : nil,
                signal: request.exit.flatMap { $0.signal == 0 ? nil : $0.signal },
                stopRequest: stop)
        }
        // The journal decides when there is one; the stop request and exit only without it.
        status = decided.status
        reason = request.reason.isEmpty ? decided.reason.rawValue : request.reason

        let summary = decided.journal
        var o = ExperimentsV1.ExecutionOutcome()
        o.hasJournal = journal != nil
        o.journalStatus = summary?.status.rawValue ?? ""
        o.deviated = summary?.deviated ?? false
        func steady(_ met: Bool?) -> ExperimentsV1.SteadyState {
            switch met { case true?: .met; case false?: .notMet; case nil: .notRun }
        }
        o.steadyStateBefore = steady(summary?.steadyStateBefore)
        o.steadyStateAfter = steady(summary?.steadyStateAfter)
        o.activitiesRun = Int32(clamping: summary?.method.total ?? 0)
        o.activitiesFailed = Int32(clamping: (summary?.method.failed ?? 0) + (summary?.method.unfinished ?? 0))
        o.rollbacksRun = Int32(clamping: summary?.rollbacks.total ?? 0)
        o.rollbacksFailed = Int32(clamping: (summary?.rollbacks.failed ?? 0) + (summary?.rollbacks.unfinished ?? 0))
        o.exit = request.exit
        if let interruption = journal?["interruption"], !interruption.isNull { o.interruptionJson = interruption.serialized() }
        outcome = o

        // The score follows the state actually recorded, so a LOST that overrode a journal is unscored.
        let recorded = status == decided.status ? decided : ExecutionOutcome(status: status, reason: decided.reason, journal: summary)
        score = ExecutionScore.score(recorded)
        scoreParts = score.map { score in
            // The two factors of the formula, kept so clients can show why a run scored as it did.
            let rollbackFactor = 0.5 + 0.5 * (summary?.rollbacks.successRatio ?? 1)
            return StoredScore(verdict: score / rollbackFactor, rollbackFactor: rollbackFactor)
        }
        journalText = request.journalJson.isEmpty ? nil : request.journalJson
        journalCompact = journal?.serialized()

        let bytes = Array(request.log.utf8)
        logSize = Int64(bytes.count)
        if bytes.count > logCap {
            var cut = max(0, logCap - Self.truncationMarker.utf8.count)
            while cut > 0, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }  // never split a UTF-8 sequence
            log = String(decoding: bytes[..<cut], as: UTF8.self) + Self.truncationMarker
            logTruncated = true
        } else {
            log = request.log
            logTruncated = false
        }
    }
}
