public import FaultlineRPC

/// The failure of one database operation.
///
/// `description` is deliberately generic (as postgres-nio's `PSQLError` is): it names the kind of
/// failure, the SQLSTATE and the constraint, never the server's message, whose detail can quote
/// the values of SQL parameters. The server's text stays available in `serverMessage` and
/// `serverDetail` for whoever decides it is safe to show.
public struct DatabaseError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, independent of the server's SQLSTATE. A struct over an internal enum so
    /// that kinds can be added without breaking callers' switches.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: Hashable, Sendable {
            case server, connectionFailed, connectionLost, poolTimeout, clientClosed
            case invalidParameter, decoding, invalidMigrations, embeddedServer
        }
        let base: Base
        /// The server answered the statement with an error (see `sqlState`).
        public static let server = Code(base: .server)
        /// No connection could be opened (server down, wrong credentials, …).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection broke while in use; the statement's outcome is unknown.
        public static let connectionLost = Code(base: .connectionLost)
        /// Every pooled connection stayed busy for the whole checkout timeout.
        public static let poolTimeout = Code(base: .poolTimeout)
        /// The client was closed.
        public static let clientClosed = Code(base: .clientClosed)
        /// A bound value cannot be sent (e.g. a string holding NUL).
        public static let invalidParameter = Code(base: .invalidParameter)
        /// A column could not be decoded into the requested Swift type.
        public static let decoding = Code(base: .decoding)
        /// A migration list is malformed or disagrees with what was applied before.
        public static let invalidMigrations = Code(base: .invalidMigrations)
        /// The embedded server could not be initialised, started or stopped.
        public static let embeddedServer = Code(base: .embeddedServer)

        public var description: String {
            switch base {
            case .server: "server error"
            case .connectionFailed: "connection failed"
            case .connectionLost: "connection lost"
            case .poolTimeout: "connection pool timeout"
            case .clientClosed: "client closed"
            case .invalidParameter: "invalid parameter"
            case .decoding: "decoding failed"
            case .invalidMigrations: "invalid migrations"
            case .embeddedServer: "embedded server failed"
            }
        }
    }

    public var code: Code
    /// Five-character SQLSTATE (`PG_DIAG_SQLSTATE`), when the server sent one.
    public var sqlState: String?
    /// `PG_DIAG_MESSAGE_PRIMARY`: may quote values, so never part of `description`.
    public var serverMessage: String?
    /// `PG_DIAG_MESSAGE_DETAIL`: often quotes key values, so never part of `description`.
    public var serverDetail: String?
    /// `PG_DIAG_CONSTRAINT_NAME`, `PG_DIAG_SCHEMA_NAME`, `PG_DIAG_TABLE_NAME`, `PG_DIAG_COLUMN_NAME`.
    public var constraintName: String?
    public var schemaName: String?
    public var tableName: String?
    public var columnName: String?
    /// A client-side explanation, written here and free of parameters and passwords.
    public var reason: String?
    /// `PG_DIAG_SOURCE_FUNCTION`: tells the server's own plan-cache errors from the same SQLSTATE
    /// raised by a statement.
    var sourceFunction: String?

    public init(_ code: Code, reason: String? = nil, sqlState: String? = nil) {
        self.code = code
        self.reason = reason
        self.sqlState = sqlState
    }

    public var description: String {
        var parts = ["\(code)"]
        if let sqlState { parts.append("SQLSTATE \(sqlState)") }
        if let constraintName { parts.append("constraint \(constraintName)") }
        if let reason { parts.append(reason) }
        return "DatabaseError(\(parts.joined(separator: ", ")))"
    }

    /// For local debugging only: adds the server's primary message (which may quote values).
    public var debugDescription: String {
        guard let serverMessage else { return description }
        return "\(description): \(serverMessage)"
    }
}

extension DatabaseError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch code.base {
        case .connectionFailed, .connectionLost, .poolTimeout, .clientClosed:
            return .unavailable
        case .server:
            break
        default:
            return .internalError
        }
        switch sqlState {
        case "23505": return .alreadyExists
        case "23503", "23514": return .failedPrecondition  // foreign key, check
        case "40001", "40P01": return .aborted  // serialization failure, deadlock
        case "57014": return .cancelled  // query_canceled: PQcancel or statement_timeout
        // The caller's text holds what the database cannot store (U+0000 in jsonb, 22P05;
        // a character outside the encoding, 22021): the request's fault, whatever service stores it.
        case "22P05", "22021": return .invalidArgument
        case "57P01", "57P02", "57P03": return .unavailable  // admin/crash shutdown, cannot connect now
        case let state? where state.hasPrefix("08"): return .unavailable  // connection exception
        default: return .internalError
        }
    }

    /// Fixed texts per status: the server's message can quote parameters, so it is never sent.
    public var rpcErrorMessage: String {
        switch rpcErrorCode {
        case .alreadyExists: "the record already exists" + constraintSuffix
        case .failedPrecondition: "a database constraint was violated" + constraintSuffix
        case .aborted: "the transaction conflicted with another one; retry it"
        case .cancelled: "the database statement was cancelled"
        case .unavailable: "the database is unavailable"
        case .invalidArgument: "a value holds a character the database cannot store (such as U+0000)"
        default: "the database failed to handle the request"
        }
    }

    private var constraintSuffix: String {
        constraintName.map { " (\($0))" } ?? ""
    }
}
