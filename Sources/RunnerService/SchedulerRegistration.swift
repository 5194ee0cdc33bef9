public import FaultlineProto
import FaultlineRPC
public import Logging
public import ServiceLifecycle
import ServiceKit

/// Keeps a runner in ScheduleService's registry: registers it (address, capacity, labels, tenancy),
/// heartbeats with the executions in flight (stopping those ScheduleService names), reports each
/// run that ends, and deregisters on shutdown. Register it in the service group *before* the
/// `RunnerServer`: shutdown runs in reverse, so the runner drains (and its last runs are reported)
/// before the registration leaves.
public struct SchedulerRegistration: Service {
    let runner: RunnerServer
    let client: SchedulesV1.ScheduleClient
    let advertisedAddress: String
    let credential: String
    let version: String
    let logger: Logger

    /// - Parameters:
    ///   - advertisedAddress: where ScheduleService reaches this runner's RunnerService, `host:port`.
    ///   - credential: the runner credential ScheduleService checks (`authorization: Bearer …`).
    public init(runner: RunnerServer, scheduler: SchedulesV1.ScheduleClient, advertisedAddress: String, credential: String,
                version: String = "dev", logger: Logger) {
        self.runner = runner
        client = scheduler
        self.advertisedAddress = advertisedAddress
        self.credential = credential
        self.version = version
        self.logger = logger
    }

    private var options: CallOptions {
        var options = CallOptions(timeout: .seconds(10))
        options.metadata = RunnerCredential.metadata(credential)
        return options
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await reportEndedRuns() }
            await cancelWhenGracefulShutdown { await heartbeatUntilCancelled() }
            do {
                _ = try await client.deregisterRunner(.init(runnerId: runner.configuration.runnerID), options: options)
                logger.info("deregistered from ScheduleService")
            } catch {
                logger.notice("could not deregister from ScheduleService; its lease will run out", metadata: ["error": "\(error)"])
            }
            group.cancelAll()
        }
    }

    private func heartbeatUntilCancelled() async {
        let id = runner.configuration.runnerID
        var registered = false
        var interval = Duration.seconds(5)
        var retryDelay = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                if !registered {
                    let response = try await client.registerRunner(
                        .init(runnerId: id, name: id, address: advertisedAddress, labels: runner.configuration.labels,
                              capacity: Int32(runner.configuration.capacity), version: version,
                              organizations: runner.configuration.tenancy.organizations), options: options)
                    registered = true
                    interval = .microseconds(max(100_000, response.heartbeatIntervalUs))
                    logger.info("registered with ScheduleService", metadata: ["runner": "\(id)", "address": "\(advertisedAddress)",
                                                                                "tenancy": "\(runner.configuration.tenancy)"])
                }
                let response = try await client.heartbeat(
                    .init(runnerId: id, capacity: Int32(runner.configuration.capacity), executionIds: runner.activeRuns().map(\.execution)),
                    options: options)
                for execution in response.cancelExecutionIds {
                    runner.cancel(executionID: execution, reason: "ScheduleService asked to stop this run")
                }
                retryDelay = .milliseconds(200)
                try? await Task.sleep(for: interval)
            } catch let error as RPCError where error.code == .notFound {
                // Declared lost (a missed lease): register again.
                logger.notice("ScheduleService no longer knows this runner; registering again")
                registered = false
            } catch {
                logger.warning("ScheduleService unreachable; retrying", metadata: ["error": "\(RPCError(from: error))"])
                try? await Task.sleep(for: retryDelay)
                retryDelay = min(retryDelay * 2, interval)
            }
        }
    }

    /// Reports every run with a plan run that ends; retried while ScheduleService is unreachable.
    private func reportEndedRuns() async {
        for await run in runner.ended where !run.planRunId.isEmpty {
            let request = SchedulesV1.ReportRunEndedRequest(runnerId: runner.configuration.runnerID, planRunId: run.planRunId,
                                                            executionId: run.executionId, executionState: run.executionState)
            var delay = Duration.milliseconds(100)
            for _ in 0..<20 where !Task.isCancelled {
                do {
                    _ = try await client.reportRunEnded(request, options: options)
                    break
                } catch let error as RPCError where [.invalidArgument, .notFound, .permissionDenied].contains(error.code) {
                    logger.notice("ScheduleService did not take a run end", metadata: ["plan_run": "\(run.planRunId)", "error": "\(error)"])
                    break
                } catch {
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
        }
    }
}
