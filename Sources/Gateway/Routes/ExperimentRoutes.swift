import FaultlineProto
import FaultlineRPC
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/v1/experiments`: import, search, read, export, delete and run experiments.
struct ExperimentRoutes {
    let gateway: Gateway
    var client: ExperimentsV1.ExperimentClient { gateway.experiments }

    /// The JSON envelope alternative to a raw body: the experiment text with its format.
    struct Envelope: Decodable {
        var source: String
        var format: String?
        var file_name: String?
    }

    struct RunBody: Decodable {
        var revision: Int64?
        var environment_id: String?
        var max_duration_us: Int64?
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.post("experiments") { request, context in
            _ = try context.require(.write)
            var create = ExperimentsV1.CreateExperimentRequest()
            create.source = try await source(of: request, context)
            create.requestId = request.headers[HTTPField.Name("idempotency-key")!].flatMap(EdgeMiddleware.acceptable) ?? ""
            let created = try await client.createExperiment(create, options: gateway.callOptions(context))
            let body = CreatedExperimentView(experiment: .init(created.experiment ?? .init()), revision: .init(created.revision ?? .init()))
            return try Response.json(body, status: .created)
        }
        group.get("experiments") { request, context in
            _ = try context.require(.read)
            var list = ExperimentsV1.ListExperimentsRequest()
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.titleQuery = request.string("q") ?? ""
            list.tags = request.uri.queryParameters.getAll("tag").filter { !$0.isEmpty }
            let page = try await client.listExperiments(list, options: gateway.callOptions(context))
            return try Response.json(ExperimentPage(experiments: page.experiments.map(ExperimentView.init),
                                                    next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("experiments/{id}") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .experiment)
            let found = try await client.getExperiment(.init(experimentId: id), options: gateway.callOptions(context))
            return try Response.json(ExperimentView(found.experiment ?? .init()))
        }
        group.delete("experiments/{id}") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .experiment)
            let deleted = try await client.deleteExperiment(.init(experimentId: id), options: gateway.callOptions(context))
            return try Response.json(ExperimentView(deleted.experiment ?? .init()))
        }
        group.get("experiments/{id}/revisions") { request, context in
            _ = try context.require(.read)
            var list = ExperimentsV1.ListExperimentRevisionsRequest()
            list.experimentId = try context.parameters.id(of: .experiment)
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            let page = try await client.listExperimentRevisions(list, options: gateway.callOptions(context))
            return try Response.json(RevisionPage(revisions: page.revisions.map(RevisionView.init),
                                                  next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("experiments/{id}/revisions/{revision}") { _, context in
            _ = try context.require(.read)
            guard let number = context.parameters.get("revision").flatMap(Int64.init), number >= 1 else {
                throw Problem.badRequest("request.parameter.invalid", "revision must be a positive integer")
            }
            let found = try await client.getExperimentRevision(.init(experimentId: try context.parameters.id(of: .experiment), revision: number),
                                                               options: gateway.callOptions(context))
            return try Response.json(RevisionView(found.revision ?? .init()))
        }
        group.get("experiments/{id}/score") { request, context in
            _ = try context.require(.read)
            let window = Int32(try request.integer("window", in: 1...100) ?? 0)
            let id = try context.parameters.id(of: .experiment)
            let found = try await client.getExperimentScore(.init(experimentId: id, window: window), options: gateway.callOptions(context))
            return try Response.json(ScoreView(experiment_id: id, score: found.score.map(ExperimentScoreView.init)))
        }
        group.get("experiments/{id}/export") { request, context in
            _ = try context.require(.read)
            let revision = try request.integer("revision", in: 1...Int64.max) ?? 0
            let found = try await client.getExperimentRevision(.init(experimentId: try context.parameters.id(of: .experiment), revision: revision),
                                                               options: gateway.callOptions(context))
            // Byte for byte what was imported (YAML as its lossless JSON): `chaos run` takes it.
            return Response.json(found.revision?.definitionJson ?? "{}")
        }
        group.post("experiments/{id}/run") { request, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .experiment)
            let body = try await request.json(RunBody.self, context)
            var start = RunnersV1.StartRunRequest()
            start.experimentId = id
            start.experimentRevision = body.revision ?? 0
            start.environmentId = body.environment_id ?? ""
            start.maxDurationUs = body.max_duration_us ?? 0
            start.requestId = request.headers[HTTPField.Name("idempotency-key")!].flatMap(EdgeMiddleware.acceptable) ?? ""
            let started = try await gateway.startRun(start, context)
            struct Accepted: Encodable { var execution_id: String; var experiment_id: String }
            return try Response.json(Accepted(execution_id: started.run?.executionId ?? "", experiment_id: id), status: .accepted)
        }
        // The faultline control in HTTP mode records a run made outside Faultline (PROTOCOL.md §8).
        group.post("experiments/{id}/executions") { request, context in
            _ = try context.require(.report)
            struct Body: Decodable { var external: Bool? }
            guard try await request.json(Body.self, context).external == true else {
                throw Problem.badRequest("execution.external.required", "only external executions can be created here; use /run")
            }
            var create = ExperimentsV1.CreateExecutionRequest()
            create.experimentId = try context.parameters.id(of: .experiment)
            let created = try await client.createExecution(create, options: gateway.callOptions(context))
            return try Response.json(ExecutionView(created.execution ?? .init()), status: .created)
        }
    }

    /// The experiment text of an import: a raw JSON or YAML body, or the JSON envelope
    /// `{"source": "...", "format": "json|yaml", "file_name": "..."}`.
    private func source(of request: Request, _ context: GatewayContext) async throws -> ExperimentsV1.ExperimentSource {
        var buffer = try await request.bytes(context)
        guard let text = buffer.readString(length: buffer.readableBytes), !text.isEmpty else {
            throw Problem.badRequest("experiment.empty", "the body holds no experiment")
        }
        let mediaType = request.headers[.contentType]?.split(separator: ";").first?
            .trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        switch mediaType {
        case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
            return .init(text: text, format: .yaml)
        case "application/json", "":
            if let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(text.utf8)) {
                let format: ExperimentsV1.SourceFormat
                switch envelope.format?.lowercased() {
                case nil, "": format = .unspecified
                case "json": format = .json
                case "yaml", "yml": format = .yaml
                default: throw Problem.badRequest("experiment.format.unknown", "format must be json or yaml")
                }
                return .init(text: envelope.source, format: format, fileName: envelope.file_name ?? "")
            }
            // Not an envelope: the experiment itself, passed on as is, so a parse error comes
            // back as a validation problem with its path.
            return .init(text: text, format: .json)
        default:
            throw Problem(.unsupportedMediaType, code: "request.media_type",
                          detail: "send application/json or application/yaml")
        }
    }
}
