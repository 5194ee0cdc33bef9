import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

/// A plan spec checked field by field and turned into calendar values. Every rejection is
/// INVALID_ARGUMENT naming the field; messages quote at most a clipped token of the input.
struct PlanDefinition: Sendable {
    static let maximumWindows = 50
    static let maximumBlackouts = 100
    static let maximumIntegrations = 50
    static let maximumLabels = 20
    static let maximumRetries: Int32 = 10

    let spec: SchedulesV1.PlanSpec
    let schedule: Schedule
    let availability: Availability
    let policy: FirePolicy
    let concurrency: ConcurrencyRule
    let retry: SchedulesV1.RetryPolicy

    /// - Parameter activeSince: when the plan (or this spec) took effect; a `now` schedule fires then.
    init(_ spec: SchedulesV1.PlanSpec, activeSince: Date) throws(RPCError) {
        try Check.name(spec.name, "spec.name")
        try Check.text(spec.description, "spec.description", max: 4096)
        try Check.reference(spec.experimentId, "spec.experiment_id", required: true)
        guard spec.experimentRevision >= 0 else { throw RPCError(.invalidArgument, "spec.experiment_revision must not be negative") }
        try Check.reference(spec.environmentId, "spec.environment_id", required: false)
        try Check.references(spec.integrationIds, "spec.integration_ids", maximum: Self.maximumIntegrations)
        try Check.runOptions(spec.runOptions)

        guard let kind = spec.schedule?.kind else { throw RPCError(.invalidArgument, "spec.schedule is required") }
        schedule = try Self.schedule(kind, activeSince: activeSince, field: "spec.schedule")
        availability = try Self.availability(windows: spec.windows, blackouts: spec.blackouts, prefix: "spec.")

        let missed: MissedFirePolicy
        switch spec.missedFirePolicy {
        case .unspecified, .skip: missed = .skip
        case .runOnce: missed = .runOnce
        case .unrecognized(let value): throw RPCError(.invalidArgument, "spec.missed_fire_policy \(value) is unknown")
        }
        policy = try Self.converting("spec.missed_fire_policy") { () throws(ScheduleError) in try FirePolicy(missedFire: missed) }

        let rule: ConcurrencyPolicy
        switch spec.concurrencyPolicy {
        // Unspecified is FORBID: a chaos experiment started on top of itself is rarely meant.
        case .unspecified, .forbid: rule = .forbid
        case .allow: rule = .allow
        case .replace: rule = .replace
        case .unrecognized(let value): throw RPCError(.invalidArgument, "spec.concurrency_policy \(value) is unknown")
        }
        let maximum = Int(spec.maxInFlight == 0 ? 1 : spec.maxInFlight)
        concurrency = try Self.converting("spec.max_in_flight") { () throws(ScheduleError) in try ConcurrencyRule(rule, maximumInFlight: maximum) }

        retry = spec.retry ?? .init()
        guard (0...Self.maximumRetries).contains(retry.maxRetries) else {
            throw RPCError(.invalidArgument, "spec.retry.max_retries must be between 0 and \(Self.maximumRetries)")
        }
        guard (Int64(0)...86_400_000_000).contains(retry.backoffUs) else {
            throw RPCError(.invalidArgument, "spec.retry.backoff_us must be between 0 and one day")
        }
        self.spec = spec
    }

    var planner: (Date) -> FirePlanner {
        { activeSince in FirePlanner(schedule: schedule, availability: availability, policy: policy, activeSince: activeSince) }
    }

    /// A one-shot schedule ends with its fire.
    var isOneShot: Bool {
        switch schedule {
        case .now, .once: true
        case .interval, .cron: false
        }
    }

