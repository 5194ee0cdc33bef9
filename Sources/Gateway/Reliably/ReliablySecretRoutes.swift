import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird
import ServiceKit

/// What `reliably service plan execute` loads before a run: integrations, the controls they
/// render, and environments in the clear, from SecretService. Reveals and renders are the
/// runner role's (audited), so the gateway makes them with the runner credential
/// (`GatewayConfiguration.runnerCredential`) on behalf of a token allowed to report runs.
extension ReliablyRoutes {
    func registerSecrets(on api: RouterGroup<GatewayContext>) {
        for kind in [ReliablyIDs.Kind.environment, .integration] {
            api.get("reliably/\(kind.rawValue)s/{id}") { _, context in
                let principal = try context.require(.read)
                let id = try context.parameters.id("id")
                let secrets = try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
                let options = try gateway.callOptions(context)
                if kind == .environment {
                    _ = try await secrets.getEnvironment(.init(environmentId: try ResourceKind.environment.checked(id)), options: options)
                } else {
                    _ = try await secrets.getIntegration(.init(integrationId: try ResourceKind.integration.checked(id)), options: options)
                }
                return try Response.json(["organization_id": try await ids.organizationUUID(principal.organization),
                                          "id": try await ids.uuid(of: id, kind, in: principal.organization)])
            }
        }
        api.get("organization/{org}/integrations/{id}") { _, context in
            let (principal, org) = try await organization(context, needs: [.report])
            let (uuid, integration) = try await self.integration(context, principal)
            let environment: JSONValue = integration.environmentID.isEmpty ? .null
                : .string(try await ids.uuid(of: integration.environmentID, .environment, in: principal.organization))
            return Response.json(JSONValue.object([
                "id": .string(uuid), "org_id": .string(org), "name": .string(integration.name),
                "provider": .string(integration.provider), "vendor": "faultline", "environment_id": environment,
                "created_date": .string(ReliablyUserState.iso(integration.createdAtUs)),
            ]).text)
        }
        api.get("organization/{org}/integrations/{id}/control") { _, context in
            let (principal, _) = try await organization(context, needs: [.report])
            let (_, integration) = try await self.integration(context, principal)
            let secrets = try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
            let rendered = try await secrets.renderControls(.init(integrationIds: [integration.id]), options: try runnerOptions(context))
            // The CLI reads this body whatever its status (reliably-api.md §8.7): `null` when
            // the integration renders no control.
            guard let control = rendered.controls.first, let provider = JSONValue(text: control.controlJson)?["provider"] else {
                return Response.json("null")
            }
            return Response.json(JSONValue.object(["name": .string(control.name), "provider": provider]).text)
        }
        api.get("organization/{org}/environments/{id}/clear") { _, context in
            let (principal, org) = try await organization(context, needs: [.report])
            guard let uuid = ReliablyIDs.canonical(context.parameters.get("id")),
                  let id = try await ids.faultlineID(of: uuid, .environment, in: principal.organization) else {
                throw Problem.notFound("environment")
            }
            let secrets = try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
            let environment = try await secrets.getEnvironment(.init(environmentId: id), options: try gateway.callOptions(context)).environment ?? .init()
            let revealed = try await secrets.revealEnvironment(.init(environmentId: id), options: try runnerOptions(context)).environment ?? .init()
            return Response.json(Self.clearEnvironment(revealed, uuid: uuid, org: org, name: environment.name,
                                                       createdAtUs: environment.createdAtUs).text)
        }
    }

    /// The caller, checked against `{org}` (any other organisation's UUID is a 404).
    func organization(_ context: GatewayContext, needs permissions: [Role.Permission]) async throws -> (Principal, String) {
        guard let principal = context.principal else { throw Problem.unauthenticated }
        guard permissions.contains(where: principal.role.allows) else {
            throw Problem.forbidden("a \(principal.role.rawValue) token may not do this")
        }
        let organization = try await ids.organizationUUID(principal.organization)
        guard ReliablyIDs.canonical(context.parameters.get("org")) == organization else { throw Problem.notFound("organization") }
        return (principal, organization)
    }

    struct IntegrationView {
        var id: String
        var name: String
        var provider: String
        var environmentID: String
        var createdAtUs: Int64
    }

    private func integration(_ context: GatewayContext, _ principal: Principal) async throws -> (String, IntegrationView) {
        guard let uuid = ReliablyIDs.canonical(context.parameters.get("id")),
              let id = try await ids.faultlineID(of: uuid, .integration, in: principal.organization) else {
            throw Problem.notFound("integration")
        }
        let secrets = try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
        let found = try await secrets.getIntegration(.init(integrationId: id), options: try gateway.callOptions(context)).integration ?? .init()
        let provider = switch found.config?.kind {
        case .httpPreCheck?: "prechecks"
        case .httpSafeguard?: "safeguard"
        case .slack?: "slack"
        case .webhook?: "webhook"
        case .prometheus?: "prometheus"
        case .opentelemetry?: "opentelemetry"
        case nil: "unknown"
        }
        return (uuid, IntegrationView(id: found.id, name: found.name, provider: provider, environmentID: found.environmentId,
                                      createdAtUs: found.createdAtUs))
    }

    /// Call options carrying the runner credential, for SecretService's runner-only calls.
    private func runnerOptions(_ context: GatewayContext) throws -> CallOptions {
        guard let credential = gateway.configuration.runnerCredential, !credential.isEmpty else {
            throw Problem(.serviceUnavailable, code: "runner.credential.not_configured",
                          detail: "the gateway has no runner credential (FAULTLINE_RUNNER_CREDENTIAL) to reveal environments with")
        }
        var options = try gateway.callOptions(context)
        options.metadata.addString("Bearer " + credential, forKey: RunnerCredential.metadataKey)
        return options
    }

    /// Reliably's Environment. A secret file is served at `/<secret name>/<file name>`: one
    /// directory per file, because the CLI creates each file's directory without `exist_ok`
    /// (reliably-api.md §8.6); a variable naming the file's path gets that path, which the CLI
    /// turns into the temporary file's.
    static func clearEnvironment(_ revealed: SecretsV1.RevealedEnvironment, uuid: String, org: String, name: String,
                                 createdAtUs: Int64) -> JSONValue {
        var envvars: [JSONValue] = revealed.variables.sorted { $0.key < $1.key }.map {
            .object(["var_name": .string($0.key), "value": .string($0.value)])
        }
        var secrets: [JSONValue] = []
        for secret in revealed.secrets.sorted(by: { $0.name < $1.name }) {
            let value = String(decoding: secret.value, as: UTF8.self)
            switch secret.delivery?.target {
            case .file(let file)?:
                let fileName = file.path.split(separator: "/").last.map(String.init) ?? secret.name
                let path = "/\(secret.name)/\(fileName)"
                secrets.append(.object(["key": .string(secret.name), "path": .string(path), "value": .string(value)]))
                if !file.pathEnvVar.isEmpty {
                    envvars.append(.object(["var_name": .string(file.pathEnvVar), "value": .string(path)]))
                }
            case .envVar(let variable)?:
                secrets.append(.object(["key": .string(secret.name), "var_name": .string(variable.name.isEmpty ? secret.name : variable.name),
                                        "value": .string(value)]))
            case nil:
                secrets.append(.object(["key": .string(secret.name), "var_name": .string(secret.name), "value": .string(value)]))
            }
        }
        return .object([
            "id": .string(uuid), "org_id": .string(org), "name": .string(name),
            "created_date": .string(ReliablyUserState.iso(createdAtUs)), "envvars": .array(envvars), "secrets": .array(secrets),
        ])
    }
}
