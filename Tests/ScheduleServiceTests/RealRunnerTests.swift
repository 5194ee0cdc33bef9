import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import RunnerService
import ServiceKit
import ServiceLifecycle
import Testing
@testable import ScheduleService

/// The real thing end to end: a real RunnerService (running `chaos`) registers through
/// SchedulerRegistration, ScheduleService dispatches a run to it over its advertised address, the
/// runner reports the run's end, and leaves the registry when it shuts down.
@Suite(.serialized) struct RealRunnerTests {
    static var venv: URL {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_VENV"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".venv")
    }

    @Test func aRealRunnerRegistersRunsADispatchedPlanRunReportsItAndDeregisters() async throws {
        try await Platform.with(database: "sched_real_runner", configure: { $0.heartbeatInterval = .milliseconds(200) }) { p in
            _ = try await ExperimentServer.migrations.apply(on: p.database)
            let experimentServer = ExperimentServer(database: p.database, logger: quietLogger)
            let experimentTask = Task { try await experimentServer.run() }
            let experimentEndpoint = try await Served.start(experimentServer.services)
            let toExperiments = RPCClient(host: "127.0.0.1", port: experimentEndpoint.port, logger: quietLogger)
            let experiments = ExperimentsV1.ExperimentClient(toExperiments)

            let state = URL(fileURLWithPath: "/tmp/fl-sched-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: state) }
            var configuration = RunnerConfiguration(runnerID: "real-runner", venv: Self.venv, stateDirectory: state)
            configuration.capacity = 2
            configuration.labels = ["kind": "real"]
            var failure: (any Error)?
            do {
                try await body(p, configuration: configuration, experiments: experiments)
            } catch {
                failure = error
            }
            await toExperiments.close()
            await experimentEndpoint.stop()
            experimentTask.cancel()
            _ = await experimentTask.result
            if let failure { throw failure }
        }
    }

    private func body(_ p: Platform, configuration: RunnerConfiguration, experiments: ExperimentsV1.ExperimentClient) async throws {
        let runner = try RunnerServer(configuration: configuration, experiments: experiments, logger: quietLogger)
        let runnerEndpoint = try await Served.start([runner])
        let registration = SchedulerRegistration(runner: runner, scheduler: p.schedule, advertisedAddress: runnerEndpoint.address,
                                                 credential: Platform.credential, logger: quietLogger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: registration), .init(service: runner)],
                                                      gracefulShutdownSignals: [], logger: quietLogger))
        let running = Task { try await group.run() }
        var failure: (any Error)?
        do {
            let registered = try await waitFor("registration") {
                try await p.schedule.listRunners(.init(), options: Platform.options()).runners.first { $0.id == "real-runner" }
            }
            #expect(registered.address == runnerEndpoint.address && registered.capacity == 2 && registered.labels == ["kind": "real"])

            let experiment = try #require(try await experiments.createExperiment(.init(source: .init(text: """
                {"title": "scheduled", "description": "d",
                 "method": [{"type": "probe", "name": "ok", "provider": {"type": "process", "path": "true"}}]}
                """)), options: Platform.options()).experiment)
            let run = try #require(try await p.schedule.runExperiment(
                .init(experimentId: experiment.id, runOptions: .init(runnerLabels: ["kind": "real"])), options: Platform.options()).run)
            try await p.dispatch()
            let dispatched = try #require(try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run)
            #expect(dispatched.state == .dispatched && dispatched.runnerId == "real-runner" && !dispatched.executionId.isEmpty)

            let ended = try await waitFor("the run's end") {
                let current = try await p.schedule.getPlanRun(.init(planRunId: run.id), options: Platform.options()).run
                return current?.state == .ended ? current : nil
            }
            #expect(ended.executionState == .completed)
            let execution = try await experiments.getExecution(.init(executionId: dispatched.executionId), options: Platform.options())
            #expect(execution.execution?.planRunId == run.id)
        } catch {
            failure = error
        }
        await group.triggerGracefulShutdown()
        try await running.value
        await runnerEndpoint.stop()
        if let failure { throw failure }
        #expect(try await p.schedule.getRunner(.init(runnerId: "real-runner"), options: Platform.options()).runner?.state == .deregistered)
    }

    /// Polls until `probe` answers (a bound against hangs, not a timing assertion).
    func waitFor<T>(_ what: String, _ probe: () async throws -> T?) async throws -> T {
        for _ in 0..<600 {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("gave up waiting for \(what)")
        throw CancellationError()
    }
}
