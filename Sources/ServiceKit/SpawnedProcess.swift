public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` and reaped exactly once by a thread of its own.
///
/// Not Foundation `Process`: its `terminationHandler` was seen never firing for a SIGKILLed child
/// on a loaded machine, and a child it starts from Swift concurrency code inherits a signal mask
/// with SIGTERM blocked. Here the child gets an empty mask and default dispositions, only its
/// stdio (every descriptor from 3 up is closed in it, so no listening socket or pipe of ours
/// outlives us in an orphan), and optionally a process group or session of its own so a stop can
/// reach whatever it started.
///
/// The reaper first waits with `WNOWAIT`, so the pid stays a zombie (and not reusable) while the
/// exit is recorded: `signal` never reaches a stranger that inherited the pid.
public final class SpawnedProcess: Sendable {
    /// Where the child's standard output (and, by default, its standard error) goes.
    public enum Output: Sendable, Equatable {
        /// This process's own descriptor.
        case inherit
        case null
        /// Created (mode 0600) or truncated.
        case file(String)
        /// A pipe whose read end is `outputPipe`; it reads end-of-file once the child (and anything
        /// it passed the descriptor to) is gone.
        case pipe
        /// A copy of this process's descriptor (e.g. 2: the child's output goes to our stderr).
        case descriptor(Int32)
    }

    public enum ErrorOutput: Sendable, Equatable {
        case sameAsOutput
        case inherit
        case null
        case file(String)
    }

    public enum Group: Sendable, Equatable {
        /// Stays in this process's group: `signalGroup` is then refused, it would reach us.
        case inherit
        /// A process group of its own (its pgid is its pid).
        case newGroup
        /// A session (and group) of its own, detached from any terminal.
        case newSession
    }

    public struct Options: Sendable {
        /// nil = this process's working directory.
        public var directory: String?
        public var output: Output
        public var errors: ErrorOutput
        public var group: Group

        public init(directory: String? = nil, output: Output = .inherit, errors: ErrorOutput = .sameAsOutput, group: Group = .newGroup) {
            self.directory = directory
            self.output = output
            self.errors = errors
            self.group = group
        }
    }

    public enum Exit: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// The exit code, or 128 + the signal the way shells report it.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signaled(let signal): "signal \(signal)"
            }
        }
    }

    public struct SpawnError: Error, CustomStringConvertible, Equatable {
        public let executable: String
        /// The `errno` of the failure (ENOENT for a missing executable or directory).
        public let code: Int32
        public let reason: String

        public var description: String { "cannot start \(executable): \(reason)" }
    }

    private struct State {
        /// Set once the child has ended: from then on it is not signalled any more.
        var ended = false
        var exit: Exit?
        var waiters: [CheckedContinuation<Exit, Never>] = []
    }

    public let pid: pid_t
    public let group: Group
    /// The read end of the output pipe (`Output.pipe`), else nil.
    public let outputPipe: FileHandle?
    private let state = Mutex(State())

    /// Starts `executable` (a path; no PATH search) with `arguments` and exactly `environment`.
    public init(executable: String, arguments: [String], environment: [String: String], options: Options = .init()) throws(SpawnError) {
        func failure(_ code: Int32, _ what: String = "") -> SpawnError {
            SpawnError(executable: executable, code: code, reason: what + String(cString: strerror(code)))
        }
        guard let addclosefrom = Self.addclosefrom, let addchdir = Self.addchdir else {
            throw failure(ENOSYS, "posix_spawn_file_actions_addclosefrom_np/addchdir_np missing (glibc < 2.34): ")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        switch options.group {
        case .inherit: break
        case .newGroup:
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attributes, 0)
        case .newSession: flags |= Self.spawnSetSID
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeEnds: [Int32] = [-1, -1]
        defer { for fd in pipeEnds where fd >= 0 { close(fd) } }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        switch options.output {
        case .inherit: break
        case .null: posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        case .file(let path): posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        case .pipe:
            // Close-on-exec here, so no other child spawned meanwhile (by anyone) inherits it.
            guard let pipe2 = Self.pipe2, pipe2(&pipeEnds, O_CLOEXEC) == 0 else { throw failure(errno, "pipe: ") }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, 1)
        }
        switch options.errors {
        case .sameAsOutput: posix_spawn_file_actions_adddup2(&actions, 1, 2)
        case .inherit: break
        case .null: posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        case .file(let path): posix_spawn_file_actions_addopen(&actions, 2, path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        }
        if let directory = options.directory { _ = addchdir(&actions, directory) }
        _ = addclosefrom(&actions, 3)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // glibc reports the child's failed chdir or exec here (ENOENT, EACCES), not as exit 127.
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw failure(status) }
        self.pid = pid
        group = options.group
        if pipeEnds[0] >= 0 {
            outputPipe = FileHandle(fileDescriptor: pipeEnds[0], closeOnDealloc: true)
            pipeEnds[0] = -1  // owned by the handle; the write end is closed by the defer
        } else {
            outputPipe = nil
        }
        let reaper = Thread { [self] in reap() }
        reaper.name = "reap-\(pid)"
        reaper.start()
    }

    /// The exit, once the child has been reaped.
    public var exit: Exit? { state.withLock { $0.exit } }

    /// Returns when the child has exited and been reaped. Not cancellable: signal it to end it.
    public func waitForExit() async -> Exit {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Exit? in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Signals the child itself; nothing once it has ended.
    public func signal(_ signal: Int32) {
        state.withLock { state in
            if !state.ended { kill(pid, signal) }
        }
    }

    /// Signals the child's whole process group (what it started too), even after the child
    /// itself ended. Nothing for a child in our own group.
    public func signalGroup(_ signal: Int32) {
        guard group != .inherit else { return }
        Self.signalGroup(pid, signal)
    }

    /// Signals process group `pgid` (a leftover of an earlier process of ours).
    public static func signalGroup(_ pgid: pid_t, _ signal: Int32) {
        guard pgid > 1 else { return }
        kill(-pgid, signal)
    }

    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        state.withLock { $0.ended = true }
        var status: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &status, 0) } while reaped < 0 && errno == EINTR
        // WIFEXITED / WTERMSIG by hand: the Glibc macros are not imported into Swift. -1: someone
        // else reaped it (a stray waitpid(-1) in this process), and its status is lost.
        let signal = status & 0x7f
        let exit: Exit = reaped != pid ? .exited(-1) : signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
        let waiters = state.withLock { state in
            state.exit = exit
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume(returning: exit) }
    }

    /// glibc's POSIX_SPAWN_SETSID (2.26+), which the Glibc module does not import.
    private static let spawnSetSID: Int32 = 0x80

    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    /// glibc 2.29+, 2.34+ and a _GNU_SOURCE call (Debian 12 has 2.36), not imported: looked up once
    /// (nil = RTLD_DEFAULT).
    private static let pipe2: Pipe2? = dlsym(nil, "pipe2").map { unsafeBitCast($0, to: Pipe2.self) }
    private static let addchdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    private static let addclosefrom: AddClosefrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: AddClosefrom.self)
    }
}
