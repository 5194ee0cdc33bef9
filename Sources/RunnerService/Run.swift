import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One run on this runner, from an accepted StartRun to CompleteExecution: the run directory,
/// the control socket, the `chaos` process, the event relay and the stop logic.
final class RunHandle: ControlPeer, Sendable {
    struct Status: Sendable {
        var proto: RunnersV1.Run
        var desired: DesiredState = .run
        var stopRequest: ExperimentsV1.StopRequest = .unspecified
        var process: SpawnedProcess?
    }

    let executionID: String
    let organization: OrganizationID
    let requestID: String
    private let definitionJSON: String
    private let grace: Duration
    private let configuration: RunnerConfiguration
    private let client: ExperimentsV1.ExperimentClient
    private let secretSource: SecretSource?
    private let environmentID: String
    private let integrationIDs: [String]
    private let stateDirectory: StateDirectory
    private let logger: Logger
    let relay: EventRelay
    private let status: Mutex<Status>
    private let accepted = ContinuousClock.now
    /// Stop requests, for the escalation to SIGKILL.
    private let stopRequests: AsyncStream<Void>
    private let stopRequested: AsyncStream<Void>.Continuation

    init(execution: ExperimentsV1.Execution, definitionJSON: String, request: RunnersV1.StartRunRequest,
         organization: OrganizationID, configuration: RunnerConfiguration, stateDirectory: StateDirectory,
         client: ExperimentsV1.ExperimentClient, secrets: SecretSource?, logger: Logger) {
        executionID = execution.id
        secretSource = secrets
        environmentID = request.environmentId
        integrationIDs = request.integrationIds
        self.organization = organization
        requestID = request.requestId
        self.definitionJSON = definitionJSON
        self.configuration = configuration
        self.client = client
        self.stateDirectory = stateDirectory
        var logger = logger
        logger[metadataKey: "execution"] = "\(execution.id)"
        self.logger = logger
        grace = request.terminationGraceUs > 0 ? .microseconds(request.terminationGraceUs) : configuration.terminationGrace
        let now = Clock.nowUs
        let maxDuration: Int64 = request.maxDurationUs > 0 ? request.maxDurationUs
            : configuration.defaultMaxDuration.map { Int64($0.components.seconds) * 1_000_000 + $0.components.attoseconds / 1_000_000_000_000 } ?? 0
        status = Mutex(Status(proto: RunnersV1.Run(
            executionId: execution.id, experimentId: execution.experimentId,
            experimentRevision: execution.experimentRevision, planId: request.planId, planRunId: request.planRunId,
            state: .starting, executionState: execution.state, acceptedAtUs: now,
            deadlineAtUs: maxDuration > 0 ? now + maxDuration : 0)))
        rollbackStrategy = switch request.rollbackStrategy {
        case .default: "default"
        case .always: "always"
        case .never: "never"
        case .deviated: "deviated"
        case .unspecified, .unrecognized: nil
        }
        (stopRequests, stopRequested) = AsyncStream.makeStream(of: Void.self)
        relay = EventRelay(executionID: execution.id, organization: organization, client: client,
                           spoolFile: stateDirectory.spoolFile(execution.id),
                           limitBytes: configuration.spoolLimitBytes, logger: logger)
    }

    var snapshot: RunnersV1.Run {
        var run = status.withLock { $0.proto }
        run.eventsRelayed = relay.relayed
        run.eventsSpooled = relay.waiting
        return run
    }

    var isActive: Bool { status.withLock { $0.proto.state != .finished } }

    // MARK: ControlPeer

    func desiredState() -> DesiredState { status.withLock { $0.desired } }
    func receive(_ event: ControlEvent) { relay.receive(event) }

    // MARK: stopping

    /// Asks the run to stop: terminate at the next checkpoint, SIGTERM now (a long activity gets
    /// no checkpoint), SIGKILL and the process group after the grace period. The first stop's
    /// kind is the one reported.
    func stop(_ kind: ExperimentsV1.StopRequest, rollbacks: Bool?, reason: String) {
        let process = status.withLock { status -> SpawnedProcess? in
            guard status.proto.state != .finished else { return nil }
            if status.stopRequest == .unspecified { status.stopRequest = kind }
            if case .terminate = status.desired {} else { status.desired = .terminate(rollbacks: rollbacks, reason: reason) }
            if status.proto.state == .running { status.proto.state = .cancelling }
            return status.process
        }
        guard let process else { return }
        logger.info("stopping run", metadata: ["kind": "\(kind)", "reason": "\(reason)"])
        process.signal(SIGTERM)
        stopRequested.yield()
    }