    /// The calendar schedule of `kind`; errors name `field` (`spec.schedule` in a plan).
    static func schedule(_ kind: SchedulesV1.Schedule.Kind, activeSince: Date, field: String) throws(RPCError) -> Schedule {
        switch kind {
        case .now:
            return .now(requestedAt: activeSince)
        case .at(let once):
            guard once.atUs > 0, once.atUs < Check.latestMicros else {
                throw RPCError(.invalidArgument, "\(field).at.at_us must be a time after 1970 and before year 9999")
            }
            return .once(at: Date(micros: once.atUs))
        case .cron(let cron):
            do {
                return .cron(try CronSchedule(parsing: cron.expression, timeZoneIdentifier: cron.timeZone.isEmpty ? "UTC" : cron.timeZone))
            } catch {
                let part = error.code == .unknownTimeZone ? "time_zone" : "expression"
                throw RPCError(.invalidArgument, "\(field).cron.\(part): \(error.message)")
            }
        case .interval(let interval):
            guard interval.everyUs > 0, interval.startAtUs >= 0, interval.startAtUs < Check.latestMicros else {
                throw RPCError(.invalidArgument, "\(field).interval needs every_us > 0 and 0 <= start_at_us before year 9999")
            }
            let anchor = interval.startAtUs == 0 ? activeSince : Date(micros: interval.startAtUs)
            return try converting("\(field).interval") { () throws(ScheduleError) in
                .interval(try IntervalSchedule(every: .microseconds(interval.everyUs), anchor: anchor))
            }
        }
    }

    /// Windows and blackouts as calendar values; errors name `prefix` + `windows[i]` / `blackouts[i]`.
    static func availability(windows: [SchedulesV1.RunWindow], blackouts: [SchedulesV1.Blackout], prefix: String) throws(RPCError) -> Availability {
        guard windows.count <= Self.maximumWindows else { throw RPCError(.invalidArgument, "at most \(Self.maximumWindows) \(prefix)windows") }
        guard blackouts.count <= Self.maximumBlackouts else { throw RPCError(.invalidArgument, "at most \(Self.maximumBlackouts) \(prefix)blackouts") }
        var calendarWindows: [RunWindow] = []
        for (index, window) in windows.enumerated() { calendarWindows.append(try Self.window(window, "\(prefix)windows[\(index)]")) }
        var periods: [Blackout] = []
        for (index, blackout) in blackouts.enumerated() {
            let field = "\(prefix)blackouts[\(index)]"
            try Check.text(blackout.reason, "\(field).reason", max: 1000)
            guard blackout.startAtUs > 0, blackout.endAtUs > blackout.startAtUs, blackout.endAtUs < Check.latestMicros else {
                throw RPCError(.invalidArgument, "\(field) must have 0 < start_at_us < end_at_us before year 9999")
            }
            periods.append(try Self.converting(field) { () throws(ScheduleError) in
                try Blackout.period(from: Date(micros: blackout.startAtUs), to: Date(micros: blackout.endAtUs), reason: blackout.reason)
            })
        }
        return Availability(windows: calendarWindows, blackouts: periods)
    }

    private static func window(_ window: SchedulesV1.RunWindow, _ field: String) throws(RPCError) -> RunWindow {
        var days: Weekdays = window.days.isEmpty ? .everyDay : []
        for day in window.days {
            switch day {
            case .monday: days.insert(.monday)
            case .tuesday: days.insert(.tuesday)
            case .wednesday: days.insert(.wednesday)
            case .thursday: days.insert(.thursday)
            case .friday: days.insert(.friday)
            case .saturday: days.insert(.saturday)
            case .sunday: days.insert(.sunday)
            case .unspecified, .unrecognized: throw RPCError(.invalidArgument, "\(field).days holds an unknown day \(day.rawValue)")
            }
        }
        guard (0..<1440).contains(window.startMinute), (0..<1440).contains(window.endMinute) else {
            throw RPCError(.invalidArgument, "\(field): start_minute and end_minute must be in [0, 1440)")
        }
        return try converting(field) { () throws(ScheduleError) in
            try RunWindow(days: days,
                          from: LocalTime(hour: Int(window.startMinute) / 60, minute: Int(window.startMinute) % 60),
                          to: LocalTime(hour: Int(window.endMinute) / 60, minute: Int(window.endMinute) % 60),
                          timeZoneIdentifier: window.timeZone.isEmpty ? "UTC" : window.timeZone)
        }
    }

