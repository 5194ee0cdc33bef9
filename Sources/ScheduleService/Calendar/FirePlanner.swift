public import Foundation

/// What happens to occurrences that came due while no dispatcher was running.
public enum MissedFirePolicy: String, Sendable, Hashable, CaseIterable {
    /// Drop them; only occurrences that are not late (or still to come) run.
    case skip
    /// Run once now for all of them together, then continue with the schedule.
    case runOnce
}

/// What happens to an occurrence that falls outside the plan's windows or inside a blackout.
public enum OutsideWindowPolicy: String, Sendable, Hashable, CaseIterable {
    /// Drop it.
    case skip
    /// Run it at the next allowed instant; all occurrences postponed to the same instant run once.
    case postpone
}

public struct FirePolicy: Sendable, Hashable {
    public var missedFire: MissedFirePolicy
    public var outsideWindow: OutsideWindowPolicy
    /// How late an occurrence may start and still count as on time (Kubernetes'
    /// `startingDeadlineSeconds`); anything later is missed.
    public let lateness: Duration

    public init(missedFire: MissedFirePolicy = .skip, outsideWindow: OutsideWindowPolicy = .skip,
                lateness: Duration = .seconds(60)) throws(ScheduleError) {
        guard lateness >= .seconds(1), lateness <= .seconds(86_400) else {
            throw ScheduleError(.invalidPolicy, "lateness must be between 1 second and 1 day, got \(lateness)")
        }
        self.missedFire = missedFire
        self.outsideWindow = outsideWindow
        self.lateness = lateness
    }

    var latenessSeconds: Double {
        let (s, atto) = lateness.components
        return Double(s) + Double(atto) / 1e18
    }
}

/// One occurrence of a schedule: when it was planned, and when it may actually run (later than
/// planned when postponed to a window).
public struct Occurrence: Sendable, Hashable {
    public let scheduled: Date
    public let due: Date

    public init(scheduled: Date, due: Date) {
        self.scheduled = scheduled
        self.due = due
    }
}

/// One run to start now.
public struct Fire: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case onTime
        /// Planned outside the windows and postponed to their opening.
        case postponed
        /// A missed occurrence, run late under `MissedFirePolicy.runOnce`.
        case catchUp
    }

    /// The scheduled instant this run stands for: the key that makes dispatch exactly-once.
    public let occurrence: Date
    public let kind: Kind

    public init(occurrence: Date, kind: Kind) {
        self.occurrence = occurrence
        self.kind = kind
    }
}

/// The outcome of one look at a plan.
public struct FireDecision: Sendable, Hashable {
    /// The run to start now, if any.
    public let fire: Fire?
    /// Every occurrence scheduled at or before this instant is handled; store it and pass it to
    /// the next `decide`. Nil when nothing has been handled yet.
    public let handledThrough: Date?
    /// The next occurrence to wake up for; nil when the schedule is over.
    public let next: Occurrence?
    /// Occurrences dropped because they were late (or folded into a catch-up run).
    public let missed: Int
    /// Occurrences dropped because they fell outside the windows (policy `skip`).
    public let skippedOutsideWindow: Int
    /// Every occurrence this decision consumed without a run of its own, each with its cause:
    /// the latest `SkipLedger.limit` of them, oldest first.
    public var skips: [SkippedOccurrence] = []
    /// The earlier ones, summed up (nil when all are in `skips`).
    public var unlisted: SkipSummary?
}

/// The pure heart of dispatch for one plan: given what was handled so far and the time now,
/// which run (if any) starts, what becomes handled, and when to look again. Any number of
/// replicas reach the same decision from the same inputs; the database arbitrates who acts.
public struct FirePlanner: Sendable, Hashable {
    public let schedule: Schedule
    public let availability: Availability
    public let policy: FirePolicy
    /// Occurrences before this instant (the plan's creation or resumption) never run.
    public let activeSince: Date

    /// Walk bound for long downtimes; beyond it the walk jumps close to `now` (see `decide`).
    static let walkLimit = 10_000

    public init(schedule: Schedule, availability: Availability = .always, policy: FirePolicy, activeSince: Date) {
        self.schedule = schedule
        self.availability = availability
        self.policy = policy
        self.activeSince = activeSince
    }

    /// When the scheduled instant `s` may run: itself, the next allowed instant, or never.
    /// `closed` remembers the last closed stretch seen (its first allowed instant): every later
    /// occurrence before that instant is closed too, so a walk through a long closed stretch
    /// asks the availability once rather than once per occurrence.
    func due(_ scheduled: Date, closed: inout Date?) -> Date? {
        if let reopening = closed, scheduled < reopening {
            return policy.outsideWindow == .postpone && reopening != .distantFuture ? reopening : nil
        }
        if availability.isAllowed(at: scheduled) { return scheduled }
        // Never allowed again: remembered as distantFuture so the walk stops asking.
        let reopening = availability.nextAllowed(from: scheduled) ?? .distantFuture
        closed = reopening
        return policy.outsideWindow == .postpone && reopening != .distantFuture ? reopening : nil
    }

