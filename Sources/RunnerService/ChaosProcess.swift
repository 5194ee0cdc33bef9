import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One spawned `chaos` process in a session (and process group) of its own.
///
/// Spawned with `posix_spawn` rather than Foundation `Process`: a child started from Swift
/// concurrency code inherits a signal mask with SIGTERM blocked, and `chaos` would then ignore
/// SIGTERM. Reaped by `waitpid` on a dedicated thread, never on an event loop.
final class ChaosProcess: Sendable {
    struct Exit: Sendable, Equatable {
        var code: Int32
        var signal: Int32
    }

    let pid: pid_t
    private let exitState = Mutex<(exit: Exit?, waiters: [CheckedContinuation<Exit, Never>])>((nil, []))

    /// Spawns `executable` with exactly `environment`, in `directory`, stdout and stderr to `output`.
    init(executable: String, arguments: [String], environment: [String: String], directory: String, output: String) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | Self.spawnSetSID))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard let addchdir = Self.addchdir else { throw RunnerError.spawnFailed("posix_spawn_file_actions_addchdir_np missing (glibc < 2.29)") }
        _ = addchdir(&actions, directory)
        // Nothing of the runner's beyond stdio: an inherited listening socket would keep the
        // runner's port bound by an orphaned `chaos` after the runner died, and its restart fail.
        if let closefrom = Self.addclosefrom { _ = closefrom(&actions, 3) }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw RunnerError.spawnFailed("posix_spawn \(executable): \(String(cString: strerror(status)))")
        }
        self.pid = pid
        let thread = Thread { [self] in reap() }
        thread.name = "chaos-reaper-\(pid)"
        thread.start()
    }

    /// glibc's POSIX_SPAWN_SETSID (2.26+), which the Glibc module does not import.
    private static let spawnSetSID: Int32 = 0x80

    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+), not imported either: looked up once.
    private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc 2.34+ (Debian 12 has 2.36).
    private static let addclosefrom: AddClosefrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddClosefrom.self)
    }()

    private static let addchdir: AddChdir? = {
        // nil = RTLD_DEFAULT.
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }()

    private func reap() {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WTERMSIG by hand: the Glibc macros are not imported into Swift.
        let signal = status & 0x7f
        let exit = signal == 0 ? Exit(code: (status >> 8) & 0xff, signal: 0) : Exit(code: -1, signal: signal)
        let waiters = exitState.withLock { state in
            state.exit = exit
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume(returning: exit) }
    }

    var exit: Exit? { exitState.withLock { $0.exit } }

    /// Waits for the process to end.
    func waitForExit() async -> Exit {
        await withCheckedContinuation { continuation in
            let done = exitState.withLock { state -> Exit? in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Signals `chaos` itself (not yet reaped).
    func signal(_ signal: Int32) {
        guard exit == nil else { return }
        kill(pid, signal)
    }

    /// SIGKILLs the whole process group, so orphans of background or cut-short activities die too.
    func killGroup() {
        Self.killGroup(pid)
    }

    static func killGroup(_ pgid: pid_t) {
        guard pgid > 1 else { return }
        kill(-pgid, SIGKILL)
    }
}
