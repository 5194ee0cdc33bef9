import FaultlineProto
import Foundation

/// The plan form of the console as posted: every field a string, keyed by the input's name (and
/// id). It turns into a `PlanSpec` with field errors keyed the same way, and back from a plan to
/// fill the edit form. Wall-clock inputs (`at`, `interval_start`, blackouts) are read in the
/// form's time zone; windows carry a zone of their own (empty = the form's).
struct PlanForm: ConsoleForm {
    /// Window and blackout rows the form shows beyond those a plan already has.
    static let spareRows = 2
    /// Rows read from a post, whatever it claims.
    static let maximumRows = 20
    static let days: [(key: String, label: String, day: SchedulesV1.DayOfWeek)] = [
        ("mon", "Mon", .monday), ("tue", "Tue", .tuesday), ("wed", "Wed", .wednesday), ("thu", "Thu", .thursday),
        ("fri", "Fri", .friday), ("sat", "Sat", .saturday), ("sun", "Sun", .sunday),
    ]

    var values: [String: String]
    var csrf: String? { values["csrf"] }

    subscript(_ key: String) -> String { values[key] ?? "" }

    init(values: [String: String] = [:]) { self.values = values }

    init(from decoder: any Decoder) throws {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let container = try decoder.container(keyedBy: Key.self)
        var values: [String: String] = [:]
        for key in container.allKeys.prefix(1_000) {
            if let value = try? container.decode(String.self, forKey: key) { values[key.stringValue] = value }
        }
        self.values = values
    }

    /// Rows of windows (or blackouts) to show: those used, then spare blank ones.
    func rows(_ prefix: String) -> Int {
        let used = (0..<Self.maximumRows).last { row in values.keys.contains { $0.hasPrefix("\(prefix)\(row)_") && !(values[$0] ?? "").isEmpty } }
        return min((used.map { $0 + 1 } ?? 0) + Self.spareRows, Self.maximumRows)
    }

    var timeZone: String { self["time_zone"].trimmingCharacters(in: .whitespaces) }

    // MARK: form → spec

    /// The spec and where its rows came from (spec index → form row), or the fields in error.
    struct Parsed {
        var spec = SchedulesV1.PlanSpec()
        var windowRows: [Int] = []
        var blackoutRows: [Int] = []
        var errors: [String: String] = [:]
    }

