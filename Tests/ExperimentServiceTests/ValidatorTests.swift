import ExperimentService
import Foundation
import Testing

/// Each case is checked twice: by `ExperimentValidator`, and by chaoslib's own
/// `ensure_experiment_is_valid` (what `chaos validate` calls) in one real Python process. Where
/// chaoslib rejects, we must report an error; where we are deliberately stricter or only warn,
/// the case says so.
@Suite("Experiment validation, compared with chaoslib")
struct ValidatorTests {
    enum Chaos: Sendable { case accepts, rejects }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let experiment: JSONValue
        let codes: [ValidationIssue.Code]
        let chaos: Chaos
        var testDescription: String { name }
    }

    static let pythonProbe: JSONValue = [
        "type": "probe", "name": "p1", "tolerance": true,
        "provider": ["type": "python", "module": "os.path", "func": "exists", "arguments": ["path": "x"]],
    ]

    static let base: JSONValue = [
        "title": "t", "description": "d",
        "steady-state-hypothesis": ["title": "h", "probes": [pythonProbe]],
        "method": [
            ["type": "action", "name": "a1", "provider": ["type": "process", "path": "true", "arguments": ["x"]]],
            ["ref": "p1"],
        ],
        "rollbacks": [["type": "action", "name": "r1", "provider": ["type": "process", "path": "true"]]],
    ]

    /// `base` with the value at `path` replaced (or removed when `value` is nil).
    static func with(_ path: [JSONPath.Component], _ value: JSONValue?) -> JSONValue {
        func set(_ node: JSONValue, _ rest: ArraySlice<JSONPath.Component>) -> JSONValue? {
            guard let first = rest.first else { return value }
            switch (node, first) {
            case (.object(var o), .key(let k)):
                o[k] = set(o[k] ?? .null, rest.dropFirst())
                return .object(o)
            case (.array(var a), .index(let i)):
                if let v = set(a[i], rest.dropFirst()) { a[i] = v } else { a.remove(at: i) }
                return .array(a)
            default:
                preconditionFailure("bad path in a test case")
            }
        }
        return set(base, path[...]) ?? .null
    }

    static let probe0: [JSONPath.Component] = [.key("steady-state-hypothesis"), .key("probes"), .index(0)]
    static let action0: [JSONPath.Component] = [.key("method"), .index(0)]

    static let cases: [Case] = [
        Case(name: "valid base", experiment: base, codes: [], chaos: .accepts),
        Case(name: "no title", experiment: with([.key("title")], nil), codes: [.titleMissing], chaos: .rejects),
        Case(name: "empty description", experiment: with([.key("description")], ""), codes: [.descriptionMissing], chaos: .rejects),
        Case(name: "no method", experiment: with([.key("method")], nil), codes: [.methodMissing], chaos: .rejects),
        Case(name: "null method", experiment: with([.key("method")], .null), codes: [.methodMissing], chaos: .rejects),
        Case(name: "method is an object", experiment: with([.key("method")], ["a": 1]), codes: [.typeMismatch], chaos: .rejects),
        Case(name: "bad tags", experiment: with([.key("tags")], ["", 1, "ok"]), codes: [.tagInvalid, .tagInvalid], chaos: .rejects),
        Case(name: "extension without name", experiment: with([.key("extensions")], [["name": " "]]), codes: [.extensionNameMissing], chaos: .rejects),
        Case(name: "hypothesis without title", experiment: with([.key("steady-state-hypothesis"), .key("title")], nil),
             codes: [.hypothesisTitleMissing], chaos: .rejects),
        Case(name: "probe without tolerance", experiment: with(probe0 + [.key("tolerance")], nil), codes: [.toleranceMissing], chaos: .rejects),
        Case(name: "float tolerance", experiment: with(probe0 + [.key("tolerance")], 0.5), codes: [.toleranceFloat], chaos: .rejects),
        Case(name: "null tolerance", experiment: with(probe0 + [.key("tolerance")], .null), codes: [.toleranceInvalid], chaos: .rejects),
        Case(name: "list tolerance", experiment: with(probe0 + [.key("tolerance")], [0, 1]), codes: [], chaos: .accepts),
        Case(name: "regex without pattern", experiment: with(probe0 + [.key("tolerance")], ["type": "regex"]),
             codes: [.toleranceRegexPatternMissing], chaos: .rejects),
        Case(name: "range of one", experiment: with(probe0 + [.key("tolerance")], ["type": "range", "range": [1]]),
             codes: [.toleranceRangeInvalid], chaos: .rejects),
        Case(name: "range", experiment: with(probe0 + [.key("tolerance")], ["type": "range", "range": [1, 2.5]]), codes: [], chaos: .accepts),
        Case(name: "unknown tolerance type", experiment: with(probe0 + [.key("tolerance")], ["type": "nope"]),
             codes: [.toleranceTypeUnknown], chaos: .rejects),
        Case(name: "empty jsonpath", experiment: with(probe0 + [.key("tolerance")], ["type": "jsonpath", "path": ""]),
             codes: [.toleranceJSONPathMissing], chaos: .rejects),
        Case(name: "probe tolerance", experiment: with(probe0 + [.key("tolerance")], [
            "type": "probe", "name": "tp", "provider": ["type": "python", "module": "os.path", "func": "exists", "arguments": ["path": "x"]],
        ]), codes: [], chaos: .accepts),
        Case(name: "broken probe tolerance", experiment: with(probe0 + [.key("tolerance")], ["type": "probe", "name": "tp"]),
             codes: [.activityProviderMissing], chaos: .rejects),
        Case(name: "activity without type", experiment: with(action0 + [.key("type")], nil), codes: [.activityTypeMissing], chaos: .rejects),
        Case(name: "activity of type task", experiment: with(action0 + [.key("type")], "task"), codes: [.activityTypeUnknown], chaos: .rejects),
        Case(name: "activity without name", experiment: with(action0 + [.key("name")], nil), codes: [.activityNameMissing], chaos: .rejects),
        Case(name: "activity without provider", experiment: with(action0 + [.key("provider")], nil),
             codes: [.activityProviderMissing], chaos: .rejects),
        Case(name: "empty activity", experiment: with(action0, [:]), codes: [.activityEmpty], chaos: .rejects),
        Case(name: "ssh provider", experiment: with(action0 + [.key("provider"), .key("type")], "ssh"),
             codes: [.providerTypeUnknown], chaos: .rejects),
        Case(name: "provider without type", experiment: with(action0 + [.key("provider"), .key("type")], nil),
             codes: [.providerTypeMissing], chaos: .rejects),
        Case(name: "python without func", experiment: with(probe0 + [.key("provider"), .key("func")], nil),
             codes: [.pythonFuncMissing], chaos: .rejects),
        Case(name: "python without module", experiment: with(probe0 + [.key("provider"), .key("module")], ""),
             codes: [.pythonModuleMissing], chaos: .rejects),
        Case(name: "process without path", experiment: with(action0 + [.key("provider"), .key("path")], nil),
             codes: [.processPathMissing], chaos: .rejects),
        Case(name: "http without url", experiment: with(action0 + [.key("provider")], ["type": "http"]),
             codes: [.httpURLMissing], chaos: .rejects),
        Case(name: "http headers as a list", experiment: with(action0 + [.key("provider")], ["type": "http", "url": "http://127.0.0.1:9", "headers": ["a"]]),
             codes: [.httpHeadersInvalid], chaos: .rejects),
        Case(name: "activity timeout as text", experiment: with(action0 + [.key("timeout")], "5"),
             codes: [.activityTimeoutInvalid], chaos: .rejects),
        Case(name: "activity timeout (ignored)", experiment: with(action0 + [.key("timeout")], 5),
             codes: [.activityTimeoutIgnored], chaos: .accepts),
        Case(name: "pause as text", experiment: with(action0 + [.key("pauses")], ["before": "soon"]),
             codes: [.activityPausesInvalid], chaos: .rejects),
        Case(name: "pause from a variable", experiment: with(action0 + [.key("pauses")], ["before": "${wait}", "after": 1.5]),
             codes: [], chaos: .accepts),
        Case(name: "background as text", experiment: with(action0 + [.key("background")], "yes"),
             codes: [.activityBackgroundInvalid], chaos: .rejects),
        Case(name: "empty ref", experiment: with([.key("method"), .index(1), .key("ref")], ""), codes: [.activityRefInvalid], chaos: .rejects),
        Case(name: "method ref to nothing", experiment: with([.key("method"), .index(1), .key("ref")], "ghost"),
             codes: [.activityRefUnknown], chaos: .rejects),
        // chaos validate misses these:
        Case(name: "rollback ref to nothing", experiment: with([.key("rollbacks"), .index(0)], ["ref": "ghost"]),
             codes: [.rollbackRefUnknown], chaos: .accepts),
        Case(name: "duplicate activity name", experiment: with(action0 + [.key("name")], "p1"),
             codes: [.activityNameDuplicate], chaos: .accepts),
        Case(name: "string process arguments", experiment: with(action0 + [.key("provider"), .key("arguments")], "-rf /tmp/x"),
             codes: [.processArgumentsShell], chaos: .accepts),
        Case(name: "inline secret", experiment: with([.key("secrets")], ["k8s": ["token": "s3cr3t", "ok": ["type": "env", "key": "HOME"]]]),
             codes: [.secretInline], chaos: .accepts),
        Case(name: "misspelt hypothesis key", experiment: with([.key("steady - state - hypothesis")], ["title": "x"]),
             codes: [.unknownKey], chaos: .accepts),
        // chaos run then dies with a traceback and no journal (see RealRunTests).
        Case(name: "unknown runtime strategy", experiment: with([.key("runtime")], ["rollbacks": ["strategy": "sometimes"]]),
             codes: [.runtimeStrategyInvalid], chaos: .accepts),
        Case(name: "http provider secrets scope unknown",
             experiment: with(action0 + [.key("provider")], ["type": "http", "url": "http://127.0.0.1:9", "secrets": ["nope"]]),
             codes: [.providerSecretsUnknown], chaos: .accepts),
        // controls
        Case(name: "control scope post", experiment: with([.key("controls")], [["name": "c", "scope": "post", "provider": ["type": "python", "module": "os.path"]]]),
             codes: [.controlScopeInvalid], chaos: .rejects),
        Case(name: "control without provider", experiment: with([.key("controls")], [["name": "c"]]),
             codes: [.controlProviderMissing], chaos: .rejects),
        Case(name: "control without name", experiment: with(action0 + [.key("controls")], [["provider": ["type": "python", "module": "os.path"]]]),
             codes: [.controlNameMissing], chaos: .rejects),
        Case(name: "control without module", experiment: with([.key("controls")], [["name": "c", "provider": ["type": "python"]]]),
             codes: [.controlModuleMissing], chaos: .rejects),
        Case(name: "valid control", experiment: with([.key("controls")], [["name": "c", "scope": "before", "provider": ["type": "python", "module": "os.path"]]]),
             codes: [], chaos: .accepts),
        // configuration and secrets
        Case(name: "env configuration without key", experiment: with([.key("configuration")], ["h": ["type": "env", "default": "x"]]),
             codes: [.configurationEnvKeyMissing], chaos: .rejects),
        Case(name: "env configuration of unknown type", experiment: with([.key("configuration")], ["h": ["type": "env", "key": "HOME", "env_var_type": "date"]]),
             codes: [.configurationEnvTypeInvalid], chaos: .rejects),
        Case(name: "env secret without key", experiment: with([.key("secrets")], ["k8s": ["t": ["type": "env"]]]),
             codes: [.secretEnvKeyMissing], chaos: .rejects),
        Case(name: "secrets scope not an object", experiment: with([.key("secrets")], ["k8s": "token"]),
             codes: [.secretsScopeInvalid], chaos: .rejects),
        Case(name: "not an object", experiment: [1], codes: [.experimentNotObject], chaos: .rejects),
    ]

    @Test func reportsTheExpectedIssuesAndAgreesWithChaoslib() throws {
        let workspace = try ChaosWorkspace("validator")
        let script = """
            import json, sys, logging
            logging.disable(logging.CRITICAL)
            from chaoslib.experiment import ensure_experiment_is_valid
            out = []
            for exp in json.load(sys.stdin):
                try:
                    ensure_experiment_is_valid(exp)
                    out.append("ok")
                except Exception as e:
                    out.append("%s: %s" % (type(e).__name__, e))
            print(json.dumps(out))
            """
        let input = JSONValue.array(Self.cases.map(\.experiment)).serialized()
        let result = try runProcess(Env.python, ["-c", script], input: input, directory: workspace.directory,
                                    environment: workspace.environment)
        try #require(result.exitCode == 0, "\(result.stderr)")
        let verdicts = try JSONValue.parse(jsonBytes: Array(result.stdout.utf8)).arrayValue.unwrap()
        try #require(verdicts.count == Self.cases.count)
        for (c, verdict) in zip(Self.cases, verdicts) {
            let report = ExperimentValidator.validate(c.experiment)
            #expect(report.issues.map(\.code) == c.codes, "\(c.name): \(report.issues)")
            let chaosAccepted = verdict == "ok"
            #expect(chaosAccepted == (c.chaos == .accepts), "\(c.name): chaoslib said \(verdict)")
            if !chaosAccepted {
                #expect(!report.isValid, "\(c.name): chaoslib rejects (\(verdict)) but we found no error")
            }
        }
    }

    @Test func reportsEveryProblemAtOnceWithPaths() {
        let experiment: JSONValue = [
            "title": "",
            "steady - state - hypothesis": ["title": "x"],
            "steady-state-hypothesis": ["probes": [["type": "probe", "name": "p", "provider": ["type": "http"], "tolerance": 1.5]]],
            "method": [
                ["type": "action", "name": "kill", "provider": ["type": "process", "path": "pkill", "arguments": "-f api"]],
                ["type": "action", "name": "kill", "provider": ["type": "python", "module": "m"]],
                ["ref": "nope"],
            ],
            "rollbacks": [["ref": "restart"]],
            "controls": [["name": "faultline", "scope": "post", "provider": ["type": "python", "module": "faultline"]]],
            "secrets": ["db": ["password": "hunter2"]],
        ]
        let report = ExperimentValidator.validate(experiment)
        let got = report.issues.map { "\($0.severity) \($0.code) \($0.path)" }
        #expect(got == [
            "error experiment.title.missing $.title",
            "error experiment.description.missing $.description",
            "warning secrets.inline $.secrets.db.password",
            "error hypothesis.title.missing $['steady-state-hypothesis'].title",
            "error provider.http.url.missing $['steady-state-hypothesis'].probes[0].provider.url",
            "error tolerance.float $['steady-state-hypothesis'].probes[0].tolerance",
            "warning provider.process.arguments.shell $.method[0].provider.arguments",
            "warning activity.name.duplicate $.method[1].name",
            "error provider.python.func.missing $.method[1].provider.func",
            "error activity.ref.unknown $.method[2].ref",
            "error rollback.ref.unknown $.rollbacks[0].ref",
            "error control.scope.invalid $.controls[0].scope",
            "warning experiment.key.unknown $['steady - state - hypothesis']",
        ])
        #expect(report.issues.last?.message.contains("did you mean 'steady-state-hypothesis'?") == true)
        #expect(!report.isValid)
        #expect(report.errors.count == 9 && report.warnings.count == 4)
    }

    @Test func suggestionsForMisspeltKeys() {
        let report = ExperimentValidator.validate(["title": "t", "description": "d", "method": [], "rollback": [], "Tags": [], "zzz": 1])
        #expect(report.issues.map(\.message) == [
            "Chaos Toolkit ignores the key 'rollback'; did you mean 'rollbacks'?",
            "Chaos Toolkit ignores the key 'Tags'; did you mean 'tags'?",
            "Chaos Toolkit ignores the key 'zzz'",
        ])
    }
}
