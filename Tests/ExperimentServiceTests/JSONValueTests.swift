import ExperimentService
import Foundation
import Testing

@Suite("JSON values: strict parsing, exact numbers, ordered keys")
struct JSONValueTests {
    private func parse(_ text: String, limits: DocumentLimits = .default) throws(DocumentError) -> JSONValue {
        try JSONValue.parse(jsonBytes: Array(text.utf8), limits: limits)
    }

    @Test func keepsKeyOrderNumberKindsAndExactText() throws {
        let text = #"{"z":1,"a":1.0,"m":[1e2,-0,12345678901234567890123,0.10],"s":"\u00e9\ud83d\ude00\n\"x\"/"}"#
        let value = try parse(text)
        #expect(value.objectValue?.keys == ["z", "a", "m", "s"])
        #expect(value["z"]?.numberValue?.kind == .integer)
        #expect(value["a"]?.numberValue?.kind == .float)
        let m = try value["m"]?.arrayValue.unwrap()
        #expect(m?.map { $0.numberValue?.literal } == ["1e2", "-0", "12345678901234567890123", "0.10"])
        #expect(value["s"]?.stringValue == "é😀\n\"x\"/")
        // Serialising keeps the order and the number text; re-parsing gives the same value.
        let again = try parse(value.serialized())
        #expect(again == value)
        #expect(value.serialized() == #"{"z":1,"a":1.0,"m":[1e2,-0,12345678901234567890123,0.10],"s":"é😀\n\"x\"/"}"#)
    }

    @Test func equalityIsSemantic() throws {
        #expect(try parse("1") != parse("1.0"), "an integer is never a float (Chaos Toolkit rejects float tolerances)")
        #expect(try parse("1.0") == parse("1.00"))
        #expect(try parse("100.0") == parse("1e2"))
        #expect(try parse("-0") == parse("0"))
        #expect(try parse(#"{"a":1,"b":2}"#) == parse(#"{"b":2,"a":1}"#), "key order is not meaning")
        #expect(try parse(#"{"a":1,"b":2}"#).hashValue == parse(#"{"b":2,"a":1}"#).hashValue)
        #expect(try parse("[1,2]") != parse("[2,1]"))
        #expect(try parse(#""1""#) != parse("1"))
    }

    @Test func prettyLayoutReadsBack() throws {
        let value: JSONValue = ["title": "t", "method": [["a": [], "b": [:]]], "n": 0.5, "ok": true, "none": nil]
        let pretty = value.serialized(.pretty(indent: 2))
        #expect(pretty.contains("\n  \"method\": [\n"))
        #expect(try parse(pretty) == value)
    }

    @Test func controlCharactersAreEscaped() throws {
        let value = JSONValue.string("a\u{01}\u{1F}\t\u{08}\u{0C}b\u{7F}")
        let text = value.serialized()
        #expect(text == #""a\u0001\u001f\t\b\fb"# + "\u{7F}\"")
        #expect(try parse(text) == value)
    }

    struct Malformed: CustomTestStringConvertible, Sendable {
        let text: String
        let code: DocumentError.Code
        let offset: Int
        var testDescription: String { "\(code) @\(offset): \(text.prefix(30))" }
    }

