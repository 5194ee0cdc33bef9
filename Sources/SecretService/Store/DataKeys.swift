import Crypto
import FaultlinePostgres
import FaultlineRPC
import ServiceKit

/// The organisations' data keys, stored wrapped (AES-GCM under a master key, bound to org and key
/// id). Each one is unwrapped per use and never leaves this type except as a `SymmetricKey`.
struct DataKeys {
    let keyring: MasterKeyring

    struct Unwrapped {
        let id: String
        let key: SymmetricKey
    }

    /// The organisation's active data key, made on first use. Runs inside the caller's transaction.
    ///
    /// `FOR SHARE` makes a writer wait for a rotation in flight (which holds the keys `FOR UPDATE`)
    /// and then use the key it committed: a plain read would take the key the rotation is
    /// deleting, and the secret's foreign key would fail when the rotation commits.
    func active(_ tx: PostgresConnection, _ org: OrganizationID) async throws -> Unwrapped {
        if let row = try await tx.query("""
            SELECT id, wrapped, master_key_id FROM secrets.data_keys WHERE org = \(org.rawValue) AND active FOR SHARE
            """).first {
            return try unwrap(org, row)
        }
        let id = ResourceID.make(.dataKey)
        let key = SecretCipher.newDataKey()
        let wrapped = try wrap(org, id, key)
        // A concurrent first writer may win: then use its key.
        let inserted = try await tx.execute("""
            INSERT INTO secrets.data_keys (org, id, wrapped, master_key_id, active, created_us)
            VALUES (\(org.rawValue), \(id), \(wrapped), \(keyring.currentID), true, \(WallClock.nowMicros()))
            ON CONFLICT (org) WHERE active DO NOTHING
            """)
        if inserted == 1 { return Unwrapped(id: id, key: key) }
        guard let row = try await tx.query("""
            SELECT id, wrapped, master_key_id FROM secrets.data_keys WHERE org = \(org.rawValue) AND active
            """).first else { throw RPCError(.aborted, "the data key changed concurrently; retry") }
        return try unwrap(org, row)
    }

    /// Every data key of the organisation, by id (for reading secrets under older keys).
    func all(_ tx: PostgresConnection, _ org: OrganizationID) async throws -> [String: SymmetricKey] {
        var keys: [String: SymmetricKey] = [:]
        for row in try await tx.query("SELECT id, wrapped, master_key_id FROM secrets.data_keys WHERE org = \(org.rawValue)") {
            let key = try unwrap(org, row)
            keys[key.id] = key.key
        }
        return keys
    }

    func wrap(_ org: OrganizationID, _ id: String, _ key: SymmetricKey) throws -> [UInt8] {
        try SecretCipher.seal(SecretCipher.bytes(of: key), key: keyring.current,
                              binding: .dataKey(org: org.rawValue, keyID: id))
    }

    func unwrap(_ org: OrganizationID, _ row: Row) throws -> Unwrapped {
        let (id, wrapped, masterID) = try row.decode((String, [UInt8], String).self)
        guard let master = keyring.key(id: masterID) else {
            throw RPCError(.failedPrecondition, "the organisation's data key is wrapped by master key \(masterID), which this replica was not given")
        }
        let raw = try SecretCipher.open(wrapped, key: master, binding: .dataKey(org: org.rawValue, keyID: id))
        guard raw.count == 32 else { throw SecretCipher.tampered }
        return Unwrapped(id: id, key: SymmetricKey(data: raw))
    }
}