    /// SIGKILL and the process group once the grace period after the first stop has passed.
    private func escalate(_ process: SpawnedProcess) async {
        for await _ in stopRequests {
            do { try await Task.sleep(for: grace) } catch { return }
            process.signalGroup(SIGKILL)
            return
        }
    }

    // MARK: the run

    func execute() async {
        let runDirectory = stateDirectory.runDirectories.appendingPathComponent(
            String(UInt64.random(in: 0...UInt64.max), radix: 36))
        var socket: ControlSocket?
        var exit: SpawnedProcess.Exit?
        var reason = ""
        var completed = false
        let clock = ContinuousClock()
        var phases = (accepted: accepted, spawned: ContinuousClock.Instant?.none, exited: ContinuousClock.Instant?.none)
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.relay.deliver() }
            do {
                // Stopped while queued (a drain): no secret is revealed, no process spawned.
                if case .terminate(_, let why) = status.withLock({ $0.desired }) {
                    throw StoppedBeforeStart(reason: why ?? "stopped before chaos started")
                }
                // Recorded before any secret file exists: after a crash, the next start removes them.
                try stateDirectory.save(RunRecord(executionID: executionID, organization: organization.rawValue,
                                                  pid: 0, runDirectory: runDirectory.path))
                let secrets = try await RunSecrets.fetch(environmentID: environmentID, integrationIDs: integrationIDs,
                                                         executionID: executionID, organization: organization, source: secretSource)
                try prepare(runDirectory, controls: secrets)
                let secretEnvironment = try secrets.materialize(in: runDirectory)
                socket = try await ControlSocket(path: runDirectory.appendingPathComponent("control.sock").path,
                                                 peer: self, logger: logger)
                let process = try spawn(in: runDirectory, environment: secretEnvironment)
                phases.spawned = clock.now
                try? stateDirectory.save(RunRecord(executionID: executionID, organization: organization.rawValue,
                                                   pid: process.pid, runDirectory: runDirectory.path))
                let stopNow = status.withLock { status -> Bool in
                    status.process = process
                    status.proto.startedAtUs = Clock.nowUs
                    guard status.stopRequest == .unspecified else { return true }
                    status.proto.state = .running
                    status.proto.executionState = .running
                    return false
                }
                if stopNow { stop(.cancelled, rollbacks: nil, reason: "cancelled while starting") }
                await markStarted()
                // Watchers end with the process: the first child to return an exit wins. Cancelled
                // (the server's run() is), there is no grace period left: the group dies at once.
                exit = await withTaskCancellationHandler {
                  await withTaskGroup(of: SpawnedProcess.Exit?.self) { group in
                    group.addTask { await process.waitForExit() }
                    group.addTask { await self.enforceDeadline(); return nil }
                    group.addTask { await self.followUserState(); return nil }
                    group.addTask { await self.escalate(process); return nil }
                    for await result in group {
                        if let result {
                            group.cancelAll()
                            return result
                        }
                    }
                    return nil
                  }
                } onCancel: {
                    process.signalGroup(SIGKILL)
                }
                phases.exited = clock.now
                // chaoslib leaves children of an activity cut short by SIGTERM running: always.
                process.signalGroup(SIGKILL)
            } catch let stopped as StoppedBeforeStart {
                reason = stopped.reason
            } catch RunnerError.secrets(let message) {
                // SecretService's and the runner's messages name ids and secret names, never values.
                reason = message
                logger.error("run failed before chaos ran", metadata: ["error": "\(message)"])
            } catch {
                reason = "the runner could not start chaos: \(error)"
                logger.error("run failed before chaos ran", metadata: ["error": "\(error)"])
            }
            await socket?.close()
            relay.close()
            let endedAt = Clock.nowUs
            status.withLock { $0.proto.endedAtUs = endedAt }
            await background.waitForAll()
            let drained = clock.now
            completed = await complete(runDirectory: runDirectory, exit: exit, reason: reason, endedAt: endedAt)
            // Where a run's time goes (the benchmark reads this to find the runner's overhead).
            let ms = { (from: ContinuousClock.Instant?, to: ContinuousClock.Instant?) -> String in
                guard let from, let to else { return "-" }
                let d = to - from
                return String(format: "%.1f", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
            }
            logger.debug("run phases", metadata: [
                "to_spawn_ms": "\(ms(phases.accepted, phases.spawned))", "chaos_ms": "\(ms(phases.spawned, phases.exited))",
                "drain_ms": "\(ms(phases.exited, drained))", "complete_ms": "\(ms(drained, clock.now))",
            ])
        }
        // Always: it may hold secret files.
        try? FileManager.default.removeItem(at: runDirectory)
        // Not completed (cancelled): the record stays, so the next start ends the run as lost.
        if completed { stateDirectory.forget(executionID) }
    }

    private struct StoppedBeforeStart: Error {
        let reason: String
    }

    private func prepare(_ directory: URL, controls secrets: RunSecrets) throws {
        let files = FileManager.default
        try files.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let runFiles = configuration.runFiles {
            for item in try files.contentsOfDirectory(atPath: runFiles.path) {
                try files.copyItem(at: runFiles.appendingPathComponent(item), to: directory.appendingPathComponent(item))
            }
        }
        try Data(definitionJSON.utf8).write(to: directory.appendingPathComponent("experiment.json"))
        let control: [String: Any] = ["provider": [
            "type": "python", "module": "chaosfaultline.control",
            "arguments": ["socket_path": directory.appendingPathComponent("control.sock").path,
                          "execution_id": executionID],
        ]]
        let faultline = String(decoding: try JSONSerialization.data(withJSONObject: control), as: UTF8.self)
        try Data(secrets.controlFile(faultline: faultline).utf8).write(to: directory.appendingPathComponent("control.json"))
    }

    /// `secretEnvironment` (the run's variables and secrets) goes to this process only.
    private func spawn(in directory: URL, environment secretEnvironment: [String: String]) throws -> SpawnedProcess {
        let venv = configuration.venv.path
        var environment = configuration.extraEnvironment.merging(secretEnvironment) { _, run in run }
        environment["PATH"] = "\(venv)/bin:/usr/local/bin:/usr/bin:/bin"
        environment["VIRTUAL_ENV"] = venv
        environment["HOME"] = directory.path
        environment["LANG"] = ProcessInfo.processInfo.environment["LANG"] ?? "C.UTF-8"
        // The run directory is the experiment's working directory; its Python modules import.
        environment["PYTHONPATH"] = directory.path
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        var arguments = ["--no-version-check", "--log-file", path("chaos.log"), "run",
                         "--control-file", path("control.json"), "--journal-path", path("journal.json"),
                         "--events-file", path("events.jsonl")]
        // PROTOCOL.md §6: passing a strategy makes it the one the control applies.
        if let strategy = rollbackStrategy { arguments += ["--rollback-strategy", strategy] }
        arguments.append(path("experiment.json"))
        // A session of its own: a stop reaches the activities' processes too, and a terminal's
        // signals never reach it.
        return try SpawnedProcess(executable: configuration.chaosExecutable.path, arguments: arguments, environment: environment,
                                  options: .init(directory: directory.path, output: .file(path("output.txt")), group: .newSession))
    }

    private let rollbackStrategy: String?

    private func markStarted() async {
        for attempt in 0..<5 {
            do {
                let response = try await client.startExecution(
                    .init(executionId: executionID, runnerId: configuration.runnerID, startedAtUs: status.withLock { $0.proto.startedAtUs }),
                    options: .on(behalfOf: organization, timeout: .seconds(5)))
                if let state = response.execution?.state { status.withLock { $0.proto.executionState = state } }
                return
            } catch {
                logger.warning("StartExecution failed", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: .milliseconds(200 << attempt))
            }
        }
    }

    private func enforceDeadline() async {
        let deadline = status.withLock { $0.proto.deadlineAtUs }
        guard deadline > 0 else { return }
        let wait = max(0, deadline - Clock.nowUs)
        do { try await Task.sleep(for: .microseconds(wait)) } catch { return }
        stop(.timeLimit, rollbacks: nil, reason: "ran past its maximum duration")
    }

    /// Follows the user state in ExperimentService through a WatchExecution stream of execution
    /// snapshots (no events: `after_sequence` is past any), one each time the state or the user
    /// state changes. Checkpoints are answered from the last snapshot, so a slow or unreachable
    /// service never blocks one. A stream that breaks is opened again, after a backoff while it
    /// keeps failing; its first message is the execution as it is then, so nothing is missed.
    private func followUserState() async {
        var delay = configuration.userStateReconnect
        while !Task.isCancelled {
            let outcome: WatchOutcome
            do {
                // Renewed now and then: a connection that died silently (no keepalive) ends here.
                outcome = try await client.watchExecution(
                    .init(executionId: executionID, afterSequence: .max),
                    options: .on(behalfOf: organization, timeout: configuration.userStateRenewal)
                ) { [self] responses in
                    var snapshots = 0
                    for try await response in responses {
                        guard case .execution(let execution)? = response.item else { continue }
                        snapshots += 1
                        if apply(execution.userState ?? .init(), executionState: execution.state) { return .ended }
                    }
                    return snapshots > 0 ? .renewed : .failed("the stream ended without a snapshot")
                }
            } catch let error as RPCError where error.code == .deadlineExceeded {
                outcome = .renewed
            } catch {
                outcome = .failed("\(error)")
            }
            switch outcome {
            case .ended:
                return
            case .renewed:
                delay = configuration.userStateReconnect
            case .failed(let reason):
                if Task.isCancelled { return }
                logger.debug("user state stream lost; following it again", metadata: ["error": "\(reason)", "retry.after": "\(delay)"])
                do { try await Task.sleep(for: delay) } catch { return }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    private enum WatchOutcome: Sendable {
        /// The execution ended elsewhere: nothing more to follow.
        case ended
        /// The stream served and ended (renewal): open it again at once.
        case renewed
        case failed(String)
    }

    /// Applies a snapshot; true when the execution is terminal (ended elsewhere), and stops the run.
    private func apply(_ userState: ExperimentsV1.UserState, executionState: ExperimentsV1.ExecutionState) -> Bool {
        switch userState.request {
        case .terminate(let terminate):
            stop(.cancelled, rollbacks: !terminate.skipRollbacks, reason: userState.reason.isEmpty ? "terminated by a user" : userState.reason)
        case .pause(let pause):
            status.withLock { status in
                if case .terminate = status.desired { return }
                status.desired = .pause(untilUs: pause.expiresAtUs, reason: userState.reason)
            }
        case nil:
            status.withLock { status in
                if case .terminate = status.desired { return }
                status.desired = .run
            }
        }
        switch executionState {
        case .completed, .deviated, .failed, .aborted, .interrupted, .lost, .timedOut:
            stop(.cancelled, rollbacks: nil, reason: "the execution ended elsewhere")
            return true
        default:
            return false
        }
    }

    /// CompleteExecution with the journal and the log, retried until delivered or refused; false
    /// when cancelled (the record stays, so the next start ends the run as lost).
    func complete(runDirectory: URL, exit: SpawnedProcess.Exit?, reason: String, endedAt: Int64) async -> Bool {
        // Postgres cannot store U+0000, which a probe's output can hold: replaced in what is sent
        // only; the journal file stays as chaos wrote it.
        let (journal, journalNULs) = NULEscapes.replaced(in: Self.text(runDirectory.appendingPathComponent("journal.json")))
        let eventNULs = relay.replacedNULs
        Delivery.noticeReplacedNULs(["journal": "\(journalNULs)", "events": "\(eventNULs)"], total: journalNULs + eventNULs, logger: logger)
        var log = Self.text(runDirectory.appendingPathComponent("chaos.log"))
        let output = Self.text(runDirectory.appendingPathComponent("output.txt"))
        if !output.isEmpty { log += (log.isEmpty ? "" : "\n") + "--- chaos stdout/stderr ---\n" + output }
        var request = ExperimentsV1.CompleteExecutionRequest(
            executionId: executionID, journalJson: journal, log: log,
            stopRequest: status.withLock { $0.stopRequest }, reason: reason, endedAtUs: endedAt)
        // Without an exit the service would say LOST; a run that never started exited "127".
        request.exit = exit.map { exit in
            switch exit {
            case .exited(let code): ExperimentsV1.ProcessExit(exitCode: code, signal: 0)
            case .signaled(let signal): ExperimentsV1.ProcessExit(exitCode: -1, signal: signal)
            }
        }
            ?? ExperimentsV1.ProcessExit(exitCode: 127, signal: 0)
        while true {
            let outcome = await Delivery.retrying("CompleteExecution", logger: logger) {
                try await client.completeExecution(request, options: .on(behalfOf: organization, timeout: .seconds(30)))
            }
            switch outcome {
            case .cancelled:
                return false
            case .delivered(let response):
                status.withLock { status in
                    status.proto.state = .finished
                    status.proto.executionState = response.execution?.state ?? status.proto.executionState
                }
                logger.info("run complete", metadata: ["state": "\(response.execution?.state ?? .unspecified)"])
                return true
            case .refused(let error):
                logger.error("ExperimentService refused CompleteExecution; not retrying it",
                             metadata: ["grpc.status": "\(error.code)", "error": "\(error.message)", "journal": "\(!request.journalJson.isEmpty)"])
                // The journal is what a run sends that the runner does not control: without it the
                // execution still ends (from the exit), rather than staying running.
                guard [.invalidArgument, .resourceExhausted].contains(error.code), !request.journalJson.isEmpty else {
                    status.withLock { $0.proto.state = .finished }
                    return true
                }
                request.journalJson = ""
                let refusal = "the service refused the journal: \(error.message)"
                request.reason = String((reason.isEmpty ? refusal : "\(reason); \(refusal)").prefix(1000))
            }
        }
    }

    /// A file's text for the proto layer: invalid UTF-8 replaced, NUL removed.
    static func text(_ file: URL) -> String {
        guard let data = try? Data(contentsOf: file) else { return "" }
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\u{0}", with: "")
    }
}

enum Clock {
    static var nowUs: Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}
