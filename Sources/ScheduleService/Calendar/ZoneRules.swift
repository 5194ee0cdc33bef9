import Foundation

/// Where one wall-clock reading falls on the real timeline of a zone.
enum WallResolution: Equatable {
    /// The reading occurs exactly once.
    case unique(Int64)
    /// The reading occurs twice (fall-back overlap): before and after the transition.
    case repeated(first: Int64, second: Int64)
    /// The reading never occurs (spring-forward gap); `transition` is the first instant after it.
    case skipped(transition: Int64)
}

/// The offsets and transitions of one IANA zone, in whole seconds since the Unix epoch. The only
/// type that asks Foundation about a zone, so the DST rules of every other type are exact
/// arithmetic on top of two questions: "which offset applies at this instant" and "when does it
/// next change".
struct ZoneRules: Sendable, Hashable {
    let timeZone: TimeZone

    func offset(at instant: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))))
    }

    func wall(at instant: Int64) -> Int64 { instant + offset(at: instant) }

    /// The next instant after `instant` at which the UTC offset changes. Foundation also reports
    /// changes that keep the total offset (a zone renaming its standard time); those are skipped.
    func nextTransition(after instant: Int64) -> Int64? {
        var cursor = instant
        for _ in 0..<64 {
            guard let next = timeZone.nextDaylightSavingTimeTransition(
                after: Date(timeIntervalSince1970: Double(cursor)))
            else { return nil }
            let t = Int64(next.timeIntervalSince1970.rounded(.up))
            guard t > cursor else { return nil }
            if offset(at: t - 1) != offset(at: t) { return t }
            cursor = t
        }
        return nil
    }

    /// Resolves a wall-clock reading. Assumes at most one transition within a day of it, which
    /// holds for every zone in tzdata since 1970 except a handful of one-off corrections.
    func resolve(wall: Int64) -> WallResolution {
        let before = offset(at: wall - Civil.secondsPerDay)
        let after = offset(at: wall + Civil.secondsPerDay)
        let early = wall - before
        let late = wall - after
        let earlyValid = offset(at: early) == before
        let lateValid = offset(at: late) == after
        switch (earlyValid, lateValid) {
        case (true, true) where early != late: return .repeated(first: min(early, late), second: max(early, late))
        case (true, _): return .unique(early)
        case (false, true): return .unique(late)
        case (false, false):
            // In the gap: the reading is skipped; the clock jumps over it at the transition.
            let from = min(early, late) - 1
            return .skipped(transition: nextTransition(after: from) ?? max(early, late))
        }
    }

    /// Whether `instant` (with wall reading `wall`) is the first time the zone shows that reading.
    func isFirstOccurrence(wall: Int64, instant: Int64) -> Bool {
        let earlierOffset = offset(at: instant - Civil.secondsPerDay)
        let earlier = wall - earlierOffset
        return !(earlier < instant && offset(at: earlier) == earlierOffset)
    }
}
