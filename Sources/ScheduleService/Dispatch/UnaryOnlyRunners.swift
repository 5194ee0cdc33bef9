import Synchronization

/// One registration of a runner: a runner that registers again (a restart, perhaps a newer build)
/// is a new registration, with a new `registered_us`.
struct RunnerRegistration: Hashable, Sendable {
    let id: String
    let registeredUs: Int64
}

/// The runners that answered StartRuns UNIMPLEMENTED (a build from before it), so that later
/// passes start their runs with StartRun calls at once instead of paying a failed stream per
/// organisation each time. Kept per registration: once the runner registers again it is asked
/// again. Bounded: past `limit` runners an arbitrary one is forgotten (which costs it one more
/// failed stream).
final class UnaryOnlyRunners: Sendable {
    static let limit = 1024

    /// Runner id → the registration that answered UNIMPLEMENTED.
    private let known = Mutex<[String: Int64]>([:])

    func contains(_ runner: RunnerRegistration) -> Bool {
        known.withLock { $0[runner.id] == runner.registeredUs }
    }

    func remember(_ runner: RunnerRegistration) {
        known.withLock { known in
            if known[runner.id] == nil, known.count >= Self.limit { known.remove(at: known.startIndex) }
            known[runner.id] = runner.registeredUs
        }
    }

    var count: Int { known.withLock { $0.count } }
}
