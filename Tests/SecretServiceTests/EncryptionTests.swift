import Crypto
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import Testing
@testable import SecretService

@Suite("encryption at rest")
struct EncryptionTests {
    static let plaintext = "PLAINTEXT-canary-7f3a9c-secret-value"
    static let fileBytes: [UInt8] = Array("-----BEGIN KEY----- file-canary-4411 -----END KEY-----".utf8) + [0, 255, 10]

    /// Every row of every table in the schema as text (bytea shows as hex), and every bytea
    /// column searched for the raw bytes: none may hold `needle` in any spelling.
    static func scan(_ database: PostgresClient, for needle: [UInt8]) async throws -> [String] {
        var hits: [String] = []
        let spellings = [String(decoding: needle, as: UTF8.self), needle.hex, Data(needle).base64EncodedString()]
        let tables = try await database.query("""
            SELECT table_name FROM information_schema.tables WHERE table_schema = 'secrets' AND table_type = 'BASE TABLE'
            """).map { try $0.decode(String.self, at: 0) }
        #expect(tables.count >= 6, "tables: \(tables)")
        for table in tables {
            for row in try await database.query("SELECT t::text FROM \(identifier: table, in: "secrets") t") {
                let text = try row.decode(String.self, at: 0)
                for spelling in spellings where text.contains(spelling) { hits.append("\(table): row text holds \(spelling.prefix(12))…") }
            }
            let byteaColumns = try await database.query("""
                SELECT column_name FROM information_schema.columns WHERE table_schema = 'secrets' AND table_name = \(table) AND data_type = 'bytea'
                """).map { try $0.decode(String.self, at: 0) }
            for column in byteaColumns {
                let count = try await database.query("""
                    SELECT count(*) FROM \(identifier: table, in: "secrets") WHERE position(\(needle) IN \(identifier: column)) > 0
                    """).first!.decode(Int64.self, at: 0)
                if count > 0 { hits.append("\(table).\(column) holds the raw bytes") }
            }
        }
        return hits
    }

