/// Checks a Chaos Toolkit experiment and reports every problem at once.
///
/// It mirrors what `chaos validate` (chaostoolkit-lib 1.45, `chaoslib/experiment.py`,
/// `activity.py`, `hypothesis.py`, `control/__init__.py`) checks without running Python, and adds
/// what `chaos validate` misses. Left to `chaos validate` on the runner because they depend on the
/// host: importing Python modules and binding arguments to signatures, process paths existing,
/// environment variables being set, a control's own `validate_control`, compiling regex patterns
/// with Python's `re` (ICU and Python syntaxes differ) and parsing JSONPath tolerances.
public enum ExperimentValidator {
    public static func validate(_ experiment: JSONValue) -> ValidationReport {
        var checker = Checker()
        checker.checkExperiment(experiment)
        return ValidationReport(issues: checker.issues)
    }

    public static func validate(_ document: ExperimentDocument) -> ValidationReport {
        validate(document.value)
    }

    /// Keys of the experiment format; any other top-level key is ignored by Chaos Toolkit.
    static let knownTopLevelKeys = [
        "version", "title", "description", "tags", "configuration", "secrets", "steady-state-hypothesis",
        "method", "rollbacks", "controls", "extensions", "contributions", "runtime",
    ]
}

private typealias Code = ValidationIssue.Code

/// One pass over one experiment; collects issues instead of stopping at the first.
private struct Checker {
    enum Role { case hypothesisProbe, method, rollback, toleranceProbe }

    private(set) var issues: [ValidationIssue] = []
    /// Activities that refs can name: method and hypothesis probes (chaoslib's activity cache).
    private var referenceable: Set<String> = []
    private var activityNames: [String: JSONPath] = [:]
    private var controlNames: Set<String> = []
    private var controlRefs: [(String, JSONPath)] = []
    private var secretScopes: Set<String> = []

    private mutating func error(_ code: Code, _ path: JSONPath, _ message: String) {
        issues.append(ValidationIssue(.error, code, at: path, message))
    }

    private mutating func warning(_ code: Code, _ path: JSONPath, _ message: String) {
        issues.append(ValidationIssue(.warning, code, at: path, message))
    }

    /// Reports a type mismatch unless `value` is of the expected JSON type.
    private mutating func expect(_ value: JSONValue, _ expected: String, _ path: JSONPath) -> Bool {
        let actual = value.typeName
        let matches = switch expected {
        case "number": actual == "integer" || actual == "float"
        default: actual == expected
        }
        if !matches { error(.typeMismatch, path, "expected \(expected), found \(actual)") }
        return matches
    }

    // MARK: experiment

    mutating func checkExperiment(_ value: JSONValue) {
        let root = JSONPath.root
        guard let experiment = value.objectValue else {
            error(.experimentNotObject, root, "an experiment must be an object, found \(value.typeName)")
            return
        }
        collectNames(experiment)
        checkRequiredText(experiment, "title", .titleMissing, "experiment requires a title", at: root)
        checkRequiredText(experiment, "description", .descriptionMissing, "experiment requires a description", at: root)
        checkTags(experiment["tags"], root.key("tags"))
        checkExtensions(experiment["extensions"], root.key("extensions"))
        checkConfiguration(experiment["configuration"], root.key("configuration"))
        checkSecrets(experiment["secrets"], root.key("secrets"))
        checkHypothesis(experiment["steady-state-hypothesis"], root.key("steady-state-hypothesis"))

        switch experiment["method"] {
        case nil, .null?:
            error(.methodMissing, root.key("method"),
                  "an experiment requires a method, which can be empty to only check the steady state hypothesis")
        case let method?:
            checkActivities(method, root.key("method"), role: .method)
        }
        if let rollbacks = experiment["rollbacks"] {
            checkActivities(rollbacks, root.key("rollbacks"), role: .rollback)
        }
        checkControls(experiment["controls"], root.key("controls"))
        checkRuntime(experiment["runtime"], root.key("runtime"))
        for (name, path) in controlRefs where !controlNames.contains(name) {
            error(.controlRefUnknown, path, "control reference '\(name)' names no declared control")
        }
        checkUnknownKeys(experiment)
    }

