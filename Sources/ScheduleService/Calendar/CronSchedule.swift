public import Foundation

/// A cron expression read on the wall clock of one IANA time zone.
///
/// Daylight-saving rule (SCHEDULING.md): a job whose hour field is `*` (every hour) fires at every
/// matching wall-clock minute the zone actually shows — twice in a fall-back overlap, never in a
/// spring-forward gap — so it keeps its real-time rhythm. Any other job fires once per matching
/// wall-clock minute: in an overlap at the first occurrence only, and a time inside a gap fires
/// once, at the first instant after the gap.
public struct CronSchedule: Sendable, Hashable {
    public let expression: CronExpression
    public let timeZone: TimeZone
    let zone: ZoneRules

    /// How far ahead a search looks: one Gregorian cycle, in which every satisfiable expression
    /// matches at least once.
    static let horizonSeconds: Int64 = 146_097 * Civil.secondsPerDay

    public init(_ expression: CronExpression, timeZone: TimeZone) {
        self.expression = expression
        self.timeZone = timeZone
        zone = ZoneRules(timeZone: timeZone)
    }

    /// Parses both parts; the zone must be an IANA identifier known to this machine's tzdata.
    public init(parsing expression: String, timeZoneIdentifier: String) throws(ScheduleError) {
        let parsed: CronExpression
        do { parsed = try CronExpression(parsing: expression) } catch { throw ScheduleError(cron: error) }
        self.init(parsed, timeZone: try TimeZone.iana(timeZoneIdentifier))
    }

    /// The first fire strictly after `date`, or nil if there is none before year 10000.
    public func nextFire(after date: Date) -> Date? {
        guard date.timeIntervalSince1970.isFinite, date.timeIntervalSince1970 < Double(Civil.lastSecond) else { return nil }
        let after = Int64(date.timeIntervalSince1970.rounded(.down))
        return nextFire(afterSecond: max(after, -Civil.lastSecond)).map { Date(timeIntervalSince1970: Double($0)) }
    }

    /// The fires after `date`, in order (lazily; ends when there are no more).
    public func fires(after date: Date) -> UnfoldSequence<Date, Date> {
        sequence(state: date) { cursor in
            guard let next = nextFire(after: cursor) else { return nil }
            cursor = next
            return next
        }
    }

    /// Walks the zone's constant-offset segments. In each one, wall time is instant + offset, so
    /// the expression is searched in wall time directly; the segment's end is checked for a
    /// spring-forward gap that swallowed a match.
    func nextFire(afterSecond after: Int64) -> Int64? {
        guard expression.isSatisfiable else { return nil }
        let horizon = min(after + Self.horizonSeconds, Civil.lastSecond)
        let hourly = expression.runsEveryHour
        var segmentStart = after
        var strict = true
        while segmentStart < horizon {
            let offset = zone.offset(at: segmentStart)
            let transition = zone.nextTransition(after: segmentStart)
            let segmentEnd = min(transition ?? horizon, horizon)
            // First candidate minute: strictly after `after`, or from the segment's first instant.
            var cursor = strict
                ? Civil.floorDiv(segmentStart + offset, 60) * 60 + 60
                : Civil.floorDiv(segmentStart + offset + 59, 60) * 60
            while let wall = expression.nextMatch(atOrAfter: cursor, before: segmentEnd + offset) {
                let instant = wall - offset
                if hourly || zone.isFirstOccurrence(wall: wall, instant: instant) { return instant }
                cursor = wall + 60  // second copy of an overlapped reading: already fired
            }
            guard let transition, transition < horizon else { return nil }
            let newOffset = zone.offset(at: transition)
            if !hourly, newOffset > offset,
               expression.nextMatch(atOrAfter: max(cursor, transition + offset), before: transition + newOffset) != nil {
                return transition  // a reading in the gap fires once, as soon as the gap is over
            }
            segmentStart = transition
            strict = false
        }
        return nil
    }
}

extension TimeZone {
    /// A zone by IANA identifier only (`Europe/Paris`, `UTC`). Foundation also accepts names
    /// such as "GMT+2" and renames them; a fixed offset has no daylight-saving rules and would
    /// silently change what a plan means, so only identifiers Foundation keeps as given pass.
    static func iana(_ identifier: String) throws(ScheduleError) -> TimeZone {
        let allowed = identifier.utf8.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || "/_+-".utf8.contains($0)
        }
        guard allowed, !identifier.isEmpty, identifier.utf8.count <= 64 else {
            throw ScheduleError(.unknownTimeZone, "time zone is not an IANA identifier (letters, digits, / _ + -, at most 64)")
        }
        guard let zone = TimeZone(identifier: identifier), zone.identifier == identifier || identifier == "UTC" else {
            throw ScheduleError(.unknownTimeZone, "unknown IANA time zone \"\(identifier)\"")
        }
        return zone
    }
}