    func parse() -> Parsed {
        var parsed = Parsed()
        var spec = SchedulesV1.PlanSpec()
        spec.name = self["name"].trimmingCharacters(in: .whitespaces)
        if spec.name.isEmpty { parsed.errors["name"] = "Give the plan a name." }
        spec.description = self["description"].replacingOccurrences(of: "\r\n", with: "\n")
        spec.experimentId = self["experiment_id"]
        if spec.experimentId.isEmpty { parsed.errors["experiment_id"] = "Choose an experiment." }
        spec.environmentId = self["environment_id"]
        spec.integrationIds = PlanIntegrations.chosen(self)

        let zone = timeZone
        let localZone = zone.isEmpty ? TimeZone(identifier: "UTC") : TimeZone(identifier: zone)
        func instant(_ key: String, required: Bool) -> Int64? {
            let text = self[key].trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else {
                if required { parsed.errors[key] = "Enter a date and time." }
                return nil
            }
            guard let localZone else {
                parsed.errors["time_zone"] = "Unknown time zone; use an IANA name such as Europe/Paris."
                return nil
            }
            guard let date = Self.localDate(text, in: localZone) else {
                parsed.errors[key] = "Enter a date and time as YYYY-MM-DDTHH:MM."
                return nil
            }
            return Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        }

        switch self["kind"] {
        case "cron":
            spec.schedule = .init(kind: .cron(.init(expression: self["cron_expression"].trimmingCharacters(in: .whitespaces), timeZone: zone)))
        case "interval":
            let minutes = self["interval_minutes"].trimmingCharacters(in: .whitespaces)
            if let every = Int64(minutes), (1...5_270_400).contains(every) {
                spec.schedule = .init(kind: .interval(.init(everyUs: every * 60_000_000, startAtUs: instant("interval_start", required: false) ?? 0)))
            } else {
                parsed.errors["interval_minutes"] = "Enter whole minutes, at least 1."
            }
        case "at":
            if let at = instant("at", required: true) { spec.schedule = .init(kind: .at(.init(atUs: at))) }
        case "now":
            spec.schedule = .init(kind: .now(.init()))
        default:
            parsed.errors["kind"] = "Choose when the plan runs."
        }

        for row in 0..<rows("w") {
            let key = "w\(row)_"
            let days = Self.days.filter { self[key + $0.key] == "on" }.map(\.day)
            let start = self[key + "start"], end = self[key + "end"], windowZone = self[key + "zone"].trimmingCharacters(in: .whitespaces)
            guard !start.isEmpty || !end.isEmpty || !days.isEmpty || !windowZone.isEmpty else { continue }
            guard let from = Self.minutes(start), let to = Self.minutes(end) else {
                parsed.errors["w\(row)"] = "Give the window a start and an end time (HH:MM)."
                continue
            }
            parsed.windowRows.append(row)
            spec.windows.append(.init(days: days, startMinute: from, endMinute: to, timeZone: windowZone.isEmpty ? zone : windowZone))
        }
        for row in 0..<rows("b") {
            let key = "b\(row)_"
            guard !self[key + "start"].isEmpty || !self[key + "end"].isEmpty || !self[key + "reason"].isEmpty else { continue }
            let start = instant(key + "start", required: true), end = instant(key + "end", required: true)
            guard let start, let end else {
                parsed.errors["b\(row)"] = parsed.errors[key + "start"] ?? parsed.errors[key + "end"] ?? "Give the blackout a start and an end."
                continue
            }
            parsed.blackoutRows.append(row)
            spec.blackouts.append(.init(startAtUs: start, endAtUs: end, reason: self[key + "reason"]))
        }

        switch self["concurrency"] {
        case "allow": spec.concurrencyPolicy = .allow
        case "replace": spec.concurrencyPolicy = .replace
        default: spec.concurrencyPolicy = .forbid
        }
        spec.maxInFlight = number("max_in_flight", 0...1_000, &parsed.errors) ?? 0
        spec.missedFirePolicy = self["missed_fire"] == "run_once" ? .runOnce : .skip
        var retry = SchedulesV1.RetryPolicy()
        retry.maxRetries = number("max_retries", 0...10, &parsed.errors) ?? 0
        retry.backoffUs = Int64(number("retry_backoff_seconds", 0...86_400, &parsed.errors) ?? 0) * 1_000_000
        spec.retry = retry
        var options = SchedulesV1.RunOptions()
        options.maxDurationUs = Int64(number("max_duration_minutes", 0...10_080, &parsed.errors) ?? 0) * 60_000_000
        options.rollbackStrategy = switch self["rollback_strategy"] {
        case "always": .always
        case "never": .never
        case "deviated": .deviated
        default: .unspecified
        }
        for item in self["runner_labels"].split(whereSeparator: { $0 == "," || $0.isNewline }) {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[0].isEmpty else {
                parsed.errors["runner_labels"] = "Write labels as key=value, separated by commas."
                break
            }
            options.runnerLabels[pair[0]] = pair[1]
        }
        spec.runOptions = options
        parsed.spec = spec
        return parsed
    }

    private func number(_ key: String, _ range: ClosedRange<Int32>, _ errors: inout [String: String]) -> Int32? {
        let text = self[key].trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        guard let value = Int32(text), range.contains(value) else {
            errors[key] = "Enter a whole number from \(range.lowerBound) to \(range.upperBound)."
            return nil
        }
        return value
    }

