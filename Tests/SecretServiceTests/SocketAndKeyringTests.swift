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

    @Test func masterKeysLoadFromTheEnvironmentOrAFileAndErrorsNeverShowThem() throws {
        let raw = [UInt8](repeating: 7, count: 32)
        let base64 = Data(raw).base64EncodedString()
        let fromEnv = try MasterKeyring.fromEnvironment(["FAULTLINE_MASTER_KEY": base64])
        #expect(fromEnv.currentID.hasPrefix("mk_") && !fromEnv.currentID.contains(base64))

        let directory = try TestPostgres.makeTemporaryDirectory("keys")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rawFile = (directory as NSString).appendingPathComponent("raw.key")
        let textFile = (directory as NSString).appendingPathComponent("text.key")
        FileManager.default.createFile(atPath: rawFile, contents: Data(raw))
        FileManager.default.createFile(atPath: textFile, contents: Data((base64 + "\n").utf8))
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