    static let malformed: [Malformed] = [
        .init(text: "", code: .empty, offset: -1),
        .init(text: "   \n ", code: .empty, offset: -1),
        .init(text: #"{"a":1,}"#, code: .jsonSyntax, offset: 7),
        .init(text: "[1,2,]", code: .jsonSyntax, offset: 5),
        .init(text: #"{"a":1} // comment"#, code: .jsonSyntax, offset: 8),
        .init(text: "{'a':1}", code: .jsonSyntax, offset: 1),
        .init(text: #"{"a" 1}"#, code: .jsonSyntax, offset: 5),
        .init(text: #"{"a":1 "b":2}"#, code: .jsonSyntax, offset: 7),
        .init(text: "[01]", code: .jsonNumber, offset: 1),
        .init(text: "[1.]", code: .jsonNumber, offset: 1),
        .init(text: "[-]", code: .jsonNumber, offset: 1),
        .init(text: "[1e]", code: .jsonNumber, offset: 1),
        .init(text: "[.5]", code: .jsonSyntax, offset: 1),
        .init(text: "[+1]", code: .jsonSyntax, offset: 1),
        .init(text: "[NaN]", code: .jsonSyntax, offset: 1),
        .init(text: "[Infinity]", code: .jsonSyntax, offset: 1),
        .init(text: "[1e400]", code: .jsonNumber, offset: 1),
        .init(text: "[tru]", code: .jsonSyntax, offset: 1),
        .init(text: "[nul", code: .jsonSyntax, offset: 1),
        .init(text: #"["abc"#, code: .jsonString, offset: 1),
        .init(text: "[\"a\nb\"]", code: .jsonString, offset: 3),
        .init(text: #"["\x"]"#, code: .jsonString, offset: 2),
        .init(text: #"["\u12"]"#, code: .jsonString, offset: 6),
        .init(text: #"["\ud800"]"#, code: .jsonString, offset: 2),
        .init(text: #"["\udc00"]"#, code: .jsonString, offset: 2),
        .init(text: #"["\ud800\u0041"]"#, code: .jsonString, offset: 2),
        .init(text: #"{"a":1,"a":2}"#, code: .duplicateKey, offset: 7),
        .init(text: "{} {}", code: .jsonSyntax, offset: 3),
        .init(text: "[1]]", code: .jsonSyntax, offset: 3),
        .init(text: "{", code: .jsonSyntax, offset: 1),
        .init(text: "[", code: .jsonSyntax, offset: 1),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedInputWithCodeAndOffset(_ c: Malformed) {
        #expect {
            _ = try parse(c.text)
        } throws: { error in
            guard let e = error as? DocumentError else { return false }
            return e.code == c.code && (c.offset < 0 || e.location?.offset == c.offset)
        }
    }

    @Test func errorLocationHasLineAndColumn() {
        #expect {
            _ = try parse("{\n  \"é\": [1,\n  2,,]\n}")
        } throws: { error in
            let e = error as? DocumentError
            return e?.location?.line == 3 && e?.location?.column == 5 && e?.location?.offset == 18
        }
    }

    @Test func rejectsInvalidUTF8WithItsOffset() {
        let cases: [([UInt8], Int)] = [
            (Array(#"{"a":""#.utf8) + [0xFF] + Array(#""}"#.utf8), 6),
            (Array("[\"".utf8) + [0xC0, 0x80] + Array("\"]".utf8), 2),  // overlong NUL
            (Array("[\"".utf8) + [0xED, 0xA0, 0x80] + Array("\"]".utf8), 2),  // encoded surrogate
            (Array("[\"".utf8) + [0xF4, 0x90, 0x80, 0x80] + Array("\"]".utf8), 2),  // above U+10FFFF
            (Array("[\"".utf8) + [0xE2, 0x82], 2),  // truncated
        ]
        for (bytes, offset) in cases {
            #expect {
                _ = try JSONValue.parse(jsonBytes: bytes)
            } throws: { error in
                let e = error as? DocumentError
                return e?.code == .invalidUTF8 && e?.location?.offset == offset
            }
        }
    }

    @Test func byteOrderMarkIsSkipped() throws {
        #expect(try JSONValue.parse(jsonBytes: [0xEF, 0xBB, 0xBF] + Array("[1]".utf8)) == [1])
    }

    @Test func enforcesSizeLimit() {
        let limits = DocumentLimits(maxBytes: 16)
        #expect(throws: DocumentError.self) { _ = try parse(#"{"a":"0123456789"}"#, limits: limits) }
        #expect((try? parse(#"{"a":"01234567"}"#, limits: limits)) != nil, "exactly at the limit is accepted")
    }

    @Test func hostileNestingStopsAtTheDepthLimitWithoutRecursingFurther() {
        let limits = DocumentLimits(maxBytes: 4 << 20, maxDepth: 64)
        let deep = String(repeating: "[", count: 2_000_000) + String(repeating: "]", count: 2_000_000)
        #expect {
            _ = try parse(deep, limits: limits)
        } throws: { ($0 as? DocumentError)?.code == .tooDeep && ($0 as? DocumentError)?.location?.offset == 64 }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? parse(ok, limits: limits)) != nil)
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: DocumentError.self) { _ = try parse(objects, limits: limits) }
    }

    @Test func integersLongerThanPythonAcceptsAreRejected() throws {
        let ok = String(repeating: "9", count: 4300)
        #expect(try parse("[\(ok)]").arrayValue?.first?.numberValue?.literal == ok)
        #expect(throws: DocumentError.self) { _ = try parse("[\(ok)9]") }
    }

    @Test func pathsPrintAsJSONPath() {
        let path = JSONPath.root.key("steady-state-hypothesis").key("probes").index(0).key("tolerance")
        #expect(path.description == "$['steady-state-hypothesis'].probes[0].tolerance")
        #expect(JSONPath.root.key("method").index(2).key("provider").key("module").description == "$.method[2].provider.module")
        #expect(JSONPath.root.key("it's").description == #"$['it\'s']"#)
        let value: JSONValue = ["method": [["provider": ["module": "m"]]]]
        #expect(value[JSONPath.root.key("method").index(0).key("provider").key("module")] == "m")
        #expect(value[JSONPath.root.key("method").index(3)] == nil)
    }

    /// Python's `json` is the reader Chaos Toolkit uses: both must agree on what valid JSON means.
    @Test func agreesWithPythonJSONOnValidDocuments() throws {
        let documents = [
            #"{"b":[1,2.5,-0.0,1E+2,"x\u0000y"],"a":{"n":null,"t":true,"f":false}}"#,
            #"[123456789012345678901234567890, 1.7976931348623157e308, 5e-324]"#,
            #"{"é":"\ud83d\ude00","tab":"\t"}"#,
        ]
        let python = try pythonLoad(documents, loader: "json.loads")
        for (doc, py) in zip(documents, python) {
            #expect(try parse(doc) == py, "\(doc)")
        }
    }
}
