import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Logging
import ServiceKit

/// The handlers of `faultline.secrets.v1.SecretService`. Each reads the calling organisation,
/// checks the request's shape, and leaves the rest to the stores. No handler logs a request or
/// a value: secret values travel only in requests, sealed rows and runner responses.
struct SecretRPCService: SecretsV1.SecretService {
    let database: PostgresClient
    let runner: RunnerCredential
    let logger: Logger
    let configuration: SecretServiceConfiguration
    let keys: DataKeys
    let environments: EnvironmentStore
    let integrations: IntegrationStore
    let audit: AuditStore

    init(database: PostgresClient, keyring: MasterKeyring, runner: RunnerCredential, logger: Logger, configuration: SecretServiceConfiguration) {
        self.database = database
        self.runner = runner
        self.logger = logger
        self.configuration = configuration
        keys = DataKeys(keyring: keyring)
        environments = EnvironmentStore(database: database, keys: keys)
        integrations = IntegrationStore(database: database)
        audit = AuditStore(database: database)
    }

    // MARK: environments

    func createEnvironment(_ request: SecretsV1.CreateEnvironmentRequest, context: ServerContext) async throws -> SecretsV1.CreateEnvironmentResponse {
        try await call(context) { org in
            try Check.name(request.name, "name")
            try Check.text(request.description, "description", max: 4096)
            try checkVariables(request.variables)
            try checkSecrets(request.secrets, field: "secrets")
            guard request.secrets.count <= configuration.maximumSecrets else {
                throw RPCError(.resourceExhausted, "at most \(configuration.maximumSecrets) secrets per environment")
            }
            return .init(environment: try await environments.create(org, request, audit: entry(context)))
        }
    }

