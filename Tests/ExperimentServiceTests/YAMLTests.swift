import ExperimentService
import Foundation
import Testing

/// YAML must mean to Faultline exactly what it means to Chaos Toolkit, which loads it with
/// PyYAML `safe_load`: every case here is also given to the real PyYAML.
@Suite("YAML: read as PyYAML reads it, written so PyYAML reads it back")
struct YAMLTests {
    private func parse(_ text: String, limits: DocumentLimits = .default) throws(DocumentError) -> JSONValue {
        try JSONValue.parse(yamlBytes: Array(text.utf8), limits: limits)
    }

    static let agreeing: [String] = [
        "a: yes\nb: no\nc: on\nd: off\ne: true\nf: ~\ng: null\nh: ''\ni:\nj: False\n",
        "int: 012\nhex: 0x1F\nbin: 0b101\nsexa: 1:30\nund: 1_000\nneg: -17\nplus: +5\nzero: 0\nbig: 123456789012345678901234567890\n",
        "f1: 1.5\nf2: 1.\nf3: .5\nf4: 1.5e+3\nnotfloat: 1e5\nf5: -1_000.5\nf6: 1:30.5\noct: 0o17\nf7: 2.50\n",
        "q1: '123'\nq2: \"true\"\nq3: 'yes'\nq4: \"1.5\"\nstr: !!str 42\nint: !!int \"42\"\nfl: !!float '3'\nnul: !!null ''\n",
        "base: &b {x: 1, y: [1, 2]}\nuse: *b\nmerged:\n  <<: *b\n  y: over\nmulti:\n  <<: [{a: 1, z: 0}, {a: 2, b: 2}]\n  c: 3\n",
        "lit: |\n  line1\n  line2\nfold: >\n  a\n  b\nplain: multi\n  line\nkeep: |+\n  x\n\nstrip: |-\n  y\n",
        "unicode: \"\\u00e9\\U0001F600\\t\"\nemoji: 😀\nsingle: 'it''s'\n",
        "- 1\n- [a, b]\n- {k: v}\n- - nested\n  - list\n",
        "!!map {a: 1, b: !!seq [x]}",
        "? complex\n: key\n\"quoted key\": 1\n'123': number-looking key\n",
        "%YAML 1.1\n---\ntitle: directive\n...\n",
        "# only a comment line first\ntitle: t # trailing comment\nurl: http://x/#frag\n",
        "tabs: \"in\tdouble\"\nsingle: 'a\tb'\nlit: |\n  col1\tcol2\n  x\nfold: >-\n  a\tb\nafter: 1 # c\tc\n",
        "- |\n   keep\ttab\n- 'multi\n  line\tquoted'\n",
    ]

    @Test func agreesWithPyYAML() throws {
        let python = try pythonLoad(Self.agreeing, loader: "yaml.safe_load")
        for (doc, py) in zip(Self.agreeing, python) {
            let ours = try parse(doc)
            #expect(ours == py, "\(doc)")
        }
    }

    @Test func yamlTypesAreReadAsYAML11() throws {
        let ints = try parse(Self.agreeing[1])
        #expect(ints["int"] == 10, "a leading 0 is octal in YAML 1.1")
        #expect(ints["sexa"] == 90, "1:30 is base 60")
        #expect(ints["big"]?.numberValue?.literal == "123456789012345678901234567890")
        let floats = try parse(Self.agreeing[2])
        #expect(floats["f1"]?.numberValue?.kind == .float)
        #expect(floats["f2"] == 1.0 && floats["f3"] == 0.5 && floats["f6"] == 90.5)
        #expect(floats["notfloat"] == "1e5", "PyYAML needs a point in a float: 1e5 is a string")
        #expect(floats["oct"] == "0o17", "0o is YAML 1.2 syntax: a string for PyYAML")
        let quoted = try parse(Self.agreeing[3])
        #expect(quoted["q1"] == "123" && quoted["q2"] == "true" && quoted["str"] == "42" && quoted["int"] == 42)
    }

    @Test func mergeKeysResolveAsInPyYAML() throws {
        let v = try parse(Self.agreeing[4])
        #expect(v["merged"] == ["x": 1, "y": "over"])
        #expect(v["merged"]?.objectValue?.keys == ["x", "y"])
        #expect(v["multi"] == ["a": 1, "z": 0, "b": 2, "c": 3], "earlier merge sources win")
    }

    struct Rejected: CustomTestStringConvertible, Sendable {
        let yaml: String
        let code: DocumentError.Code
        let line: Int?
        var testDescription: String { "\(code): \(yaml.prefix(30))" }
    }

