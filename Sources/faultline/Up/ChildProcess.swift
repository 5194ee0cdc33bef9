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

    /// Runs the process until it exits; on graceful shutdown, asks it to stop and waits. Its exit
    /// as a shell reports it (128 + n for signal n).
    private func runOnce() async throws -> Int32 {
        // A group of its own: a Ctrl-C reaches `up` alone, which stops the services in order, and
        // the SIGKILL that ends a stuck one reaches whatever it started.
        let process = try SpawnedProcess(executable: executable, arguments: arguments, environment: environment,
                                         options: .init(output: .pipe, group: .newGroup))
        if let output = process.outputPipe { Self.forward(output, to: LineForwarder(name: name, ready: ready)) }
        // Two child tasks: one waits for the exit; the other waits for graceful shutdown, asks the
        // service to stop, and escalates to SIGKILL after the grace period. The exit cancels the
        // stopper, so no task outlives the process it watches (and no process outlives `up`).
        let exit = await withTaskGroup(of: SpawnedProcess.Exit?.self) { group in
            group.addTask { await process.waitForExit() }
            group.addTask { [stopGrace] in
                do {
                    try await gracefulShutdown()
                } catch {
                    // Cancelled: the process exited by itself, or `up` is torn down without a
                    // graceful shutdown, and then the service must not outlive it.
                    process.signalGroup(SIGKILL)
                    return nil
                }
                process.signal(SIGTERM)
                do {
                    try await Task.sleep(for: stopGrace)
                } catch {
                    return nil  // cancelled: it stopped within the grace period
                }
                process.signalGroup(SIGKILL)
                return nil
            }
            var exit: SpawnedProcess.Exit?
            while let result = await group.next() {
                if let result {
                    exit = result
                    group.cancelAll()
                }
            }
            return exit
        }
        return exit?.shellStatus ?? -1
    }

    /// Reads the child's output on a thread of its own until every writer is gone.
    private static func forward(_ output: FileHandle, to lines: LineForwarder) {
        let reader = Thread {
            while case let data = output.availableData, !data.isEmpty { lines.consume(data) }
        }
        reader.name = "up-output"
        reader.start()
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
