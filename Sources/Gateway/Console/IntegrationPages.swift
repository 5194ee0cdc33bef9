import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird

/// Integrations: list, create (pick a kind, then its fields), edit, delete. An integration names
/// the secrets it needs (a Slack token, a webhook's signing key) in its environment; the form says
/// whether each is set there and may set a new value, write-only, never showing the current one.
///
/// GET /console/integrations, GET /console/integrations/new[?kind=], POST /console/integrations
/// GET /console/integrations/{id}, POST /console/integrations/{id}, POST /console/integrations/{id}/delete
struct IntegrationPages {
    let console: Console
    var gateway: Gateway { console.gateway }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("integrations") { request, context in try await list(request, context) }
        pages.get("integrations/new") { request, context in
            _ = try context.require(.write)
            guard let kind = IntegrationKind.named(request.string("kind") ?? "") else {
                return try console.page(context, title: "New integration", section: .integrations, body: chooser(), request: request)
            }
            let environments = try await environments(context)
            return try console.page(context, title: "New \(kind.title)", section: .integrations,
                                    body: form(request, kind: kind, integration: nil, environments: environments, typed: nil, error: nil),
                                    request: request)
        }
        pages.post("integrations") { request, context in try await save(request, context, id: nil) }
        pages.get("integrations/{id}") { request, context in
            let principal = try context.require(.read)
            let id = try context.parameters.id(of: .integration)
            let integration = try await client().getIntegration(.init(integrationId: id), options: gateway.callOptions(context)).integration ?? .init()
            guard let (kind, _) = IntegrationKind.of(integration.config) else { throw Problem(.internalServerError, code: "internal", detail: "internal error") }
            let environments = try await environments(context)
            return try console.page(context, title: integration.name, section: .integrations,
                                    body: form(request, kind: kind, integration: integration, environments: environments, typed: nil, error: nil,
                                               canWrite: principal.role.allows(.write)),
                                    request: request)
        }
        pages.post("integrations/{id}") { request, context in
            try await save(request, context, id: try context.parameters.id(of: .integration))
        }
        pages.post("integrations/{id}/delete") { request, context in
            try await console.confirmedDelete(.integration, request, context, then: "/console/integrations") { id, options in
                _ = try await client().deleteIntegration(.init(integrationId: id), options: options)
            }
        }
    }

    private func client() throws -> SecretsV1.SecretClient {
        try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
    }

    /// The organisation's environments (one page of up to 200: what a select can offer).
    private func environments(_ context: GatewayContext) async throws -> [SecretsV1.Environment] {
        try await client().listEnvironments(.init(pageSize: 200, pageToken: ""), options: gateway.callOptions(context)).environments
    }

    private func list(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let page = try await client().listIntegrations(.init(pageSize: 100, pageToken: request.string("page_token") ?? ""),
                                                       options: gateway.callOptions(context))
        let names = Dictionary(try await environments(context).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let rows = page.integrations.map { i -> HTML in
            let (kind, values) = IntegrationKind.of(i.config) ?? (IntegrationKind.all[0], .null)
            let target = kind.fields.first.map { IntegrationKind.display(Self.value(values, $0.path), $0.input) } ?? ""
            let environment: HTML = i.environmentId.isEmpty ? "<span class=\"muted\">none</span>"
                : "<a href=\"/console/environments/\(i.environmentId)\">\(names[i.environmentId] ?? i.environmentId)</a>"
            return """
            <tr><td data-label="Name"><a href="/console/integrations/\(i.id)">\(i.name)</a></td>
            <td data-label="Kind">\(kind.title)</td><td data-label="Target"><code>\(target)</code></td>
            <td data-label="Environment">\(environment)</td><td data-label="Updated">\(Pages.time(i.updatedAtUs))</td></tr>
            """
        }
        let table: HTML = rows.isEmpty ? "<p class=\"muted\">No integrations yet.</p>" : """
            <div class="table-wrap"><table class="responsive" id="integrations"><caption class="sr-only">Integrations</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Target</th><th scope="col">Environment</th><th scope="col">Updated</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
        let next: HTML = page.nextPageToken.isEmpty ? .empty
            : "<p><a href=\"/console/integrations?page_token=\(ExperimentPages.query(page.nextPageToken))\">Next page</a></p>"
        let body: HTML = """
        <h1>Integrations</h1>
        <p>Checks, safeguards, notifications and telemetry that join a run as Chaos Toolkit controls.</p>
        \(HTML.when(principal.role.allows(.write), "<p><a class=\"button\" href=\"/console/integrations/new\" id=\"new-integration\">New integration</a></p>"))
        \(table)\(next)
        """
        return try console.page(context, title: "Integrations", section: .integrations, body: body, request: request)
    }

    private func chooser() -> HTML {
        let kinds = IntegrationKind.all.map { kind -> HTML in
            "<li><a href=\"/console/integrations/new?kind=\(kind.name)\" id=\"kind-\(kind.name)\"><strong>\(kind.title)</strong></a>: \(kind.summary)</li>"
        }
        return """
        <p><a href="/console/integrations">All integrations</a></p>
        <h1>New integration</h1>
        <p>What should it do?</p>
        <ul class="kinds">\(kinds)</ul>
        """
    }

    private func save(_ request: Request, _ context: GatewayContext, id: String?) async throws -> Response {
        _ = try context.require(.write)
        let typed = try await ConsoleForms.read(FieldsForm.self, request, context)
        let options = try gateway.callOptions(context)
        let secrets = try client()
        var integration: SecretsV1.Integration?
        if let id { integration = try await secrets.getIntegration(.init(integrationId: id), options: options).integration }
        // An edit keeps its kind; a new one says which it is.
        guard let kind = integration.flatMap({ IntegrationKind.of($0.config)?.0 }) ?? IntegrationKind.named(typed["kind"]) else {
            throw Problem.badRequest("integration.kind", "choose what kind of integration to create")
        }
        let environments = try await environments(context)
        do {
            let config = try kind.config(from: typed)
            let environmentID = try ResourceKind.environment.reference(typed["environment_id"])
            // Asked for, not looked up in the select's list: that holds the first 200 only.
            let environment = environmentID.isEmpty ? nil
                : try await secrets.getEnvironment(.init(environmentId: environmentID), options: options).environment
            let values = try secretValues(kind, typed, environment: environment)
            if let id {
                let update = SecretsV1.UpdateIntegrationRequest(integrationId: id, expectedVersion: Int64(typed["expected_version"]) ?? 0,
                                                                name: typed["name"], description: typed["description"],
                                                                config: config, environmentId: environmentID)
                integration = try await secrets.updateIntegration(update, options: options).integration
            } else {
                let create = SecretsV1.CreateIntegrationRequest(name: typed["name"], description: typed["description"],
                                                                config: config, environmentId: environmentID)
                integration = try await secrets.createIntegration(create, options: options).integration
            }
            if var update = values {
                update.environmentId = environmentID
                _ = try await secrets.updateEnvironment(update, options: options)
            }
            return Response.seeOther("/console/integrations/\(integration?.id ?? "")?saved=1")
        } catch let error as FormError {
            return try reshow(request, context, kind, integration, environments, typed, error.message, .badRequest)
        } catch let problem as Problem where problem.status == .badRequest || problem.code == "environment.not_found" {
            return try reshow(request, context, kind, integration, environments, typed, problem.detail, problem.status)
        } catch let error as RPCError where [.invalidArgument, .alreadyExists, .aborted, .failedPrecondition, .notFound].contains(error.code) {
            let problem = Problem(rpc: error)
            let message = error.code == .aborted ? "It was changed meanwhile: reload it and make your change again." : problem.detail
            return try reshow(request, context, kind, integration, environments, typed, message, problem.status)
        }
    }

    private func reshow(_ request: Request, _ context: GatewayContext, _ kind: IntegrationKind, _ integration: SecretsV1.Integration?,
                        _ environments: [SecretsV1.Environment], _ typed: FieldsForm, _ message: String,
                        _ status: HTTPResponse.Status) throws -> Response {
        try console.page(context, title: kind.title, section: .integrations,
                         body: form(request, kind: kind, integration: integration, environments: environments, typed: typed, error: message),
                         request: request, status: status)
    }

    /// The write-only values typed for the secrets the integration names, as one change of its
    /// environment (nil when none was typed).
    private func secretValues(_ kind: IntegrationKind, _ typed: FieldsForm,
                              environment: SecretsV1.Environment?) throws(FormError) -> SecretsV1.UpdateEnvironmentRequest? {
        var inputs: [SecretsV1.SecretInput] = []
        for field in kind.fields {
            guard case .secretName = field.input, let value = typed.raw("\(field.id)_value") else { continue }
            guard let environment else { throw FormError("Choose an environment to keep the secret \(typed[field.id]) in") }
            let name = typed[field.id]
            let delivery = environment.secrets.first { $0.name == name }?.delivery ?? .init(target: .envVar(.init(name: "")))
            inputs.append(.init(name: name, delivery: delivery, value: Array(value.utf8)))
        }
        guard !inputs.isEmpty else { return nil }
        var update = SecretsV1.UpdateEnvironmentRequest()
        update.setSecrets = inputs
        return update
    }

    static func value(_ json: JSONValue, _ path: [String]) -> JSONValue? {
        path.reduce(json as JSONValue?) { $0?[$1] }
    }

    private func form(_ request: Request, kind: IntegrationKind, integration: SecretsV1.Integration?, environments: [SecretsV1.Environment],
                      typed: FieldsForm?, error: String?, canWrite: Bool = true) -> HTML {
        let csrf = ConsoleForms.csrf(of: request) ?? ""
        let stored = integration.flatMap { IntegrationKind.of($0.config)?.1 } ?? .null
        let environmentID = typed?["environment_id"] ?? integration?.environmentId ?? ""
        let environment = environments.first { $0.id == environmentID }
        let notice: HTML = error.map {
            "<div class=\"notice\" role=\"alert\" id=\"form-error\"><p>\($0)</p><p>Secret values you typed were not kept: type them again.</p></div>"
        } ?? HTML.when(request.string("saved") != nil, "<p class=\"saved\" role=\"status\" id=\"saved\">Saved.</p>")
        let options = environments.map { e -> HTML in
            "<option value=\"\(e.id)\"\(e.id == environmentID ? " selected" as HTML : .empty)>\(e.name)</option>"
        }
        let inputs = kind.fields.map { field -> HTML in
            let value = typed?.fields[field.id] ?? IntegrationKind.display(Self.value(stored, field.path), field.input)
            let help: HTML = field.help.isEmpty ? .empty : "<p class=\"muted field-help\" id=\"\(field.id)_help\">\(field.help)</p>"
            let described: HTML = field.help.isEmpty ? .empty : " aria-describedby=\"\(field.id)_help\""
            let required: HTML = field.required ? " required" : .empty
            switch field.input {
            case .boolean:
                return "<p><label class=\"inline\"><input type=\"checkbox\" id=\"\(field.id)\" name=\"\(field.id)\"\(value == "on" ? " checked" as HTML : .empty)> \(field.label)</label></p>"
            case .textarea, .lines:
                return "<label for=\"\(field.id)\">\(field.label)</label><textarea class=\"short\" id=\"\(field.id)\" name=\"\(field.id)\" spellcheck=\"false\"\(described)>\(value)</textarea>\(help)"
            case .secretName:
                let set = !value.isEmpty && environment?.secrets.contains { $0.name == value } == true
                let state: HTML = value.isEmpty ? .empty : environment == nil
                    ? "<p class=\"muted\" id=\"\(field.id)_state\">No environment chosen: the secret cannot be found.</p>"
                    : set ? "<p id=\"\(field.id)_state\"><span class=\"tag secret-set\">set</span> in the environment <a href=\"/console/environments/\(environment?.id ?? "")\">\(environment?.name ?? "")</a>.</p>"
                    : "<p class=\"warning\" id=\"\(field.id)_state\">Not set in the environment \(environment?.name ?? ""): give it a value below.</p>"
                return """
                    <label for="\(field.id)">\(field.label)</label><input type="text" id="\(field.id)" name="\(field.id)" value="\(value)" spellcheck="false" pattern="[A-Za-z_][A-Za-z0-9_]*"\(required)\(described)>\(help)\(state)
                    <label for="\(field.id)_value">\(set ? "Replace its value" : "Its value") (write-only, kept in the chosen environment)</label>
                    <input type="password" id="\(field.id)_value" name="\(field.id)_value" autocomplete="new-password"\(set ? " placeholder=\"keep the current value\"" as HTML : .empty)>
                    """
            case .url:
                return "<label for=\"\(field.id)\">\(field.label)</label><input type=\"url\" id=\"\(field.id)\" name=\"\(field.id)\" value=\"\(value)\" spellcheck=\"false\"\(required)\(described)>\(help)"
            case .number, .seconds, .statuses, .words, .text:
                let mode: HTML = switch field.input { case .number: " inputmode=\"numeric\""; case .seconds: " inputmode=\"decimal\""; default: .empty }
                return "<label for=\"\(field.id)\">\(field.label)</label><input type=\"text\" id=\"\(field.id)\" name=\"\(field.id)\" value=\"\(value)\" spellcheck=\"false\"\(mode)\(required)\(described)>\(help)"
            }
        }
        let action = integration.map { "/console/integrations/\($0.id)" } ?? "/console/integrations"
        let delete: HTML = HTML.when(canWrite && integration != nil, """
            <h2>Delete</h2>
            <form method="post" action="/console/integrations/\(integration?.id ?? "")/delete" id="delete-integration-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <p><label class="inline"><input type="checkbox" name="confirm" required> delete this integration (its environment stays)</label></p>
            <p><button type="submit" class="danger" id="delete-integration">Delete</button></p></form>
            """)
        return """
        <p><a href="/console/integrations">All integrations</a></p>
        <h1>\(integration.map { "\(kind.title): \($0.name)" } ?? "New \(kind.title)")</h1>
        <p class="muted">\(kind.summary)</p>
        \(notice)
        <form method="post" action="\(action)" id="integration-form">
        <input type="hidden" name="csrf" value="\(csrf)"><input type="hidden" name="kind" value="\(kind.name)">
        \(HTML.when(integration != nil, "<input type=\"hidden\" name=\"expected_version\" value=\"\(integration?.version ?? 0)\">"))
        <fieldset\(canWrite ? .empty : " disabled" as HTML)><legend class="sr-only">\(kind.title)</legend>
        <label for="int-name">Name</label><input type="text" id="int-name" name="name" value="\(typed?["name"] ?? integration?.name ?? "")" required maxlength="200" spellcheck="false" aria-describedby="int-name-help">
        <p class="muted field-help" id="int-name-help">Also the control's name in a run's control file.</p>
        <label for="int-description">Description</label><input type="text" id="int-description" name="description" value="\(typed?["description"] ?? integration?.description ?? "")">
        <label for="environment_id">Environment (where its secrets are kept)</label>
        <select id="environment_id" name="environment_id"><option value="">none</option>\(options)</select>
        \(inputs)
        \(HTML.when(canWrite, "<p><button type=\"submit\" id=\"save-integration\">\(integration == nil ? "Create" : "Save")</button></p>"))
        </fieldset>
        </form>
        \(delete)
        """
    }
}
