import ExperimentService
import Foundation
import Testing

/// Every Chaos Toolkit fixture in `$FAULTLINE_SHARED/fixtures/experiments`: imported, validated,
/// exported as JSON and as YAML, and compared; the YAML export is also read by the real PyYAML
/// and by the real `chaos validate`.
@Suite("Fixture experiments: import, validate, export")
struct FixtureTests {
    static let validFixtures = (try? Env.fixtureFiles(invalid: false)) ?? []
    static let invalidFixtures = (try? Env.fixtureFiles(invalid: true)) ?? []

    @Test func fixturesArePresent() {
        #expect(Self.validFixtures.count >= 5, "fixtures not found under \(Env.fixtures.path)")
        #expect(Self.invalidFixtures.count >= 2)
    }

    /// Warnings each valid fixture must raise: all of them pass a string to a process provider,
    /// which Chaos Toolkit runs through a shell.
    static let expectedWarnings: [String: [(ValidationIssue.Code, String)]] = [
        "chaostoolkit__tests_fixtures_check-file-exists-deviated.json": [(.processArgumentsShell, "$.method[0].provider.arguments")],
        "chaostoolkit__tests_fixtures_check-file-exists-fail.json": [],
        "chaostoolkit__tests_fixtures_check-file-exists.json": [(.processArgumentsShell, "$.method[0].provider.arguments")],
        "chaostoolkit__tests_fixtures_override-hypothesis-runtime-strategy.json": [
            (.processArgumentsShell, "$.method[0].provider.arguments"),
            (.processArgumentsShell, "$.rollbacks[0].provider.arguments"),
        ],
        "chaostoolkit__tests_fixtures_override-rollbacks-runtime-strategy.json": [
            (.processArgumentsShell, "$.method[0].provider.arguments"),
            (.processArgumentsShell, "$.rollbacks[0].provider.arguments"),
        ],
    ]

    @Test(arguments: validFixtures)
    func validFixturePassesWithNoErrors(_ file: URL) throws {
        let document = try ExperimentDocument.parse(bytes: Env.bytes(file))
        #expect(document.format == .json)
        let report = ExperimentValidator.validate(document)
        #expect(report.isValid, "\(report.errors)")
        if let expected = Self.expectedWarnings[file.lastPathComponent] {
            #expect(report.warnings.map(\.code) == expected.map(\.0))
            #expect(report.warnings.map(\.path.description) == expected.map(\.1))
        }
    }

    /// What the real `chaos validate` (chaostoolkit 1.21.4, lib 1.45.1) says, run as
    /// `$FAULTLINE_VENV/bin/chaos --no-version-check validate FILE`:
    ///
    /// - invalid/chaostoolkit__tests_fixtures_invalid-plan.json → exit 1,
    ///   `ERROR] experiment requires a description` (it stops at the first problem; the method is
    ///   missing too).
    /// - invalid/chaostoolkit__tests_fixtures_well-formed-experiment.json → exit 1,
    ///   `ERROR] an activity must have a type` (a pre-1.0 format: activities carry `title`,
    ///   `probes`, `action` instead of `type`, `name`, `provider`).
    /// - check-file-exists-fail.json → exit 1, `could not find Python module
    ///   'tests.fixtures.force_failure' in activity 'check-file-exists'` when run from a directory
    ///   without that module, exit 0 with `PYTHONPATH` holding it: an import problem of the host,
    ///   not of the document, which is why it is valid here.
    /// - the four other valid fixtures → exit 0, "experiment syntax and semantic look valid".
    static let invalidReasons: [String: (chaosSays: String, errors: [(ValidationIssue.Code, String)])] = [
        "chaostoolkit__tests_fixtures_invalid-plan.json": (
            "experiment requires a description",
            [(.descriptionMissing, "$.description"), (.methodMissing, "$.method")]
        ),
        "chaostoolkit__tests_fixtures_well-formed-experiment.json": (
            "an activity must have a type",
            (0..<3).flatMap { i in
                [(ValidationIssue.Code.activityTypeMissing, "$.method[\(i)].type"),
                 (.activityNameMissing, "$.method[\(i)].name"),
                 (.activityProviderMissing, "$.method[\(i)].provider")]
            }
        ),
    ]

