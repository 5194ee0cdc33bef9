import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird

/// `/api/v1/environments`, `/api/v1/integrations` and `/api/v1/audit-events`, over SecretService.
/// Secret values go in (create, update) and never come out: SecretService's responses carry
/// names and deliveries only, and the gateway never logs a body.
struct SecretRoutes {
    let gateway: Gateway

    func client() throws -> SecretsV1.SecretClient {
        try gateway.required(gateway.secrets, "secrets", variable: "FAULTLINE_SECRET_SERVICE")
    }

    struct CreateEnvironmentBody: Decodable {
        var name: String
        var description: String?
        var variables: [String: String]?
        var secrets: [SecretInputBody]?
    }

    /// Absent fields are kept; `variables` are merged unless `replace_variables`.
    struct UpdateEnvironmentBody: Decodable {
        var expected_version: Int64?
        var name: String?
        var description: String?
        var variables: [String: String]?
        var replace_variables: Bool?
        var set_secrets: [SecretInputBody]?
        var delete_secrets: [String]?
    }

    struct IntegrationBody: Decodable {
        var name: String
        var description: String?
        var config: IntegrationConfigJSON
        var environment_id: String?
        var expected_version: Int64?
    }

    func register(on group: RouterGroup<GatewayContext>) {
        registerEnvironments(on: group)
        registerIntegrations(on: group)
        group.get("audit-events") { request, context in
            _ = try context.require(.administer)
            var list = SecretsV1.ListAuditEventsRequest()
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.environmentId = try ResourceKind.environment.reference(request.string("environment_id"))
            list.executionId = try ResourceKind.execution.reference(request.string("execution_id"))
            list.actions = try request.uri.queryParameters.getAll("action").map {
                try SecretsV1.AuditAction.parse(String($0), field: "action")!
            }
            list.sinceUs = try request.integer("since_us", in: 0...Int64.max) ?? 0
            list.untilUs = try request.integer("until_us", in: 0...Int64.max) ?? 0
            let page = try await client().listAuditEvents(list, options: gateway.callOptions(context))
            return try Response.json(AuditEventPage(events: page.events.map(AuditEventView.init), next_page_token: page.nextPageToken.nonEmpty))
        }
    }

    private func registerEnvironments(on group: RouterGroup<GatewayContext>) {
        group.post("environments") { request, context in
            _ = try context.require(.write)
            let body = try await request.json(CreateEnvironmentBody.self, context)
            let create = SecretsV1.CreateEnvironmentRequest(name: body.name, description: body.description ?? "",
                                                            variables: body.variables ?? [:], secrets: try (body.secrets ?? []).map { try $0.proto() })
            let created = try await client().createEnvironment(create, options: gateway.callOptions(context))
            return try Response.json(EnvironmentView(created.environment ?? .init()), status: .created)
        }
        group.get("environments") { request, context in
            _ = try context.require(.read)
            let list = SecretsV1.ListEnvironmentsRequest(pageSize: Int32(try request.integer("page_size", in: 1...200) ?? 50),
                                                         pageToken: request.string("page_token") ?? "")
            let page = try await client().listEnvironments(list, options: gateway.callOptions(context))
            return try Response.json(EnvironmentPage(environments: page.environments.map(EnvironmentView.init),
                                                     next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("environments/{id}") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .environment)
            let found = try await client().getEnvironment(.init(environmentId: id),
                                                          options: gateway.callOptions(context))
            return try Response.json(EnvironmentView(found.environment ?? .init()))
        }
        group.patch("environments/{id}") { request, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .environment)
            let body = try await request.json(UpdateEnvironmentBody.self, context)
            var update = SecretsV1.UpdateEnvironmentRequest()
            update.environmentId = id
            update.expectedVersion = body.expected_version ?? 0
            update.name = body.name.map { .init(value: $0) }
            update.description = body.description.map { .init(value: $0) }
            update.variables = body.variables ?? [:]
            update.replaceVariables = body.replace_variables ?? false
            update.setSecrets = try (body.set_secrets ?? []).map { try $0.proto() }
            update.deleteSecrets = body.delete_secrets ?? []
            let updated = try await client().updateEnvironment(update, options: gateway.callOptions(context))
            return try Response.json(EnvironmentView(updated.environment ?? .init()))
        }
        group.delete("environments/{id}") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .environment)
            _ = try await client().deleteEnvironment(.init(environmentId: id),
                                                     options: gateway.callOptions(context))
            return Response(status: .noContent)
        }
    }

    private func registerIntegrations(on group: RouterGroup<GatewayContext>) {
        group.post("integrations") { request, context in
            _ = try context.require(.write)
            let body = try await request.json(IntegrationBody.self, context)
            let create = SecretsV1.CreateIntegrationRequest(name: body.name, description: body.description ?? "",
                                                            config: try body.config.proto(),
                                                            environmentId: try ResourceKind.environment.reference(body.environment_id))
            do {
                let created = try await client().createIntegration(create, options: gateway.callOptions(context))
                return try Response.json(IntegrationView(created.integration ?? .init()), status: .created)
            } catch let error as RPCError where error.code == .notFound {
                throw ResourceKind.environment.notFound  // the only id a create names
            }
        }
        group.get("integrations") { request, context in
            _ = try context.require(.read)
            let list = SecretsV1.ListIntegrationsRequest(pageSize: Int32(try request.integer("page_size", in: 1...200) ?? 50),
                                                         pageToken: request.string("page_token") ?? "")
            let page = try await client().listIntegrations(list, options: gateway.callOptions(context))
            return try Response.json(IntegrationPage(integrations: page.integrations.map(IntegrationView.init),
                                                     next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("integrations/{id}") { _, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .integration)
            let found = try await client().getIntegration(.init(integrationId: id),
                                                          options: gateway.callOptions(context))
            return try Response.json(IntegrationView(found.integration ?? .init()))
        }
        group.put("integrations/{id}") { request, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .integration)
            let body = try await request.json(IntegrationBody.self, context)
            let update = SecretsV1.UpdateIntegrationRequest(integrationId: id, expectedVersion: body.expected_version ?? 0,
                                                            name: body.name, description: body.description ?? "",
                                                            config: try body.config.proto(),
                                                            environmentId: try ResourceKind.environment.reference(body.environment_id))
            let options = try gateway.callOptions(context)
            do {
                let updated = try await client().updateIntegration(update, options: options)
                return try Response.json(IntegrationView(updated.integration ?? .init()))
            } catch let error as RPCError where error.code == .notFound && !update.environmentId.isEmpty {
                // Either id may be the missing one; asking for the integration tells which.
                _ = try await client().getIntegration(.init(integrationId: id), options: options)
                throw ResourceKind.environment.notFound
            }
        }
        group.delete("integrations/{id}") { _, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .integration)
            _ = try await client().deleteIntegration(.init(integrationId: id),
                                                     options: gateway.callOptions(context))
            return Response(status: .noContent)
        }
    }
}
