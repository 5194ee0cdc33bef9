/// The facts of a Chaos Toolkit journal that decide an outcome and a score
/// (chaostoolkit-lib 1.45; journals of lib 0.x have no `deviated`, read as false).
public struct JournalSummary: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case completed, failed, aborted, interrupted
    }

    /// Counts of the activities of one phase (method or rollbacks).
    public struct Tally: Sendable, Hashable {
        public var succeeded = 0
        /// Marked failed by Chaos Toolkit, or an *action* whose process exited non-zero or whose
        /// HTTP call answered 4xx/5xx (Chaos Toolkit calls those "succeeded": the fault was then
        /// not injected, or the rollback did not restore anything). Probes are left as reported:
        /// their output is the measurement.
        public var failed = 0
        /// No status: cut off by an interruption, or an error other than ActivityFailed.
        public var unfinished = 0
        /// Names of the failed and unfinished activities, in run order.
        public var problems: [String] = []

        public var total: Int { succeeded + failed + unfinished }
        /// Share that succeeded; nil when nothing ran.
        public var successRatio: Double? { total == 0 ? nil : Double(succeeded) / Double(total) }
    }

    public let status: Status
    public let deviated: Bool
    /// `steady_state_met` before the method; nil when there is no hypothesis or it did not run.
    public let steadyStateBefore: Bool?
    /// `steady_state_met` after the method; nil when it did not run.
    public let steadyStateAfter: Bool?
    /// False if any check during the method was not met; nil when there were none.
    public let steadyStateDuring: Bool?
    public let method: Tally
    public let rollbacks: Tally
    /// `interruption.name` ("SIGTERM", "SIGINT") when a signal interrupted the run.
    public let interruptionSignal: String?

    /// Reads a journal; nil when it is not a journal (not an object, or no known `status`).
    public init?(journal: JSONValue) {
        guard let status = journal["status"]?.stringValue.flatMap(Status.init(rawValue:)) else { return nil }
        self.status = status
        self.deviated = journal["deviated"]?.boolValue ?? false
        let states = journal["steady_states"]
        self.steadyStateBefore = states?["before"]?["steady_state_met"]?.boolValue
        self.steadyStateAfter = states?["after"]?["steady_state_met"]?.boolValue
        let during = (states?["during"]?.arrayValue ?? []).compactMap { $0["steady_state_met"]?.boolValue }
        self.steadyStateDuring = during.isEmpty ? nil : during.allSatisfy { $0 }
        self.method = Self.tally(journal["run"])
        self.rollbacks = Self.tally(journal["rollbacks"])
        self.interruptionSignal = journal["interruption"]?["name"]?.stringValue
    }

    private static func tally(_ runs: JSONValue?) -> Tally {
        var tally = Tally()
        for run in runs?.arrayValue ?? [] {
            let name = run["activity"]?["name"]?.stringValue ?? "?"
            switch run["status"]?.stringValue {
            case "succeeded" where actionDidNotTakeEffect(run):
                tally.failed += 1
                tally.problems.append(name)
            case "succeeded":
                tally.succeeded += 1
            case "failed":
                tally.failed += 1
                tally.problems.append(name)
            default:
                tally.unfinished += 1
                tally.problems.append(name)
            }
        }
        return tally
    }

    private static func actionDidNotTakeEffect(_ run: JSONValue) -> Bool {
        guard run["activity"]?["type"]?.stringValue == "action",
            let status = run["output"]?["status"]?.numberValue?.intValue
        else { return false }
        switch run["activity"]?["provider"]?["type"]?.stringValue {
        case "process": return status != 0
        case "http": return status >= 400
        default: return false
        }
    }
}
