import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import ServiceKit

extension DataKeys {
    /// Re-wraps every data key of the organisation with the current master key and, with
    /// `newDataKey`, re-encrypts every secret under a fresh data key and drops the old keys. One
    /// transaction: readers keep seeing the old rows (which still open: the old master key is
    /// still in the keyring) until it commits, so rotation needs no downtime.
    func rotate(_ database: PostgresClient, _ org: OrganizationID, newDataKey: Bool, audit: AuditStore.Entry) async throws -> SecretsV1.RotateKeysResponse {
        try await database.withTransaction { tx in
            let rows = try await tx.query("SELECT id, wrapped, master_key_id FROM secrets.data_keys WHERE org = \(org.rawValue) FOR UPDATE")
            var old: [String: DataKeys.Unwrapped] = [:]
            for row in rows {
                let key = try unwrap(org, row)
                old[key.id] = key
                try await tx.execute("""
                    UPDATE secrets.data_keys SET wrapped = \(try wrap(org, key.id, key.key)), master_key_id = \(keyring.currentID)
                    WHERE org = \(org.rawValue) AND id = \(key.id)
                    """)
            }
            var reencrypted: Int64 = 0
            if newDataKey {
                try await tx.execute("UPDATE secrets.data_keys SET active = false WHERE org = \(org.rawValue)")
                let fresh = try await active(tx, org)
                let secrets = try await tx.query("""
                    SELECT environment_id, name, ciphertext, data_key_id FROM secrets.secrets WHERE org = \(org.rawValue) FOR UPDATE
                    """)
                for row in secrets {
                    let (environmentID, name, sealed, keyID) = try row.decode((String, String, [UInt8], String).self)
                    guard let key = old[keyID] else { throw SecretCipher.tampered }
                    let value = try SecretCipher.open(sealed, key: key.key, binding: .secret(
                        org: org.rawValue, environmentID: environmentID, name: name, dataKeyID: keyID))
                    let resealed = try SecretCipher.seal(value, key: fresh.key, binding: .secret(
                        org: org.rawValue, environmentID: environmentID, name: name, dataKeyID: fresh.id))
                    try await tx.execute("""
                        UPDATE secrets.secrets SET ciphertext = \(resealed), data_key_id = \(fresh.id)
                        WHERE org = \(org.rawValue) AND environment_id = \(environmentID) AND name = \(name)
                        """)
                    reencrypted += 1
                }
                try await tx.execute("DELETE FROM secrets.data_keys WHERE org = \(org.rawValue) AND NOT active")
            }
            try await AuditStore.append(tx, org, .rotateKeys, audit)
            return SecretsV1.RotateKeysResponse(masterKeyId: keyring.currentID, secretsReencrypted: reencrypted)
        }
    }
}
