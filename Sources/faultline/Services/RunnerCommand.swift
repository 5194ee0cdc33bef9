import ArgumentParser
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import RunnerService
import ServiceKit
import ServiceLifecycle

/// `faultline runner`: runs experiments with `chaos` and reports them to ExperimentService.
/// Needs no database: its state is a directory of its own.
struct RunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Run experiments with Chaos Toolkit (RunnerService over gRPC).",
        discussion: """
            The runner role's credential, needed with a SecretService or a ScheduleService, comes from
            FAULTLINE_RUNNER_CREDENTIAL or from the file FAULTLINE_RUNNER_CREDENTIAL_FILE names.
            """
    )

    static let defaultPort = 7104

    @Option(help: "HOST:PORT to serve RPC on (env FAULTLINE_LISTEN).")
    var listen: String?

    @Option(help: "ExperimentService HOST:PORT (env FAULTLINE_EXPERIMENT_SERVICE).")
    var experimentService: String?

    @Option(help: "SecretService HOST:PORT, for runs with an environment or integrations (env FAULTLINE_SECRET_SERVICE).")
    var secretService: String?

    @Option(help: "Python venv with chaostoolkit and chaosfaultline (env FAULTLINE_VENV; default ./.venv).")
    var venv: String?

    @Option(help: "Directory for run directories, spools and run records (env FAULTLINE_RUNNER_STATE_DIR).")
    var stateDir: String?

    @Option(help: "Maximum concurrent runs (env FAULTLINE_RUNNER_CAPACITY; default 4).")
    var capacity: Int?

    @Option(help: "Labels as k=v,k=v (env FAULTLINE_RUNNER_LABELS).")
    var labels: String?

    @Option(help: "Organisation ids whose runs alone this runner takes, as a,b (env FAULTLINE_RUNNER_ORGANIZATIONS; unset: shared by every organisation).")
    var organizations: String?

    @Option(help: "This runner's id (env FAULTLINE_RUNNER_ID; default the host name).")
    var runnerID: String?

    @Option(help: "ScheduleService HOST:PORT to register and heartbeat with (env FAULTLINE_SCHEDULE_SERVICE; unset: not registered).")
    var scheduleService: String?

    @Option(help: "HOST:PORT ScheduleService reaches this runner at (env FAULTLINE_RUNNER_ADVERTISE; default the --listen address).")
    var advertise: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env FAULTLINE_LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func setting(_ option: String?, _ key: String) -> String? {
            option ?? environment[key].flatMap { $0.isEmpty ? nil : $0 }
        }
        let (listenHost, listenPort) = try Self.address(setting(listen, "FAULTLINE_LISTEN") ?? "0.0.0.0:\(Self.defaultPort)", "--listen")
        guard let target = setting(experimentService, "FAULTLINE_EXPERIMENT_SERVICE") else {
            throw ValidationError("the runner needs ExperimentService: set --experiment-service or FAULTLINE_EXPERIMENT_SERVICE (HOST:PORT)")
        }
        let (experimentsHost, experimentsPort) = try Self.address(target, "--experiment-service")
        var configuration = RunnerConfiguration(
            runnerID: setting(runnerID, "FAULTLINE_RUNNER_ID") ?? ProcessInfo.processInfo.hostName,
            venv: URL(fileURLWithPath: setting(venv, "FAULTLINE_VENV") ?? ".venv"),
            stateDirectory: URL(fileURLWithPath: setting(stateDir, "FAULTLINE_RUNNER_STATE_DIR") ?? "/var/lib/faultline/runner"))
        if let text = setting(capacity.map(String.init), "FAULTLINE_RUNNER_CAPACITY") {
            guard let value = Int(text), value >= 1 else { throw ValidationError("capacity must be a positive integer, got '\(text)'") }
            configuration.capacity = value
        }
        for pair in (setting(labels, "FAULTLINE_RUNNER_LABELS") ?? "").split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("labels are k=v,k=v; got '\(pair)'") }
            configuration.labels[String(parts[0])] = String(parts[1])
        }
        configuration.tenancy = try Self.tenancy(organizations, environment)
        var logger = Logger(label: "faultline.runner")
        let level = setting(logLevel, "FAULTLINE_LOG_LEVEL") ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else { throw ValidationError("unknown log level '\(level)'") }
        logger.logLevel = parsed

        let client = RPCClient(host: experimentsHost, port: experimentsPort, logger: logger)
        var secretsClient: RPCClient?
        var secrets: SecretSource?
        if let target = setting(secretService, "FAULTLINE_SECRET_SERVICE") {
            let (host, port) = try Self.address(target, "--secret-service")
            let credential = try Self.runnerCredential(environment)
            let connection = RPCClient(host: host, port: port, logger: logger)
            secretsClient = connection
            secrets = SecretSource(client: SecretsV1.SecretClient(connection), credential: credential)
        }
        let runner: RunnerServer
        do {
            runner = try RunnerServer(configuration: configuration, experiments: ExperimentsV1.ExperimentClient(client),
                                      secrets: secrets, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        // Background services stop in reverse order after the server drained: the runner's runs
        // complete (and are reported) before the registration leaves and the clients close.
        var background: [any Service] = [client] + (secretsClient.map { [$0] } ?? [])
        if let target = setting(scheduleService, "FAULTLINE_SCHEDULE_SERVICE") {
            let (scheduleHost, schedulePort) = try Self.address(target, "--schedule-service")
            let advertised = setting(advertise, "FAULTLINE_RUNNER_ADVERTISE") ?? "\(listenHost):\(listenPort)"
            _ = try Self.address(advertised, "--advertise")
            let credential = try Self.runnerCredential(environment)
            let toScheduler = RPCClient(host: scheduleHost, port: schedulePort, logger: logger)
            background += [toScheduler, SchedulerRegistration(runner: runner, scheduler: SchedulesV1.ScheduleClient(toScheduler),
                                                              advertisedAddress: advertised, credential: credential, logger: logger)]
        }
        try await RPCHost(name: "runner", listen: .init(host: listenHost, port: listenPort), logger: logger)
            .run(rpcServices: [runner], background: background + [runner])
    }

    /// `--organizations`, else FAULTLINE_RUNNER_ORGANIZATIONS: unset is shared; set but empty is
    /// refused (not read as unset, which would open the runner to every organisation).
    static func tenancy(_ option: String?, _ environment: [String: String]) throws -> RunnerTenancy {
        guard let text = option ?? environment["FAULTLINE_RUNNER_ORGANIZATIONS"] else { return .shared }
        do {
            return try RunnerTenancy(parsing: text)
        } catch {
            throw ValidationError("--organizations / FAULTLINE_RUNNER_ORGANIZATIONS: \(error)")
        }
    }

    /// The runner role's credential for SecretService and ScheduleService: FAULTLINE_RUNNER_CREDENTIAL,
    /// or the file FAULTLINE_RUNNER_CREDENTIAL_FILE names (trailing newlines dropped, as `$(cat file)` does).
    static func runnerCredential(_ environment: [String: String]) throws -> String {
        if let value = environment["FAULTLINE_RUNNER_CREDENTIAL"], !value.isEmpty { return value }
        guard let path = environment["FAULTLINE_RUNNER_CREDENTIAL_FILE"], !path.isEmpty else {
            throw ValidationError("a runner with a SecretService or ScheduleService needs its credential: set FAULTLINE_RUNNER_CREDENTIAL or FAULTLINE_RUNNER_CREDENTIAL_FILE")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read FAULTLINE_RUNNER_CREDENTIAL_FILE \(path)")
        }
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        guard !text.isEmpty else { throw ValidationError("FAULTLINE_RUNNER_CREDENTIAL_FILE \(path) is empty") }
        return text
    }

    static func address(_ text: String, _ what: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(what) must be HOST:PORT, got '\(text)'")
        }
        return (String(text[..<colon]), port)
    }
}