    /// Names first, so refs can be resolved wherever they appear (chaoslib caches them up front).
    private mutating func collectNames(_ experiment: JSONObject) {
        var lot: [JSONValue] = experiment["method"]?.arrayValue ?? []
        lot += experiment["steady-state-hypothesis"]?["probes"]?.arrayValue ?? []
        for activity in lot {
            if let name = activity["name"]?.stringValue, !name.isEmpty { referenceable.insert(name) }
        }
        secretScopes = Set(experiment["secrets"]?.objectValue?.keys ?? [])
    }

    private mutating func checkRequiredText(
        _ object: JSONObject, _ key: String, _ code: Code, _ message: String, at path: JSONPath
    ) {
        guard let value = object[key], value.isTruthy else {
            error(code, path.key(key), message)
            return
        }
        _ = expect(value, "string", path.key(key))
    }

    private mutating func checkTags(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, value.isTruthy, expect(value, "array", path), let tags = value.arrayValue else { return }
        for (i, tag) in tags.enumerated() where tag.stringValue?.isEmpty ?? true {
            error(.tagInvalid, path.index(i), "experiment tags must be non-empty strings")
        }
    }

    private mutating func checkExtensions(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, value.isTruthy, expect(value, "array", path), let extensions = value.arrayValue else { return }
        for (i, ext) in extensions.enumerated() {
            guard expect(ext, "object", path.index(i)) else { continue }
            let name = ext["name"]?.stringValue ?? ""
            if name.allSatisfy(\.isWhitespace) {
                error(.extensionNameMissing, path.index(i).key("name"), "every extension requires a non-empty name")
            }
        }
    }

    private mutating func checkRuntime(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, !value.isNull, expect(value, "object", path) else { return }
        let strategies: [(String, [String])] = [
            ("rollbacks", ["default", "always", "never", "deviated"]),
            ("hypothesis", ["default", "before-method-only", "after-method-only", "during-method-only", "continuously"]),
        ]
        for (section, allowed) in strategies {
            guard let s = value[section], !s.isNull, expect(s, "object", path.key(section)),
                let strategy = s["strategy"]
            else { continue }
            if !allowed.contains(strategy.stringValue ?? "") {
                error(.runtimeStrategyInvalid, path.key(section).key("strategy"),
                      "\(section) strategy must be one of \(allowed.joined(separator: ", "))")
            }
        }
    }

    private mutating func checkUnknownKeys(_ experiment: JSONObject) {
        let known = ExperimentValidator.knownTopLevelKeys
        for key in experiment.keys where !known.contains(key) {
            var message = "Chaos Toolkit ignores the key '\(key)'"
            if let suggestion = KeySuggestion.closest(to: key, in: known) {
                message += "; did you mean '\(suggestion)'?"
            }
            warning(.unknownKey, JSONPath.root.key(key), message)
        }
    }

    // MARK: configuration and secrets

    private mutating func checkConfiguration(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, !value.isNull, expect(value, "object", path), let config = value.objectValue else { return }
        let envTypes = ["str", "string", "int", "integer", "float", "number", "bytes", "bool", "json"]
        for (key, entry) in config where entry["type"]?.stringValue == "env" {
            if entry["key"]?.stringValue == nil {
                error(.configurationEnvKeyMissing, path.key(key).key("key"),
                      "an env configuration entry needs the name of the variable in 'key'")
            }
            if let t = entry["env_var_type"], !t.isNull, !envTypes.contains(t.stringValue ?? "") {
                error(.configurationEnvTypeInvalid, path.key(key).key("env_var_type"),
                      "env_var_type must be one of \(envTypes.joined(separator: ", "))")
            }
        }
    }

    private mutating func checkSecrets(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, !value.isNull, expect(value, "object", path), let scopes = value.objectValue else { return }
        for (scope, content) in scopes {
            guard content.objectValue != nil else {
                error(.secretsScopeInvalid, path.key(scope),
                      "a secrets scope must be an object of named secrets, found \(content.typeName)")
                continue
            }
            checkSecret(content, path.key(scope))
        }
    }

