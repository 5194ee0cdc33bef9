import ServiceKit
import Testing

@Suite("NULEscapes")
struct NULEscapesTests {
    @Test("finds exactly the escape \\u0000, not a backslash followed by text")
    func scan() {
        let cases: [(String, Bool)] = [
            (#"{"a": "\u0000"}"#, true), (#"{"\u0000": 1}"#, true), (#"{"a": "x\\\u0000"}"#, true), (#"{"a": "\u00001"}"#, true),
            (#"{"a": "\\u0000"}"#, false), (#"{"a": "\\\\u0000"}"#, false), (#"{"a": "\u0001"}"#, false), (#"{"a": "\u000A"}"#, false),
            (#"{"a": "u0000"}"#, false), (#"{"a": "\"u0000"}"#, false), ("{}", false), ("", false), (#"\"#, false), (#"\u000"#, false),
        ]
        for (text, expected) in cases {
            #expect(NULEscapes.occur(in: text) == expected, "\(text)")
        }
    }

    @Test("replaces each escape by \\ufffd and leaves every other byte as it was")
    func replace() {
        let cases: [(String, String, Int)] = [
            (#"{"a": "\u0000"}"#, #"{"a": "\ufffd"}"#, 1),
            (#"{"a\u0000": "x\u0000y\u0000", "b": "\\u0000"}"#, #"{"a\ufffd": "x\ufffdy\ufffd", "b": "\\u0000"}"#, 3),
            (#"{"a": "\\\u0000\\\\u0000"}"#, #"{"a": "\\\ufffd\\\\u0000"}"#, 1),
            (#"{"é": "\u00000\u0001"}"#, #"{"é": "\ufffd0\u0001"}"#, 1),
            (#"{"a": "\\u0000", "b": "\u0041"}"#, #"{"a": "\\u0000", "b": "\u0041"}"#, 0),
        ]
        for (text, expected, count) in cases {
            let result = NULEscapes.replaced(in: text)
            #expect(Array(result.text.utf8) == Array(expected.utf8), "\(text)")
            #expect(result.count == count, "\(text)")
        }
    }
}
