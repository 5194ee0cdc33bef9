import ArgumentParser
import Foundation
import NIOHTTP1

// Plans, environments, integrations and the organisation's kill switch. The Gateway routes for
// these land with the s2-gateway branch; the paths and bodies here follow the contract in
// protos/ (schedules/v1 and secrets/v1) in the API's snake_case JSON.

/// `faultline plan create|list|show|pause|resume`.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Schedule experiments: once, at a time, on a cron schedule or at an interval.",
        subcommands: [Create.self, List.self, Show.self, Pause.self, Resume.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a plan (exactly one of --now, --at, --cron, --every).")

        @OptionGroup var options: ClientOptions

        @Option(help: "The experiment to run (exp_...).")
        var experiment: String

        @Option(help: "The plan's name (default: the experiment id).")
        var name: String?

        @Flag(help: "Run once, now.")
        var now = false

        @Option(help: "Run once at this time (ISO 8601, e.g. 2026-12-01T09:00:00Z).")
        var at: String?

        @Option(help: "Run on this cron expression (five fields, or @daily, @hourly, ...).")
        var cron: String?

        @Option(help: "The cron expression's IANA time zone (default UTC).")
        var timeZone: String?

        @Option(help: "Run every this many seconds.")
        var every: Int?

        @Option(name: .customLong("environment"), help: "Run with this environment (env_...).")
        var environmentID: String?

        @Option(name: .customLong("integration"), help: "Add this integration's control (repeatable).")
        var integrationIDs: [String] = []

        @Flag(help: "Create it paused.")
        var paused = false

        func validate() throws {
            let kinds = [now, at != nil, cron != nil, every != nil].filter { $0 }.count
            guard kinds == 1 else { throw ValidationError("give exactly one of --now, --at, --cron, --every") }
            if timeZone != nil, cron == nil { throw ValidationError("--time-zone goes with --cron") }
            if let every, every <= 0 { throw ValidationError("--every must be a positive number of seconds") }
        }

        func run() async throws {
            try await clientCommand {
                var schedule: [String: JSON] = [:]
                if now { schedule["now"] = .object([:]) }
                if let at {
                    guard let date = try? Date(at, strategy: .iso8601) else {
                        throw ClientError(.usage, "--at must be an ISO 8601 time such as 2026-12-01T09:00:00Z")
                    }
                    schedule["at"] = .object(["at_us": .number((date.timeIntervalSince1970 * 1_000_000).rounded())])
                }
                if let cron { schedule["cron"] = .object(["expression": .string(cron), "time_zone": .string(timeZone ?? "")]) }
                if let every { schedule["interval"] = .object(["every_us": .number(Double(every) * 1_000_000)]) }
                var spec: [String: JSON] = [
                    "name": .string(name ?? experiment), "experiment_id": .string(experiment), "schedule": .object(schedule),
                    "integration_ids": .array(integrationIDs.map(JSON.string)),
                ]
                if let environmentID { spec["environment_id"] = .string(environmentID) }
                let body: JSON = .object(["spec": .object(spec), "paused": .bool(paused)])
                let response = try await options.client().send(.POST, "/api/v1/plans", body: Data(body.compact.utf8))
                if options.json { return Output.raw(response.body) }
                let plan = try JSON(object: response.body)
                Output.line("created plan \(plan["id"].text) (\(plan["state"].text)), next run \(formatTime(plan["next_fire_at_us"]?.int))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List plans.")

        @OptionGroup var options: ClientOptions

        @Option(help: "Only this experiment's plans.")
        var experiment: String?

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/plans", query: experiment.map { [("experiment_id", $0)] } ?? [])
                if options.json { return Output.raw(response.body) }
                let page = try JSON(object: response.body)
                Output.table(["ID", "STATE", "EXPERIMENT", "NEXT RUN", "NAME"], page["plans"].map(\.array)?.map { plan in
                    [plan["id"].text, plan["state"].text, plan["spec"]?["experiment_id"].text ?? "-",
                     formatTime(plan["next_fire_at_us"]?.int), plan["spec"]?["name"].text ?? "-"]
                } ?? [])
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one plan.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The plan id.") var id: String

        func run() async throws {
            try await simpleCall(options, .GET, "/api/v1/plans/\(GatewayClient.segment(id))") { plan in
                "\(plan["id"].text): \(plan["state"].text), next run \(formatTime(plan["next_fire_at_us"]?.int))"
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a plan: it does not fire until resumed.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The plan id.") var id: String

        func run() async throws {
            try await simpleCall(options, .POST, "/api/v1/plans/\(GatewayClient.segment(id))/pause") { "\($0["id"].text): \($0["state"].text)" }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused plan.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The plan id.") var id: String

        func run() async throws {
            try await simpleCall(options, .POST, "/api/v1/plans/\(GatewayClient.segment(id))/resume") { "\($0["id"].text): \($0["state"].text)" }
        }
    }
}

/// `faultline env list|show|create|delete`: environments (variables and write-only secrets).
struct EnvironmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Environments: variables and secrets given to runs (secret values are never shown).",
        subcommands: [List.self, Show.self, Create.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List environments.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/environments")
                if options.json { return Output.raw(response.body) }
                let page = try JSON(object: response.body)
                Output.table(["ID", "NAME", "VARIABLES", "SECRETS"], page["environments"].map(\.array)?.map { environment in
                    [environment["id"].text, environment["name"].text,
                     String(describing: environment["variables"].map { if case .object(let v) = $0 { v.count } else { 0 } } ?? 0),
                     environment["secrets"]?.array.map { $0["name"].text }.joined(separator: ",") ?? ""]
                } ?? [])
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an environment (secret names only).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The environment id.") var id: String

        func run() async throws {
            try await simpleCall(options, .GET, "/api/v1/environments/\(GatewayClient.segment(id))") { environment in
                var lines = ["\(environment["id"].text): \(environment["name"].text)"]
                if case .object(let variables)? = environment["variables"] {
                    lines += variables.keys.sorted().map { "  var \($0)=\(variables[$0].text)" }
                }
                lines += environment["secrets"]?.array.map { "  secret \($0["name"].text)" } ?? []
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an environment.")
        @OptionGroup var options: ClientOptions

        @Option(help: "Its name.") var name: String
        @Option(help: "Its description.") var description: String?
        @Option(name: .customLong("var"), help: "A variable NAME=VALUE (repeatable).") var variables: [String] = []
        @Option(name: .customLong("secret"), help: "A secret NAME=VALUE or NAME=@FILE (repeatable). Prefer @FILE: arguments show up in `ps`.")
        var secrets: [String] = []

        func run() async throws {
            try await clientCommand {
                var variableObject: [String: JSON] = [:]
                for pair in variables {
                    let (key, value) = try Self.split(pair, "--var")
                    variableObject[key] = .string(value)
                }
                var secretList: [JSON] = []
                for pair in secrets {
                    var (key, value) = try Self.split(pair, "--secret")
                    if value.hasPrefix("@") {
                        guard let text = try? String(contentsOfFile: String(value.dropFirst()), encoding: .utf8) else {
                            throw ClientError(.local, "cannot read the secret file \(value.dropFirst())")
                        }
                        value = text
                    }
                    secretList.append(.object(["name": .string(key), "value": .string(value)]))
                }
                var body: [String: JSON] = ["name": .string(name), "variables": .object(variableObject), "secrets": .array(secretList)]
                if let description { body["description"] = .string(description) }
                let response = try await options.client().send(.POST, "/api/v1/environments", body: Data(JSON.object(body).compact.utf8))
                if options.json { return Output.raw(response.body) }
                Output.line("created environment \(try JSON(object: response.body)["id"].text)")
            }
        }

        static func split(_ pair: String, _ flag: String) throws(ClientError) -> (String, String) {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ClientError(.usage, "\(flag) takes NAME=VALUE")
            }
            return (String(pair[..<equals]), String(pair[pair.index(after: equals)...]))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an environment.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The environment id.") var id: String

        func run() async throws {
            try await simpleCall(options, .DELETE, "/api/v1/environments/\(GatewayClient.segment(id))") { _ in "deleted \(id)" }
        }
    }
}

/// `faultline integration list|show|create|delete`: integrations, rendered as controls.
struct IntegrationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "integration",
        abstract: "Integrations (Slack, webhooks, Prometheus, OpenTelemetry, HTTP checks) added to runs as controls.",
        subcommands: [List.self, Show.self, Create.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List integrations.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/integrations")
                if options.json { return Output.raw(response.body) }
                let page = try JSON(object: response.body)
                Output.table(["ID", "NAME"], page["integrations"].map(\.array)?.map { [$0["id"].text, $0["name"].text] } ?? [])
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an integration.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The integration id.") var id: String

        func run() async throws {
            try await simpleCall(options, .GET, "/api/v1/integrations/\(GatewayClient.segment(id))") { $0.compact }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an integration from a JSON file in the API's shape (see the Gateway's openapi.json).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The JSON file; - reads standard input.") var file: String

        func run() async throws {
            try await clientCommand {
                let source = try ExperimentFile.read(file)
                guard (try? JSON(object: source.data)) != nil else { throw ClientError(.usage, "\(file) is not a JSON object") }
                let response = try await options.client().send(.POST, "/api/v1/integrations", body: source.data)
                if options.json { return Output.raw(response.body) }
                Output.line("created integration \(try JSON(object: response.body)["id"].text)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an integration.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The integration id.") var id: String

        func run() async throws {
            try await simpleCall(options, .DELETE, "/api/v1/integrations/\(GatewayClient.segment(id))") { _ in "deleted \(id)" }
        }
    }
}

/// `faultline halt`: the organisation's kill switch.
struct HaltCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "halt",
        abstract: "Stop every running execution of the organisation and block new runs until `faultline resume`.")

    @OptionGroup var options: ClientOptions
    @Option(help: "Why (kept with the halt).") var reason: String?
    @Flag(help: "Stop without playing rollbacks.") var skipRollbacks = false
    @Flag(help: "Only show whether the organisation is halted.") var status = false

    func run() async throws {
        if status {
            return try await simpleCall(options, .GET, "/api/v1/organization/halt", describe: HaltStatus.describe)
        }
        let body: JSON = .object(["reason": .string(reason ?? ""), "skip_rollbacks": .bool(skipRollbacks)])
        try await simpleCall(options, .POST, "/api/v1/organization/halt", body: Data(body.compact.utf8)) { answer in
            HaltStatus.describe(answer) + ", \(answer["executions_terminated"].text) executions asked to stop"
        }
    }
}

/// `faultline resume`: lift a halt.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Lift the organisation's halt: runs may start again.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await simpleCall(options, .POST, "/api/v1/organization/resume", body: Data("{}".utf8), describe: HaltStatus.describe)
    }
}

enum HaltStatus {
    static func describe(_ answer: JSON) -> String {
        let status = answer["status"] ?? answer
        guard status["halted"]?.bool == true else { return "not halted" }
        return "halted since \(formatTime(status["halted_at_us"]?.int))" + (status["reason"]?.string.map { ": \($0)" } ?? "")
    }
}

/// One request, its JSON printed raw with `--json`, else as `describe` puts it.
func simpleCall(_ options: ClientOptions, _ method: HTTPMethod, _ path: String, body: Data? = nil,
                describe: (JSON) -> String) async throws {
    try await clientCommand {
        let response = try await options.client().send(method, path, body: body)
        if options.json { return Output.raw(response.body) }
        let value = response.body.isEmpty ? JSON.object([:]) : try JSON(object: response.body)
        Output.line(describe(value))
    }
}
