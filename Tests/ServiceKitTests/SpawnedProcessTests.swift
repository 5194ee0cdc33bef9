import Foundation
import ServiceKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SpawnedProcess against real processes: exits, signals, descriptors, groups, failures, load.
@Suite("SpawnedProcess")
struct SpawnedProcessTests {
    static func shell(_ script: String, options: SpawnedProcess.Options = .init(output: .null)) throws -> SpawnedProcess {
        try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", script], environment: ["PATH": "/usr/bin:/bin"], options: options)
    }

    /// Reads a pipe to its end on a thread (a blocking read must not hold a concurrency thread).
    static func readAll(_ handle: FileHandle) async -> String {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)) }.start()
        }
    }

    /// The pids whose command line is exactly `arguments`.
    static func processes(commandLine arguments: [String]) -> [Int32] {
        let wanted = Data(arguments.joined(separator: "\u{0}").utf8 + [0])
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == wanted }
    }

    /// True while `pid` is a zombie child of this process (exited, never reaped).
    static func isUnreapedChild(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && fields[0] == "Z" && Int32(fields[1]) == getpid()
    }

    @Test("exit codes come back as they were", arguments: [0, 1, 7, 255])
    func exitCodes(_ code: Int32) async throws {
        let process = try Self.shell("exit \(code)")
        #expect(await process.waitForExit() == .exited(code))
        #expect(process.exit == .exited(code))
        #expect(!Self.isUnreapedChild(process.pid))
    }

    @Test("a signal ends the child and is reported as such, also as a shell status")
    func signals() async throws {
        let selfTerminated = try Self.shell("kill -TERM $$")
        #expect(await selfTerminated.waitForExit() == .signaled(SIGTERM))
        #expect(selfTerminated.exit?.shellStatus == 128 + SIGTERM)

        // SIGTERM has its default disposition and is unblocked in the child, even though Swift
        // concurrency threads (this one) may have it blocked.
        let sleeper = try SpawnedProcess(executable: "/bin/sleep", arguments: ["3601"], environment: [:])
        sleeper.signal(SIGTERM)
        #expect(await sleeper.waitForExit() == .signaled(SIGTERM))
        sleeper.signal(SIGKILL)  // ended: a no-op, never a stranger that got the pid
    }

    @Test("a child spawned from a thread with SIGTERM blocked still dies of SIGTERM")
    func signalMaskNotInherited() async throws {
        let spawned: Result<SpawnedProcess, SpawnedProcess.SpawnError> = await withCheckedContinuation { continuation in
            Thread {
                var blocked = sigset_t()
                sigemptyset(&blocked)
                sigaddset(&blocked, SIGTERM)
                pthread_sigmask(SIG_BLOCK, &blocked, nil)
                continuation.resume(returning: Result { () throws(SpawnedProcess.SpawnError) in
                    try SpawnedProcess(executable: "/bin/sleep", arguments: ["3606"], environment: [:])
                })
            }.start()
        }
        let process = try spawned.get()
        process.signal(SIGTERM)
        // A bound, not a timing assertion: a child with SIGTERM blocked would sleep on.
        let bound = Task {
            try await Task.sleep(for: .seconds(60))
            process.signal(SIGKILL)
        }
        defer { bound.cancel() }
        #expect(await process.waitForExit() == .signaled(SIGTERM))
    }

    @Test("a child SIGKILLed by someone else is seen to exit")
    func killedFromOutside() async throws {
        let process = try SpawnedProcess(executable: "/bin/sleep", arguments: ["3602"], environment: [:])
        #expect(kill(process.pid, SIGKILL) == 0)
        #expect(await process.waitForExit() == .signaled(SIGKILL))
        #expect(!Self.isUnreapedChild(process.pid))
    }

    @Test("the child holds only its stdio, whatever this process has open", arguments: [SpawnedProcess.Output.null, .pipe])
    func noDescriptorLeaks(_ output: SpawnedProcess.Output) async throws {
        // A descriptor without close-on-exec, and a listening socket: neither may reach the child.
        let stray = open("/dev/null", O_RDONLY)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(stray)
            close(socket)
        }
        #expect(stray >= 3 && socket >= 3)
        let process = try SpawnedProcess(executable: "/bin/sleep", arguments: ["3603"], environment: [:], options: .init(output: output))
        // posix_spawn returns once the child has exec'd: its table is sleep's from here on.
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/fd").compactMap(Int.init).sorted()
        #expect(descriptors == [0, 1, 2])
        process.signal(SIGKILL)
        #expect(await process.waitForExit() == .signaled(SIGKILL))
        if output == .pipe {
            // Only the child held the write end: the reader sees the end once it is gone.
            let handle = try #require(process.outputPipe)
            #expect(await Self.readAll(handle) == "")
        } else {
            #expect(process.outputPipe == nil)
        }
    }

    @Test("environment, working directory and output go where they are asked")
    func environmentDirectoryOutput() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("out.txt").path

        let toFile = try Self.shell("pwd; echo \"$GREETING\"; echo oops >&2; echo \"${HOME:-no home}\"",
                                    options: .init(directory: directory.path, output: .file(file)))
        #expect(await toFile.waitForExit() == .exited(0))
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text == "\(directory.resolvingSymlinksInPath().path)\n\noops\nno home\n")
        #expect(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int == 0o600)

        let piped = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "echo \"$GREETING\"; echo two >&2"],
                                       environment: ["GREETING": "hello"], options: .init(output: .pipe))
        let output = await Self.readAll(try #require(piped.outputPipe))
        #expect(output == "hello\ntwo\n")
        #expect(await piped.waitForExit() == .exited(0))

        // A copy of one of our descriptors, the way `run --local` sends chaos's output to stderr.
        let shared = directory.appendingPathComponent("shared.txt").path
        let fd = open(shared, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 3)
        let viaDescriptor = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "echo via"], environment: [:],
                                               options: .init(output: .descriptor(fd)))
        #expect(await viaDescriptor.waitForExit() == .exited(0))
        close(fd)
        #expect(try String(contentsOfFile: shared, encoding: .utf8) == "via\n")

        let separate = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2"], environment: [:],
                                          options: .init(output: .pipe, errors: .null))
        #expect(await Self.readAll(try #require(separate.outputPipe)) == "out\n")
        #expect(await separate.waitForExit() == .exited(0))
    }

    @Test("a missing or unusable executable, or a missing directory, is a clear error and no child")
    func spawnFailures() throws {
        do {
            _ = try SpawnedProcess(executable: "/nonexistent/faultline-nothing", arguments: [], environment: [:])
            Issue.record("a missing executable was spawned")
        } catch {
            #expect(error.code == ENOENT)
            #expect(error.description.contains("/nonexistent/faultline-nothing"))
            #expect(error.description.contains("No such file"))
        }
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("not-executable-\(UInt32.random(in: 0...UInt32.max))").path
        #expect(FileManager.default.createFile(atPath: plain, contents: Data("echo no\n".utf8), attributes: [.posixPermissions: 0o644]))
        defer { try? FileManager.default.removeItem(atPath: plain) }
        do {
            _ = try SpawnedProcess(executable: plain, arguments: [], environment: [:])
            Issue.record("a file that is not executable was spawned")
        } catch {
            #expect(error.code == EACCES)
        }
        do {
            _ = try SpawnedProcess(executable: "/bin/true", arguments: [], environment: [:],
                                   options: .init(directory: "/nonexistent/faultline-dir"))
            Issue.record("spawned into a missing directory")
        } catch {
            #expect(error.code == ENOENT)
        }
    }

    @Test("signalGroup reaches what the child started, in its own group or session")
    func groupSignal() async throws {
        for group in [SpawnedProcess.Group.newGroup, .newSession] {
            let seconds = group == .newGroup ? "3604" : "3605"
            // The shell waits on a background sleep of its own: killing the shell alone leaves it.
            let process = try Self.shell("/bin/sleep \(seconds) & wait", options: .init(output: .null, group: group))
            var started = false
            for _ in 0..<600 where !started {
                started = !Self.processes(commandLine: ["/bin/sleep", seconds]).isEmpty
                if !started { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(started)
            #expect(getpgid(process.pid) == process.pid)
            #expect((getsid(process.pid) == process.pid) == (group == .newSession))
            process.signalGroup(SIGKILL)
            #expect(await process.waitForExit() == .signaled(SIGKILL))
            var gone = false
            for _ in 0..<600 where !gone {
                gone = Self.processes(commandLine: ["/bin/sleep", seconds]).isEmpty
                if !gone { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(gone, "the grandchild died with the group")
        }
    }

    @Test("a child in our own group is never signalled through the group")
    func inheritedGroupIsNotSignalled() async throws {
        let process = try Self.shell("exit 3", options: .init(output: .null, group: .inherit))
        #expect(getpgid(process.pid) == getpgrp() || process.exit != nil)
        process.signalGroup(SIGKILL)  // would kill this test process if it went through
        #expect(await process.waitForExit() == .exited(3))
    }

    @Test("many concurrent spawns each get their own exit, and all are reaped")
    func manyConcurrent() async throws {
        let results = try await withThrowingTaskGroup(of: (Int32, SpawnedProcess.Exit, pid_t).self) { group in
            for index in Int32(0)..<64 {
                group.addTask {
                    let process = try Self.shell(index.isMultiple(of: 4) ? "kill -KILL $$" : "exit \(index)")
                    return (index, await process.waitForExit(), process.pid)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 64)
        #expect(Set(results.map(\.2)).count == 64)
        for (index, exit, pid) in results {
            #expect(exit == (index.isMultiple(of: 4) ? .signaled(SIGKILL) : .exited(index)))
            #expect(!Self.isUnreapedChild(pid))
        }
    }
}
