import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird

/// Environments: list, create, edit, delete. A secret's value goes in through a password field
/// and never comes back: SecretService answers with names and deliveries only, the edit form
/// says that a secret is set and offers to replace or remove it, and a form shown again after a
/// mistake has its secret fields empty.
///
/// GET /console/environments, GET /console/environments/new, POST /console/environments
/// GET /console/environments/{id}, POST /console/environments/{id}, POST /console/environments/{id}/delete
struct EnvironmentPages {
    let console: Console
    var gateway: Gateway { console.gateway }
    /// Empty rows for new secrets on each form.
    static let newSecretRows = 2

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("environments") { request, context in try await list(request, context) }
        pages.get("environments/new") { request, context in
            _ = try context.require(.write)
            return try console.page(context, title: "New environment", section: .environments,
                                    body: form(request, environment: nil, typed: nil, error: nil), request: request)
        }
        pages.post("environments") { request, context in try await save(request, context, id: nil) }
        pages.get("environments/{id}") { request, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .environment)
            let environment = try await client().getEnvironment(.init(environmentId: id), options: gateway.callOptions(context)).environment ?? .init()
            return try console.page(context, title: environment.name, section: .environments,
                                    body: form(request, environment: environment, typed: nil, error: nil, canWrite: context.principal?.role.allows(.write) ?? false),
                                    request: request)
        }
        pages.post("environments/{id}") { request, context in
            try await save(request, context, id: try context.parameters.id(of: .environment))
        }
        pages.post("environments/{id}/delete") { request, context in
            try await console.confirmedDelete(.environment, request, context, then: "/console/environments") { id, options in
                _ = try await client().deleteEnvironment(.init(environmentId: id), options: options)
            }
        }
    }

    private func client() throws -> SecretsV1.SecretClient {
        try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
    }

    private func list(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let list = SecretsV1.ListEnvironmentsRequest(pageSize: 100, pageToken: request.string("page_token") ?? "")
        let page = try await client().listEnvironments(list, options: gateway.callOptions(context))
        let rows = page.environments.map { e -> HTML in
            let secrets = e.secrets.map { s -> HTML in "<span class=\"tag secret-set\">\(s.name) <span class=\"sr-only\">is </span>set</span>" }
            return """
            <tr><td data-label="Name"><a href="/console/environments/\(e.id)">\(e.name)</a></td>
            <td data-label="Description">\(e.description)</td>
            <td data-label="Variables">\(e.variables.keys.sorted().joined(separator: ", "))</td>
            <td data-label="Secrets">\(secrets.isEmpty ? "<span class=\"muted\">none</span>" : HTML.join(secrets))</td>
            <td data-label="Updated">\(Pages.time(e.updatedAtUs))</td></tr>
            """
        }
        let table: HTML = rows.isEmpty ? "<p class=\"muted\">No environments yet.</p>" : """
            <div class="table-wrap"><table class="responsive" id="environments"><caption class="sr-only">Environments</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col">Variables</th><th scope="col">Secrets</th><th scope="col">Updated</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
        let next: HTML = page.nextPageToken.isEmpty ? .empty
            : "<p><a href=\"/console/environments?page_token=\(ExperimentPages.query(page.nextPageToken))\">Next page</a></p>"
        let body: HTML = """
        <h1>Environments</h1>
        <p>Variables and secrets a run executes with. Secret values are write-only: nobody reads them back here or through the API, only runners receive them.</p>
        \(HTML.when(principal.role.allows(.write), "<p><a class=\"button\" href=\"/console/environments/new\" id=\"new-environment\">New environment</a></p>"))
        \(table)\(next)
        """
        return try console.page(context, title: "Environments", section: .environments, body: body, request: request)
    }

    private func save(_ request: Request, _ context: GatewayContext, id: String?) async throws -> Response {
        _ = try context.require(.write)
        let typed = try await ConsoleForms.read(FieldsForm.self, request, context)
        let options = try gateway.callOptions(context)
        let secrets = try client()
        let current = if let id { try await secrets.getEnvironment(.init(environmentId: id), options: options).environment } else { nil as SecretsV1.Environment? }
        do {
            let variables = try KeyValueLines.parse(typed.fields["variables"] ?? "", separator: "=", what: "Variables")
            let added = try Self.newSecrets(typed)
            if let id, let current {
                var update = SecretsV1.UpdateEnvironmentRequest()
                update.environmentId = id
                update.expectedVersion = Int64(typed["expected_version"]) ?? 0
                update.name = .init(value: typed["name"])
                update.description = .init(value: typed["description"])
                update.replaceVariables = true
                update.variables = variables
                let (replaced, removed) = try Self.changedSecrets(typed, of: current)
                update.setSecrets = replaced + added
                update.deleteSecrets = removed
                _ = try await secrets.updateEnvironment(update, options: options)
                return Response.seeOther("/console/environments/\(id)?saved=1")
            }
            let create = SecretsV1.CreateEnvironmentRequest(name: typed["name"], description: typed["description"],
                                                            variables: variables, secrets: added)
            let created = try await secrets.createEnvironment(create, options: options)
            return Response.seeOther("/console/environments/\(created.environment?.id ?? "")?saved=1")
        } catch let error as FormError {
            return try console.page(context, title: "Environment", section: .environments,
                                    body: form(request, environment: current, typed: typed, error: error.message), request: request, status: .badRequest)
        } catch let error as RPCError where [.invalidArgument, .alreadyExists, .aborted, .failedPrecondition].contains(error.code) {
            let problem = Problem(rpc: error)
            let message = error.code == .aborted ? "The environment was changed meanwhile: reload it and make your change again." : problem.detail
            return try console.page(context, title: "Environment", section: .environments,
                                    body: form(request, environment: current, typed: typed, error: message), request: request, status: problem.status)
        }
    }

    /// The filled rows for new secrets.
    static func newSecrets(_ typed: FieldsForm) throws(FormError) -> [SecretsV1.SecretInput] {
        var inputs: [SecretsV1.SecretInput] = []
        for row in 0..<newSecretRows {
            let name = typed["secret_name_\(row)"]
            let value = typed.raw("secret_value_\(row)")
            guard !name.isEmpty || value != nil else { continue }
            guard !name.isEmpty else { throw FormError("New secret \(row + 1): give it a name") }
            guard let value else { throw FormError("New secret \(name): give it a value") }
            inputs.append(.init(name: name, delivery: try delivery(typed["secret_delivery_\(row)"], target: typed["secret_target_\(row)"]),
                                value: Array(value.utf8)))
        }
        return inputs
    }

    /// Existing secrets given a new value (keeping their delivery) or ticked for removal.
    static func changedSecrets(_ typed: FieldsForm, of environment: SecretsV1.Environment) throws(FormError) -> ([SecretsV1.SecretInput], [String]) {
        var replaced: [SecretsV1.SecretInput] = [], removed: [String] = []
        var row = 0
        while let name = typed.fields["existing_name_\(row)"] {
            defer { row += 1 }
            guard let secret = environment.secrets.first(where: { $0.name == name }) else {
                throw FormError("The secret \(name) is gone: the environment was changed meanwhile. Reload it.")
            }
            if typed.checked("existing_remove_\(row)") {
                removed.append(name)
            } else if let value = typed.raw("existing_value_\(row)") {
                replaced.append(.init(name: name, delivery: secret.delivery, value: Array(value.utf8)))
            }
        }
        return (replaced, removed)
    }

    static func delivery(_ kind: String, target: String) throws(FormError) -> SecretsV1.SecretDelivery {
        switch kind {
        case "", "env": return .init(target: .envVar(.init(name: target)))
        case "file":
            guard !target.isEmpty else { throw FormError("A secret delivered as a file needs its path (e.g. secrets/kubeconfig)") }
            return .init(target: .file(.init(path: target, pathEnvVar: "")))
        default: throw FormError("A secret is delivered as an environment variable or as a file")
        }
    }

    static func describe(_ delivery: SecretsV1.SecretDelivery?, name: String) -> HTML {
        switch delivery?.target {
        case .file(let file)?: "file <code>\(file.path)</code>\(file.pathEnvVar.isEmpty ? .empty : " (path in <code>\(file.pathEnvVar)</code>)" as HTML)"
        case .envVar(let env)?: "variable <code>\(env.name.isEmpty ? name : env.name)</code>"
        case nil: "variable <code>\(name)</code>"
        }
    }

    /// The create or edit form. `typed` (after a mistake) refills everything but secret values.
    private func form(_ request: Request, environment: SecretsV1.Environment?, typed: FieldsForm?, error: String?, canWrite: Bool = true) -> HTML {
        let csrf = ConsoleForms.csrf(of: request) ?? ""
        let name = typed?["name"] ?? environment?.name ?? ""
        let description = typed?["description"] ?? environment?.description ?? ""
        let variables = typed?.fields["variables"] ?? KeyValueLines.render(environment?.variables ?? [:], separator: "=")
        let notice: HTML = error.map {
            "<div class=\"notice\" role=\"alert\" id=\"form-error\"><p>\($0)</p><p>Secret values you typed were not kept: type them again.</p></div>"
        } ?? HTML.when(request.string("saved") != nil, "<p class=\"saved\" role=\"status\" id=\"saved\">Saved.</p>")
        let existing = (environment?.secrets ?? []).enumerated().map { row, secret -> HTML in
            """
            <tr><td data-label="Secret"><code>\(secret.name)</code><input type="hidden" name="existing_name_\(row)" value="\(secret.name)"></td>
            <td data-label="Delivered as">\(Self.describe(secret.delivery, name: secret.name))</td>
            <td data-label="Value"><span class="tag secret-set">set</span> <span class="muted">\(Pages.time(secret.updatedAtUs))</span></td>
            \(HTML.when(canWrite, """
                <td data-label="Replace"><label class="sr-only" for="existing_value_\(row)">New value for \(secret.name)</label>
                <input type="password" id="existing_value_\(row)" name="existing_value_\(row)" autocomplete="new-password" placeholder="keep the current value"></td>
                <td data-label="Remove"><label class="inline"><input type="checkbox" name="existing_remove_\(row)"> remove<span class="sr-only"> \(secret.name)</span></label></td>
                """))</tr>
            """
        }
        let secretsTable: HTML = existing.isEmpty ? "<p class=\"muted\">No secrets yet.</p>" : """
            <div class="table-wrap"><table class="responsive" id="secrets"><caption class="sr-only">Secrets (values are never shown)</caption>
            <thead><tr><th scope="col">Secret</th><th scope="col">Delivered as</th><th scope="col">Value</th>\(HTML.when(canWrite, "<th scope=\"col\">Replace</th><th scope=\"col\">Remove</th>"))</tr></thead>
            <tbody>\(existing)</tbody></table></div>
            """
        let newRows = (0..<Self.newSecretRows).map { row -> HTML in
            let kind = typed?["secret_delivery_\(row)"] ?? "env"
            return """
            <fieldset class="row secret-row"><legend>New secret \(row + 1)</legend>
            <div><label for="secret_name_\(row)">Name</label><input type="text" id="secret_name_\(row)" name="secret_name_\(row)" value="\(typed?["secret_name_\(row)"] ?? "")" autocomplete="off" spellcheck="false" pattern="[A-Za-z_][A-Za-z0-9_]*"></div>
            <div><label for="secret_value_\(row)">Value (write-only)</label><input type="password" id="secret_value_\(row)" name="secret_value_\(row)" autocomplete="new-password"></div>
            <div><label for="secret_delivery_\(row)">Delivered as</label><select id="secret_delivery_\(row)" name="secret_delivery_\(row)">
            <option value="env"\(kind == "file" ? .empty : " selected" as HTML)>environment variable</option><option value="file"\(kind == "file" ? " selected" as HTML : .empty)>file</option></select></div>
            <div><label for="secret_target_\(row)">Variable name or file path</label><input type="text" id="secret_target_\(row)" name="secret_target_\(row)" value="\(typed?["secret_target_\(row)"] ?? "")" placeholder="the secret's name" spellcheck="false"></div>
            </fieldset>
            """
        }
        let action = environment.map { "/console/environments/\($0.id)" } ?? "/console/environments"
        let readOnly: HTML = canWrite ? .empty : " disabled"
        let fields: HTML = """
            <form method="post" action="\(action)" id="environment-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            \(HTML.when(environment != nil, "<input type=\"hidden\" name=\"expected_version\" value=\"\(environment?.version ?? 0)\">"))
            <fieldset\(readOnly)><legend class="sr-only">The environment</legend>
            <label for="env-name">Name</label><input type="text" id="env-name" name="name" value="\(name)" required maxlength="200">
            <label for="env-description">Description</label><input type="text" id="env-description" name="description" value="\(description)">
            <label for="env-variables">Variables (not secret), one <code>NAME=value</code> a line</label>
            <textarea id="env-variables" name="variables" class="short" spellcheck="false" aria-describedby="variables-help">\(variables)</textarea>
            <p class="muted" id="variables-help">Shown to everyone who can read this organisation. Put passwords, tokens and keys in secrets.</p>
            </fieldset>
            <h2>Secrets</h2>
            <p class="muted">Values are write-only: once saved they are never shown again, here or in the API. Type a new value to replace one. Multi-line or binary file secrets can be set through the API (<code>value_base64</code>).</p>
            \(secretsTable)
            \(HTML.when(canWrite, "\(newRows)<p><button type=\"submit\" id=\"save-environment\">\(environment == nil ? "Create" : "Save")</button></p>"))
            </form>
            """
        let delete: HTML = HTML.when(canWrite && environment != nil, """
            <h2>Delete</h2>
            <form method="post" action="/console/environments/\(environment?.id ?? "")/delete" id="delete-environment-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <p><label class="inline"><input type="checkbox" name="confirm" required> delete this environment and its secrets for good</label></p>
            <p><button type="submit" class="danger" id="delete-environment">Delete</button></p></form>
            """)
        return """
        <p><a href="/console/environments">All environments</a></p>
        <h1>\(environment == nil ? "New environment" : "Environment \(environment?.name ?? "")")</h1>
        \(notice)
        \(HTML.when(environment != nil, "<dl class=\"facts\"><dt>Id</dt><dd><code>\(environment?.id ?? "")</code></dd><dt>Version</dt><dd>\(environment?.version ?? 0)</dd><dt>Updated</dt><dd>\(Pages.time(environment?.updatedAtUs ?? 0))</dd></dl>"))
        \(fields)
        \(delete)
        """
    }
}
