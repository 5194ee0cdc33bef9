public import Foundation
public import ServiceKit

/// How a runner runs `chaos`; the `faultline runner` command fills it from the environment.
public struct RunnerConfiguration: Sendable {
    /// This runner's id, recorded on the executions it runs.
    public var runnerID: String
    /// The Python environment with chaostoolkit and chaosfaultline: `<venv>/bin/chaos`.
    public var venv: URL
    /// Run directories, state files and event spools live here.
    public var stateDirectory: URL
    /// Runs at once; StartRun past it is RESOURCE_EXHAUSTED.
    public var capacity: Int = 4
    /// Free-form labels (e.g. `zone=eu`), for ScheduleService to pick a runner.
    public var labels: [String: String] = [:]
    /// Whose runs it takes: every organisation's (shared), or only the listed ones'. ScheduleService
    /// dispatches accordingly; StartRun for another organisation is PERMISSION_DENIED.
    public var tenancy: RunnerTenancy = .shared
    /// When a run does not say; nil = no limit.
    public var defaultMaxDuration: Duration? = nil
    /// Between SIGTERM and SIGKILL when a run is stopped.
    public var terminationGrace: Duration = .seconds(10)
    /// Undelivered event bytes a run may hold in its spool; past it events are dropped (logged).
    public var spoolLimitBytes: Int = 64 << 20
    /// Variables the platform adds to every run's environment.
    public var extraEnvironment: [String: String] = [:]
    /// A directory whose contents are copied into every run directory (the experiments' working
    /// directory), for files experiments refer to by relative path.
    public var runFiles: URL? = nil
    /// Each run follows its user state (pause, resume, terminate) on a WatchExecution stream: the
    /// first delay before a broken stream is opened again (doubling to 5 s while it keeps failing).
    public var userStateReconnect: Duration = .milliseconds(250)
    /// How long one such stream lasts before it is renewed, so one on a connection that died
    /// without a word does not go unnoticed for ever.
    public var userStateRenewal: Duration = .seconds(120)

    public init(runnerID: String, venv: URL, stateDirectory: URL) {
        self.runnerID = runnerID
        self.venv = venv
        self.stateDirectory = stateDirectory
    }

    var chaosExecutable: URL { venv.appendingPathComponent("bin/chaos") }

    /// Fails fast when the venv lacks `chaos`.
    public func validate() throws {
        guard FileManager.default.isExecutableFile(atPath: chaosExecutable.path) else {
            throw RunnerError.venvMissing(
                "no executable \(chaosExecutable.path): create the Python environment (scripts/bootstrap) or set FAULTLINE_VENV")
        }
        guard capacity >= 1 else { throw RunnerError.invalidConfiguration("capacity must be at least 1") }
    }
}

public enum RunnerError: Error, CustomStringConvertible, Equatable {
    case venvMissing(String)
    case invalidConfiguration(String)
    case spawnFailed(String)
    case runDirectory(String)
    /// The run's environment or integrations could not be had from SecretService or used.
    case secrets(String)

    public var description: String {
        switch self {
        case .venvMissing(let m), .invalidConfiguration(let m), .spawnFailed(let m), .runDirectory(let m), .secrets(let m): m
        }
    }
}
