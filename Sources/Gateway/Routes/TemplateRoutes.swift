import FaultlineProto
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/v1/templates`: the catalogue of starter templates, rendering one into a Chaos Toolkit
/// experiment, and creating an experiment from one in a single step.
///
/// GET  /templates                      the catalogue [read]
/// GET  /templates/{id}                 one template with its inputs [read]
/// POST /templates/{id}/render          {"inputs": {...}} → the experiment, or 400 with a problem per input [read]
/// POST /templates/{id}/experiments     {"inputs": {...}} → 201 as POST /experiments [write]
struct TemplateRoutes {
    let gateway: Gateway

    /// Inputs by name; a missing one takes its default. Values are strings or numbers.
    struct Body: Decodable {
        var inputs: [String: JSONValue]?
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("templates") { _, context in
            _ = try context.require(.read)
            return try Response.json(TemplateCatalogueView(templates: TemplateCatalogue.all.map(TemplateView.init)))
        }
        group.get("templates/{id}") { _, context in
            _ = try context.require(.read)
            return try Response.json(TemplateView(try Self.template(context)))
        }
        group.post("templates/{id}/render") { request, context in
            _ = try context.require(.read)
            let template = try Self.template(context)
            let experiment = try Self.render(template, try await request.json(Body.self, context))
            return Response.json(experiment.prettyText)
        }
        group.post("templates/{id}/experiments") { request, context in
            _ = try context.require(.write)
            let template = try Self.template(context)
            let experiment = try Self.render(template, try await request.json(Body.self, context))
            var create = Self.creation(of: experiment, from: template)
            create.requestId = request.headers[HTTPField.Name("idempotency-key")!].flatMap(EdgeMiddleware.acceptable) ?? ""
            let created = try await gateway.experiments.createExperiment(create, options: gateway.callOptions(context))
            let body = CreatedExperimentView(experiment: .init(created.experiment ?? .init()), revision: .init(created.revision ?? .init()))
            return try Response.json(body, status: .created)
        }
    }

    static func template(_ context: GatewayContext) throws -> ExperimentTemplate {
        guard let id = context.parameters.get("id"), let template = TemplateCatalogue.template(String(id)) else {
            throw Problem.notFound("template")
        }
        return template
    }

    /// The import of a rendered experiment, as `POST /experiments` would make it from the same text.
    static func creation(of experiment: OrderedJSON, from template: ExperimentTemplate) -> ExperimentsV1.CreateExperimentRequest {
        var create = ExperimentsV1.CreateExperimentRequest()
        create.source = .init(text: experiment.prettyText, format: .json, fileName: "\(template.id).json")
        return create
    }

    /// The experiment, or 400 `template.inputs.invalid` with one problem per input at `$.inputs.<name>`.
    static func render(_ template: ExperimentTemplate, _ body: Body) throws -> OrderedJSON {
        var raw: [String: String] = [:]
        var problems: [InputProblem] = []
        for (name, value) in body.inputs ?? [:] {
            switch value {
            case .string(let text): raw[name] = text
            case .int(let number): raw[name] = String(number)
            case .double(let number): raw[name] = String(number)
            case .null, .bool, .array, .object:
                problems.append(InputProblem(input: name, code: "template.input.type", message: "an input value must be a string or a number"))
            }
        }
        do {
            let experiment = try template.render(raw)
            if problems.isEmpty { return experiment }
        } catch {
            problems += error.problems.filter { problem in !problems.contains { $0.input == problem.input } }
        }
        throw Problem(.badRequest, code: "template.inputs.invalid",
                      detail: "\(problems.count) input(s) of template \(template.id) need fixing",
                      problems: problems.sorted { $0.input < $1.input }.map {
                          .init(path: inputPath($0.input), severity: "error", code: $0.code, message: $0.message)
                      })
    }

    /// `$.inputs.name`, or `$.inputs['...']` for a name that is no identifier.
    static func inputPath(_ name: String) -> String {
        let identifier = !name.isEmpty && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0)) }
        if identifier { return "$.inputs.\(name)" }
        return "$.inputs['\(name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'"))']"
    }
}

struct TemplateCatalogueView: Encodable {
    var templates: [TemplateView]
}

struct TemplateView: Encodable {
    var id: String
    var title: String
    var goal: String
    var tags: [String]
    var inputs: [TemplateInputView]

    init(_ t: ExperimentTemplate) {
        id = t.id; title = t.title; goal = t.goal; tags = t.tags; inputs = t.inputs.map(TemplateInputView.init)
    }
}

struct TemplateInputView: Encodable {
    var name: String
    var label: String
    /// url, text, integer, duration, command, choice or path.
    var kind: String
    var `default`: String
    var required: Bool
    var help: String
    /// Integers: the bounds; durations: the bounds in seconds.
    var minimum: Double?
    var maximum: Double?
    var options: [String]?
    var max_bytes: Int

    init(_ i: TemplateInput) {
        name = i.name; label = i.label; kind = i.kind.name; self.default = i.defaultValue
        required = i.required; help = i.help; max_bytes = i.kind.maxBytes
        switch i.kind {
        case .integer(let bounds): minimum = Double(bounds.lowerBound); maximum = Double(bounds.upperBound)
        case .duration(let bounds): minimum = bounds.lowerBound; maximum = bounds.upperBound
        case .choice(let choices): options = choices
        case .url, .text, .command, .path: break
        }
    }
}
