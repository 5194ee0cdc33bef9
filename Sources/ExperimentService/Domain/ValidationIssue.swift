/// One problem found in an experiment: where (a JSONPath), how bad, a stable code and a message.
public struct ValidationIssue: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        /// `chaos run` would refuse the experiment, crash, or not do what it says.
        case error
        /// It runs, but probably not as intended, or it leaks something.
        case warning
    }

    /// A stable, dotted identifier; clients match on it, messages may change.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
    }

    public let path: JSONPath
    public let severity: Severity
    public let code: Code
    public let message: String

    public init(_ severity: Severity, _ code: Code, at path: JSONPath, _ message: String) {
        self.path = path
        self.severity = severity
        self.code = code
        self.message = message
    }

    public var description: String { "\(severity) \(code) at \(path): \(message)" }
}

/// Every issue of one experiment, in document order.
public struct ValidationReport: Sendable, Hashable {
    public let issues: [ValidationIssue]

    public var errors: [ValidationIssue] { issues.filter { $0.severity == .error } }
    public var warnings: [ValidationIssue] { issues.filter { $0.severity == .warning } }
    /// True when `chaos run` can take the experiment; warnings do not make it invalid.
    public var isValid: Bool { !issues.contains { $0.severity == .error } }
}

extension ValidationIssue.Code {
    // MARK: shape of the document
    public static let typeMismatch = Self(rawValue: "type.mismatch")
    public static let experimentNotObject = Self(rawValue: "experiment.not_object")
    public static let titleMissing = Self(rawValue: "experiment.title.missing")
    public static let descriptionMissing = Self(rawValue: "experiment.description.missing")
    public static let methodMissing = Self(rawValue: "experiment.method.missing")
    public static let tagInvalid = Self(rawValue: "experiment.tag.invalid")
    public static let unknownKey = Self(rawValue: "experiment.key.unknown")
    public static let extensionNameMissing = Self(rawValue: "extension.name.missing")
    public static let runtimeStrategyInvalid = Self(rawValue: "runtime.strategy.invalid")

    // MARK: activities
    public static let activityNotObject = Self(rawValue: "activity.not_object")
    public static let activityEmpty = Self(rawValue: "activity.empty")
    public static let activityRefInvalid = Self(rawValue: "activity.ref.invalid")
    public static let activityRefUnknown = Self(rawValue: "activity.ref.unknown")
    public static let rollbackRefUnknown = Self(rawValue: "rollback.ref.unknown")
    public static let activityTypeMissing = Self(rawValue: "activity.type.missing")
    public static let activityTypeUnknown = Self(rawValue: "activity.type.unknown")
    public static let activityNameMissing = Self(rawValue: "activity.name.missing")
    public static let activityNameDuplicate = Self(rawValue: "activity.name.duplicate")
    public static let activityProviderMissing = Self(rawValue: "activity.provider.missing")
    public static let activityTimeoutInvalid = Self(rawValue: "activity.timeout.invalid")
    public static let activityTimeoutIgnored = Self(rawValue: "activity.timeout.ignored")
    public static let activityPausesInvalid = Self(rawValue: "activity.pauses.invalid")
    public static let activityBackgroundInvalid = Self(rawValue: "activity.background.invalid")

    // MARK: providers
    public static let providerTypeMissing = Self(rawValue: "provider.type.missing")
    public static let providerTypeUnknown = Self(rawValue: "provider.type.unknown")
    public static let providerTimeoutInvalid = Self(rawValue: "provider.timeout.invalid")
    public static let pythonModuleMissing = Self(rawValue: "provider.python.module.missing")
    public static let pythonFuncMissing = Self(rawValue: "provider.python.func.missing")
    public static let processPathMissing = Self(rawValue: "provider.process.path.missing")
    public static let processArgumentsShell = Self(rawValue: "provider.process.arguments.shell")
    public static let processArgumentsDeprecated = Self(rawValue: "provider.process.arguments.deprecated")
    public static let httpURLMissing = Self(rawValue: "provider.http.url.missing")
    public static let httpHeadersInvalid = Self(rawValue: "provider.http.headers.invalid")
    public static let providerSecretsUnknown = Self(rawValue: "provider.secrets.unknown")

    // MARK: hypothesis and tolerances
    public static let hypothesisTitleMissing = Self(rawValue: "hypothesis.title.missing")
    public static let toleranceMissing = Self(rawValue: "hypothesis.probe.tolerance.missing")
    public static let toleranceFloat = Self(rawValue: "tolerance.float")
    public static let toleranceInvalid = Self(rawValue: "tolerance.invalid")
    public static let toleranceTypeUnknown = Self(rawValue: "tolerance.type.unknown")
    public static let toleranceRegexPatternMissing = Self(rawValue: "tolerance.regex.pattern.missing")
    public static let toleranceRegexPatternInvalid = Self(rawValue: "tolerance.regex.pattern.invalid")
    public static let toleranceJSONPathMissing = Self(rawValue: "tolerance.jsonpath.path.missing")
    public static let toleranceRangeMissing = Self(rawValue: "tolerance.range.missing")
    public static let toleranceRangeInvalid = Self(rawValue: "tolerance.range.invalid")

    // MARK: controls
    public static let controlNotObject = Self(rawValue: "control.not_object")
    public static let controlNameMissing = Self(rawValue: "control.name.missing")
    public static let controlProviderMissing = Self(rawValue: "control.provider.missing")
    public static let controlScopeInvalid = Self(rawValue: "control.scope.invalid")
    public static let controlRefUnknown = Self(rawValue: "control.ref.unknown")
    public static let controlModuleMissing = Self(rawValue: "control.python.module.missing")

    // MARK: configuration and secrets
    public static let configurationEnvKeyMissing = Self(rawValue: "configuration.env.key.missing")
    public static let configurationEnvTypeInvalid = Self(rawValue: "configuration.env.type.invalid")
    public static let secretsScopeInvalid = Self(rawValue: "secrets.scope.invalid")
    public static let secretEnvKeyMissing = Self(rawValue: "secrets.env.key.missing")
    public static let secretVaultPathMissing = Self(rawValue: "secrets.vault.path.missing")
    public static let secretInline = Self(rawValue: "secrets.inline")
}
