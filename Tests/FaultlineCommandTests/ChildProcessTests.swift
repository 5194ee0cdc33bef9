import Foundation
import Logging
import ServiceKit
import ServiceLifecycle
import Synchronization
import Testing
@testable import faultline

/// `up`'s supervision of one service process, with `/bin/sh` scripts standing in for services:
/// readiness lines, restart after a crash, and SIGTERM escalated to SIGKILL for a process that
/// ignores it.
@Suite struct ChildProcessTests {
    /// Readiness addresses seen, and a way to wait for the n-th.
    final class Readiness: Sendable {
        let seen = Mutex<[String]>([])
        let changes = AsyncStream.makeStream(of: Int.self)

        func record(_ address: String) {
            let count = seen.withLock { $0.append(address); return $0.count }
            changes.continuation.yield(count)
        }

        func wait(for count: Int) async {
            if seen.withLock({ $0.count }) >= count { return }
            for await seen in changes.stream where seen >= count { return }
        }
    }

    static func child(_ script: String, grace: Duration = .seconds(10), readiness: Readiness) -> ChildProcess {
        ChildProcess(name: "sh", executable: "/bin/sh", arguments: ["-c", script], environment: [:],
                     stopGrace: grace, logger: Logger(label: "test")) { _, address in readiness.record(address) }
    }

    static func pid(in address: String) -> pid_t { pid_t(address.split(separator: ":").last.flatMap { Int32($0) } ?? 0) }

    static func isAlive(_ pid: pid_t) -> Bool {
        // A zombie (exited, not yet reaped) counts as gone.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
    }

    /// Runs `child` in a service group until `body` returns, then shuts the group down gracefully.
    static func run(_ child: ChildProcess, _ body: @Sendable () async throws -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: [.init(service: child)], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func aCrashedServiceIsRestartedAndAnnouncedAgain() async throws {
        let readiness = Readiness()
        // Announces itself with its pid as the "port", then dies: up must start it again.
        let child = Self.child("echo \"faultline-ready 127.0.0.1:$$\"; sleep 0.2; exit 3", readiness: readiness)
        try await Self.run(child) { await readiness.wait(for: 2) }
        let pids = readiness.seen.withLock { $0.prefix(2).map(Self.pid(in:)) }
        #expect(pids[0] != pids[1])
    }

    @Test func aServiceIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        let readiness = Readiness()
        let child = Self.child("trap '' TERM; echo \"faultline-ready 127.0.0.1:$$\"; while :; do sleep 0.1; done",
                               grace: .milliseconds(300), readiness: readiness)
        try await Self.run(child) { await readiness.wait(for: 1) }
        // run() returned: the process was reaped after SIGKILL, so it is gone.
        let pid = Self.pid(in: readiness.seen.withLock { $0[0] })
        #expect(!Self.isAlive(pid))
        #expect(readiness.seen.withLock { $0.count } == 1)  // not restarted during shutdown
    }

    @Test func aServiceStoppingOnSIGTERMIsNotKilled() async throws {
        let readiness = Readiness()
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("fl-child-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        // On SIGTERM it writes a marker and exits 0: a SIGKILL would leave no marker.
        let child = Self.child("trap 'echo stopped > \(marker); exit 0' TERM; echo \"faultline-ready 127.0.0.1:$$\"; while :; do sleep 0.1; done",
                               readiness: readiness)
        try await Self.run(child) { await readiness.wait(for: 1) }
        #expect(FileManager.default.contents(atPath: marker).map { String(decoding: $0, as: UTF8.self) } == "stopped\n")
    }

    /// Processes whose command line is exactly `arguments`.
    static func processes(commandLine arguments: [String]) -> [Int32] {
        let wanted = Data(arguments.joined(separator: "\u{0}").utf8 + [0])
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == wanted }
    }

    /// The case Foundation's Process missed under load: a service SIGKILLed from outside is seen
    /// to exit, and started again.
    @Test func aServiceKilledFromOutsideIsRestarted() async throws {
        let readiness = Readiness()
        let child = Self.child("echo \"faultline-ready 127.0.0.1:$$\"; while :; do sleep 0.1; done", readiness: readiness)
        try await Self.run(child) {
            await readiness.wait(for: 1)
            kill(Self.pid(in: readiness.seen.withLock { $0[0] }), SIGKILL)
            await readiness.wait(for: 2)
        }
        let pids = readiness.seen.withLock { $0.prefix(2).map(Self.pid(in:)) }
        #expect(pids[0] != pids[1])
        #expect(!Self.isAlive(pids[0]))
    }

    /// A service is its own process group: the SIGKILL that ends one ignoring SIGTERM also ends
    /// what it started.
    @Test func whatAStuckServiceStartedDiesWithIt() async throws {
        let readiness = Readiness()
        let child = Self.child("trap '' TERM; /bin/sleep 3701 & echo \"faultline-ready 127.0.0.1:$$\"; while :; do sleep 0.1; done",
                               grace: .milliseconds(300), readiness: readiness)
        try await Self.run(child) {
            await readiness.wait(for: 1)
            #expect(!Self.processes(commandLine: ["/bin/sleep", "3701"]).isEmpty)
        }
        var gone = false
        for _ in 0..<500 where !gone {
            gone = Self.processes(commandLine: ["/bin/sleep", "3701"]).isEmpty
            if !gone { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(gone)
    }

    @Test func aServiceThatCannotStartFailsWithAClearError() async throws {
        let child = ChildProcess(name: "missing", executable: "/nonexistent/faultline", arguments: [], environment: [:],
                                 logger: Logger(label: "test")) { _, _ in }
        do {
            try await child.run()
            Issue.record("a missing executable ran")
        } catch let error as SpawnedProcess.SpawnError {
            #expect(error.code == ENOENT)
            #expect(error.description.contains("/nonexistent/faultline"))
        }
    }
}
