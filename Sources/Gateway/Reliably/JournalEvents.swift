import FaultlineProto
import Foundation

/// The control events of the faultline protocol (controls/chaosfaultline PROTOCOL.md §4) that a
/// Reliably journal stands for, numbered from 1.
///
/// The Reliably control sends its whole journal again at every activity, so the events are a
/// pure function of the journal: each part chaoslib fills in is final once the next part starts
/// (before-hypothesis, method runs, after-hypothesis, rollbacks), so an event keeps its number
/// as the journal grows and resending them all is idempotent (ExperimentService ignores a repeat
/// of `(execution, seq)`). No counter has to be kept anywhere. Continuous (`during`) hypothesis
/// checks interleave with the method and are left to the journal itself.
struct JournalEvents {
    /// Activity outputs longer than this (as JSON) are clipped, as the faultline control does.
    static let outputLimit = 4096
    static let terminalStatuses: Set<String> = ["completed", "failed", "aborted", "interrupted"]

    let journal: JSONValue

    /// The journal's status once chaoslib finished the run; nil while it runs.
    var finalStatus: String? {
        guard let status = journal["status"]?.stringValue, Self.terminalStatuses.contains(status) else { return nil }
        return status
    }

    /// `(type, payload)` in order; event `i` has sequence `i + 1`.
    func events(executionID: String) -> [(type: String, payload: JSONValue)] {
        let experiment = journal["experiment"]
        var events: [(type: String, payload: JSONValue)] = [
            ("experiment-before", .object(["title": experiment?["title"] ?? .null, "execution_id": .string(executionID), "protocol": .int(1)])),
        ]
        let hypothesisTitle = experiment?["steady-state-hypothesis"]?["title"] ?? .null
        let steadyStates = journal["steady_states"]
        func hypothesis(_ phase: String) {
            guard let check = steadyStates?[phase], case .object = check else { return }
            let probes = check["probes"]?.arrayValue ?? []
            events.append(("hypothesis-before", .object(["title": hypothesisTitle, "phase": .string(phase), "probes": .int(Int64(probes.count))])))
            events += probes.map { ("activity-after", Self.activity($0, phase: "hypothesis")) }
            events.append(("hypothesis-after", .object(["title": hypothesisTitle, "phase": .string(phase),
                                                        "steady_state_met": check["steady_state_met"] ?? .null])))
        }
        hypothesis("before")
        events += (journal["run"]?.arrayValue ?? []).map { ("activity-after", Self.activity($0, phase: "method")) }
        hypothesis("after")
        events += (journal["rollbacks"]?.arrayValue ?? []).map { ("activity-after", Self.activity($0, phase: "rollbacks")) }
        if let status = finalStatus {
            events.append(("experiment-after", .object([
                "status": .string(status), "deviated": journal["deviated"] ?? .bool(false), "duration": journal["duration"] ?? .null,
                "steady_state_before": steadyStates?["before"]?["steady_state_met"] ?? .null,
                "steady_state_after": steadyStates?["after"]?["steady_state_met"] ?? .null,
                "interruption": .null,
            ])))
        }
        return events
    }

    /// An `activity-after` payload from one journal run entry.
    static func activity(_ run: JSONValue, phase: String) -> JSONValue {
        let activity = run["activity"]
        var payload: [String: JSONValue] = [
            "name": activity?["name"] ?? .null,
            "activity_type": activity?["type"] ?? .null,
            "phase": .string(phase),
            "status": run["status"] ?? .null,
            "duration": run["duration"] ?? .null,
            "output_truncated": .bool(false),
        ]
        let output = run["output"] ?? .null
        let text = output.text
        if text.utf8.count > outputLimit {
            payload["output"] = .string(String(decoding: text.utf8.prefix(outputLimit), as: UTF8.self) + "…[truncated]")
            payload["output_truncated"] = .bool(true)
            payload["output_bytes"] = .int(Int64(text.utf8.count))
        } else {
            payload["output"] = output
        }
        if let tolerance = run["tolerance_met"] { payload["tolerance_met"] = tolerance }
        if let lines = run["exception"]?.arrayValue,
           let last = lines.compactMap(\.stringValue).last(where: { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
            payload["error"] = .string(String(last.trimmingCharacters(in: .whitespacesAndNewlines).prefix(outputLimit)))
        }
        return .object(payload)
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        if case .array(let items) = self { items } else { nil }
    }
}