    @Test(arguments: invalidFixtures)
    func invalidFixtureIsRejectedForTheReasonChaosGives(_ file: URL) throws {
        let document = try ExperimentDocument.parse(bytes: Env.bytes(file))
        let report = ExperimentValidator.validate(document)
        #expect(!report.isValid)
        let expected = try Self.invalidReasons[file.lastPathComponent].unwrap("expected reasons for \(file.lastPathComponent)")
        #expect(report.errors.map(\.code) == expected.errors.map(\.0))
        #expect(report.errors.map(\.path.description) == expected.errors.map(\.1))
        // The real chaos validate rejects it, for the reason our first error gives.
        let workspace = try ChaosWorkspace("validate-invalid")
        let (accepted, output) = try workspace.validate(file)
        #expect(!accepted)
        #expect(output.contains(expected.chaosSays), "\(output)")
        #expect(report.errors.first?.message.hasPrefix(expected.chaosSays) == true)
    }

    @Test(arguments: validFixtures + invalidFixtures)
    func exportGivesBackTheSameDefinition(_ file: URL) throws {
        let bytes = try Env.bytes(file)
        let imported = try ExperimentDocument.parse(bytes: bytes, format: .json)
        // Same format: the text as given, byte for byte.
        #expect(Array(imported.export().utf8) == bytes)

        // Through YAML: a YAML rendering reads back (here and in PyYAML) as the same definition.
        let yaml = imported.export(as: .yaml)
        let fromYAML = try ExperimentDocument.parse(bytes: Array(yaml.utf8), format: .auto)
        #expect(fromYAML.format == .yaml)
        #expect(fromYAML.value == imported.value)
        #expect(fromYAML.definition.keys == imported.definition.keys, "key order survives")
        #expect(try pythonLoad([yaml], loader: "yaml.safe_load").first == imported.value)

        // And back to JSON from the YAML import.
        let json = fromYAML.export(as: .json)
        let again = try ExperimentDocument.parse(bytes: Array(json.utf8), format: .json)
        #expect(again.value == imported.value)
        #expect(try pythonLoad([json], loader: "json.loads").first == imported.value)
    }

    /// The YAML export runs where the JSON did: `chaos validate` accepts it.
    @Test(arguments: validFixtures)
    func yamlExportPassesChaosValidate(_ file: URL) throws {
        let document = try ExperimentDocument.parse(bytes: Env.bytes(file))
        let workspace = try ChaosWorkspace("validate-yaml")
        let yamlFile = try workspace.write(document.export(as: .yaml), as: "experiment.yaml")
        let (accepted, output) = try workspace.validate(yamlFile)
        #expect(accepted, "\(output)")
    }

    @Test func documentsThatAreNotExperimentsAreRefused() throws {
        for (text, format) in [("[1, 2]", ExperimentDocument.InputFormat.auto), ("- a\n- b\n", .yaml), ("42", .json), ("just text", .auto)] {
            #expect {
                _ = try ExperimentDocument.parse(bytes: Array(text.utf8), format: format)
            } throws: { ($0 as? DocumentError)?.code == .notAnObject }
        }
    }

    @Test func autoDetectionFallsBackToYAMLFlowStyle() throws {
        let doc = try ExperimentDocument.parse(bytes: Array("{title: t, description: d, method: []}".utf8))
        #expect(doc.format == .yaml)
        #expect(doc.value == ["title": "t", "description": "d", "method": []])
        // A JSON document that breaks a limit is not retried as YAML.
        #expect {
            _ = try ExperimentDocument.parse(bytes: Array(#"{"title": "x"}"#.utf8), limits: DocumentLimits(maxBytes: 8))
        } throws: { ($0 as? DocumentError)?.code == .tooLarge }
        // Broken JSON that is not YAML either reports the JSON error.
        #expect {
            _ = try ExperimentDocument.parse(bytes: Array(#"{"title": "x",, }"#.utf8))
        } throws: { ($0 as? DocumentError)?.code == .jsonSyntax }
    }
}
