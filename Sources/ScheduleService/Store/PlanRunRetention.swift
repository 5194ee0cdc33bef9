import FaultlinePostgres
import FaultlineProto
import Foundation
import ServiceKit

/// Deletes SKIPPED plan runs recorded longer ago than the retention age, one small batch per
/// statement, so that the history of a plan that skips every minute does not grow without end.
///
/// What it never deletes: a plan's latest run of any state (by due time, then id, the history's
/// order), runs of no plan (RunExperiment), and runs that carry an execution. A SKIPPED run is
/// referenced by nothing else: executions point at runs that started, and `retry_of` at LOST ones.
///
/// Several replicas may prune at once: rows are taken with `SKIP LOCKED`, so the prune never waits
/// on a row lock (it cannot be part of a deadlock with dispatch, whatever the lock order) and two
/// replicas delete different rows. The latest run survives a concurrent prune too: a run is deleted
/// only when a later run of its plan exists, and the latest has none.
struct PlanRunRetention: Sendable {
    let database: PostgresClient
    let age: Duration
    let batchSize: Int

    /// Deletes at most `batchSize` runs; answers how many it deleted (`batchSize`: more may be left).
    func pruneBatch(now: Date) async throws -> Int {
        let cutoff = now.micros - age.micros
        let skipped = SchedulesV1.PlanRunState.skipped.rawValue
        return try await database.execute("""
            DELETE FROM schedules.plan_runs d WHERE (d.org, d.id) IN (
                SELECT p.org, p.id FROM schedules.plan_runs p
                WHERE p.state = \(skipped) AND p.created_us < \(cutoff) AND p.plan_id <> '' AND p.execution_id = ''
                    AND EXISTS (SELECT 1 FROM schedules.plan_runs n
                        WHERE n.org = p.org AND n.plan_id = p.plan_id AND (n.due_us, n.id) > (p.due_us, p.id))
                ORDER BY p.created_us LIMIT \(batchSize) FOR UPDATE OF p SKIP LOCKED)
            """)
    }
}

/// When the dispatch loop prunes next: `interval` after a batch that left nothing more to delete,
/// at once after a full one. A clock that stepped back further than the interval prunes at once
/// rather than waiting for the old time to come round again.
struct PruneTimer {
    let interval: Duration
    let batchSize: Int
    private(set) var next: Date

    func isDue(_ now: Date) -> Bool {
        now >= next || now.micros < next.micros - interval.micros
    }

    mutating func pruned(_ count: Int, at now: Date) {
        next = count < batchSize ? Date(micros: now.micros + interval.micros) : now
    }
}

/// How long SKIPPED plan runs are kept: `FAULTLINE_SCHEDULE_SKIPPED_RETENTION`.
public enum SkippedRetention {
    public static let variable = "FAULTLINE_SCHEDULE_SKIPPED_RETENTION"
    /// Ten years: anything longer is a typo rather than a policy.
    static let maximumDays = 3650

    /// `30d` (days) or `12h` (hours), a whole number from 1 up to ten years; `0` or `off` keeps
    /// them forever (nil). Anything else, signs, spaces, fractions and other units included, is
    /// refused rather than guessed.
    public static func parse(_ text: String) throws(SkippedRetentionError) -> Duration? {
        if text == "0" || text == "off" { return nil }
        guard let unit = text.last, unit == "d" || unit == "h" else { throw SkippedRetentionError(text) }
        let digits = text.dropLast()
        guard !digits.isEmpty, digits.count <= 6, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              digits.first != "0", let count = Int(digits) else { throw SkippedRetentionError(text) }
        let hours = unit == "d" ? count * 24 : count
        guard hours <= maximumDays * 24 else { throw SkippedRetentionError(text) }
        return .seconds(hours * 3600)
    }
}

public struct SkippedRetentionError: Error, CustomStringConvertible {
    public let text: String

    init(_ text: String) { self.text = text }

    public var description: String {
        "\(SkippedRetention.variable) must be a whole number of days or hours up to \(SkippedRetention.maximumDays) days "
            + "(e.g. 30d, 12h), or 0/off to keep skipped plan runs forever; got '\(UntrustedText.shown(text, limit: 40))'"
    }
}
