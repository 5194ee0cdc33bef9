import Foundation
import Logging
import ServiceKit
import ServiceLifecycle
import Synchronization

/// One platform service run as its own process by `faultline up`: started with the platform's
/// environment, its output forwarded line by line with its name in front, restarted with backoff
/// when it dies, and stopped with SIGTERM (then SIGKILL after a grace period) on shutdown.
final class ChildProcess: Service, Sendable {
    let name: String
    private let executable: String
    private let arguments: [String]
    private let environment: [String: String]
    private let logger: Logger
    private let ready: @Sendable (String, String) -> Void
    private let stopGrace: Duration

    /// `ready(name, address)` is called each time the child announces `ready HOST:PORT`.
    init(name: String, executable: String, arguments: [String], environment: [String: String],
         stopGrace: Duration = .seconds(10), logger: Logger, ready: @escaping @Sendable (String, String) -> Void) {
        self.name = name
        self.stopGrace = stopGrace
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.logger = logger
        self.ready = ready
    }

    func run() async throws {
        var backoff = Duration.milliseconds(250)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let started = ContinuousClock.now
            let status = try await runOnce()
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            // A service that stayed up for a while gets a fresh backoff when it next dies.
            if ContinuousClock.now - started > .seconds(30) { backoff = .milliseconds(250) }
            logger.error("service exited unexpectedly; restarting", metadata: [
                "service": "\(name)", "exit": "\(status)", "backoff": "\(backoff)",
            ])
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(10))
        }
    }

    /// Runs the process until it exits; on graceful shutdown, asks it to stop and waits.
    private func runOnce() async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let lines = LineForwarder(name: name, ready: ready)
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                lines.consume(data)
            }
        }
        let exited = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { process in
            exited.continuation.yield(process.terminationStatus)
            exited.continuation.finish()
        }
        try process.run()
        let pid = process.processIdentifier
        // Foundation's terminationHandler was seen never to fire for a SIGKILLed child on a
        // loaded machine (up then neither restarted nor stopped it). A thread waits for the
        // exit itself without reaping it (WNOWAIT), so it cannot race Foundation's own waitpid.
        let watcher = Thread {
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
            exited.continuation.yield(Self.status(info))
        }
        watcher.name = "up-watch-\(pid)"
        watcher.start()
        // Two child tasks: one waits for the exit; the other waits for graceful shutdown, asks the
        // service to stop, and escalates to SIGKILL after the grace period. The exit cancels the
        // stopper, so no task outlives the process it watches (and no process outlives `up`).
        return await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                var statuses = exited.stream.makeAsyncIterator()
                return await statuses.next() ?? -1
            }
            group.addTask { [stopGrace] in
                do {
                    try await gracefulShutdown()
                } catch {
                    // Cancelled: the process exited by itself, or `up` is torn down without a
                    // graceful shutdown, and then the service must not outlive it.
                    if process.isRunning { kill(pid, SIGKILL) }
                    return nil
                }
                kill(pid, SIGTERM)
                do {
                    try await Task.sleep(for: stopGrace)
                } catch {
                    return nil  // cancelled: it stopped within the grace period
                }
                if process.isRunning { kill(pid, SIGKILL) }
                return nil
            }
            var status: Int32 = -1
            while let result = await group.next() {
                if let result {
                    status = result
                    group.cancelAll()
                }
            }
            return status
        }
    }
}

extension ChildProcess {
    /// The exit code, or the signal as 128 + n the way shells report it; -1 when already reaped.
    static func status(_ info: siginfo_t) -> Int32 {
        let value = info._sifields._sigchld.si_status
        switch info.si_code {
        case Int32(CLD_EXITED): return value
        case Int32(CLD_KILLED), Int32(CLD_DUMPED): return 128 + value
        default: return -1
        }
    }
}

/// Splits a child's output into lines, prefixes them, and spots the readiness announcement.
private final class LineForwarder: Sendable {
    private let name: String
    private let ready: @Sendable (String, String) -> Void
    private let pending = Mutex<[UInt8]>([])

    init(name: String, ready: @escaping @Sendable (String, String) -> Void) {
        self.name = name
        self.ready = ready
    }

    func consume(_ data: Data) {
        let lines: [String] = pending.withLock { buffer in
            buffer.append(contentsOf: data)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
            }
            return lines
        }
        for line in lines {
            if line.hasPrefix(ServiceReadiness.prefix) {
                ready(name, String(line.dropFirst(ServiceReadiness.prefix.count)))
            } else {
                FileHandle.standardError.write(Data("[\(name)] \(line)\n".utf8))
            }
        }
    }
}
