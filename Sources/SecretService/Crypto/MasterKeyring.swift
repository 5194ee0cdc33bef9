public import Crypto
import Foundation

/// The master keys of a replica: the current one wraps every new or re-wrapped data key; the
/// previous ones (during a rotation) still unwrap what they wrapped until `RotateKeys` re-wraps
/// it, so reads never stop. Keys are known by an id derived from the key, never by the key.
public struct MasterKeyring: Sendable {
    public let currentID: String
    /// Key bytes by id (`SymmetricKey` is not Sendable on Linux); keys are made per use.
    private let byID: [String: [UInt8]]

    var current: SymmetricKey { SymmetricKey(data: byID[currentID]!) }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(current: SymmetricKey, previous: [SymmetricKey] = []) throws(LoadError) {
        for key in [current] + previous where key.bitCount != 256 {
            throw LoadError(description: "master keys must be 32 bytes")
        }
        currentID = Self.id(of: current)
        var byID: [String: [UInt8]] = [:]
        for key in previous { byID[Self.id(of: key)] = key.withUnsafeBytes { Array($0) } }
        byID[currentID] = current.withUnsafeBytes { Array($0) }
        self.byID = byID
    }

    func key(id: String) -> SymmetricKey? { byID[id].map { SymmetricKey(data: $0) } }

    /// `mk_` and the first 8 bytes of an HMAC of a fixed label under the key: stable, and says
    /// nothing about the key.
    static func id(of key: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("faultline master key id".utf8), using: key)
        return "mk_" + Array(mac).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Reads `FAULTLINE_MASTER_KEY` (base64 of 32 bytes) or the file named by
    /// `FAULTLINE_MASTER_KEY_FILE` (raw 32 bytes or base64 text), and the previous keys being
    /// rotated out from `FAULTLINE_MASTER_KEY_PREVIOUS` (comma-separated base64) or
    /// `FAULTLINE_MASTER_KEY_PREVIOUS_FILE` (one base64 key per line). Errors never show key material.
    public static func fromEnvironment(_ environment: [String: String]) throws(LoadError) -> MasterKeyring {
        let current: SymmetricKey
        if let text = environment["FAULTLINE_MASTER_KEY"], !text.isEmpty {
            current = try decode(text, "FAULTLINE_MASTER_KEY")
        } else if let path = environment["FAULTLINE_MASTER_KEY_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadError(description: "cannot read FAULTLINE_MASTER_KEY_FILE")
            }
            current = data.count == 32 ? SymmetricKey(data: data)
                : try decode(String(decoding: data, as: UTF8.self), "FAULTLINE_MASTER_KEY_FILE")
        } else {
            throw LoadError(description: "set FAULTLINE_MASTER_KEY (base64 of 32 bytes) or FAULTLINE_MASTER_KEY_FILE")
        }
        var previousTexts: [Substring] = []
        if let text = environment["FAULTLINE_MASTER_KEY_PREVIOUS"] {
            previousTexts += text.split(separator: ",")
        }
        if let path = environment["FAULTLINE_MASTER_KEY_PREVIOUS_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadError(description: "cannot read FAULTLINE_MASTER_KEY_PREVIOUS_FILE")
            }
            previousTexts += String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
        }
        let previous = try previousTexts.map { (text) throws(LoadError) in try decode(String(text), "FAULTLINE_MASTER_KEY_PREVIOUS") }
        return try MasterKeyring(current: current, previous: previous)
    }

    private static func decode(_ text: String, _ source: String) throws(LoadError) -> SymmetricKey {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: trimmed), data.count == 32 else {
            throw LoadError(description: "\(source) is not the base64 of 32 bytes")
        }
        return SymmetricKey(data: data)
    }
}