    static let rejected: [Rejected] = [
        .init(yaml: "title: t\nwhen: 2024-01-01\n", code: .yamlNotJSON, line: 2),
        .init(yaml: "at: 2001-12-14t21:59:43.10-05:00\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !!binary aGVsbG8=\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !!set {a, b}\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !!omap [{a: 1}]\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: .inf\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: -.Inf\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: .nan\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "1: a\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "title: t\non: push\n", code: .yamlNotJSON, line: 2),
        .init(yaml: "~: a\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "[a]: b\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !custom 1\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !!python/object:os.system ls\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: !!int abc\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: 0x10000000000000000\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x: =\n", code: .yamlNotJSON, line: 1),
        .init(yaml: "x:\n  <<: 1\n", code: .yamlNotJSON, line: 2),
        .init(yaml: "a: 1\n---\nb: 2\n", code: .yamlMultipleDocuments, line: nil),
        .init(yaml: "a: [1, 2\n", code: .yamlSyntax, line: 2),
        .init(yaml: "a: b: c\n", code: .yamlSyntax, line: 1),
        .init(yaml: "a:\n\t- tab\n", code: .yamlSyntax, line: 2),
        .init(yaml: "x: *nothing\n", code: .yamlSyntax, line: 1),
        .init(yaml: "a: 1\na: 2\n", code: .duplicateKey, line: 2),
        .init(yaml: "title: a\tb\n", code: .yamlSyntax, line: 1),
        .init(yaml: "title:\tx\n", code: .yamlSyntax, line: 1),
        .init(yaml: "title: x\t\n", code: .yamlSyntax, line: 1),
        .init(yaml: "a: [1,\t2]\n", code: .yamlSyntax, line: 1),
        .init(yaml: "", code: .empty, line: nil),
        .init(yaml: "# just a comment\n", code: .empty, line: nil),
    ]

    @Test(arguments: rejected)
    func rejectsWhatHasNoJSONFormWithItsLine(_ c: Rejected) {
        #expect {
            _ = try parse(c.yaml)
        } throws: { error in
            guard let e = error as? DocumentError, e.code == c.code else { return false }
            return c.line == nil || e.location?.line == c.line
        }
    }

    /// Where PyYAML would quietly change a document (timestamp objects, `True` keys, NaN), it
    /// fails or produces something JSON cannot hold; we refuse instead, never store a changed value.
    @Test func pyYAMLCannotRoundTripWhatWeReject() throws {
        let cases = ["when: 2024-01-01\n", "x: !!binary aGVsbG8=\n", "x: .inf\n", "x: !custom 1\n", "a: 1\n---\nb: 2\n", "x: =\n"]
        for result in try pythonLoad(cases, loader: "yaml.safe_load") {
            #expect(result["python-error"] != nil, "\(result)")
        }
        // PyYAML turns `on:` into the key True and json then writes "true": a silent rename.
        let renamed = try pythonLoad(["on: push\n"], loader: "yaml.safe_load")
        #expect(renamed.first == ["true": "push"])
    }

    @Test func aliasBombIsRefusedBeforeItExpands() {
        var yaml = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        var previous = "a"
        for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
            yaml += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
            previous = name
        }
        #expect(yaml.utf8.count < 1000)
        #expect {
            _ = try parse(yaml)
        } throws: { ($0 as? DocumentError)?.code == .tooLarge }
    }

    @Test func hostileNestingIsRefusedWithoutCrashing() throws {
        let limits = DocumentLimits(maxBytes: 1 << 20, maxDepth: 64)
        let flow = String(repeating: "[", count: 500_000) + String(repeating: "]", count: 500_000)
        #expect {
            _ = try parse(flow, limits: limits)
        } throws: { ($0 as? DocumentError)?.code == .tooDeep }
        let block = String(repeating: "- ", count: 300_000) + "x\n"
        #expect {
            _ = try parse(block, limits: limits)
        } throws: { ($0 as? DocumentError)?.code == .tooDeep }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? parse(ok, limits: limits)) != nil)
        // Brackets in quoted strings, comments and plain text are not nesting.
        let many = String(repeating: "[{", count: 100)
        let text = "a: '\(many)'\nb: \"\(many)\"\nc: x\(many) # \(many)\n# \(many)\nd: don't \(many)\n"
        #expect(try parse(text, limits: limits)["b"] == .string(many))
    }

    @Test func sizeLimitAndInvalidUTF8() {
        #expect {
            _ = try parse("title: " + String(repeating: "x", count: 100), limits: DocumentLimits(maxBytes: 64))
        } throws: { ($0 as? DocumentError)?.code == .tooLarge }
        #expect {
            _ = try JSONValue.parse(yamlBytes: Array("title: ".utf8) + [0xFE, 0x0A])
        } throws: { ($0 as? DocumentError)?.code == .invalidUTF8 && ($0 as? DocumentError)?.location?.offset == 7 }
    }

    /// Strings that YAML 1.1 would read as something else must come back as the same strings.
    static let awkwardStrings: [String] = [
        "yes", "No", "on", "OFF", "y", "123", "-1", "1.5", "1.", ".5", "0x1F", "012", "0o17", "1e5", "1:30", "~",
        "", "null", "NULL", "2024-01-01", "<<", "=", " lead", "trail ", "a: b", "- x", "#c", "x #c", "multi\nline",
        "tab\there", "ünï 😀", "'q'", "\"dq\"", "@at", "`bt", "%p", "!bang", "&amp", "*star", "[x]", "{y}", "?", ":",
        ",", ".inf", ".nan", "true", "\u{7F}del", "nul\u{0}byte", "\u{85}nel", "\u{2028}ls", "\r\n",
    ]

    @Test func renderingReadsBackHereAndInPyYAML() throws {
        var object = JSONObject()
        for (i, s) in Self.awkwardStrings.enumerated() {
            object[s] = .string(s)
            object["k\(i)"] = .string(s)
        }
        object["floats"] = .array(try ["1e5", "1E-7", "0.1", "-0.0", "1.7976931348623157e308", "2.50", "5e-324"].map {
            try JSONValue.parse(jsonBytes: Array($0.utf8))
        })
        object["ints"] = .array([0, -1, 9_007_199_254_740_993, try JSONValue.parse(jsonBytes: Array("123456789012345678901234567890".utf8))])
        object["nested"] = ["empty-list": [], "empty-object": [:], "list": [nil, true, false, ["deep": [[1]]]]]
        let value = JSONValue.object(object)
        let yaml = value.yamlText()
        #expect(try parse(yaml) == value)
        let python = try pythonLoad([yaml], loader: "yaml.safe_load")
        #expect(python.first == value)
    }
}
