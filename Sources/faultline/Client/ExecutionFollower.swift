import Foundation
import NIOHTTP1
import NIOCore

/// How an execution ended, as a process exit code: one code per outcome so scripts can tell a
/// deviation from a failure without parsing output. Listed in `faultline run --help`.
enum ExecutionOutcome: String, CaseIterable {
    case completed, deviated, failed, aborted, interrupted, lost
    case timedOut = "timed_out"

    var exitCode: Int32 {
        switch self {
        case .completed: 0
        case .deviated: 10
        case .failed: 11
        case .aborted: 12
        case .interrupted: 13
        case .timedOut: 14
        case .lost: 15
        }
    }

    static let help = """
        Exit codes: 0 completed, 10 deviated, 11 failed, 12 aborted, 13 interrupted, 14 timed out, \
        15 lost; 64 bad usage, 65 refused by the Gateway, 69 Gateway unreachable, 74 local file or \
        process error, 76 unexpected answer from the Gateway.
        """
}

/// Follows one execution over the Gateway's SSE stream until it ends: prints each event (or,
/// with `--json`, each SSE event as one JSON line), survives dropped connections and services
/// restarting by reconnecting with `Last-Event-ID` (so nothing is shown twice or skipped), and
/// returns the final execution.
struct ExecutionFollower {
    let client: GatewayClient
    let executionID: String
    let json: Bool
    /// Consecutive failed attempts before giving up; reset by every event received.
    var maximumAttempts = 30

    func follow() async throws(ClientError) -> JSON {
        var lastEventID: String?
        var failures = 0
        var backoff = Duration.milliseconds(250)
        var lastStatus: String?
        let path = "/api/v1/executions/\(GatewayClient.segment(executionID))"
        while true {
            do {
                let headers = lastEventID.map { [("Last-Event-ID", $0)] } ?? []
                let ended = try await client.stream(path + "/events/stream", headers: headers) { reader in
                    var parser = ServerSentEventParser()
                    while let chunk = try await reader.next() {
                        for event in try parser.feed(chunk) {
                            failures = 0
                            if let id = event.id { lastEventID = id }
                            switch event.event {
                            case "end": return true
                            case "error":
                                // The Gateway lost its upstream (a service restarting): reconnect.
                                throw ClientError(.connection, "stream interrupted: \(event.data)")
                            default: show(event, lastStatus: &lastStatus)
                            }
                        }
                    }
                    return false
                }
                if ended {
                    let execution = try JSON(object: try await client.send(.GET, path).body)
                    if ExecutionOutcome(rawValue: execution["status"].text) != nil { return execution }
                }
            } catch let error where error.kind == .connection || error.kind == .timeout || error.httpStatus.map({ $0 >= 502 }) == true {
                failures += 1
                guard failures < maximumAttempts else { throw error }
                if !json { Output.note("… \(error.message); reconnecting") }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
                continue
            }
            backoff = .milliseconds(250)
        }
    }

    private func show(_ event: ServerSentEvent, lastStatus: inout String?) {
        if json {
            // Re-encoded: a data field may span lines, and one event must stay one line.
            let data = (try? JSONDecoder().decode(JSON.self, from: Data(event.data.utf8))) ?? .string(event.data)
            let line: JSON = .object(["event": .string(event.event), "id": event.id.map(JSON.string) ?? .null, "data": data])
            Output.line(line.compact)
            return
        }
        guard let data = try? JSON(object: Data(event.data.utf8)) else { return }
        switch event.event {
        case "execution":
            let status = data["status"].text
            if status != lastStatus { Output.line("execution \(data["id"].text): \(status)") }
            lastStatus = status
        case "event":
            if let line = Self.describe(type: data["type"].text, payload: data["payload"] ?? .null) { Output.line(line) }
        default:
            break
        }
    }

    /// One line per control event (controls/chaosfaultline/PROTOCOL.md §4), indented by nesting.
    static func describe(type: String, payload: JSON) -> String? {
        let name = payload["name"].text
        switch type {
        case "experiment-before": return "experiment: \(payload["title"].text)"
        case "hypothesis-before": return "  steady-state hypothesis (\(payload["phase"].text)): \(payload["title"].text)"
        case "hypothesis-after": return "  steady state met: \(payload["steady_state_met"].text)"
        case "method-before": return "  method: \(payload["activities"].text) activities"
        case "rollbacks-before": return "  rollbacks: \(payload["activities"].text) activities"
        case "activity-before": return "    \(payload["activity_type"].text) \(name) ..."
        case "activity-after":
            var line = "    \(payload["activity_type"].text) \(name): \(payload["status"].text)"
            if case .number(let seconds)? = payload["duration"] { line += String(format: " (%.2fs)", seconds) }
            if let met = payload["tolerance_met"]?.bool { line += met ? ", tolerance met" : ", tolerance NOT met" }
            if let error = payload["error"]?.string { line += " — \(error)" }
            return line
        case "paused": return "  paused: \(payload["reason"].text)"
        case "resumed": return "  resumed (\(payload["outcome"].text))"
        case "terminate-requested": return "  terminate requested: \(payload["reason"].text)"
        case "experiment-after":
            return "experiment ended: \(payload["status"].text)" + (payload["deviated"]?.bool == true ? ", deviated" : "")
        default: return nil
        }
    }
}
