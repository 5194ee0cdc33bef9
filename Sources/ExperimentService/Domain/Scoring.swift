/// Scores, written down in full in `Sources/ExperimentService/SCORING.md`.
///
/// **Per execution**, `score = verdict × rollbackFactor`, in [0, 1], or no score:
///
/// | outcome | verdict |
/// |---|---|
/// | completed (steady state before and after met, every method activity succeeded) | 1 |
/// | deviated, but only *during* the method; the steady state was met again after it (the system recovered) | 0.25 |
/// | deviated (after not met, baseline not met) | 0 |
/// | failed, aborted, timed out (no verdict on the system) | 0.5 |
/// | interrupted, lost, pending, running | no score |
///
/// `rollbackFactor = 0.5 + 0.5 × R`, where R is the share of played rollbacks that succeeded
/// (1 when none were played): rollbacks that fail leave the system damaged, halving the score.
///
/// **Per experiment**, over the newest `window` scored executions (default 10),
/// `Σ wᵢ·sᵢ / Σ wᵢ` with `wᵢ = decay^i` (i = 0 for the newest, default decay 0.85): a regression
/// shows after one run, a fix restores the score within a few. Unscored executions are skipped,
/// not counted as 0 or 1: a cancelled or lost run says nothing about the system.
public enum ExecutionScore {
    public static func score(_ outcome: ExecutionOutcome) -> Double? {
        let verdict: Double
        switch outcome.status {
        case .completed:
            verdict = 1
        case .deviated:
            let recovered = outcome.reason == .steadyStateDuringNotMet && outcome.journal?.steadyStateAfter == true
            verdict = recovered ? 0.25 : 0
        case .failed, .aborted, .timedOut:
            verdict = 0.5
        case .interrupted, .lost, .pending, .running:
            return nil
        }
        let rollbacksRestored = outcome.journal?.rollbacks.successRatio ?? 1
        return verdict * (0.5 + 0.5 * rollbacksRestored)
    }
}

public struct ScoringPolicy: Sendable, Hashable {
    /// How many of the newest scored executions count.
    public var window: Int
    /// Weight of each older execution relative to the next newer one, in (0, 1].
    public var decay: Double

    public init(window: Int = 10, decay: Double = 0.85) {
        precondition(window > 0 && decay > 0 && decay <= 1, "window > 0 and decay in (0, 1]")
        self.window = window
        self.decay = decay
    }

    public static let `default` = ScoringPolicy()
}

public struct ExperimentScore: Sendable, Hashable {
    /// In [0, 1]; nil when no execution in the list has a score.
    public let value: Double?
    /// How many executions the value is made of (at most `policy.window`).
    public let scoredExecutions: Int

    /// - Parameter newestFirst: per-execution scores, newest first; nil for unscored runs. Pass
    ///   at least `policy.window` scored entries when there are that many (e.g. SQL
    ///   `WHERE score IS NOT NULL ORDER BY created DESC LIMIT window`).
    public init(newestFirst scores: [Double?], policy: ScoringPolicy = .default) {
        let recent = scores.lazy.compactMap { $0 }.prefix(policy.window)
        var weighted = 0.0, total = 0.0, weight = 1.0
        for s in recent {
            weighted += weight * s
            total += weight
            weight *= policy.decay
        }
        self.scoredExecutions = recent.count
        self.value = total > 0 ? weighted / total : nil
    }
}
