/// A schedule, window, blackout or policy that cannot be accepted. For cron text the
/// `CronParseError` with field and token is kept in `cron`.
public struct ScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        public static let invalidCron = Code("invalid-cron")
        public static let unknownTimeZone = Code("unknown-time-zone")
        public static let invalidInterval = Code("invalid-interval")
        public static let invalidLocalTime = Code("invalid-local-time")
        public static let invalidWindow = Code("invalid-window")
        public static let invalidBlackout = Code("invalid-blackout")
        public static let invalidPolicy = Code("invalid-policy")

        public var description: String { name }
    }

    public let code: Code
    public let message: String
    public let cron: CronParseError?

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
        cron = nil
    }

    init(cron: CronParseError) {
        code = .invalidCron
        message = "invalid cron expression: \(cron)"
        self.cron = cron
    }

    public var description: String { message }
}
