import FaultlineProto
import FaultlineRPC
import NIOCore

/// An experiment text read and validated: what a revision stores, or every problem at once.
struct ImportedExperiment {
    let document: ExperimentDocument
    let format: ExperimentsV1.SourceFormat
    /// The JSON text exported: the original for a JSON import, the lossless conversion for YAML.
    let definitionJSON: String
    let title: String
    let description: String
    let tags: [String]
    let warnings: [ExperimentsV1.ValidationProblem]

    /// The outcome of reading a source: a document (possibly with errors) or a failure to parse.
    struct Reading {
        var imported: ImportedExperiment?
        var problems: [ExperimentsV1.ValidationProblem]
        var hasErrors: Bool { problems.contains { $0.severity == .error } }
    }

    static func read(_ source: ExperimentsV1.ExperimentSource?, limits: DocumentLimits) -> Reading {
        guard let source, !source.text.isEmpty else {
            return Reading(problems: [problem("$", .error, DocumentError.Code.empty.rawValue, "source.text is empty")])
        }
        let input: ExperimentDocument.InputFormat
        switch source.format {
        case .json: input = .json
        case .yaml: input = .yaml
        default:
            let name = source.fileName.lowercased()
            input = name.hasSuffix(".json") ? .json : (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) ? .yaml : .auto
        }
        let document: ExperimentDocument
        do {
            document = try ExperimentDocument.parse(bytes: Array(source.text.utf8), format: input, limits: limits)
        } catch {
            let place = error.location.map { " (\($0))" } ?? ""
            return Reading(problems: [problem("$", .error, error.code.rawValue, error.message + place)])
        }
        let report = ExperimentValidator.validate(document)
        var problems = report.issues.map {
            problem($0.path.description, $0.severity == .error ? .error : .warning, $0.code.rawValue, $0.message)
        }
        // `chaos` would take it, but a revision could not be stored: refused here, at its path,
        // rather than by Postgres as a whole.
        if let path = document.value.pathOfNUL() {
            problems.insert(problem(path.description, .error, DocumentError.Code.nul.rawValue,
                                    "holds U+0000 (NUL), which Faultline cannot store; remove it"), at: 0)
        }
        let definition = document.value
        let imported = ImportedExperiment(
            document: document,
            format: document.format == .json ? .json : .yaml,
            definitionJSON: document.format == .json ? document.originalText : document.export(as: .json),
            title: definition["title"]?.stringValue ?? "",
            description: definition["description"]?.stringValue ?? "",
            tags: (definition["tags"]?.arrayValue ?? []).compactMap(\.stringValue),
            warnings: problems.filter { $0.severity == .warning })
        return Reading(imported: imported, problems: problems)
    }

    /// The document or INVALID_ARGUMENT carrying the full report in `faultline-validation-bin`.
    static func require(_ source: ExperimentsV1.ExperimentSource?, limits: DocumentLimits) throws(RPCError) -> ImportedExperiment {
        let reading = read(source, limits: limits)
        guard let imported = reading.imported, !reading.hasErrors else {
            let errors = reading.problems.filter { $0.severity == .error }
            var metadata = Metadata()
            if let bytes = try? ExperimentsV1.ValidationReport(problems: reading.problems).serializedBytes() {
                metadata.addBinary(Array(buffer: bytes), forKey: "faultline-validation-bin")
            }
            let first = errors.first.map { "\($0.path): \($0.message)" } ?? "invalid"
            throw RPCError(.invalidArgument,
                           "the experiment has \(errors.count) error(s); first: \(first)", metadata: metadata)
        }
        return imported
    }

    static func problem(_ path: String, _ severity: ExperimentsV1.Severity, _ code: String, _ message: String) -> ExperimentsV1.ValidationProblem {
        // A message may quote a key holding NUL, which no proto string carries: escaped as in JSON.
        ExperimentsV1.ValidationProblem(path: path, severity: severity, code: code,
                                        message: message.split(separator: "\u{0}", omittingEmptySubsequences: false).joined(separator: "\\u0000"))
    }
}