    /// The first occurrence after `cursor` that will run (skipping those the windows drop).
    public func nextOccurrence(after cursor: Date?) -> Occurrence? {
        var cursor = cursor ?? activeSince.addingTimeInterval(-1e-6)
        var closed: Date?
        for _ in 0..<Self.walkLimit {
            guard let s = schedule.nextFire(after: cursor) else { return nil }
            if let due = due(s, closed: &closed) { return Occurrence(scheduled: s, due: due) }
            if closed == .distantFuture { return nil }  // no run may ever start again
            cursor = s
        }
        // Every occurrence so far falls outside the windows: wake at the last one and look again.
        return Occurrence(scheduled: cursor, due: cursor)
    }

    /// Decides at `now`. All occurrences due by now are consumed and produce at most one run:
    /// the latest on-time one if there is one (folding late ones into it), otherwise a catch-up
    /// run under `runOnce`, otherwise none. A postponed occurrence whose window has not opened
    /// stays pending, and so does a catch-up that would start outside the windows under
    /// `postpone` (under `skip` it is dropped). `.now` schedules are never late.
    public func decide(handledThrough: Date?, now: Date) -> FireDecision {
        let lateBefore = now.addingTimeInterval(-policy.latenessSeconds)
        let neverLate = if case .now = schedule { true } else { false }
        var cursor = handledThrough ?? activeSince.addingTimeInterval(-1e-6)
        var handled = handledThrough
        var onTime: Occurrence?
        var lastMissed: Date?
        var missed = 0, skipped = 0, steps = 0
        var pending: Occurrence?
        var closed: Date?
        var ledger = SkipLedger()
        walk: while let s = schedule.nextFire(after: cursor) {
            guard s <= now else { break }
            steps += 1
            if steps == Self.walkLimit || steps == Self.walkLimit * 6 {
                // A long downtime: everything this old is certainly late, except an occurrence
                // postponed through a long closed stretch. Such a stretch is at most a week plus
                // the absolute blackouts, so the walk first resumes that far before now, and if
                // that is still too long, at the lateness bound (postponed ones are then missed).
                let jump = lateBefore.addingTimeInterval(steps == Self.walkLimit ? -lookbackSeconds : -1e-6)
                if jump > s, let latest = latestFire(atOrBefore: jump, after: s) {
                    missed += 1  // (at least: the walk does not count what it jumps over)
                    ledger.markInexact()
                    ledger.add(latest, .missed)
                    lastMissed = latest
                    handled = latest
                    cursor = latest
                    continue
                }
            } else if steps > Self.walkLimit * 7 {
                // More than 10,000 occurrences within the lateness bound: fold the rest into the
                // latest one and count it missed, so the next decision does not fire again.
                let latest = latestFire(atOrBefore: now, after: s) ?? s
                missed += 1; lastMissed = latest; handled = latest
                ledger.markInexact()
                ledger.add(latest, .folded)
                break
            }
            cursor = s
            guard let due = due(s, closed: &closed) else {
                skipped += 1
                handled = s
                ledger.add(s, .closed)
                continue
            }
            if due > now { pending = Occurrence(scheduled: s, due: due); break walk }
            handled = s
            if neverLate || due > lateBefore {
                if let previous = onTime {
                    missed += 1
                    ledger.add(previous.scheduled, .folded)
                }
                onTime = Occurrence(scheduled: s, due: due)
            } else {
                missed += 1
                lastMissed = s
                ledger.add(s, .missed)
            }
        }
        var fire: Fire?
        var catchUp: Date?
        if let onTime {
            fire = Fire(occurrence: onTime.scheduled, kind: onTime.due == onTime.scheduled ? .onTime : .postponed)
        } else if let lastMissed, policy.missedFire == .runOnce {
            if availability.isAllowed(at: now) {
                fire = Fire(occurrence: lastMissed, kind: .catchUp)
                catchUp = lastMissed
                missed -= 1
                ledger.remove(lastMissed)
            } else if policy.outsideWindow == .postpone, let reopening = availability.nextAllowed(from: now) {
                // The catch-up itself waits for the windows: leave its occurrence pending.
                catchUp = lastMissed
                missed -= 1
                ledger.remove(lastMissed)
                handled = lastMissed.addingTimeInterval(-1e-6)
                pending = Occurrence(scheduled: lastMissed, due: reopening)
            }
        }
        var decision = FireDecision(fire: fire, handledThrough: handled, next: pending ?? nextOccurrence(after: handled ?? cursor),
                                    missed: missed, skippedOutsideWindow: skipped)
        (decision.skips, decision.unlisted) = ledger.finish(fire: fire, catchUp: catchUp, availability: availability)
        return decision
    }

    /// The last occurrence in (`floor`, `limit`]: searches backwards in growing spans, then
    /// forwards within the span, so the cost depends on the schedule's density near `limit`.
    func latestFire(atOrBefore limit: Date, after floor: Date) -> Date? {
        var span: TimeInterval = 60
        while true {
            let from = max(limit.addingTimeInterval(-span), floor)
            if var latest = schedule.nextFire(after: from), latest <= limit {
                for _ in 0..<Self.walkLimit {
                    guard let next = schedule.nextFire(after: latest), next <= limit else { break }
                    latest = next
                }
                return latest
            }
            if from == floor { return nil }
            span *= 8
        }
    }

    private var lookbackSeconds: Double {
        guard !availability.windows.isEmpty || !availability.blackouts.isEmpty else { return 0 }
        let periods = availability.blackouts.reduce(0.0) { sum, blackout in
            if case .period(let start, let end) = blackout.kind { sum + end.timeIntervalSince(start) } else { sum }
        }
        return 8 * 86_400 + min(periods, 400 * 86_400)
    }
}