    @Test func noTableNoLogAndNoErrorHoldsAPlaintextSecretThroughAFullFlow() async throws {
        try await Harness.with(database: "secrets_plaintext") { h in
            let environment = try await h.createEnvironment(secrets: [
                Harness.envSecret("API_TOKEN", Self.plaintext),
                Harness.fileSecret("TLS_KEY", Self.fileBytes, path: "secrets/tls.key", pathEnvVar: "TLS_KEY_PATH"),
            ])
            // Responses name secrets, never values.
            #expect(environment.secrets.map(\.name) == ["API_TOKEN", "TLS_KEY"])
            #expect(!"\(environment)".contains(Self.plaintext))
            let updated = try await h.service.updateEnvironment(.init(environmentId: environment.id, setSecrets: [
                Harness.envSecret("SECOND", Self.plaintext + "-2", variable: "SECOND_VAR")]), context: h.context())
            #expect(!"\(updated)".contains(Self.plaintext))
            let listed = try await h.service.listEnvironments(.init(), context: h.context())
            #expect(!"\(listed)".contains(Self.plaintext))

            let revealed = try await h.reveal(environment.id)
            #expect(revealed.secrets.first { $0.name == "API_TOKEN" }?.value == Array(Self.plaintext.utf8))
            #expect(revealed.secrets.first { $0.name == "TLS_KEY" }?.value == Self.fileBytes)
            #expect(revealed.variables == ["REGION": "eu-west-1"])
            _ = try await h.service.rotateKeys(.init(newDataKey: true), context: h.context())
            #expect(try await h.reveal(environment.id).secrets.count == 3)

            // Errors about a request carrying the secret never quote it.
            var errors: [RPCError] = []
            for bad in [
                Harness.envSecret("1bad", Self.plaintext),
                Harness.envSecret("BIG", String(repeating: Self.plaintext, count: 3000)),
                SecretsV1.SecretInput(name: "NUL", delivery: nil, value: Array(Self.plaintext.utf8) + [0]),
                Harness.fileSecret("F", Array(Self.plaintext.utf8), path: "../" + Self.plaintext),
            ] {
                let error = await expectRPCError(bad.name == "BIG" ? .resourceExhausted : .invalidArgument, bad.name) {
                    try await h.service.createEnvironment(.init(name: "bad", secrets: [bad]), context: h.context())
                }
                errors += error.map { [$0] } ?? []
            }
            let denied = await expectRPCError(.permissionDenied) {
                try await h.service.revealEnvironment(.init(environmentId: environment.id), context: h.context())
            }
            try await h.database.execute("UPDATE secrets.secrets SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1)")
            let tampered = await expectRPCError(.dataLoss) { try await h.reveal(environment.id) }
            errors += [denied, tampered].compactMap { $0 }
            #expect(errors.count == 6)
            for error in errors { #expect(!"\(error)".contains(Self.plaintext) && !error.message.contains("canary")) }

            // The database: the scan finds a stored plain variable (so it can find), never a secret.
            #expect(try await Self.scan(h.database, for: Array("eu-west-1".utf8)).count > 0)
            for needle in [Array(Self.plaintext.utf8), Self.fileBytes, Array((Self.plaintext + "-2").utf8)] {
                let hits = try await Self.scan(h.database, for: needle)
                #expect(hits.isEmpty, "\(hits)")
            }
            let lines = h.logs.all
            #expect(!lines.isEmpty, "the flow logged nothing, so the log check proves nothing")
            #expect(lines.allSatisfy { !$0.contains(Self.plaintext) && !$0.contains(Self.fileBytes.hex) && !$0.contains("canary") }, "\(lines)")
        }
    }

    @Test func tamperedOrSwappedCiphertextIsDataLossAndTheServiceKeepsServing() async throws {
        try await Harness.with(database: "secrets_tamper") { h in
            let a = try await h.createEnvironment("a", secrets: [Harness.envSecret("ONE", "value-one"), Harness.envSecret("TWO", "value-two")])
            let b = try await h.createEnvironment("b", secrets: [Harness.envSecret("ONE", "value-b")])
            let c = try await h.createEnvironment("c", secrets: [Harness.envSecret("X", "value-x")])

            // Two rows of one environment swap ciphertexts: each is bound to its own name.
            try await h.database.execute("""
                UPDATE secrets.secrets s SET ciphertext = o.ciphertext FROM secrets.secrets o
                WHERE s.environment_id = \(a.id) AND o.environment_id = \(a.id) AND s.name <> o.name
                """)
            let swapped = await expectRPCError(.dataLoss, "swapped names") { try await h.reveal(a.id) }
            #expect(swapped?.message == SecretCipher.tampered.message)

            // The same name in another environment: bound to its environment.
            try await h.database.execute("""
                UPDATE secrets.secrets s SET ciphertext = o.ciphertext FROM secrets.secrets o
                WHERE s.environment_id = \(b.id) AND o.environment_id = \(a.id) AND o.name = 'ONE'
                """)
            await expectRPCError(.dataLoss, "moved across environments") { try await h.reveal(b.id) }

            // Truncated, empty and wrong-version ciphertexts.
            for mutation: SQL in ["substring(ciphertext from 1 for 10)", "''::bytea", "overlay(ciphertext placing '\\x02'::bytea from 1 for 1)"] {
                try await h.database.execute("UPDATE secrets.secrets SET ciphertext = \(mutation) WHERE environment_id = \(c.id)")
                await expectRPCError(.dataLoss, "\(mutation)") { try await h.reveal(c.id) }
            }

            // A corrupted wrapped data key.
            let d = try await h.createEnvironment("d", secrets: [Harness.envSecret("K", "v")])
            try await h.database.execute("UPDATE secrets.data_keys SET wrapped = set_byte(wrapped, 30, get_byte(wrapped, 30) # 255)")
            await expectRPCError(.dataLoss, "wrapped data key") { try await h.reveal(d.id) }
            // Still serving: metadata reads work.
            #expect(try await h.service.getEnvironment(.init(environmentId: d.id), context: h.context()).environment?.secrets.count == 1)
        }
    }

    @Test func rotationRewrapsUnderANewMasterKeyAndReencryptsUnderANewDataKey() async throws {
        let oldKey = SymmetricKey(size: .bits256), newKey = SymmetricKey(size: .bits256)
        try await Harness.with(database: "secrets_rotation", keyring: try MasterKeyring(current: oldKey)) { old in
            let environment = try await old.createEnvironment(secrets: [Harness.envSecret("A", "alpha"), Harness.envSecret("B", "beta")])
            let other = try await old.createEnvironment("other", org: "org-b", secrets: [Harness.envSecret("C", "gamma")])

            // During the rotation: the new replica has the new key and still accepts the old one.
            let rotating = old.replica(try MasterKeyring(current: newKey, previous: [oldKey]))
            #expect(try await rotating.reveal(environment.id).secrets.map(\.value) == [Array("alpha".utf8), Array("beta".utf8)])
            // New secrets are written under the existing data key, still wrapped by the old master key.
            _ = try await rotating.service.updateEnvironment(.init(environmentId: environment.id, setSecrets: [Harness.envSecret("D", "delta")]),
                                                             context: rotating.context())
            let rotated = try await rotating.service.rotateKeys(.init(), context: rotating.context())
            #expect(rotated.masterKeyId == rotating.keyring.currentID)
            #expect(rotated.masterKeyId != old.keyring.currentID)
            #expect(rotated.secretsReencrypted == 0)

            // After: the new key alone opens org-a; the old key alone no longer does.
            let after = old.replica(try MasterKeyring(current: newKey))
            #expect(try await after.reveal(environment.id).secrets.map(\.name) == ["A", "B", "D"])
            await expectRPCError(.failedPrecondition, "old key only") { try await old.reveal(environment.id) }
            // org-b was not rotated: its data key is still under the old master key.
            await expectRPCError(.failedPrecondition, "org-b not rotated") { try await after.reveal(other.id, org: "org-b") }
            #expect(try await rotating.reveal(other.id, org: "org-b").secrets.first?.value == Array("gamma".utf8))

            // A fresh data key: every secret re-encrypted, the old data key gone, values intact.
            let before = try await after.database.query("SELECT id FROM secrets.data_keys WHERE org = 'org-a'").map { try $0.decode(String.self, at: 0) }
            let fresh = try await after.service.rotateKeys(.init(newDataKey: true), context: after.context())
            #expect(fresh.secretsReencrypted == 3)
            let keys = try await after.database.query("SELECT id FROM secrets.data_keys WHERE org = 'org-a'").map { try $0.decode(String.self, at: 0) }
            #expect(keys.count == 1 && keys != before)
            let revealed = try await after.reveal(environment.id)
            #expect(revealed.secrets.map(\.value) == [Array("alpha".utf8), Array("beta".utf8), Array("delta".utf8)])
            let audited = try await after.service.listAuditEvents(.init(actions: [.rotateKeys]), context: after.context())
            #expect(audited.events.count == 2)
        }
    }
    /// Backends of this database waiting on a row lock, for holding a rotation mid-flight.
    static func lockWaiters(_ database: PostgresClient) async throws -> Int64 {
        try await database.query("""
            SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
            """).first!.decode(Int64.self, at: 0)
    }

    static func waitForLockWaiters(_ database: PostgresClient, _ count: Int64, _ what: String) async throws {
        for _ in 0..<3000 where try await lockWaiters(database) < count { try await Task.sleep(for: .milliseconds(10)) }
        try #require(try await lockWaiters(database) >= count, "\(what) never waited on a lock")
    }

    @Test func aRotationInFlightStopsNoReaderAndFailsNoWriter() async throws {
        let oldKey = SymmetricKey(size: .bits256), newKey = SymmetricKey(size: .bits256)
        try await Harness.with(database: "secrets_rotation_live", keyring: try MasterKeyring(current: oldKey)) { old in
            let environment = try await old.createEnvironment(secrets: [Harness.envSecret("A", "alpha"), Harness.envSecret("B", "beta")])
            let rotating = old.replica(try MasterKeyring(current: newKey, previous: [oldKey]))
            // Holding secret A's row stops the rotation after it re-wrapped and replaced the data key,
            // before it re-encrypts (it locks A, then B): the longest a real rotation stays open.
            try await old.database.withTransaction { blocker in
                try await blocker.execute("SELECT 1 FROM secrets.secrets WHERE name = 'A' FOR SHARE")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let rotated = try await rotating.service.rotateKeys(.init(newDataKey: true), context: rotating.context())
                        #expect(rotated.secretsReencrypted == 2)  // the writer's secret comes after, under the fresh key
                    }
                    try await Self.waitForLockWaiters(old.database, 1, "the rotation")
                    // Readers on either side of the rotation see the committed rows and answer.
                    for replica in [old, rotating] {
                        let revealed = try await replica.reveal(environment.id)
                        #expect(revealed.secrets.map(\.value) == [Array("alpha".utf8), Array("beta".utf8)])
                    }
                    // A writer during the rotation (setting one secret, deleting another) waits for it,
                    // then succeeds: no foreign key to a deleted data key, no deadlock.
                    group.addTask {
                        _ = try await rotating.service.updateEnvironment(.init(environmentId: environment.id, setSecrets: [
                            Harness.envSecret("C", "gamma")], deleteSecrets: ["B"]), context: rotating.context())
                    }
                    try await Self.waitForLockWaiters(old.database, 2, "the writer")
                    try await blocker.execute("COMMIT")
                    try await blocker.execute("BEGIN")  // withTransaction commits on return
                    try await group.waitForAll()
                }
            }
            let after = old.replica(try MasterKeyring(current: newKey))
            let revealed = try await after.reveal(environment.id)
            #expect(revealed.secrets.map(\.name) == ["A", "C"])
            #expect(revealed.secrets.map(\.value) == [Array("alpha".utf8), Array("gamma".utf8)])
            #expect(try await after.database.query("SELECT count(*) FROM secrets.data_keys WHERE org = 'org-a'").first!.decode(Int64.self, at: 0) == 1)
        }
    }
}
