import FaultlineProto
import Foundation

/// Reliably's single `user_state` (discriminated by `current`) as Faultline's execution and
/// user requests show it. Reliably keeps one value that users and the control both overwrite;
/// Faultline keeps the users' requests (pause, resume, terminate) with a version, and the run's
/// own state. A request is shown until the control reports a state after it (`seenVersion`),
/// except a terminate, which is always shown: it must reach the run.
enum ReliablyUserState {
    /// The longest pause Reliably's server allows, in seconds.
    static let maximumPauseSeconds: Int64 = 3300

    static func view(of execution: ExperimentsV1.Execution, seenVersion: Int64, planUUID: String?, nowUs: Int64) -> JSONValue {
        let plan: JSONValue = planUUID.map(JSONValue.string) ?? .null
        let request = execution.userState
        let user: JSONValue = .object([
            "name": .string(request?.requestedBy?.id.nonEmpty ?? "faultline"),
            "id": .string(request?.requestedBy?.id ?? ""),
        ])
        switch request?.request {
        case .terminate(let terminate)?:
            return .object(["current": "terminate", "plan_id": plan, "skip_rollbacks": .bool(terminate.skipRollbacks), "user": user])
        case .pause(let pause)? where request!.version > seenVersion:
            // Faultline pauses always end by themselves: say how long is left (at least 1 s,
            // since 0 would mean "until resumed" to the control).
            let left = (pause.expiresAtUs - nowUs + 999_999) / 1_000_000
            return .object(["current": "pause", "plan_id": plan, "duration": .int(min(max(left, 1), maximumPauseSeconds)), "user": user])
        case nil where (request?.version ?? 0) > seenVersion:
            return .object(["current": "resume", "plan_id": plan, "user": user])
        default:
            break
        }
        switch execution.state {
        case .pending, .unspecified, .unrecognized:
            return .object(["current": "pending", "plan_id": plan, "created_on": .string(iso(execution.createdAtUs))])
        case .running:
            return .object(["current": "running", "plan_id": plan, "started_on": .string(iso(execution.startedAtUs))])
        default:
            return .object([
                "current": "finished", "plan_id": plan, "finished_on": .string(iso(execution.endedAtUs)),
                "status": .string(journalStatus(of: execution)), "deviated": .bool(execution.deviated),
            ])
        }
    }

    /// The journal status Reliably reports for a terminal Faultline state.
    static func journalStatus(of execution: ExperimentsV1.Execution) -> String {
        if let status = execution.outcome?.journalStatus, JournalEvents.terminalStatuses.contains(status) { return status }
        switch execution.state {
        case .completed, .deviated: return "completed"
        case .interrupted, .timedOut: return "interrupted"
        case .aborted: return "aborted"
        default: return "failed"
        }
    }

    /// ISO 8601 in UTC, as Reliably's server writes times.
    static func iso(_ us: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(us) / 1_000_000))
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    init(stringLiteral value: String) { self = .string(value) }
}
