import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// PreviewSchedule: the fires a plan with this schedule, windows and blackouts would have, found
/// by the planner the dispatcher uses (so the preview and the dispatcher never disagree).
enum SchedulePreview {
    static let maximumCount: Int32 = 50
    static let defaultCount: Int32 = 5
    /// Occurrences looked at in one call, in or out of the windows: bounds the work of a schedule
    /// whose windows let few occurrences start (an every-minute cron in a one-minute weekly window).
    static let maximumSteps = 50_000

    static func answer(_ request: SchedulesV1.PreviewScheduleRequest, now: Date) throws(RPCError) -> SchedulesV1.PreviewScheduleResponse {
        guard (0...maximumCount).contains(request.count) else {
            throw RPCError(.invalidArgument, "count: must be between 1 and \(maximumCount) (0 = \(defaultCount)), got \(request.count)")
        }
        guard (0..<Check.latestMicros).contains(request.afterUs) else {
            throw RPCError(.invalidArgument, "after_us: must be 0 (now) or a time after 1970 and before year 9999")
        }
        guard let kind = request.schedule?.kind else { throw RPCError(.invalidArgument, "schedule: is required") }
        let after = request.afterUs == 0 ? now : Date(micros: request.afterUs)
        let schedule = try PlanDefinition.schedule(kind, activeSince: after, field: "schedule")
        let availability = try PlanDefinition.availability(windows: request.windows, blackouts: request.blackouts, prefix: "")
        guard let policy = try? FirePolicy() else { throw RPCError(.internalError, "no default fire policy") }
        let planner = FirePlanner(schedule: schedule, availability: availability, policy: policy, activeSince: after)

        let count = Int(request.count == 0 ? defaultCount : request.count)
        // `FirePlanner.nextOccurrence`'s walk, with one bound for the whole call.
        var fires: [SchedulesV1.PreviewScheduleResponse.Fire] = []
        var cursor = after.addingTimeInterval(-1e-6)
        var closed: Date?
        for _ in 0..<maximumSteps {
            guard fires.count < count, let scheduled = schedule.nextFire(after: cursor) else { break }
            cursor = scheduled
            if let due = planner.due(scheduled, closed: &closed) {
                fires.append(.init(atUs: due.micros))
            } else if closed == .distantFuture {
                break  // no window ever opens again
            }
        }
        var words = schedule.words
        if !request.windows.isEmpty { words += ", starting only inside its \(request.windows.count == 1 ? "window" : "windows")" }
        if !request.blackouts.isEmpty { words += request.windows.isEmpty ? ", outside its blackouts" : " and outside its blackouts" }
        return .init(fires: fires, description: words)
    }
}
