import Foundation
import Testing
import FaultlinePostgres

/// Expects `body` to throw a `DatabaseError` and returns it.
func expectDatabaseError(sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () async throws -> Void) async -> DatabaseError? {
    do {
        try await body()
        Issue.record("expected a DatabaseError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as DatabaseError {
        return error
    } catch {
        Issue.record("expected a DatabaseError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Polls (without asserting on time) until `condition` holds.
func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
    for _ in 0..<600 {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("never happened: \(what)")
}

/// True once a statement containing `marker` is running on the server.
func isRunning(_ marker: String, on client: PostgresClient) async throws -> Bool {
    let rows = try await client.query("""
        SELECT count(*) FROM pg_stat_activity
        WHERE state = 'active' AND query LIKE \("%" + marker + "%") AND pid <> pg_backend_pid()
        """)
    return try rows[0].decode(Int.self, at: 0) > 0
}
