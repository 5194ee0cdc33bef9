import FaultlinePostgres
public import FaultlineRPC
import Logging

extension ServerContext {
    /// Runs a handler body so that what reaches the caller never leaks internals: client
    /// mistakes are already RPCErrors; database failures keep their fixed messages (they never
    /// quote parameters); anything else is INTERNAL with a fixed message, and only its type is
    /// logged (an error's description may hold a request's values, secrets included).
    public func mappingFailures<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw error
        } catch let error as DatabaseError {
            if error.rpcErrorCode == .internalError {
                logger.error("database failure", metadata: ["sqlstate": "\(error.sqlState ?? "")", "code": "\(error.code)"])
            }
            throw RPCError(from: error)
        } catch is CancellationError {
            throw RPCError(.cancelled, "the call was cancelled")
        } catch {
            logger.error("unexpected failure", metadata: ["type": "\(type(of: error))"])
            throw RPCError(.internalError, "the service failed to handle the call")
        }
    }
}

/// Bounds on request fields every service checks before anything reaches SQL. Services add
/// their own checks in extensions.
public enum Check {
    public static func text(_ value: String, _ field: String, max: Int) throws(RPCError) {
        guard value.utf8.count <= max else { throw RPCError(.invalidArgument, "\(field) is longer than \(max) bytes") }
        guard !value.utf8.contains(0) else { throw RPCError(.invalidArgument, "\(field) contains a NUL character") }
    }

    /// Display names: 1-200 bytes, no control characters.
    public static func name(_ value: String, _ field: String) throws(RPCError) {
        guard (1...200).contains(value.utf8.count), !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw RPCError(.invalidArgument, "\(field) must be 1-200 bytes without control characters") }
    }
}