    /// A calendar error with the field it came from.
    private static func converting<T>(_ field: String, _ body: () throws(ScheduleError) -> T) throws(RPCError) -> T {
        do { return try body() } catch { throw RPCError(.invalidArgument, "\(field): \(error.message)") }
    }
}

/// Bounds on request text, checked before anything reaches SQL or a log.
extension Check {
    /// 9999-12-31 in microseconds: nothing is scheduled beyond.
    static let latestMicros: Int64 = 253_402_300_799_000_000

    /// Another service's id (experiment, environment, integration): 1-200 printable ASCII bytes.
    /// Whether it exists is the runner's question at dispatch (a deleted one ends the run FAILED).
    static func reference(_ value: String, _ field: String, required: Bool) throws(RPCError) {
        if value.isEmpty {
            if required { throw RPCError(.invalidArgument, "\(field) is required") }
            return
        }
        guard value.utf8.count <= 200, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw RPCError(.invalidArgument, "\(field) must be 1-200 printable ASCII characters")
        }
    }

    static func references(_ values: [String], _ field: String, maximum: Int) throws(RPCError) {
        guard values.count <= maximum else { throw RPCError(.invalidArgument, "at most \(maximum) \(field)") }
        for value in values { try reference(value, field, required: true) }
        guard Set(values).count == values.count else { throw RPCError(.invalidArgument, "\(field) has duplicates") }
    }

    static func runOptions(_ options: SchedulesV1.RunOptions?) throws(RPCError) {
        guard let options else { return }
        guard (Int64(0)...7 * 86_400_000_000).contains(options.maxDurationUs) else {
            throw RPCError(.invalidArgument, "run_options.max_duration_us must be between 0 and 7 days")
        }
        if case .unrecognized(let value) = options.rollbackStrategy {
            throw RPCError(.invalidArgument, "run_options.rollback_strategy \(value) is unknown")
        }
        try labels(options.runnerLabels, "run_options.runner_labels")
    }

    /// Label keys are 1-63 of `[A-Za-z0-9._/-]`, values at most 63 printable ASCII bytes.
    static func labels(_ labels: [String: String], _ field: String) throws(RPCError) {
        guard labels.count <= PlanDefinition.maximumLabels else { throw RPCError(.invalidArgument, "at most \(PlanDefinition.maximumLabels) \(field)") }
        for (key, value) in labels {
            guard (1...63).contains(key.utf8.count), key.utf8.allSatisfy(\.isLabelKeyByte) else {
                throw RPCError(.invalidArgument, "\(field) keys must be 1-63 letters, digits, '.', '_', '/' or '-'")
            }
            guard value.utf8.count <= 63, value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
                throw RPCError(.invalidArgument, "\(field)[\(key)] must be at most 63 printable ASCII bytes")
            }
        }
    }

    /// Runner ids and names: 1-128 of `[A-Za-z0-9._:-]` (host names fit).
    static func runnerID(_ value: String, _ field: String) throws(RPCError) {
        guard (1...128).contains(value.utf8.count), value.utf8.allSatisfy({ $0.isLabelKeyByte || $0 == UInt8(ascii: ":") }) else {
            throw RPCError(.invalidArgument, "\(field) must be 1-128 letters, digits, '.', '_', ':', '/' or '-'")
        }
    }
}

extension UInt8 {
    fileprivate var isLabelKeyByte: Bool {
        switch self {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "/"):
            true
        default:
            false
        }
    }
}

extension Date {
    init(micros: Int64) { self.init(timeIntervalSince1970: Double(micros) / 1_000_000) }

    var micros: Int64 { Int64((timeIntervalSince1970 * 1_000_000).rounded()) }
}
