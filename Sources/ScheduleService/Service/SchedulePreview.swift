import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// PreviewSchedule: the fires a plan with this schedule, windows and blackouts would have, found
/// by the planner the dispatcher uses (so the preview and the dispatcher never disagree).
enum SchedulePreview {
    static let maximumCount: Int32 = 50
    static let defaultCount: Int32 = 5
    /// The planner gives up on a stretch of 10,000 occurrences that all fall outside the windows
    /// and answers with a wake-up instant instead of a fire; after this many such stretches the
    /// preview ends with the fires found so far, bounding the work of one call.
    static let maximumClosedStretches = 3

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
        var fires: [SchedulesV1.PreviewScheduleResponse.Fire] = []
        var cursor: Date?
        var stretches = 0
        while fires.count < count, let occurrence = planner.nextOccurrence(after: cursor) {
            cursor = occurrence.scheduled
            if availability.isAllowed(at: occurrence.due) {
                fires.append(.init(atUs: occurrence.due.micros))
            } else {
                stretches += 1
                if stretches == maximumClosedStretches { break }
            }
        }
        var words = schedule.words
        if !request.windows.isEmpty { words += ", starting only inside its \(request.windows.count == 1 ? "window" : "windows")" }
        if !request.blackouts.isEmpty { words += request.windows.isEmpty ? ", outside its blackouts" : " and outside its blackouts" }
        return .init(fires: fires, description: words)
    }
}
