import ArgumentParser
import Foundation
import NIOHTTP1

/// `faultline run EXPERIMENT`: run now on a runner of the platform and follow it live, or with
/// `--local`, run it here with `chaos` reporting to the platform.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an experiment now and follow every activity live.",
        discussion: ExecutionOutcome.help
    )

    @OptionGroup var options: ClientOptions

    @Argument(help: "An experiment id (exp_...); with --local, an experiment file or id.")
    var experiment: String

    @Flag(help: "Run on this machine with the Chaos Toolkit venv (FAULTLINE_VENV), reporting to the platform.")
    var local = false

    @Option(help: "The revision to run (default: the latest).")
    var revision: Int?

    @Option(name: .customLong("environment"), help: "Run with this environment's variables and secrets (env_...).")
    var environmentID: String?

    @Option(help: "Stop the run after this many seconds (default: the runner's).")
    var maxDuration: Int?

    @Flag(help: "Print the execution id and return without following it.")
    var detach = false

    @Option(help: "Idempotency key: the same key runs once.")
    var idempotencyKey: String?

    func validate() throws {
        // A local run gets no environment: revealing secrets is for runners only (their
        // credential), and the Gateway has no route that hands them to a user's machine.
        if local, environmentID != nil || revision != nil || maxDuration != nil || detach || idempotencyKey != nil {
            throw ValidationError("--local takes none of --environment, --revision, --max-duration, --detach, --idempotency-key")
        }
        if let maxDuration, maxDuration <= 0 { throw ValidationError("--max-duration must be a positive number of seconds") }
    }

    func run() async throws {
        try await clientCommand {
            let client = try options.client()
            let outcome: ExecutionOutcome
            if local {
                outcome = try await LocalRun(client: client, experiment: experiment, json: options.json).run()
            } else {
                struct Body: Encodable { var revision: Int?; var environment_id: String?; var max_duration_us: Int64? }
                let body = try JSONEncoder().encode(Body(revision: revision, environment_id: environmentID,
                                                         max_duration_us: maxDuration.map { Int64($0) * 1_000_000 }))
                let response = try await client.send(.POST, "/api/v1/experiments/\(GatewayClient.segment(experiment))/run", body: body,
                                                     headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
                let accepted = try JSON(object: response.body)
                guard let executionID = accepted["execution_id"]?.string, !executionID.isEmpty else {
                    throw ClientError(.protocolViolation, "the Gateway accepted the run without an execution id")
                }
                if detach {
                    if options.json { Output.raw(response.body) } else { Output.line(executionID) }
                    return
                }
                if !options.json { Output.note("execution \(executionID) started") }
                let execution = try await ExecutionFollower(client: client, executionID: executionID, json: options.json).follow()
                outcome = try finish(execution, json: options.json)
            }
            if outcome != .completed { throw ExitCode(outcome.exitCode) }
        }
    }
}

/// Prints an ended execution's summary (text mode) and returns its outcome.
func finish(_ execution: JSON, json: Bool = false) throws(ClientError) -> ExecutionOutcome {
    let status = execution["status"].text
    guard let outcome = ExecutionOutcome(rawValue: status) else {
        throw ClientError(.protocolViolation, "the execution ended in an unknown state '\(status.prefix(40))'")
    }
    if !json {
        var line = "\(execution["id"].text): \(status)"
        if let score = execution["score"], score != .null { line += ", score \(score.text)" }
        if let reason = execution["reason"]?.string { line += " (\(reason))" }
        Output.line(line)
    } else {
        Output.line(#"{"data":\#(execution.compact),"event":"result","id":null}"#)
    }
    return outcome
}

/// `faultline execution show|list|journal|watch`.
struct ExecutionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "execution",
        abstract: "Show executions, their journals, and follow them live.",
        subcommands: [Show.self, List.self, Journal.self, Watch.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one execution.")

        @OptionGroup var options: ClientOptions

        @Argument(help: "The execution id (exe_...).")
        var id: String

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/executions/\(GatewayClient.segment(id))")
                if options.json { return Output.raw(response.body) }
                let execution = try JSON(object: response.body)
                Output.table(["FIELD", "VALUE"], [
                    ["id", execution["id"].text],
                    ["experiment", "\(execution["experiment_id"].text) revision \(execution["experiment_revision"].text)"],
                    ["status", execution["status"].text],
                    ["deviated", execution["deviated"].text],
                    ["score", execution["score"].text],
                    ["runner", execution["runner_id"].text],
                    ["plan", execution["plan_id"].text],
                    ["created", formatTime(execution["created_at_us"]?.int)],
                    ["started", formatTime(execution["started_at_us"]?.int)],
                    ["ended", formatTime(execution["ended_at_us"]?.int)],
                    ["reason", execution["reason"].text],
                    ["events", execution["events_received"].text],
                ])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List executions, newest first.")

        @OptionGroup var options: ClientOptions

        @Option(help: "Only this experiment's executions.")
        var experiment: String?

        @Option(help: "Only executions in this status (repeatable): pending, running, completed, deviated, ...")
        var status: [String] = []

        @OptionGroup var paging: PageOptions

        func run() async throws {
            try await clientCommand {
                var query = paging.query
                if let experiment { query.append(("experiment_id", experiment)) }
                query += status.map { ("status", $0) }
                let response = try await options.client().send(.GET, "/api/v1/executions", query: query)
                if options.json { return Output.raw(response.body) }
                let page = try JSON(object: response.body)
                Output.table(["ID", "EXPERIMENT", "STATUS", "SCORE", "CREATED"], page["executions"].map(\.array)?.map { execution in
                    [execution["id"].text, execution["experiment_id"].text, execution["status"].text, execution["score"].text,
                     formatTime(execution["created_at_us"]?.int)]
                } ?? [])
                paging.noteNextPage(page)
            }
        }
    }

    struct Journal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an ended execution's Chaos Toolkit journal (JSON).")

        @OptionGroup var options: ClientOptions

        @Argument(help: "The execution id (exe_...).")
        var id: String

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/executions/\(GatewayClient.segment(id))/journal")
                Output.raw(response.body)  // a journal is JSON already: --json changes nothing
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow an execution live until it ends (from its first event).",
            discussion: ExecutionOutcome.help)

        @OptionGroup var options: ClientOptions

        @Argument(help: "The execution id (exe_...).")
        var id: String

        func run() async throws {
            try await clientCommand {
                let client = try options.client()
                let execution = try await ExecutionFollower(client: client, executionID: id, json: options.json).follow()
                let outcome = try finish(execution, json: options.json)
                if outcome != .completed { throw ExitCode(outcome.exitCode) }
            }
        }
    }
}