    private mutating func checkSecret(_ value: JSONValue, _ path: JSONPath) {
        guard let object = value.objectValue else {
            warning(.secretInline, path,
                    "inline secret value: it is stored with the experiment and copied verbatim into every journal; "
                        + "reference an environment variable or Vault instead")
            return
        }
        switch object["type"]?.stringValue {
        case "env":
            if object["key"]?.stringValue == nil {
                error(.secretEnvKeyMissing, path.key("key"), "an env secret needs the name of the variable in 'key'")
            }
        case "vault":
            if object["path"] == nil {
                warning(.secretVaultPathMissing, path.key("path"), "a Vault secret should name its 'path'")
            }
        default:
            for (key, nested) in object { checkSecret(nested, path.key(key)) }
        }
    }

    // MARK: hypothesis

    private mutating func checkHypothesis(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, !value.isNull, expect(value, "object", path) else { return }
        if !(value["title"]?.isTruthy ?? false) {
            error(.hypothesisTitleMissing, path.key("title"), "hypothesis requires a title")
        }
        if let probes = value["probes"], probes.isTruthy, expect(probes, "array", path.key("probes")),
            let list = probes.arrayValue
        {
            for (i, probe) in list.enumerated() {
                let probePath = path.key("probes").index(i)
                checkActivity(probe, probePath, role: .hypothesisProbe)
                guard probe.objectValue != nil else { continue }
                if let tolerance = probe["tolerance"] {
                    checkTolerance(tolerance, probePath.key("tolerance"))
                } else {
                    error(.toleranceMissing, probePath.key("tolerance"), "hypothesis probe must have a tolerance entry")
                }
            }
        }
        checkControls(value["controls"], path.key("controls"))
    }

    private mutating func checkTolerance(_ tolerance: JSONValue, _ path: JSONPath) {
        switch tolerance {
        case .bool, .string, .array: return
        case .number(let n) where n.kind == .integer: return
        case .number:
            error(.toleranceFloat, path, "a float tolerance is invalid; use an integer, a list or a range tolerance")
        case .null:
            error(.toleranceInvalid, path,
                  "a tolerance must be a boolean, an integer, a string, a list or an object (probe, regex, jsonpath, range)")
        case .object(let object):
            let type = object["type"]?.stringValue
            switch type {
            case "probe":
                checkActivity(tolerance, path, role: .toleranceProbe)
            case "regex":
                if let pattern = object["pattern"] {
                    if pattern.stringValue == nil {
                        error(.toleranceRegexPatternInvalid, path.key("pattern"), "a regex pattern must be a string")
                    }
                } else {
                    error(.toleranceRegexPatternMissing, path.key("pattern"), "a regex tolerance must have a 'pattern'")
                }
            case "jsonpath":
                if (object["path"]?.stringValue ?? "").allSatisfy(\.isWhitespace) {
                    error(.toleranceJSONPathMissing, path.key("path"), "a jsonpath tolerance must have a non-empty 'path'")
                }
            case "range":
                guard let range = object["range"] else {
                    error(.toleranceRangeMissing, path.key("range"), "a range tolerance must have a 'range'")
                    return
                }
                let bounds = range.arrayValue ?? []
                if bounds.count != 2 || !bounds.allSatisfy({ $0.numberValue != nil }) {
                    error(.toleranceRangeInvalid, path.key("range"), "a range must be a list of two numbers")
                }
            default:
                error(.toleranceTypeUnknown, path.key("type"),
                      "tolerance type '\(type ?? object["type"]?.typeName ?? "none")' is unsupported; use probe, regex, jsonpath or range")
            }
        }
    }

    // MARK: activities

    private mutating func checkActivities(_ value: JSONValue, _ path: JSONPath, role: Role) {
        guard expect(value, "array", path), let list = value.arrayValue else { return }
        for (i, activity) in list.enumerated() {
            checkActivity(activity, path.index(i), role: role)
        }
    }

