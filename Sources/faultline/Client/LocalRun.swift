import Foundation
import NIOHTTP1
import ServiceKit

/// `faultline run --local FILE|ID`: runs an experiment on this machine as a plain
/// `chaos --no-version-check run`, with the faultline control in HTTP mode
/// (controls/chaosfaultline/PROTOCOL.md §1, §8) reporting every event to the platform as an
/// external execution, the way the Reliably CLI runs experiments. The outcome comes from the
/// journal chaos writes, not from its exit code.
struct LocalRun {
    let client: GatewayClient
    let experiment: String
    let json: Bool

    func run() async throws(ClientError) -> ExecutionOutcome {
        guard let token = client.token else {
            throw ClientError(.usage, "--local reports to the platform: set FAULTLINE_TOKEN (or --token)")
        }
        let directory = try Self.runDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let (experimentID, experimentPath) = try await resolve(into: directory)
        let created = try await client.send(.POST, "/api/v1/experiments/\(GatewayClient.segment(experimentID))/executions",
                                            body: Data(#"{"external":true}"#.utf8))
        guard let executionID = try JSON(object: created.body)["id"]?.string, !executionID.isEmpty else {
            throw ClientError(.protocolViolation, "the Gateway created the execution without an id")
        }
        if !json { Output.note("execution \(executionID) of \(experimentID), running locally") }

        // A global control (only those see every hook); the token stays in the environment
        // because control arguments can end up in journals.
        let controlFile = directory + "/controls.json"
        let control: JSON = .object(["faultline": .object(["provider": .object([
            "type": .string("python"), "module": .string("chaosfaultline.control"),
            "arguments": .object(["url": .string(client.endpoint.url), "execution_id": .string(executionID)]),
        ])])])
        try Self.write(Data(control.compact.utf8), to: controlFile)

        let journalPath = directory + "/journal.json"
        let environment = ProcessInfo.processInfo.environment
        let venv = URL(fileURLWithPath: environment["FAULTLINE_VENV"].flatMap { $0.isEmpty ? nil : $0 } ?? ".venv").standardizedFileURL.path
        var childEnvironment = environment
        childEnvironment["FAULTLINE_URL"] = client.endpoint.url
        childEnvironment["FAULTLINE_TOKEN"] = token
        childEnvironment["FAULTLINE_EXECUTION_ID"] = executionID
        childEnvironment["FAULTLINE_RUNNER_SOCKET"] = nil  // never runner mode here
        childEnvironment["FAULTLINE_EXPERIMENT_ID"] = nil
        let status = try await Self.spawn(
            venv + "/bin/chaos",
            ["--no-version-check", "--log-file", directory + "/chaos.log", "run", "--control-file", controlFile,
             "--journal-path", journalPath, experimentPath],
            environment: childEnvironment, outputToStandardError: json)

        guard let journalData = FileManager.default.contents(atPath: journalPath),
              let journal = try? JSON(object: journalData) else {
            throw ClientError(.local, "chaos exited (\(status)) without a journal; see its output above")
        }
        let outcome: ExecutionOutcome = switch journal["status"].text {
        case "completed": journal["deviated"]?.bool == true ? .deviated : .completed
        case "aborted": .aborted
        case "interrupted": .interrupted
        default: .failed
        }
        // The control drained its events before chaos exited; the platform's view has the score.
        let execution = (try? JSON(object: try await client.send(.GET, "/api/v1/executions/\(GatewayClient.segment(executionID))").body))
            ?? .object(["id": .string(executionID), "status": .string(outcome.rawValue)])
        if json {
            Output.line(#"{"data":\#(execution.compact),"event":"result","id":null,"outcome":"\#(outcome.rawValue)"}"#)
        } else {
            Output.line("\(executionID): \(outcome.rawValue) locally; on the platform: \(execution["status"].text), score \(execution["score"].text)")
        }
        return outcome
    }

    /// An existing file is imported (a new experiment, or the same one again with an
    /// idempotency key of its content hash); anything else is an experiment id, exported.
    private func resolve(into directory: String) async throws(ClientError) -> (id: String, path: String) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: experiment, isDirectory: &isDirectory), !isDirectory.boolValue {
            let source = try ExperimentFile.read(experiment)
            let response = try await client.send(.POST, "/api/v1/experiments", body: source.data, contentType: source.mediaType)
            guard let id = try JSON(object: response.body)["experiment"]?["id"]?.string else {
                throw ClientError(.protocolViolation, "the Gateway imported the experiment without an id")
            }
            return (id, experiment)
        }
        let exported = try await client.send(.GET, "/api/v1/experiments/\(GatewayClient.segment(experiment))/export")
        let path = directory + "/experiment.json"
        try Self.write(exported.body, to: path)
        return (experiment, path)
    }

    private static func runDirectory() throws(ClientError) -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/faultline-local.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {  // 0700, made atomically
            throw ClientError(.local, "cannot create a run directory under \(base)")
        }
        return String(cString: made)
    }

    private static func write(_ data: Data, to path: String) throws(ClientError) {
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw ClientError(.local, "cannot write \(path)")
        }
    }

    /// Runs the process to its end with this terminal's output (or standard error, so that
    /// `--json` keeps standard output for JSON); Ctrl-C reaches it through the process group.
    private static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                              outputToStandardError: Bool) async throws(ClientError) -> Int32 {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ClientError(.local, "no chaos at \(executable): set FAULTLINE_VENV to a venv with chaostoolkit and chaosfaultline")
        }
        // In this process's group, so a Ctrl-C reaches chaos as it would a plain `chaos run`.
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess(executable: executable, arguments: arguments, environment: environment,
                                         options: .init(output: outputToStandardError ? .descriptor(2) : .inherit,
                                                        errors: .inherit, group: .inherit))
        } catch {
            throw ClientError(.local, error.description)
        }
        return await process.waitForExit().shellStatus
    }
}

extension GatewayClient.Endpoint {
    /// The base URL again, for the control (which speaks HTTP itself).
    var url: String { "http://\(host):\(port)\(basePath)" }
}
