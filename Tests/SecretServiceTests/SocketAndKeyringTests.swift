import Crypto
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Testing
@testable import SecretService

@Suite("SecretService over RPC, and master key loading")
struct SocketAndKeyringTests {
    @Test func theRunnerCredentialCrossesTheWireAsAuthorizationMetadata() async throws {
        try await Harness.with(database: "secrets_rpc") { h in
            var logger = Logger(label: "rpc")
            logger.logLevel = .critical
            let server = RPCServer(configuration: .init(), services: [h.service], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                let client = RPCClient(host: "127.0.0.1", port: try await server.listeningPort, logger: logger)
                defer { group.cancelAll() }
                let secrets = SecretsV1.SecretClient(client)
                var user = CallOptions(timeout: .seconds(30))
                user.metadata.addString("org-a", forKey: ContractMetadata.organisation)
                var runner = user
                runner.metadata.addString("Bearer " + Harness.runnerCredential, forKey: RunnerCredential.metadataKey)

                let environment = try #require(try await secrets.createEnvironment(
                    .init(name: "wire", secrets: [Harness.fileSecret("BLOB", [0, 1, 2, 255], path: "f/blob")]), options: user).environment)
                await expectRPCError(.permissionDenied) {
                    try await secrets.revealEnvironment(.init(environmentId: environment.id, executionId: "exe-w"), options: user)
                }
                let revealed = try await secrets.revealEnvironment(.init(environmentId: environment.id, executionId: "exe-w"), options: runner)
                #expect(revealed.environment?.secrets.first?.value == [0, 1, 2, 255])
                let audit = try await secrets.listAuditEvents(.init(executionId: "exe-w"), options: user)
                #expect(audit.events.map(\.action) == [.revealEnvironment, .revealDenied])
                #expect(audit.events.first?.peer.hasPrefix("127.0.0.1") == true)
                await client.close()
            }
        }
    }

    /// The whole life of a secret through the real RPC server and client, both logging at trace
    /// into the capture: stored, updated, used by integrations, rendered and revealed for a run,
    /// refused, rotated, tampered with. No log line, no table, no error carries a secret or the
    /// runner credential; the service keeps serving after the tampering.
    @Test func aFullFlowOverTheWireLeavesNoSecretInLogsTablesOrErrors() async throws {
        let plaintext = "wire-canary-secret-31c9e0", second = "wire-canary-second-77ab", fileBytes: [UInt8] = Array("wire-canary-file".utf8) + [0, 254]
        try await Harness.with(database: "secrets_wire_flow") { h in
            let server = RPCServer(configuration: .init(), services: [h.service], logger: h.logs.logger("rpc-server"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                defer { group.cancelAll() }
                let client = RPCClient(host: "127.0.0.1", port: try await server.listeningPort, logger: h.logs.logger("rpc-client"))
                let secrets = SecretsV1.SecretClient(client)
                var user = CallOptions(timeout: .seconds(30))
                user.metadata.addString("org-a", forKey: ContractMetadata.organisation)
                var runner = user
                runner.metadata.addString("Bearer " + Harness.runnerCredential, forKey: RunnerCredential.metadataKey)
                var errors: [RPCError] = []
                func failing(_ code: RPCError.Code, _ what: String, _ body: () async throws -> Void) async {
                    if let error = await expectRPCError(code, what, body) { errors.append(error) }
                }

                let environment = try #require(try await secrets.createEnvironment(.init(name: "wire", variables: ["REGION": "eu"], secrets: [
                    Harness.envSecret("OTLP_TOKEN", plaintext, variable: "FL_OTLP_TOKEN"),
                    Harness.fileSecret("HOOK_KEY", fileBytes, path: "secrets/hook.key", pathEnvVar: "FL_HOOK_KEY_FILE"),
                ]), options: user).environment)
                _ = try await secrets.updateEnvironment(.init(environmentId: environment.id, setSecrets: [Harness.envSecret("SECOND", second)]), options: user)
                var ids: [String] = []
                for (name, config) in [("traces", IntegrationTests.traces { $0.secretHeaders = ["Authorization": "OTLP_TOKEN"] }),
                                       ("hook", SecretsV1.IntegrationConfig(kind: .webhook(.init(url: "https://h.example/in", signingSecret: "HOOK_KEY"))))] {
                    let created = try await secrets.createIntegration(.init(name: name, config: config, environmentId: environment.id), options: user)
                    ids.append(try #require(created.integration?.id))
                }
                let listed = try await secrets.listEnvironments(.init(), options: user)
                #expect(!"\(listed)".contains("canary"))

                let rendered = try await secrets.renderControls(.init(integrationIds: ids, executionId: "exe-wire"), options: runner)
                #expect(rendered.environment?.secrets.first { $0.name == "OTLP_TOKEN" }?.value == Array(plaintext.utf8))
                #expect(!rendered.controlFileJson.contains("canary"))
                let revealed = try await secrets.revealEnvironment(.init(environmentId: environment.id, executionId: "exe-wire"), options: runner)
                #expect(revealed.environment?.secrets.map(\.name) == ["HOOK_KEY", "OTLP_TOKEN", "SECOND"])

                await failing(.permissionDenied, "reveal as a user") {
                    _ = try await secrets.revealEnvironment(.init(environmentId: environment.id), options: user)
                }
                await failing(.permissionDenied, "render as a user") { _ = try await secrets.renderControls(.init(integrationIds: ids), options: user) }
                await failing(.invalidArgument, "bad name with the secret") {
                    _ = try await secrets.createEnvironment(.init(name: "bad", secrets: [Harness.envSecret("1" + plaintext, plaintext)]), options: user)
                }
                await failing(.invalidArgument, "secret as a path") {
                    _ = try await secrets.createEnvironment(.init(name: "bad", secrets: [Harness.fileSecret("F", fileBytes, path: "/" + plaintext)]), options: user)
                }
                _ = try await secrets.rotateKeys(.init(newDataKey: true), options: user)
                #expect(try await secrets.revealEnvironment(.init(environmentId: environment.id), options: runner).environment?.secrets.count == 3)

                try await h.database.execute("UPDATE secrets.secrets SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1) WHERE name = 'SECOND'")
                await failing(.dataLoss, "tampered") { _ = try await secrets.revealEnvironment(.init(environmentId: environment.id), options: runner) }
                #expect(errors.last?.message == SecretCipher.tampered.message)
                await failing(.dataLoss, "tampered, rendered") { _ = try await secrets.renderControls(.init(integrationIds: ids), options: runner) }
                // Still serving, on the same connection.
                #expect(try await secrets.getEnvironment(.init(environmentId: environment.id), options: user).environment?.secrets.count == 3)
                let clean = try #require(try await secrets.createEnvironment(.init(name: "clean", secrets: [Harness.envSecret("X", "x")]), options: user).environment)
                #expect(try await secrets.revealEnvironment(.init(environmentId: clean.id), options: runner).environment?.secrets.first?.value == Array("x".utf8))
                await client.close()

                #expect(errors.count == 6)
                for error in errors { #expect(!"\(error)".contains("canary") && !error.message.contains(Harness.runnerCredential), "\(error)") }
                for needle in [Array(plaintext.utf8), Array(second.utf8), fileBytes, Array(Harness.runnerCredential.utf8)] {
                    let hits = try await EncryptionTests.scan(h.database, for: needle)
                    #expect(hits.isEmpty, "\(hits)")
                }
                let lines = h.logs.all
                #expect(lines.contains { $0.contains("call failed") } && lines.contains { $0.contains("call finished") }, "\(lines)")
                for line in lines {
                    #expect(!line.contains("canary") && !line.contains(fileBytes.hex) && !line.contains(Harness.runnerCredential), "\(line)")
                }
            }
        }
    }

    @Test func masterKeysLoadFromTheEnvironmentOrAFileAndErrorsNeverShowThem() throws {
        let raw = [UInt8](repeating: 7, count: 32)
        let base64 = Data(raw).base64EncodedString()
        let fromEnv = try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY": base64])
        #expect(fromEnv.currentID.hasPrefix("mk_") && !fromEnv.currentID.contains(base64))

        let directory = try TestPostgres.makeTemporaryDirectory("keys")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rawFile = (directory as NSString).appendingPathComponent("raw.key")
        let textFile = (directory as NSString).appendingPathComponent("text.key")
        try #require(FileManager.default.createFile(atPath: rawFile, contents: Data(raw)))
        try #require(FileManager.default.createFile(atPath: textFile, contents: Data((base64 + "\n").utf8)))
        #expect(try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY_FILE": rawFile]).currentID == fromEnv.currentID)
        #expect(try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY_FILE": textFile]).currentID == fromEnv.currentID)

        let previous = Data([UInt8](repeating: 9, count: 32)).base64EncodedString()
        let rotating = try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY": base64, "FAULTLINE_MASTER_KEY_PREVIOUS": previous])
        #expect(rotating.key(id: MasterKeyring.id(of: SymmetricKey(data: Data(base64Encoded: previous)!))) != nil)

        let short = Data([UInt8](repeating: 1, count: 16)).base64EncodedString()
        for environment in [[:], ["FAULTLINE_MASTER_KEY": short], ["FAULTLINE_MASTER_KEY": "not base64 !"],
                            ["FAULTLINE_MASTER_KEY_FILE": (directory as NSString).appendingPathComponent("missing")],
                            ["FAULTLINE_MASTER_KEY": base64, "FAULTLINE_MASTER_KEY_PREVIOUS": short]] {
            do {
                _ = try MasterKeyring.fromEnvironment(environment)
                Issue.record("\(environment.keys) loaded")
            } catch {
                #expect(!error.description.contains(short) && !error.description.contains(base64), "\(error)")
            }
        }
    }
}