    private mutating func checkActivity(_ value: JSONValue, _ path: JSONPath, role: Role) {
        guard let activity = value.objectValue else {
            error(.activityNotObject, path, "an activity must be an object, found \(value.typeName)")
            return
        }
        guard !activity.isEmpty else {
            error(.activityEmpty, path, "an empty activity is no activity")
            return
        }
        if let ref = activity["ref"], !ref.isNull {
            checkReference(ref, path.key("ref"), role: role)
            return
        }
        if !(activity["type"]?.isTruthy ?? false) {
            error(.activityTypeMissing, path.key("type"), "an activity must have a type (probe or action)")
        } else if !["probe", "action"].contains(activity["type"]?.stringValue ?? "") {
            error(.activityTypeUnknown, path.key("type"), "an activity type must be probe or action")
        }
        if let name = activity["name"], name.isTruthy {
            if expect(name, "string", path.key("name")), let n = name.stringValue, role != .toleranceProbe {
                if let first = activityNames[n] {
                    warning(.activityNameDuplicate, path.key("name"),
                            "another activity is already named '\(n)' (at \(first)); refs and reports cannot tell them apart")
                } else {
                    activityNames[n] = path
                }
            }
        } else {
            error(.activityNameMissing, path.key("name"), "an activity must have a name")
        }
        if let provider = activity["provider"], provider.isTruthy {
            if expect(provider, "object", path.key("provider")) { checkProvider(provider, path.key("provider")) }
        } else {
            error(.activityProviderMissing, path.key("provider"), "an activity requires a provider")
        }
        if let timeout = activity["timeout"], !timeout.isNull {
            if timeout.numberValue == nil {
                error(.activityTimeoutInvalid, path.key("timeout"), "activity timeout must be a number")
            } else {
                warning(.activityTimeoutIgnored, path.key("timeout"),
                        "Chaos Toolkit ignores an activity-level timeout; put it in provider.timeout")
            }
        }
        if let pauses = activity["pauses"], !pauses.isNull, expect(pauses, "object", path.key("pauses")) {
            for key in ["before", "after"] {
                guard let pause = pauses[key], !pause.isNull else { continue }
                if let n = pause.numberValue, n.doubleValue >= 0 { continue }
                if let s = pause.stringValue, s.hasPrefix("${"), s.hasSuffix("}") { continue }
                error(.activityPausesInvalid, path.key("pauses").key(key),
                      "a pause must be a non-negative number of seconds or a ${variable} from configuration or secrets")
            }
        }
        if let background = activity["background"], background.boolValue == nil {
            error(.activityBackgroundInvalid, path.key("background"), "activity background must be a boolean")
        }
        checkControls(activity["controls"], path.key("controls"))
    }

    private mutating func checkReference(_ ref: JSONValue, _ path: JSONPath, role: Role) {
        guard let name = ref.stringValue, !name.isEmpty else {
            error(.activityRefInvalid, path, "a reference to an activity must be a non-empty string")
            return
        }
        guard !referenceable.contains(name) else { return }
        switch role {
        case .rollback:
            // chaos validate accepts this; chaos run then crashes with no journal.
            error(.rollbackRefUnknown, path,
                  "rollback references '\(name)', which is no activity of the method or the hypothesis")
        default:
            error(.activityRefUnknown, path, "referenced activity '\(name)' could not be found in the experiment")
        }
    }

