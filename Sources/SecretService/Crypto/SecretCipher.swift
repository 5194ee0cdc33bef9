import Crypto
import FaultlineRPC
import Foundation

/// AES-256-GCM with the ciphertext bound to where it belongs: the associated data names the
/// organisation, the environment, the secret and the data key (or, for a wrapped data key, the
/// organisation and key id), so a row copied onto another row fails to open instead of revealing
/// the wrong value. Stored form: version byte `1`, 12-byte nonce, ciphertext, 16-byte tag.
enum SecretCipher {
    static let version: UInt8 = 1

    /// Where a ciphertext belongs; its encoding is the AAD.
    enum Binding {
        case dataKey(org: String, keyID: String)
        case secret(org: String, environmentID: String, name: String, dataKeyID: String)

        /// Length-prefixed fields, so no two bindings encode alike.
        var associatedData: [UInt8] {
            let fields: [String] = switch self {
            case .dataKey(let org, let keyID): ["faultline/data-key/v1", org, keyID]
            case .secret(let org, let environmentID, let name, let dataKeyID):
                ["faultline/secret/v1", org, environmentID, name, dataKeyID]
            }
            var bytes: [UInt8] = []
            for field in fields {
                let utf8 = Array(field.utf8)
                withUnsafeBytes(of: UInt32(utf8.count).bigEndian) { bytes.append(contentsOf: $0) }
                bytes.append(contentsOf: utf8)
            }
            return bytes
        }
    }

    /// The one error a ciphertext that does not open gives: no detail, never any plaintext.
    static let tampered = RPCError(.dataLoss, "a stored secret failed its integrity check (tampered or bound elsewhere)")

    static func seal(_ plaintext: [UInt8], key: SymmetricKey, binding: Binding) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: key, authenticating: binding.associatedData)
        guard let combined = box.combined else { throw tampered }
        return [version] + Array(combined)
    }

    static func open(_ stored: [UInt8], key: SymmetricKey, binding: Binding) throws(RPCError) -> [UInt8] {
        guard stored.count >= 1 + 12 + 16, stored[0] == version else { throw tampered }
        do {
            let box = try AES.GCM.SealedBox(combined: stored.dropFirst())
            return Array(try AES.GCM.open(box, using: key, authenticating: binding.associatedData))
        } catch {
            throw tampered
        }
    }

    static func newDataKey() -> SymmetricKey { SymmetricKey(size: .bits256) }

    static func bytes(of key: SymmetricKey) -> [UInt8] { key.withUnsafeBytes { Array($0) } }
}
