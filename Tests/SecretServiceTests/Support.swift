import Crypto
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import Synchronization
import ServiceKit
import Testing
@testable import SecretService
// Exported: every test file of the target sees LogCapture and its members (MemberImportVisibility).
@_exported import TestSupport

/// A SecretServer on a fresh database of its own, its handlers called directly with a
/// `ServerContext` as the RPC runtime would.
struct Harness {
    static let runnerCredential = "runner-credential-for-tests-0123456789"

    let database: PostgresClient
    let keyring: MasterKeyring
    let logs: LogCapture
    let service: SecretRPCService

    static func with(database name: String, keyring: MasterKeyring = try! MasterKeyring(current: SymmetricKey(size: .bits256)),
                     configuration: SecretServiceConfiguration = .init(),
                     _ body: (Harness) async throws -> Void) async throws {
        try await TestPostgres.withClient(database: name, maximumConnections: 6) { client in
            try await SecretServer.migrations.apply(on: client)
            try await body(Harness(database: client, keyring: keyring, logs: LogCapture(), configuration: configuration))
        }
    }

    init(database: PostgresClient, keyring: MasterKeyring, logs: LogCapture, configuration: SecretServiceConfiguration = .init()) {
        self.database = database
        self.keyring = keyring
        self.logs = logs
        service = SecretServer(database: database, keyring: keyring, runner: RunnerCredential(Self.runnerCredential),
                               logger: logs.logger("secret-service"), configuration: configuration).handlers
    }

    /// The same database served with another keyring (another replica, or after a restart).
    func replica(_ keyring: MasterKeyring) -> Harness { Harness(database: database, keyring: keyring, logs: logs) }

    func context(_ org: String? = "org-a", runner: String? = nil, method: String = "Test") -> ServerContext {
        var metadata = Metadata()
        if let org { metadata.addString(org, forKey: ContractMetadata.organisation) }
        metadata.addString("tester", forKey: ContractMetadata.actor)
        if let runner { metadata.addString(runner, forKey: "authorization") }
        return ServerContext(method: MethodDescriptor(service: "faultline.secrets.v1.SecretService", method: method),
                             metadata: metadata, deadline: nil, peer: "127.0.0.1:4242", logger: logs.logger("call"))
    }

    func runnerContext(_ org: String = "org-a") -> ServerContext { context(org, runner: "Bearer " + Self.runnerCredential) }

    // MARK: shortcuts

    static func envSecret(_ name: String, _ value: String, variable: String = "") -> SecretsV1.SecretInput {
        SecretsV1.SecretInput(name: name, delivery: .init(target: .envVar(.init(name: variable))), value: Array(value.utf8))
    }

    static func fileSecret(_ name: String, _ value: [UInt8], path: String, pathEnvVar: String = "") -> SecretsV1.SecretInput {
        SecretsV1.SecretInput(name: name, delivery: .init(target: .file(.init(path: path, pathEnvVar: pathEnvVar))), value: value)
    }

    func createEnvironment(_ name: String = "staging", org: String = "org-a", variables: [String: String] = ["REGION": "eu-west-1"],
                           secrets: [SecretsV1.SecretInput]) async throws -> SecretsV1.Environment {
        let response = try await service.createEnvironment(.init(name: name, description: "d", variables: variables, secrets: secrets),
                                                           context: context(org))
        return try #require(response.environment)
    }

    func reveal(_ id: String, org: String = "org-a", execution: String = "exe-1") async throws -> SecretsV1.RevealedEnvironment {
        try #require(try await service.revealEnvironment(.init(environmentId: id, executionId: execution), context: runnerContext(org)).environment)
    }
}

/// Expects an `RPCError` with `code` from `body`.
@discardableResult
func expectRPCError<T>(_ code: RPCError.Code, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> T) async -> RPCError? {
    do {
        _ = try await body()
        Issue.record("\(what): expected \(code), the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(what): \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("\(what): expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension Array where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
