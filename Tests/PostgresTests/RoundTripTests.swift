import Foundation
import Testing
import FaultlineRPC
@testable import FaultlinePostgres

@Suite struct RoundTripTests {
    static let table = """
        CREATE TABLE things (
            id serial PRIMARY KEY,
            t text, i8 bigint, i4 integer, b boolean, d double precision, ts timestamptz,
            u uuid, j jsonb, bytes bytea, tags text[])
        """

    struct Thing: Equatable {
        var t: String?, i8: Int64?, i4: Int32?, b: Bool?, d: Double?, ts: Date?
        var u: UUID?, j: JSONB?, bytes: [UInt8]?, tags: [String]?
    }

    func roundTrip(_ thing: Thing, _ client: PostgresClient) async throws -> Thing {
        let rows = try await client.query("""
            INSERT INTO things (t, i8, i4, b, d, ts, u, j, bytes, tags)
            VALUES (\(thing.t), \(thing.i8), \(thing.i4), \(thing.b), \(thing.d), \(thing.ts), \(thing.u), \(thing.j), \(thing.bytes), \(thing.tags))
            RETURNING t, i8, i4, b, d, ts, u, j, bytes, tags
            """)
        #expect(rows.count == 1)
        let (t, i8, i4, b, d, ts, u, j, bytes, tags) = try rows[0].decode(
            (String?, Int64?, Int32?, Bool?, Double?, Date?, UUID?, JSONB?, [UInt8]?, [String]?).self)
        return Thing(t: t, i8: i8, i4: i4, b: b, d: d, ts: ts, u: u, j: j, bytes: bytes, tags: tags)
    }