    func getEnvironment(_ request: SecretsV1.GetEnvironmentRequest, context: ServerContext) async throws -> SecretsV1.GetEnvironmentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.environmentId, .environment, field: "environment_id")
            return .init(environment: try await environments.require(org, request.environmentId))
        }
    }

    func listEnvironments(_ request: SecretsV1.ListEnvironmentsRequest, context: ServerContext) async throws -> SecretsV1.ListEnvironmentsResponse {
        try await call(context) { org in try await environments.list(org, request) }
    }

    func updateEnvironment(_ request: SecretsV1.UpdateEnvironmentRequest, context: ServerContext) async throws -> SecretsV1.UpdateEnvironmentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.environmentId, .environment, field: "environment_id")
            guard request.expectedVersion >= 0 else { throw RPCError(.invalidArgument, "expected_version must not be negative") }
            if let name = request.name { try Check.name(name.value, "name") }
            if let description = request.description { try Check.text(description.value, "description", max: 4096) }
            try checkVariables(request.variables)
            try checkSecrets(request.setSecrets, field: "set_secrets")
            guard request.deleteSecrets.count <= configuration.maximumSecrets else {
                throw RPCError(.invalidArgument, "at most \(configuration.maximumSecrets) delete_secrets")
            }
            for name in request.deleteSecrets { try Check.text(name, "delete_secrets", max: 128) }
            return .init(environment: try await environments.update(org, request, maximumSecrets: configuration.maximumSecrets,
                                                                    audit: entry(context)))
        }
    }

    func deleteEnvironment(_ request: SecretsV1.DeleteEnvironmentRequest, context: ServerContext) async throws -> SecretsV1.DeleteEnvironmentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.environmentId, .environment, field: "environment_id")
            try await environments.delete(org, request.environmentId, audit: entry(context))
            return .init()
        }
    }

    // MARK: integrations

    func createIntegration(_ request: SecretsV1.CreateIntegrationRequest, context: ServerContext) async throws -> SecretsV1.CreateIntegrationResponse {
        try await call(context) { org in
            try checkIntegration(request.name, request.description, request.config, request.environmentId)
            return .init(integration: try await integrations.create(org, request))
        }
    }

    func getIntegration(_ request: SecretsV1.GetIntegrationRequest, context: ServerContext) async throws -> SecretsV1.GetIntegrationResponse {
        try await call(context) { org in
            try ResourceID.validate(request.integrationId, .integration, field: "integration_id")
            return .init(integration: try await integrations.require(org, request.integrationId))
        }
    }

    func listIntegrations(_ request: SecretsV1.ListIntegrationsRequest, context: ServerContext) async throws -> SecretsV1.ListIntegrationsResponse {
        try await call(context) { org in try await integrations.list(org, request) }
    }

    func updateIntegration(_ request: SecretsV1.UpdateIntegrationRequest, context: ServerContext) async throws -> SecretsV1.UpdateIntegrationResponse {
        try await call(context) { org in
            try ResourceID.validate(request.integrationId, .integration, field: "integration_id")
            guard request.expectedVersion >= 0 else { throw RPCError(.invalidArgument, "expected_version must not be negative") }
            try checkIntegration(request.name, request.description, request.config, request.environmentId)
            return .init(integration: try await integrations.update(org, request))
        }
    }

    func deleteIntegration(_ request: SecretsV1.DeleteIntegrationRequest, context: ServerContext) async throws -> SecretsV1.DeleteIntegrationResponse {
        try await call(context) { org in
            try ResourceID.validate(request.integrationId, .integration, field: "integration_id")
            try await integrations.delete(org, request.integrationId)
            return .init()
        }
    }

    // MARK: reveal and render

    func revealEnvironment(_ request: SecretsV1.RevealEnvironmentRequest, context: ServerContext) async throws -> SecretsV1.RevealEnvironmentResponse {
        try await call(context) { org in
            try ResourceID.validate(request.environmentId, .environment, field: "environment_id")
            try Check.text(request.executionId, "execution_id", max: 200)
            var entry = entry(context)
            entry.environmentID = request.environmentId
            entry.executionID = request.executionId
            try await requireRunner(org, context, entry)
            let revealed = try await environments.reveal(org, request.environmentId)
            entry.secretNames = revealed.secrets.map(\.name)
            try await audit.append(org, .revealEnvironment, entry)
            return .init(environment: revealed)
        }
    }

    func renderControls(_ request: SecretsV1.RenderControlsRequest, context: ServerContext) async throws -> SecretsV1.RenderControlsResponse {
        try await call(context) { org in
            guard request.integrationIds.count <= configuration.maximumRenderedIntegrations else {
                throw RPCError(.resourceExhausted, "at most \(configuration.maximumRenderedIntegrations) integration_ids")
            }
            for id in request.integrationIds { try ResourceID.validate(id, .integration, field: "integration_ids") }
            guard Set(request.integrationIds).count == request.integrationIds.count else {
                throw RPCError(.invalidArgument, "integration_ids has duplicates")
            }
            try Check.text(request.executionId, "execution_id", max: 200)
            var entry = entry(context)
            entry.integrationIDs = request.integrationIds
            entry.executionID = request.executionId
            try await requireRunner(org, context, entry)

            var response = SecretsV1.RenderControlsResponse()
            var merged = MergedEnvironment()
            var revealedNames: [String] = []
            for id in request.integrationIds {
                let integration = try await integrations.require(org, id)
                var environment = SecretsV1.RevealedEnvironment()
                if !integration.environmentId.isEmpty {
                    environment = try await environments.reveal(org, integration.environmentId)
                    try merged.add(environment, from: integration.name)
                    revealedNames += environment.secrets.map(\.name)
                }
                response.controls.append(try ControlRenderer.render(integration, environment: environment))
            }
            response.controlFileJson = try ControlRenderer.controlFile(response.controls)
            response.environment = merged.environment
            entry.secretNames = Array(Set(revealedNames)).sorted()
            try await audit.append(org, .renderControls, entry)
            return response
        }
    }

    // MARK: audit and keys

    func listAuditEvents(_ request: SecretsV1.ListAuditEventsRequest, context: ServerContext) async throws -> SecretsV1.ListAuditEventsResponse {
        try await call(context) { org in
            guard request.actions.count <= 20 else { throw RPCError(.invalidArgument, "at most 20 actions") }
            try Check.text(request.environmentId, "environment_id", max: 200)
            try Check.text(request.executionId, "execution_id", max: 200)
            guard request.sinceUs >= 0, request.untilUs >= 0 else { throw RPCError(.invalidArgument, "since_us and until_us must not be negative") }
            return try await audit.list(org, request)
        }
    }

    func rotateKeys(_ request: SecretsV1.RotateKeysRequest, context: ServerContext) async throws -> SecretsV1.RotateKeysResponse {
        try await call(context) { org in
            try await keys.rotate(database, org, newDataKey: request.newDataKey, audit: entry(context))
        }
    }

    // MARK: checks

    /// PERMISSION_DENIED unless the caller holds the runner credential; refusals are audited too.
    private func requireRunner(_ org: OrganizationID, _ context: ServerContext, _ entry: AuditStore.Entry) async throws {
        guard runner.admits(context) else {
            try await audit.append(org, .revealDenied, entry)
            throw RPCError(.permissionDenied, "only runners may reveal secrets (send the runner credential as `authorization: Bearer …`)")
        }
    }

    private func checkVariables(_ variables: [String: String]) throws(RPCError) {
        guard variables.count <= configuration.maximumVariables else {
            throw RPCError(.resourceExhausted, "at most \(configuration.maximumVariables) variables")
        }
        for (name, value) in variables {
            try Check.identifier(name, "variables")
            guard value.utf8.count <= configuration.maximumVariableBytes else {
                throw RPCError(.resourceExhausted, "variables[\(name)] is larger than \(configuration.maximumVariableBytes) bytes")
            }
            try Check.text(value, "variables[\(name)]", max: configuration.maximumVariableBytes)
        }
    }

    /// Names, deliveries and sizes; messages name the secret, never quote its value.
    private func checkSecrets(_ secrets: [SecretsV1.SecretInput], field: String) throws(RPCError) {
        guard secrets.count <= configuration.maximumSecrets else {
            throw RPCError(.resourceExhausted, "at most \(configuration.maximumSecrets) \(field)")
        }
        var seen = Set<String>()
        for secret in secrets {
            try Check.identifier(secret.name, "\(field).name")
            guard seen.insert(secret.name).inserted else { throw RPCError(.invalidArgument, "\(field): \(secret.name) appears twice") }
            guard secret.value.count <= configuration.maximumSecretBytes else {
                throw RPCError(.resourceExhausted, "\(field): \(secret.name) is larger than \(configuration.maximumSecretBytes) bytes")
            }
            switch secret.delivery?.target {
            case .file(let file):
                try Self.checkPath(file.path, "\(field): \(secret.name) delivery.file.path")
                if !file.pathEnvVar.isEmpty { try Check.identifier(file.pathEnvVar, "\(field): \(secret.name) delivery.file.path_env_var") }
            case .envVar(let variable):
                if !variable.name.isEmpty { try Check.identifier(variable.name, "\(field): \(secret.name) delivery.env_var.name") }
                try Self.checkEnvValue(secret)
            case nil:
                try Self.checkEnvValue(secret)
            }
        }
    }

    private static func checkEnvValue(_ secret: SecretsV1.SecretInput) throws(RPCError) {
        guard !secret.value.contains(0), String(validating: secret.value, as: UTF8.self) != nil else {
            throw RPCError(.invalidArgument, "secret \(secret.name) is delivered as an environment variable, so its value must be UTF-8 without NUL")
        }
    }

    /// Relative, normalised, no `..`: the runner joins it to the run directory.
    private static func checkPath(_ path: String, _ field: String) throws(RPCError) {
        try Check.text(path, field, max: 1024)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw RPCError(.invalidArgument, "\(field) must be a relative path without empty, `.` or `..` parts")
        }
    }

    private func checkIntegration(_ name: String, _ description: String, _ config: SecretsV1.IntegrationConfig?, _ environmentID: String) throws(RPCError) {
        try Check.name(name, "name")
        try Check.text(description, "description", max: 4096)
        if !environmentID.isEmpty { try ResourceID.validate(environmentID, .environment, field: "environment_id") }
        _ = try IntegrationCheck.validate(config, hasEnvironment: !environmentID.isEmpty)
    }

    private func entry(_ context: ServerContext) -> AuditStore.Entry {
        AuditStore.Entry(actor: context.actor, peer: String(context.peer.prefix(200)))
    }

    /// Runs a handler body for the calling organisation. Client mistakes are already RPCErrors;
    /// database failures keep their fixed messages (they never quote parameters); anything else
    /// is INTERNAL with a fixed message, and only its type is logged.
    private func call<T: Sendable>(_ context: ServerContext, _ body: (OrganizationID) async throws -> T) async throws -> T {
        let org = try context.organization()
        do {
            return try await body(org)
        } catch let error as RPCError {
            if error.code == .dataLoss { context.logger.error("a stored secret failed its integrity check", metadata: ["org": "\(org)"]) }
            throw error
        } catch let error as DatabaseError {
            if error.rpcErrorCode == .internalError {
                context.logger.error("database failure", metadata: ["sqlstate": "\(error.sqlState ?? "")", "code": "\(error.code)"])
            }
            throw RPCError(from: error)
        } catch is CancellationError {
            throw RPCError(.cancelled, "the call was cancelled")
        } catch {
            context.logger.error("unexpected failure", metadata: ["type": "\(type(of: error))"])
            throw RPCError(.internalError, "the service failed to handle the call")
        }
    }
}

/// The union of the integrations' environments; the same variable with two values is a conflict.
private struct MergedEnvironment {
    var environment = SecretsV1.RevealedEnvironment()
    private var owners: [String: (String, [UInt8])] = [:]

    mutating func add(_ other: SecretsV1.RevealedEnvironment, from integration: String) throws(RPCError) {
        for (name, value) in other.variables {
            try claim(name, Array(value.utf8), integration)
            environment.variables[name] = value
        }
        for secret in other.secrets {
            let target: String = switch secret.delivery?.target {
            case .file(let file): "file:" + file.path
            case .envVar(let variable): variable.name.isEmpty ? secret.name : variable.name
            case nil: secret.name
            }
            if owners[target]?.1 == secret.value { continue }
            try claim(target, secret.value, integration)
            environment.secrets.append(secret)
        }
    }

    private mutating func claim(_ target: String, _ value: [UInt8], _ integration: String) throws(RPCError) {
        if let (owner, existing) = owners[target], existing != value {
            throw RPCError(.failedPrecondition, "integrations \(owner) and \(integration) both set \(target) to different values")
        }
        owners[target] = (integration, value)
    }
}