    private mutating func checkProvider(_ provider: JSONValue, _ path: JSONPath) {
        let type = provider["type"]
        guard let type, type.isTruthy else {
            error(.providerTypeMissing, path.key("type"), "a provider must have a type (python, process or http)")
            return
        }
        if let timeout = provider["timeout"], !timeout.isNull, !isTimeout(timeout) {
            error(.providerTimeoutInvalid, path.key("timeout"), "provider timeout must be a number of seconds")
        }
        if let secrets = provider["secrets"]?.arrayValue {
            for (i, scope) in secrets.enumerated() where !secretScopes.contains(scope.stringValue ?? "") {
                warning(.providerSecretsUnknown, path.key("secrets").index(i), "no secrets scope of this name is declared")
            }
        }
        switch type.stringValue {
        case "python":
            if !(provider["module"]?.stringValue.map { !$0.isEmpty } ?? false) {
                error(.pythonModuleMissing, path.key("module"), "a Python activity must have a module path")
            }
            if !(provider["func"]?.stringValue.map { !$0.isEmpty } ?? false) {
                error(.pythonFuncMissing, path.key("func"), "a Python activity must have a function name")
            }
            if let arguments = provider["arguments"], !arguments.isNull {
                _ = expect(arguments, "object", path.key("arguments"))
            }
        case "process":
            if !(provider["path"]?.stringValue.map { !$0.isEmpty } ?? false) {
                error(.processPathMissing, path.key("path"), "a process activity must have a path")
            }
            switch provider["arguments"] {
            case .string?:
                warning(.processArgumentsShell, path.key("arguments"),
                        "string arguments run through a shell (shell=True); use a list of arguments")
            case .object?:
                warning(.processArgumentsDeprecated, path.key("arguments"),
                        "mapping arguments are deprecated by Chaos Toolkit; use a list of arguments")
            default: break
            }
        case "http":
            if !(provider["url"]?.stringValue.map { !$0.isEmpty } ?? false) {
                error(.httpURLMissing, path.key("url"), "an HTTP activity must have a URL")
            }
            if let headers = provider["headers"], headers.isTruthy, headers.objectValue == nil {
                error(.httpHeadersInvalid, path.key("headers"), "HTTP headers must be a mapping")
            }
            if let method = provider["method"], !method.isNull { _ = expect(method, "string", path.key("method")) }
        default:
            error(.providerTypeUnknown, path.key("type"), "provider type must be python, process or http")
        }
    }

    /// A number, or an HTTP `[connect, read]` pair.
    private func isTimeout(_ value: JSONValue) -> Bool {
        if value.numberValue != nil { return true }
        guard let pair = value.arrayValue else { return false }
        return pair.count == 2 && pair.allSatisfy { $0.numberValue != nil }
    }

    // MARK: controls

    private mutating func checkControls(_ value: JSONValue?, _ path: JSONPath) {
        guard let value, !value.isNull, expect(value, "array", path), let controls = value.arrayValue else { return }
        for (i, control) in controls.enumerated() {
            checkControl(control, path.index(i))
        }
    }

    private mutating func checkControl(_ value: JSONValue, _ path: JSONPath) {
        guard let control = value.objectValue else {
            error(.controlNotObject, path, "a control must be an object, found \(value.typeName)")
            return
        }
        if let ref = control["ref"]?.stringValue { controlRefs.append((ref, path.key("ref"))) }
        guard let name = control["name"]?.stringValue else {
            error(.controlNameMissing, path.key("name"), "a control must have a name")
            return
        }
        if control["ref"] == nil { controlNames.insert(name) }
        guard let provider = control["provider"] else {
            error(.controlProviderMissing, path.key("provider"), "control '\(name)' must have a provider")
            return
        }
        if let scope = control["scope"], scope.isTruthy, !["before", "after"].contains(scope.stringValue ?? "") {
            error(.controlScopeInvalid, path.key("scope"), "control '\(name)' scope must be 'before' or 'after'")
        }
        guard expect(provider, "object", path.key("provider")) else { return }
        if provider["type"]?.stringValue == "python", !(provider["module"]?.stringValue.map { !$0.isEmpty } ?? false) {
            error(.controlModuleMissing, path.key("provider").key("module"), "control '\(name)' must have a module path")
        }
    }
}

/// "did you mean" for misspelt keys: same letters ignoring case, spaces, dashes and underscores,
/// or at most two edits away.
enum KeySuggestion {
    static func closest(to key: String, in candidates: [String]) -> String? {
        let normalized = normalize(key)
        if let exact = candidates.first(where: { normalize($0) == normalized }) { return exact }
        let scored = candidates.map { ($0, distance(normalized, normalize($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    private static func normalize(_ s: String) -> [Character] {
        s.lowercased().filter { $0.isLetter || $0.isNumber }.map { $0 }
    }

    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var row = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return previous[b.count]
    }
}