    /// `HH:MM` (what a time input sends) as minutes after midnight.
    static func minutes(_ text: String) -> Int32? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let h = Int32(parts[0]), let m = Int32(parts[1]),
              (0...23).contains(h), (0...59).contains(m) else { return nil }
        return h * 60 + m
    }

    /// A datetime-local value (`YYYY-MM-DDTHH:MM[:SS]`) read on `zone`'s wall clock.
    static func localDate(_ text: String, in zone: TimeZone) -> Date? {
        guard text.utf8.count <= 19 else { return nil }
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.calendar = Calendar(identifier: .gregorian)
            formatter.timeZone = zone
            formatter.isLenient = false
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    static func localText(_ us: Int64, in zone: TimeZone) -> String {
        guard us > 0 else { return "" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(us) / 1_000_000))
    }

    // MARK: plan → form

    /// The form filled from a plan's spec (its local times in the cron zone, else UTC).
    init(spec: SchedulesV1.PlanSpec, version: Int64) {
        var v: [String: String] = ["name": spec.name, "description": spec.description, "experiment_id": spec.experimentId,
                                   "environment_id": spec.environmentId, "expected_version": String(version)]
        var zoneName = ""
        switch spec.schedule?.kind {
        case .cron(let cron)?:
            v["kind"] = "cron"; v["cron_expression"] = cron.expression; zoneName = cron.timeZone
        case .interval(let interval)?:
            v["kind"] = "interval"; v["interval_minutes"] = String(interval.everyUs / 60_000_000)
        case .at?: v["kind"] = "at"
        case .now?: v["kind"] = "now"
        case nil: break
        }
        v["time_zone"] = zoneName
        let zone = TimeZone(identifier: zoneName.isEmpty ? "UTC" : zoneName) ?? TimeZone(identifier: "UTC")!
        if case .interval(let interval)? = spec.schedule?.kind { v["interval_start"] = Self.localText(interval.startAtUs, in: zone) }
        if case .at(let once)? = spec.schedule?.kind { v["at"] = Self.localText(once.atUs, in: zone) }
        for (row, window) in spec.windows.enumerated() {
            for day in Self.days where window.days.contains(day.day) { v["w\(row)_\(day.key)"] = "on" }
            v["w\(row)_start"] = Self.clock(window.startMinute)
            v["w\(row)_end"] = Self.clock(window.endMinute)
            if window.timeZone != zoneName { v["w\(row)_zone"] = window.timeZone.isEmpty ? "UTC" : window.timeZone }
        }
        for (row, blackout) in spec.blackouts.enumerated() {
            v["b\(row)_start"] = Self.localText(blackout.startAtUs, in: zone)
            v["b\(row)_end"] = Self.localText(blackout.endAtUs, in: zone)
            v["b\(row)_reason"] = blackout.reason
        }
        v["concurrency"] = spec.concurrencyPolicy == .allow ? "allow" : spec.concurrencyPolicy == .replace ? "replace" : "forbid"
        v["max_in_flight"] = spec.maxInFlight == 0 ? "" : String(spec.maxInFlight)
        v["missed_fire"] = spec.missedFirePolicy == .runOnce ? "run_once" : "skip"
        v["max_retries"] = String(spec.retry?.maxRetries ?? 0)
        v["retry_backoff_seconds"] = String((spec.retry?.backoffUs ?? 0) / 1_000_000)
        v["max_duration_minutes"] = String((spec.runOptions?.maxDurationUs ?? 0) / 60_000_000)
        v["rollback_strategy"] = switch spec.runOptions?.rollbackStrategy {
        case .always?: "always"
        case .never?: "never"
        case .deviated?: "deviated"
        default: ""
        }
        v["runner_labels"] = (spec.runOptions?.runnerLabels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        v.merge(PlanIntegrations.formValues(spec.integrationIds)) { a, _ in a }
        self.init(values: v)
    }

    static func clock(_ minute: Int32) -> String {
        String(format: "%02d:%02d", minute / 60, minute % 60)
    }

    // MARK: service errors → fields

    /// A service message for people, shown at the field it names: without the field's path.
    static func humane(_ message: String) -> String {
        guard let colon = message.range(of: ": "), !message[..<colon.lowerBound].contains(" ") else { return message }
        let rest = message[colon.upperBound...]
        return rest.prefix(1).uppercased() + rest.dropFirst()
    }

    /// The form field an INVALID_ARGUMENT message names (its leading path, with or without
    /// `spec.`), or nil for the form as a whole.
    static func field(of message: String, parsed: Parsed) -> String? {
        var path = message.prefix { $0 != ":" && $0 != " " }
        if path.hasPrefix("spec.") { path = path.dropFirst(5) }
        func row(_ prefix: String, _ rows: [Int], _ name: String) -> String? {
            guard path.hasPrefix(prefix + "["), let close = path.firstIndex(of: "]"),
                  let index = Int(path[path.index(path.startIndex, offsetBy: prefix.count + 1)..<close]), rows.indices.contains(index) else { return nil }
            return "\(name)\(rows[index])"
        }
        if let window = row("windows", parsed.windowRows, "w") { return window }
        if let blackout = row("blackouts", parsed.blackoutRows, "b") { return blackout }
        let fields: [(String, String)] = [
            ("schedule.cron.expression", "cron_expression"), ("schedule.cron.time_zone", "time_zone"),
            ("schedule.interval", "interval_minutes"), ("schedule.at", "at"), ("schedule", "kind"),
            ("name", "name"), ("description", "description"), ("experiment_id", "experiment_id"), ("environment_id", "environment_id"),
            ("integration_id", PlanIntegrations.field),
            ("max_in_flight", "max_in_flight"), ("retry.max_retries", "max_retries"), ("retry.backoff_us", "retry_backoff_seconds"),
            ("run_options.max_duration_us", "max_duration_minutes"), ("run_options.runner_labels", "runner_labels"),
            ("run_options", "max_duration_minutes"),
        ]
        return fields.first { path.hasPrefix($0.0) }?.1
    }
}
