import Crypto
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import RunnerService

#if canImport(Glibc)
import Glibc
#endif

/// Runs with an environment and integrations: a real SecretService, a real ExperimentService and
/// real `chaos run`s, all over real sockets.
@Suite("RunnerService with SecretService", .serialized)
struct SecretRunTests {
    static let token = "tok-\(UInt64.random(in: 0...UInt64.max))-Zq9"
    static let fileSecret = "file-secret-\(UInt64.random(in: 0...UInt64.max))\nsecond line"

    /// A module the experiment's probes call: they answer digests and modes, never the values.
    static let checkModule = """
    import hashlib, os, stat

    def digest(value):
        return hashlib.sha256(value.encode()).hexdigest()

    def file_digest(path):
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    def modes(path):
        return "%o/%o" % (stat.S_IMODE(os.stat(path).st_mode), stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode))

    def inside(path):
        return os.path.dirname(os.path.dirname(path)) == os.getcwd()
    """

    static func hex(_ bytes: some Sequence<UInt8>) -> String { SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined() }

    static func probe(_ name: String, _ function: String, _ argument: String, tolerance: String) -> String {
        #"{"type": "probe", "name": "\#(name)", "tolerance": \#(tolerance), "provider": {"type": "python", "module": "secretcheck", "func": "\#(function)", "arguments": {"\#(function == "digest" ? "value" : "path")": "\#(argument)"}}}"#
    }

