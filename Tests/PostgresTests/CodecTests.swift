import Foundation
import Testing
import FaultlineRPC
@testable import FaultlinePostgres

@Suite struct CodecTests {
    @Test func interpolatedValuesBecomeNumberedBinds() {
        let name = "x'; DROP TABLE t; --"
        let table = "we\"ird"
        let sql: SQL = "SELECT * FROM \(identifier: table) WHERE a = \(name) AND b = \(42) AND c = \(Optional<Int>.none)"
        let (text, binds) = sql.render()
        #expect(text == "SELECT * FROM \"we\"\"ird\" WHERE a = $1 AND b = $2 AND c = $3")
        #expect(binds.count == 3)
        #expect(binds[0].bytes == Array(name.utf8))
        #expect(binds[1].type == .int8)
        #expect(binds[2].bytes == nil)
        #expect(sql.description == text)  // never the values
    }

    @Test func fragmentsAreRenumbered() {
        let filter: SQL = "b = \(2)"
        let sql: SQL = "SELECT 1 WHERE a = \(1) AND \(filter) AND c = \(3)"
        #expect(sql.render().text == "SELECT 1 WHERE a = $1 AND b = $2 AND c = $3")
        #expect(("x = \(1)" as SQL + " AND y = \(2)").render().text == "x = $1 AND y = $2")
        var built: SQL = "SELECT 1 WHERE true"
        for i in 0..<3 { built += " AND c\(unescaped: String(i)) = \(i)" }
        #expect(built.render().text == "SELECT 1 WHERE true AND c0 = $1 AND c1 = $2 AND c2 = $3")
        #expect(("id IN (\(list: [7, 8, 9]))" as SQL).render().text == "id IN ($1, $2, $3)")
        #expect(("id IN (\(list: [Int]()))" as SQL).render().text == "id IN ()")
    }

    @Test func timestampsRoundTripThroughText() throws {
        for seconds in [0.0, 1_700_000_000.123456, -1.5, -62_135_596_800.0 /* 0001-01-01 */, 253_402_300_799.999999] {
            let date = Date(timeIntervalSince1970: seconds)
            var bytes: [UInt8] = []
            Timestamp.write(date, into: &bytes)
            let parsed = try #require(Timestamp.parse(bytes))
            #expect(abs(parsed.timeIntervalSince1970 - seconds) < 0.000_001, "\(String(decoding: bytes, as: UTF8.self))")
        }
        var bytes: [UInt8] = []
        Timestamp.write(Date(timeIntervalSince1970: 1_700_000_000.5), into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "2023-11-14 22:13:20.500000+00")
        #expect(Timestamp.parse(Array("2024-02-29 12:00:00+05:30".utf8))?.timeIntervalSince1970 == 1_709_188_200)
        for bad in ["infinity", "2024-13-01 00:00:00+00", "2024-01-01", "2024-01-01 00:00:00+", "2024-01-01 00:00:00.+00"] {
            #expect(Timestamp.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func arrayLiteralsParseAndRejectWhatTheyCannotHold() throws {
        func parse(_ text: String) throws -> [String] {
            try String.decodeArray(ArraySlice(text.utf8), type: .textArray)
        }
        #expect(try parse("{}") == [])
        #expect(try parse(#"{a,"b c","d\"e","f\\g",""}"#) == ["a", "b c", "d\"e", "f\\g", ""])
        #expect(throws: DecodingFailure.self) { try parse("{a,NULL}") }
        #expect(throws: DecodingFailure.self) { try parse("{{a},{b}}") }
        #expect(throws: DecodingFailure.self) { try parse(#"{"unterminated}"#) }
        #expect(throws: DecodingFailure.self) { try String.decodeArray(ArraySlice("{a}".utf8), type: .int4) }
    }

    @Test func urlsParseAndNeverShowThePassword() throws {
        let configuration = try PostgresConfiguration(url: "postgresql://svc:s3cr%40t@db.local:6543/faultline?sslmode=disable")
        #expect(configuration.user == "svc")
        #expect(configuration.password == "s3cr@t")
        #expect(configuration.host == "db.local")
        #expect(configuration.port == 6543)
        #expect(configuration.database == "faultline")
        #expect(configuration.options["sslmode"] == "disable")
        #expect(configuration.description == "postgresql://svc:***@db.local:6543/faultline?sslmode=disable")
        #expect(!"\(configuration)".contains("s3cr"))
        #expect(configuration.redact("password s3cr@t leaked") == "password *** leaked")
        #expect(throws: DatabaseError.self) { try PostgresConfiguration(url: "mysql://u:hunter2@h/db") }
        do {
            _ = try PostgresConfiguration(url: "mysql://u:hunter2@h/db")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test func sqlStatesMapToRPCCodes() {
        func code(_ state: String?, _ kind: DatabaseError.Code = .server) -> RPCError.Code {
            DatabaseError(kind, sqlState: state).rpcErrorCode
        }
        #expect(code("23505") == .alreadyExists)
        #expect(code("23503") == .failedPrecondition)
        #expect(code("23514") == .failedPrecondition)
        #expect(code("40001") == .aborted)
        #expect(code("40P01") == .aborted)
        #expect(code("57014") == .cancelled)
        #expect(code("57P01") == .unavailable)
        #expect(code("08006") == .unavailable)
        #expect(code("42P01") == .internalError)
        #expect(code("22P05") == .invalidArgument)
        #expect(code("22021") == .invalidArgument)
        #expect(code("22012") == .internalError)  // division by zero: our SQL, not the caller's data
        #expect(code(nil, .connectionLost) == .unavailable)
        #expect(code(nil, .poolTimeout) == .unavailable)
        #expect(code("23505", .connectionLost) == .unavailable)
        var error = DatabaseError(.server, sqlState: "23505")
        error.serverMessage = "duplicate key value violates unique constraint"
        error.serverDetail = "Key (email)=(alice@example.com) already exists."
        error.constraintName = "users_email_key"
        #expect(error.rpcErrorMessage == "the record already exists (users_email_key)")
        #expect(!error.description.contains("alice"))
        #expect(RPCError(from: error).code == .alreadyExists)
    }
}
