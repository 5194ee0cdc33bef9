public import Foundation
import Synchronization

/// Where the scheduler reads the time, so tests drive it by hand instead of sleeping.
public protocol ScheduleClock: Sendable {
    func now() -> Date
}

/// The real wall clock.
public struct SystemClock: ScheduleClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to.
public final class ManualClock: ScheduleClock {
    private let current: Mutex<Date>

    public init(_ start: Date) { current = Mutex(start) }

    public func now() -> Date { current.withLock { $0 } }

    public func set(_ date: Date) { current.withLock { $0 = date } }

    /// Moves forward by `interval` seconds (negative moves back, to test clock corrections).
    @discardableResult
    public func advance(by interval: TimeInterval) -> Date {
        current.withLock { now in
            now += interval
            return now
        }
    }
}