    @Test func everyTypeRoundTrips() async throws {
        try await TestPostgres.withClient(database: "pg_roundtrip") { client in
            try await client.execute(SQL(unescaped: Self.table))
            let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let things = [
                Thing(t: "plain", i8: .max, i4: .min, b: true, d: 3.141592653589793, ts: Date(timeIntervalSince1970: 1_700_000_000.123456),
                      u: UUID(), j: JSONB(#"{"a": [1, 2, {"b": null}]}"#), bytes: [0, 1, 2, 255], tags: ["a", "b c", "\"q\"", "back\\slash", "NULL", ""]),
                Thing(t: "ünïcødé 🚀 日本語 \t\n", i8: .min, i4: .max, b: false, d: -0.000_001, ts: Date(timeIntervalSince1970: -86_400.5),
                      u: UUID(), j: JSONB(#"{"emoji": "🚀", "s": "x\ny"}"#), bytes: [], tags: []),
                Thing(t: "", i8: 0, i4: 0, b: nil, d: .infinity, ts: Date(timeIntervalSince1970: 0), u: nil, j: JSONB("[]"), bytes: big, tags: ["日本"]),
                Thing(t: nil, i8: nil, i4: nil, b: nil, d: nil, ts: nil, u: nil, j: nil, bytes: nil, tags: nil),
            ]
            for thing in things {
                var back = try await roundTrip(thing, client)
                // jsonb is normalised by the server: compare parsed, not text.
                if let j = thing.j, let k = back.j {
                    let a = try JSONSerialization.jsonObject(with: Data(j.text.utf8), options: .fragmentsAllowed) as? NSObject
                    let b = try JSONSerialization.jsonObject(with: Data(k.text.utf8), options: .fragmentsAllowed) as? NSObject
                    #expect(a == b)
                    back.j = thing.j
                }
                if let ts = thing.ts, let back = back.ts { #expect(abs(ts.timeIntervalSince(back)) < 0.000_001) }
                back.ts = thing.ts
                #expect(back == thing)
            }
            let nan = try await client.query("SELECT \(Double.nan)::float8")[0].decode(Double.self, at: 0)
            #expect(nan.isNaN)
        }
    }

    @Test func injectionAttemptsAreStoredAsPlainText() async throws {
        try await TestPostgres.withClient(database: "pg_injection") { client in
            try await client.execute("CREATE TABLE notes (body text NOT NULL)")
            let attacks = [
                "'; DROP TABLE notes; --",
                "\\'; DROP TABLE notes; --",
                "$1",
                "x' OR '1'='1",
                "); DELETE FROM notes; (",
                "\"notes\"; TRUNCATE notes",
                "E'\\x00'",
            ]
            for attack in attacks {
                try await client.execute("INSERT INTO notes (body) VALUES (\(attack))")
            }
            let stored = try await client.query("SELECT body FROM notes ORDER BY ctid").map { try $0.decode(String.self, at: 0) }
            #expect(stored == attacks)
            let matched = try await client.query("SELECT count(*) FROM notes WHERE body = \("x' OR '1'='1")")
            #expect(try matched[0].decode(Int.self, at: 0) == 1)
            // A hostile identifier stays one quoted name.
            let hostile = "t\"; DROP TABLE notes; --"
            try await client.execute("CREATE TABLE \(identifier: hostile) (x int)")
            #expect(try await client.query("SELECT count(*) FROM notes")[0].decode(Int.self, at: 0) == attacks.count)
            let names = try await client.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            #expect(try names.map { try $0.decode(String.self, at: 0) } == ["notes", hostile])
        }
    }

    @Test func badValuesAndDecodesFailClearly() async throws {
        try await TestPostgres.withClient(database: "pg_decode_errors") { client in
            let nul = await expectDatabaseError { try await client.execute("SELECT \("a\u{0}b")::text") }
            #expect(nul?.code == .invalidParameter)
            #expect(nul?.description.contains("$1") == true)

            let row = try await client.query("SELECT NULL::text AS missing, 'abc'::text AS word, 7::int4 AS n, now() AS at")[0]
            #expect(try row.decode(String?.self, column: "missing") == nil)
            let null = #expect(throws: DatabaseError.self) { try row.decode(String.self, column: "missing") }
            #expect(null?.code == .decoding)
            #expect(null?.reason?.contains("NULL") == true)
            let wrongType = #expect(throws: DatabaseError.self) { try row.decode(Bool.self, column: "n") }
            #expect(wrongType?.reason?.contains("\"n\"") == true)
            #expect(throws: DatabaseError.self) { try row.decode(Int.self, column: "word") }
            #expect(throws: DatabaseError.self) { try row.decode(Date.self, column: "word") }
            #expect(throws: DatabaseError.self) { try row.decode(Int.self, column: "nope") }
            #expect(throws: DatabaseError.self) { try row.decode(Int.self, at: 9) }
            let overflow = try await client.query("SELECT 3000000000::int8")[0]
            #expect(throws: DatabaseError.self) { try overflow.decode(Int32.self, at: 0) }
            #expect(try overflow.decode(Int.self, at: 0) == 3_000_000_000)
            let infinite = try await client.query("SELECT 'infinity'::timestamptz")[0]
            #expect(throws: DatabaseError.self) { try infinite.decode(Date.self, at: 0) }

            let syntax = await expectDatabaseError { try await client.execute("SELEC 1") }
            #expect(syntax?.sqlState == "42601")
            #expect(syntax?.code == .server)
            // The connection that failed is still good for the next statement.
            #expect(try await client.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
        }
    }

    @Test func constraintViolationsMapToTheirCodes() async throws {
        try await TestPostgres.withClient(database: "pg_constraints") { client in
            try await client.execute("CREATE TABLE parents (id int PRIMARY KEY, email text UNIQUE, n int CHECK (n > 0))")
            try await client.execute("CREATE TABLE children (parent int REFERENCES parents (id))")
            try await client.execute("INSERT INTO parents VALUES (1, \("alice@example.com"), 1)")
            let duplicate = await expectDatabaseError {
                try await client.execute("INSERT INTO parents VALUES (2, \("alice@example.com"), 1)")
            }
            #expect(duplicate?.sqlState == "23505")
            #expect(duplicate?.constraintName == "parents_email_key")
            #expect(duplicate?.rpcErrorCode == .alreadyExists)
            for text in [duplicate?.description, duplicate?.rpcErrorMessage] {
                #expect(text?.contains("alice") == false)  // the detail quotes the key: kept out
            }
            let check = await expectDatabaseError { try await client.execute("INSERT INTO parents VALUES (3, 'b', -1)") }
            #expect(check?.rpcErrorCode == .failedPrecondition)
            let foreign = await expectDatabaseError { try await client.execute("INSERT INTO children VALUES (99)") }
            #expect(foreign?.rpcErrorCode == .failedPrecondition)
        }
    }

    @Test func copyInWritesEscapedRowsAndFailuresLeaveTheConnectionUsable() async throws {
        try await TestPostgres.withClient(database: "pg_copy", maximumConnections: 1) { client in
            try await client.execute("CREATE TABLE events (execution uuid, seq bigint, kind text, payload jsonb, at timestamptz, tags text[])")
            let id = UUID()
            let at = Date(timeIntervalSince1970: 1_700_000_000.25)
            let kinds = ["tab\there", "line\nbreak", "back\\slash", "cr\rlf", "\\N", "plain ünï"]
            let copied = try await client.withConnection { connection in
                try await connection.copyIn(into: "events", columns: ["execution", "seq", "kind", "payload", "at", "tags"]) { w in
                    for (i, kind) in kinds.enumerated() {
                        w.append(id); w.append(i); w.append(kind)
                        w.append(i == 0 ? nil : JSONB(#"{"k": "a\tb\\c"}"#)); w.append(at); w.append(["x\ty", "z"])
                        try w.endRow()
                    }
                }
            }
            #expect(copied == kinds.count)
            let rows = try await client.query("SELECT seq, kind, payload, at, tags FROM events WHERE execution = \(id) ORDER BY seq")
            #expect(try rows.map { try $0.decode(String.self, at: 1) } == kinds)
            #expect(try rows[0].decode(JSONB?.self, at: 2) == nil)
            #expect(try rows[1].decode(JSONB.self, at: 2).decode([String: String].self) == ["k": "a\tb\\c"])
            #expect(try rows[2].decode(Date.self, at: 3) == at)
            #expect(try rows[3].decode([String].self, at: 4) == ["x\ty", "z"])

            let dynamic = try await client.withConnection { connection in
                try await connection.copyIn(into: "events", columns: ["seq", "kind"], rows: [[7, "seven"], [8, nil]])
            }
            #expect(dynamic == 2)

            let bad = await expectDatabaseError {
                _ = try await client.withConnection { connection in
                    try await connection.copyIn(into: "events", columns: ["seq"]) { w in
                        w.append("not a number"); try w.endRow()
                    }
                }
            }
            #expect(bad?.sqlState == "22P02")
            let missing = await expectDatabaseError {
                _ = try await client.withConnection { connection in
                    try await connection.copyIn(into: "no_such_table", columns: ["seq"]) { _ in }
                }
            }
            #expect(missing?.sqlState == "42P01")
            // U+0000 in jsonb is the caller's data, refused as such by every service.
            let nul = await expectDatabaseError { _ = try await client.query("SELECT \("{\"a\":\"x\\u0000\"}")::jsonb") }
            #expect(nul?.sqlState == "22P05")
            #expect(nul.map { RPCError(from: $0).code } == .invalidArgument)
            struct Stop: Error {}
            await #expect(throws: Stop.self) {
                _ = try await client.withConnection { connection in
                    try await connection.copyIn(into: "events", columns: ["seq"]) { w in
                        w.append(1); try w.endRow()
                        throw Stop()
                    }
                }
            }
            // One connection in the pool: it survived all of the above.
            #expect(try await client.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0) == kinds.count + 2)
        }
    }
}

@Suite struct HostileInputTests {
    @Test func limitsAndOddInputsFailClearlyAndLeaveTheConnectionUsable() async throws {
        try await TestPostgres.withClient(database: "pg_hostile", maximumConnections: 1) { client in
            // More parameters than the protocol can carry.
            let tooMany: SQL = "SELECT 1 WHERE 1 IN (\(list: Array(0...65_535)))"
            #expect(tooMany.render().binds.count == 65_536)
            #expect(await expectDatabaseError { try await client.execute(tooMany) }?.code == .invalidParameter)
            // Empty statements, several statements in one extended-protocol call, COPY through query().
            #expect(try await client.query("").isEmpty)
            #expect(await expectDatabaseError { try await client.execute("SELECT 1; SELECT 2") }?.sqlState == "42601")
            #expect(await expectDatabaseError { try await client.execute("COPY (SELECT 1) TO STDOUT") }?.code == .invalidParameter)
            // Identifiers holding quotes, NUL and unicode stay one name.
            let odd = "a\"b\u{0}c 🚀"
            try await client.execute("CREATE TABLE \(identifier: odd) (\(identifier: "x\"y") int)")
            try await client.execute("INSERT INTO \(identifier: odd) VALUES (\(Int32(7)))")
            #expect(try await client.query("SELECT * FROM \(identifier: odd)")[0].decode(Int16.self, column: "x\"y") == 7)
            // A very long text value.
            let long = String(repeating: "ü", count: 2_000_000)
            #expect(try await client.query("SELECT length(\(long))")[0].decode(Int.self, at: 0) == 2_000_000)
            // A statement cancelled before it starts never reaches the server.
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.execute("CREATE TABLE never (x int)")
            }
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await client.query("SELECT to_regclass('never') IS NULL")[0].decode(Bool.self, at: 0))
            #expect(try await client.query("SELECT 1").count == 1)
        }
    }

    @Test func hostileChannelNamesAreQuoted() async throws {
        try await TestPostgres.withClient(database: "pg_hostile_listen") { client in
            let channel = "ch\"; DROP TABLE x; --"
            let received = try await client.listen(to: [channel]) { notifications in
                try await client.notify(channel: channel, payload: "'; SELECT 1; --")
                var iterator = notifications.makeAsyncIterator()
                return await iterator.next()
            }
            #expect(received?.channel == channel)
            #expect(received?.payload == "'; SELECT 1; --")
        }
    }
}