    static var experiment: String {
        let probes = [
            probe("token-digest", "digest", "${token}", tolerance: "\"\(hex(Array(token.utf8)))\""),
            probe("plain-digest", "digest", "${plain}", tolerance: "\"\(hex(Array("plain-value".utf8)))\""),
            probe("file-digest", "file_digest", "${kubeconfig}", tolerance: "\"\(hex(Array(fileSecret.utf8)))\""),
            probe("file-modes", "modes", "${kubeconfig}", tolerance: "\"600/700\""),
            probe("file-inside", "inside", "${kubeconfig}", tolerance: "true"),
        ]
        return #"""
        {"title": "secrets reach the run", "description": "d",
         "configuration": {"token": {"type": "env", "key": "FL_TOKEN"}, "plain": {"type": "env", "key": "FL_PLAIN"},
                           "kubeconfig": {"type": "env", "key": "FL_KUBECONFIG"}},
         "steady-state-hypothesis": {"title": "the secrets are there", "probes": [\#(probes.joined(separator: ", "))]},
         "method": [\#(RunnerTests.getcwd)]}
        """#
    }

    static func workspace() throws -> URL {
        let directory = try Env.temporaryDirectory("sws")
        try Data(checkModule.utf8).write(to: directory.appendingPathComponent("secretcheck.py"))
        return directory
    }

    @Test("an environment's variables and secrets reach the experiment; secret values are in nothing the platform stores")
    func environmentReachesTheRun() async throws {
        let workspace = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: workspace) }
        try await Platform.with(database: "runner_secret_env", secrets: .service, configure: { $0.runFiles = workspace }) { platform in
            let secrets = try #require(platform.secrets)
            let environment = try #require(try await secrets.createEnvironment(.init(
                name: "staging", variables: ["FL_PLAIN": "plain-value"],
                secrets: [
                    .init(name: "FL_TOKEN", delivery: .init(target: .envVar(.init())), value: Array(Self.token.utf8)),
                    .init(name: "kubeconfig", delivery: .init(target: .file(.init(path: "secrets/kube.conf", pathEnvVar: "FL_KUBECONFIG"))),
                          value: Array(Self.fileSecret.utf8)),
                ]), options: Platform.options).environment)
            let id = try await platform.createExperiment(Self.experiment)
            let run = try await platform.start(id) { $0.environmentId = environment.id }
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")

            // Where it could show: the journal, the log, the events, the reason, the runner's logs.
            let journal = try await platform.experiments.getExecutionJournal(.init(executionId: run.executionId), options: Platform.options).journalJson
            let log = try await platform.experiments.getExecutionLog(.init(executionId: run.executionId), options: Platform.options).log
            let events = try await platform.events(run.executionId).map { "\($0.type) \($0.activityName) \($0.payloadJson)" }
            #expect(journal.contains("token-digest"), "the probes ran")
            #expect(!log.isEmpty)
            #expect(events.contains { $0.contains("file-modes") })
            let stored = [journal, log, execution.reason] + events + platform.logs.all
            let fileLine = try #require(Self.fileSecret.split(separator: "\n").first).description
            for secret in [Self.token, fileLine] {
                #expect(!stored.contains { $0.contains(secret) }, "a secret value is stored or logged")
            }
            // The audit trail names the execution the environment was revealed for.
            let audit = try await secrets.listAuditEvents(.init(executionId: run.executionId), options: Platform.options).events
            #expect(audit.map(\.action) == [.revealEnvironment])
            #expect(audit.first?.environmentId == environment.id)
            #expect(audit.first?.secretNames.sorted() == ["FL_TOKEN", "kubeconfig"])
            // The run directory with the secret file is gone.
            let runDirectories = platform.stateDirectory.appendingPathComponent("r").path
            _ = try await platform.waitFor("run directory removed") {
                try FileManager.default.contentsOfDirectory(atPath: runDirectories).isEmpty ? true : nil
            }
        }
    }

    @Test("an integration's pre-check that fails stops the run before its method")
    func failingPreCheck() async throws {
        try await Platform.with(database: "runner_secret_precheck", secrets: .service) { platform in
            let secrets = try #require(platform.secrets)
            // Nothing listens on port 9 (discard) of loopback here: the probe gets no answer.
            let check = SecretsV1.HttpPreCheck(probe: .init(url: "http://127.0.0.1:9/health", timeoutUs: 2_000_000))
            let integration = try #require(try await secrets.createIntegration(
                .init(name: "health-gate", config: .init(kind: .httpPreCheck(check))), options: Platform.options).integration)
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(RunnerTests.sleep("1", name: "the-method"))]"))
            let run = try await platform.start(id) { $0.integrationIds = [integration.id] }
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .interrupted, "\(execution.reason)")
            let journal = try await platform.journal(run.executionId)
            #expect((journal["run"] as? [Any])?.isEmpty ?? true, "no method activity ran")
            let events = try await platform.events(run.executionId)
            #expect(!events.contains { $0.activityName == "the-method" })
            #expect(events.contains { $0.type == "experiment-before" }, "the faultline control, first in the file, reported")
            let log = try await platform.experiments.getExecutionLog(.init(executionId: run.executionId), options: Platform.options).log
            #expect(log.contains("pre-check failed"))
            let audit = try await secrets.listAuditEvents(.init(executionId: run.executionId), options: Platform.options).events
            #expect(audit.map(\.action) == [.renderControls])
        }
    }

    /// A real HTTP server (Python's, from the venv) that answers 200 only to the expected token.
    static let tokenServer = """
    import http.server, os, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("X-Token") == os.environ["EXPECTED_TOKEN"]
            with open(sys.argv[2], "a") as hits:
                hits.write("ok\\n" if ok else "denied\\n")
            self.send_response(200 if ok else 403)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(server.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()
    """

    @Test("an integration's pre-check gets its header from the integration's environment secret and lets the run go")
    func passingPreCheck() async throws {
        let directory = try Env.temporaryDirectory("http")
        defer { try? FileManager.default.removeItem(at: directory) }
        let portFile = directory.appendingPathComponent("port"), hitsFile = directory.appendingPathComponent("hits")
        // Spawned as the runner spawns chaos: a Foundation Process started from Swift concurrency
        // code would inherit SIGTERM blocked and outlive the test.
        let server = try SpawnedProcess(executable: Env.venv.appendingPathComponent("bin/python").path,
                                        arguments: ["-c", Self.tokenServer, portFile.path, hitsFile.path],
                                        environment: ["EXPECTED_TOKEN": Self.token],
                                        options: .init(directory: directory.path, output: .null))
        var failure: (any Error)?
        do {
            try await passingPreCheck(portFile: portFile, hitsFile: hitsFile)
        } catch {
            failure = error
        }
        server.signalGroup(SIGKILL)
        _ = await server.waitForExit()
        if let failure { throw failure }
    }

    private func passingPreCheck(portFile: URL, hitsFile: URL) async throws {
        try await Platform.with(database: "runner_secret_precheck_ok", secrets: .service) { platform in
            let port = try await platform.waitFor("the HTTP server's port") { try? String(contentsOf: portFile, encoding: .utf8) }
            let secrets = try #require(platform.secrets)
            let environment = try #require(try await secrets.createEnvironment(.init(
                name: "gate-credentials", secrets: [.init(name: "API_TOKEN", delivery: .init(target: .envVar(.init())), value: Array(Self.token.utf8))]),
                options: Platform.options).environment)
            let check = SecretsV1.HttpPreCheck(probe: .init(url: "http://127.0.0.1:\(port)/health", secretHeaders: ["X-Token": "API_TOKEN"]))
            let integration = try #require(try await secrets.createIntegration(
                .init(name: "health-gate", config: .init(kind: .httpPreCheck(check)), environmentId: environment.id),
                options: Platform.options).integration)
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(RunnerTests.getcwd)]"))
            let run = try await platform.start(id) { $0.integrationIds = [integration.id] }
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .completed, "\(execution.reason)")
            #expect(try String(contentsOf: hitsFile, encoding: .utf8) == "ok\n", "the probe carried the secret header")
            let journal = try await platform.experiments.getExecutionJournal(.init(executionId: run.executionId), options: Platform.options).journalJson
            let log = try await platform.experiments.getExecutionLog(.init(executionId: run.executionId), options: Platform.options).log
            let events = try await platform.events(run.executionId).map(\.payloadJson)
            #expect(!([journal, log] + events + platform.logs.all).contains { $0.contains(Self.token) })
        }
    }

    @Test("without a reachable SecretService, a run with an environment fails at once with a clear reason",
          arguments: [SecretMode.none, .unreachable, .wrongCredential])
    func noSecretService(_ mode: SecretMode) async throws {
        try await Platform.with(database: "runner_secret_missing", secrets: mode) { platform in
            let id = try await platform.createExperiment(RunnerTests.experiment(method: "[\(RunnerTests.getcwd)]"))
            // A real environment where there is a SecretService, else an id of the right shape.
            let environmentID = try await platform.secrets?.createEnvironment(.init(name: "e", variables: ["A": "1"]), options: Platform.options)
                .environment?.id ?? PrefixedID.make(prefix: "env")
            let run = try await platform.start(id) { $0.environmentId = environmentID }
            let execution = try await platform.waitUntilTerminal(run.executionId)
            #expect(execution.state == .failed)
            switch mode {
            case .none: #expect(execution.reason.contains("no SecretService configured"), "\(execution.reason)")
            case .unreachable: #expect(execution.reason.contains("could not reveal environment \(environmentID): UNAVAILABLE"), "\(execution.reason)")
            case .wrongCredential: #expect(execution.reason.contains("PERMISSION_DENIED"), "\(execution.reason)")
            case .service: break
            }
            #expect(try await platform.events(run.executionId).isEmpty, "chaos never ran")
        }
    }

    @Test("hostile secret file paths and variable names are refused before anything is written")
    func hostileDeliveries() throws {
        func environment(file path: String) -> SecretsV1.RevealedEnvironment {
            .init(secrets: [.init(name: "s", delivery: .init(target: .file(.init(path: path))), value: Array("v".utf8))])
        }
        for path in ["../escape", "/etc/passwd", "a/../../escape", "", "a//b", "./x", "a/.", "control.json", "journal.json", "x\u{0}y"] {
            var secrets = RunSecrets()
            #expect(throws: RunnerError.self, "\(path.debugDescription)") { try secrets.add(environment(file: path), from: "test") }
        }
        for name in ["PATH", "HOME", "1ABC", "A=B", "", "A B"] {
            var secrets = RunSecrets()
            #expect(throws: RunnerError.self, "\(name)") { try secrets.add(.init(variables: [name: "v"]), from: "test") }
        }
        // The same variable from two places with different values is a conflict, not a silent pick.
        var secrets = RunSecrets()
        try secrets.add(.init(variables: ["A": "1"]), from: "environment")
        #expect(throws: RunnerError.self) { try secrets.add(.init(variables: ["A": "2"]), from: "integrations") }
        // Nothing about a value in its description.
        var described = RunSecrets()
        try described.add(.init(variables: ["A": "very-secret"]), from: "environment")
        #expect(!"\(described)".contains("very-secret") && !String(reflecting: described).contains("very-secret"))
    }

    @Test("secret files are written 0600 in 0700 directories and never through a symbolic link")
    func materialize() throws {
        let directory = try Env.temporaryDirectory("mat")
        defer { try? FileManager.default.removeItem(at: directory) }
        var secrets = RunSecrets()
        try secrets.add(.init(secrets: [.init(name: "k", delivery: .init(target: .file(.init(path: "a/b/key", pathEnvVar: "KEY_PATH"))),
                                              value: [0, 1, 2, 255])]), from: "environment")
        let variables = try secrets.materialize(in: directory)
        let file = directory.appendingPathComponent("a/b/key")
        #expect(variables["KEY_PATH"] == file.path)
        #expect(try Data(contentsOf: file) == Data([0, 1, 2, 255]))
        let mode = { (path: String) in (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        #expect(try mode(file.path) == 0o600)
        #expect(try mode(directory.appendingPathComponent("a").path) == 0o700)

        // A run file that is a symbolic link to a directory outside is not followed.
        let outside = try Env.temporaryDirectory("out")
        defer { try? FileManager.default.removeItem(at: outside) }
        let linked = try Env.temporaryDirectory("lnk")
        defer { try? FileManager.default.removeItem(at: linked) }
        try FileManager.default.createSymbolicLink(at: linked.appendingPathComponent("a"), withDestinationURL: outside)
        #expect(throws: RunnerError.self) { _ = try secrets.materialize(in: linked) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        // An existing file is not overwritten.
        #expect(throws: RunnerError.self) { _ = try secrets.materialize(in: directory) }
    }
}
