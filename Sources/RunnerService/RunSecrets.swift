public import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit

#if canImport(Glibc)
import Glibc
#endif

/// Where a runner gets a run's environment and integrations: SecretService, called with the
/// runner credential (SecretService's runner role: `authorization: Bearer <credential>`).
public struct SecretSource: Sendable {
    /// The metadata key SecretService reads the runner credential from.
    public static let credentialMetadataKey = "authorization"

    let client: SecretsV1.SecretClient
    private let credential: String
    /// Per call; a SecretService that does not answer fails the run instead of holding it.
    let timeout: Duration

    public init(client: SecretsV1.SecretClient, credential: String, timeout: Duration = .seconds(10)) {
        self.client = client
        self.credential = credential
        self.timeout = timeout
    }

    func options(_ organization: OrganizationID) -> CallOptions {
        var options = CallOptions.on(behalfOf: organization, timeout: timeout)
        options.metadata.addString("Bearer " + credential, forKey: Self.credentialMetadataKey)
        return options
    }
}

/// What SecretService gives one run: variables and secrets for the `chaos` environment, secret
/// files for the run directory, and the integrations' controls. Holds secret values, so its
/// descriptions name nothing but counts: interpolating it into a log line leaks nothing.
struct RunSecrets: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    struct SecretFile: Sendable {
        /// Relative to the run directory, checked by `relativeComponents`.
        var path: String
        var value: [UInt8]
    }

    /// Environment variables of `chaos`, beyond the ones the runner sets itself.
    private(set) var environment: [String: String] = [:]
    private(set) var files: [SecretFile] = []
    /// Variables that receive a secret file's absolute path: name → relative path.
    private(set) var pathVariables: [String: String] = [:]
    /// Rendered integration controls in request order: (name, `{"provider": ...}` JSON text).
    private(set) var controls: [(name: String, json: String)] = []

    var description: String { "RunSecrets(\(environment.count) variables, \(files.count) files, \(controls.count) controls)" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: [:]) }

    /// Variables the runner sets for every run; an environment may not replace them.
    static let reserved: Set<String> = ["PATH", "VIRTUAL_ENV", "HOME", "PYTHONPATH"]
    /// Files the runner itself keeps in the run directory; a secret file may not take their place.
    static let runnerFiles: Set<String> = ["experiment.json", "control.json", "control.sock", "journal.json",
                                           "events.jsonl", "chaos.log", "output.txt"]
    /// The control the runner adds to every run.
    static let faultlineControl = "faultline"

    /// Reveals `environmentID` and renders `integrationIDs` for `executionID` (the audit trail).
    /// Errors carry SecretService's code and message, never a value.
    static func fetch(environmentID: String, integrationIDs: [String], executionID: String,
                      organization: OrganizationID, source: SecretSource?) async throws(RunnerError) -> RunSecrets {
        var secrets = RunSecrets()
        guard !environmentID.isEmpty || !integrationIDs.isEmpty else { return secrets }
        guard let source else {
            throw .secrets("the run names an environment or integrations, but this runner has no SecretService configured (FAULTLINE_SECRET_SERVICE)")
        }
        if !environmentID.isEmpty {
            let revealed: SecretsV1.RevealedEnvironment
            do {
                revealed = try await call(source) {
                    try await source.client.revealEnvironment(.init(environmentId: environmentID, executionId: executionID),
                                                              options: source.options(organization)).environment ?? .init()
                }
            } catch {
                throw .secrets("could not reveal environment \(environmentID): \(Self.describe(error))")
            }
            try secrets.add(revealed, from: "environment \(environmentID)")
        }
        if !integrationIDs.isEmpty {
            let rendered: SecretsV1.RenderControlsResponse
            do {
                rendered = try await call(source) {
                    try await source.client.renderControls(.init(integrationIds: integrationIDs, executionId: executionID),
                                                           options: source.options(organization))
                }
            } catch {
                throw .secrets("could not render the controls of integrations \(integrationIDs.joined(separator: ", ")): \(Self.describe(error))")
            }
            try secrets.add(rendered.environment ?? .init(), from: "the integrations")
            for control in rendered.controls { try secrets.addControl(control) }
        }
        return secrets
    }

    /// A few attempts while SecretService is UNAVAILABLE (restarting, connection being made),
    /// each bounded by the call timeout: a run fails in seconds, never hangs on a dead service.
    private static func call<T: Sendable>(_ source: SecretSource, _ body: () async throws -> T) async throws -> T {
        var delay = Duration.milliseconds(100)
        for _ in 0..<2 {
            do {
                return try await body()
            } catch let error as RPCError where error.code == .unavailable {
                try await Task.sleep(for: delay)
                delay *= 3
            }
        }
        return try await body()
    }

    /// SecretService's code and message: its messages name ids and secret names, never values.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? RPCError { return "\(error.code): \(error.message)" }
        if error is CancellationError { return "cancelled" }
        return "\(type(of: error))"
    }

    // MARK: merging

    /// Adds an environment; the same variable or file with two different values is refused.
    mutating func add(_ revealed: SecretsV1.RevealedEnvironment, from origin: String) throws(RunnerError) {
        for (name, value) in revealed.variables.sorted(by: { $0.key < $1.key }) {
            try setVariable(name, value, origin)
        }
        for secret in revealed.secrets {
            switch secret.delivery?.target {
            case .file(let file):
                let components = try Self.relativeComponents(file.path, secret: secret.name)
                let path = components.joined(separator: "/")
                if let existing = files.first(where: { $0.path == path }) {
                    guard existing.value == secret.value else {
                        throw .secrets("\(origin) and an earlier source both write secret file \(path) with different contents")
                    }
                } else {
                    files.append(SecretFile(path: path, value: secret.value))
                }
                if !file.pathEnvVar.isEmpty {
                    try Self.checkName(file.pathEnvVar, origin)
                    if let other = pathVariables[file.pathEnvVar], other != path {
                        throw .secrets("\(origin) points variable \(file.pathEnvVar) at two secret files")
                    }
                    guard environment[file.pathEnvVar] == nil else {
                        throw .secrets("\(origin) sets \(file.pathEnvVar) both as a variable and as a secret file's path")
                    }
                    pathVariables[file.pathEnvVar] = path
                }
            case .envVar(let variable):
                try setSecretVariable(variable.name.isEmpty ? secret.name : variable.name, secret.value, origin)
            case nil:
                try setSecretVariable(secret.name, secret.value, origin)
            }
        }
    }

    private mutating func setSecretVariable(_ name: String, _ value: [UInt8], _ origin: String) throws(RunnerError) {
        guard let text = String(validating: value, as: UTF8.self) else {
            throw .secrets("\(origin): secret \(name) is not UTF-8 text and cannot be an environment variable")
        }
        try setVariable(name, text, origin)
    }

    private mutating func setVariable(_ name: String, _ value: String, _ origin: String) throws(RunnerError) {
        try Self.checkName(name, origin)
        guard !value.utf8.contains(0) else { throw .secrets("\(origin): variable \(name) contains a NUL byte") }
        guard pathVariables[name] == nil else {
            throw .secrets("\(origin) sets \(name) both as a variable and as a secret file's path")
        }
        if let existing = environment[name], existing != value {
            throw .secrets("\(origin) and an earlier source both set \(name) to different values")
        }
        environment[name] = value
    }

    private mutating func addControl(_ control: SecretsV1.RenderedControl) throws(RunnerError) {
        guard control.name != Self.faultlineControl else {
            throw .secrets("integration \(control.integrationId) is named \(Self.faultlineControl), the runner's own control")
        }
        guard !controls.contains(where: { $0.name == control.name }) else {
            throw .secrets("two integrations render a control named \(control.name)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(control.controlJson.utf8)), object is [String: Any] else {
            throw .secrets("integration \(control.integrationId) rendered a control that is not a JSON object")
        }
        controls.append((control.name, control.controlJson))
    }

    static func checkName(_ name: String, _ origin: String) throws(RunnerError) {
        let valid = name.utf8.count <= 256 && name.utf8.enumerated().allSatisfy { index, byte in
            byte == UInt8(ascii: "_") || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (index > 0 && byte >= 48 && byte <= 57)
        }
        guard valid, !name.isEmpty else {
            throw .secrets("\(origin): \(name.debugDescription.prefix(80)) is not a valid environment variable name")
        }
        guard !reserved.contains(name) else { throw .secrets("\(origin): \(name) is set by the runner and cannot come from an environment") }
    }

    /// A secret file's path as components inside the run directory: relative, no `.` or `..`,
    /// no empty component, no NUL, not one of the runner's own files.
    static func relativeComponents(_ path: String, secret: String) throws(RunnerError) -> [String] {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !path.isEmpty, path.utf8.count <= 1024, !path.hasPrefix("/"), !path.utf8.contains(0),
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw .secrets("secret \(secret): file path \(path.debugDescription.prefix(200)) must be relative and stay inside the run directory")
        }
        if components.count == 1, runnerFiles.contains(components[0]) {
            throw .secrets("secret \(secret): file path \(path) is one of the runner's own files")
        }
        return components
    }

    // MARK: the run directory

    /// Writes the secret files (0600) under `directory` and returns the variables for `chaos`.
    /// Directories on the way are created 0700 and may not be symbolic links (run files could
    /// hold one), and a file that already exists is refused rather than overwritten.
    func materialize(in directory: URL) throws(RunnerError) -> [String: String] {
        for file in files {
            let components = try Self.relativeComponents(file.path, secret: file.path)
            var parent = directory.path
            for component in components.dropLast() {
                parent += "/" + component
                if mkdir(parent, 0o700) != 0 {
                    var info = stat()
                    guard errno == EEXIST, lstat(parent, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                        throw .secrets("secret file \(file.path): cannot create directory \(component): \(String(cString: strerror(errno)))")
                    }
                }
            }
            let target = parent + "/" + components[components.count - 1]
            let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw .secrets("secret file \(file.path): cannot create it in the run directory: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            // Independent of the umask, whatever it is.
            fchmod(fd, 0o600)
            var offset = 0
            while offset < file.value.count {
                let written = file.value.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { throw .secrets("secret file \(file.path): write failed: \(String(cString: strerror(errno)))") }
                offset += written
            }
        }
        var variables = environment
        for (name, path) in pathVariables { variables[name] = directory.appendingPathComponent(path).path }
        return variables
    }

    /// The control file: the runner's control first (it reports the others' effects), then the
    /// integrations' in request order. Text, because chaoslib applies controls in file order.
    func controlFile(faultline: String) -> String {
        var parts = ["\"\(Self.faultlineControl)\": " + faultline]
        for control in controls {
            let name = (try? JSONSerialization.data(withJSONObject: control.name, options: .fragmentsAllowed))
                .map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
            parts.append(name + ": " + control.json)
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}
