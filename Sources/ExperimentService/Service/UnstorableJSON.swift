import FaultlinePostgres
import FaultlineRPC

/// JSON that parses but that Postgres refuses as `jsonb`: `\u0000` (U+0000, NUL), for which
/// Postgres 15 answers SQLSTATE 22P05 `untranslatable_character` ("unsupported Unicode escape
/// sequence: \u0000 cannot be converted to text"); in a database not in UTF-8, also any escape its
/// encoding lacks. The caller's data, not the service's failure: INVALID_ARGUMENT naming it.
enum UnstorableJSON {
    static let sqlState = "22P05"

    static func refusal(of what: String) -> RPCError {
        RPCError(.invalidArgument, "\(what) contains \\u0000 (U+0000, NUL), which Postgres cannot store as jsonb; remove or replace it")
    }

    /// `body`, with Postgres' refusal of a jsonb value as INVALID_ARGUMENT naming `what`.
    static func mapping<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError where error.sqlState == sqlState {
            throw refusal(of: what)
        }
    }
}
