import ArgumentParser
import Foundation
import NIOHTTP1

/// `faultline experiment import|list|show|export`.
struct ExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Import, list, show and export experiments.",
        subcommands: [Import.self, List.self, Show.self, Export.self]
    )

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a Chaos Toolkit experiment (JSON or YAML) as a new experiment.")

        @OptionGroup var options: ClientOptions

        @Argument(help: "The experiment file (.json, .yaml or .yml); - reads standard input as JSON.")
        var file: String

        @Option(help: "Idempotency key: importing twice with the same key makes one experiment.")
        var idempotencyKey: String?

        func run() async throws {
            try await clientCommand {
                let source = try ExperimentFile.read(file)
                let client = try options.client()
                let response = try await client.send(.POST, "/api/v1/experiments", body: source.data, contentType: source.mediaType,
                                                     headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
                if options.json { return Output.raw(response.body) }
                let created = try JSON(object: response.body)
                let experiment = created["experiment"]
                Output.line("imported \(experiment?["id"].text ?? "-") revision \(created["revision"]?["revision"].text ?? "-"): \(experiment?["title"].text ?? "")")
                for warning in created["revision"]?["warnings"]?.array ?? [] {
                    Output.note("warning at \(warning["path"].text): \(warning["message"].text)")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List experiments, newest first.")

        @OptionGroup var options: ClientOptions

        @Option(name: .customLong("query"), help: "Only titles containing this text.")
        var titleQuery: String?

        @Option(help: "Only experiments with this tag (repeatable).")
        var tag: [String] = []

        @OptionGroup var paging: PageOptions

        func run() async throws {
            try await clientCommand {
                var query = paging.query
                if let titleQuery { query.append(("q", titleQuery)) }
                query += tag.map { ("tag", $0) }
                let response = try await options.client().send(.GET, "/api/v1/experiments", query: query)
                if options.json { return Output.raw(response.body) }
                let page = try JSON(object: response.body)
                Output.table(["ID", "REV", "SCORE", "LAST RUN", "TITLE"], page["experiments"].map(\.array)?.map { experiment in
                    [experiment["id"].text, experiment["latest_revision"].text, experiment["score"].text,
                     experiment["last_execution"]?["status"].text ?? "-", experiment["title"].text]
                } ?? [])
                paging.noteNextPage(page)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one experiment with its score and last run.")

        @OptionGroup var options: ClientOptions

        @Argument(help: "The experiment id (exp_...).")
        var id: String

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/experiments/\(GatewayClient.segment(id))")
                if options.json { return Output.raw(response.body) }
                let experiment = try JSON(object: response.body)
                Output.table(["FIELD", "VALUE"], [
                    ["id", experiment["id"].text],
                    ["title", experiment["title"].text],
                    ["tags", experiment["tags"]?.array.map(\.text).joined(separator: ", ") ?? ""],
                    ["revision", experiment["latest_revision"].text],
                    ["score", experiment["score"].text],
                    ["last run", experiment["last_execution"].map { "\($0["id"].text) \($0["status"].text)" } ?? "-"],
                    ["created", formatTime(experiment["created_at_us"]?.int)],
                    ["updated", formatTime(experiment["updated_at_us"]?.int)],
                ])
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an experiment exactly as imported (JSON), ready for plain `chaos run`.")

        @OptionGroup var options: ClientOptions

        @Argument(help: "The experiment id (exp_...).")
        var id: String

        @Option(help: "A revision number (default: the latest).")
        var revision: Int?

        @Option(name: .shortAndLong, help: "Write to this file instead of standard output.")
        var output: String?

        func run() async throws {
            try await clientCommand {
                let response = try await options.client().send(.GET, "/api/v1/experiments/\(GatewayClient.segment(id))/export",
                                                               query: revision.map { [("revision", String($0))] } ?? [])
                if let output {
                    do {
                        try response.body.write(to: URL(fileURLWithPath: output), options: .atomic)
                    } catch {
                        throw ClientError(.local, "cannot write \(output): \(error.localizedDescription)")
                    }
                } else {
                    Output.raw(response.body)  // the export is JSON already: --json changes nothing
                }
            }
        }
    }
}

/// An experiment file read for import, with the media type its extension implies.
struct ExperimentFile {
    var data: Data
    var mediaType: String

    static let maximumSize = 8 << 20

    static func read(_ path: String) throws(ClientError) -> ExperimentFile {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw ClientError(.local, "cannot read \(path): \(error.localizedDescription)")
            }
        }
        guard !data.isEmpty else { throw ClientError(.local, "\(path) is empty") }
        guard data.count <= maximumSize else { throw ClientError(.local, "\(path) is larger than \(maximumSize) bytes") }
        let lowered = path.lowercased()
        let yaml = lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml")
        return ExperimentFile(data: data, mediaType: yaml ? "application/yaml" : "application/json")
    }
}
