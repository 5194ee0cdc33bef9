import ArgumentParser
import FaultlinePostgres
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `faultline up`: the whole platform on this machine. An embedded Postgres under the state
/// directory (kept between starts) unless DATABASE_URL names one, and every service as its own
/// process on real sockets, each announced as `NAME: HOST:PORT`. Ctrl-C or SIGTERM stops the
/// services first, then Postgres.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the whole platform on this machine on its embedded default."
    )

    @Option(help: "Where the embedded Postgres and the platform's state live between starts (env FAULTLINE_STATE_DIR).")
    var stateDir: String = ProcessInfo.processInfo.environment["FAULTLINE_STATE_DIR"] ?? ".state"

    @Option(help: "The Gateway's HTTP port on 127.0.0.1 (0 picks a free one).")
    var port: Int = 8080

    func run() async throws {
        let logger = Logger(label: "faultline.up")
        let stateDirectory = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])

        var embedded: EmbeddedPostgres?
        let database: PostgresConfiguration
        if let external = try PostgresConfiguration.fromEnvironment() {
            database = external
        } else {
            let postgres = EmbeddedPostgres(directory: stateDirectory + "/postgres", logger: logger)
            try await postgres.start()
            database = try await postgres.createDatabase("faultline")
            embedded = postgres
        }
        announce("postgres: \(database)")

        let plan = try PlatformPlan(stateDirectory: stateDirectory, database: database, gatewayPort: port)
        let executable = try Self.ownExecutable()
        let children = plan.services.map { service in
            ChildProcess(name: service.name, executable: executable, arguments: [service.name],
                         environment: service.environment, logger: logger) { name, address in
                announce(name == "gateway" ? "gateway: http://\(address)" : "\(name): \(address)")
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: children.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            logger.error("platform stopped with an error", metadata: ["error": "\(error)"])
        }
        try await embedded?.stop()
    }

    /// The running binary, so children are exactly this build of `faultline`.
    static func ownExecutable() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }
}

/// Which service processes `up` runs and how they find each other. Ports are chosen once, up
/// front, so a service that crashes and restarts comes back where its peers expect it.
struct PlatformPlan {
    struct PlannedService {
        let name: String
        let environment: [String: String]
    }

    let services: [PlannedService]

    init(stateDirectory: String, database: PostgresConfiguration, gatewayPort: Int) throws {
        var base = ProcessInfo.processInfo.environment
        base["DATABASE_URL"] = database.url
        let experiments = "127.0.0.1:\(try FreePort.pick())"
        let secrets = "127.0.0.1:\(try FreePort.pick())"
        let runner = "127.0.0.1:\(try FreePort.pick())"
        let schedules = "127.0.0.1:\(try FreePort.pick())"
        let runnerCredential = try String(contentsOfFile: Self.secretFile(stateDirectory + "/runner-credential"), encoding: .utf8)
        let venv = URL(fileURLWithPath: base["FAULTLINE_VENV"] ?? ".venv").standardizedFileURL.path

        func service(_ name: String, _ settings: [String: String]) -> PlannedService {
            PlannedService(name: name, environment: base.merging(settings) { _, new in new })
        }
        services = [
            service("experiment-service", ["FAULTLINE_LISTEN": experiments]),
            service("secret-service", [
                "FAULTLINE_LISTEN": secrets,
                "FAULTLINE_MASTER_KEY_FILE": try Self.secretFile(stateDirectory + "/master.key"),
                "FAULTLINE_RUNNER_CREDENTIAL": runnerCredential,
            ]),
            service("schedule-service", ["FAULTLINE_LISTEN": schedules, "FAULTLINE_RUNNER_CREDENTIAL": runnerCredential]),
            service("runner", [
                "FAULTLINE_LISTEN": runner,
                "FAULTLINE_EXPERIMENT_SERVICE": experiments,
                "FAULTLINE_VENV": venv,
                "FAULTLINE_RUNNER_STATE_DIR": stateDirectory + "/runner",
                "FAULTLINE_SECRET_SERVICE": secrets,
                "FAULTLINE_SCHEDULE_SERVICE": schedules,
                "FAULTLINE_RUNNER_CREDENTIAL": runnerCredential,
            ]),
            service("gateway", [
                "FAULTLINE_HTTP_LISTEN": "127.0.0.1:\(gatewayPort == 0 ? try FreePort.pick() : gatewayPort)",
                "FAULTLINE_EXPERIMENT_SERVICE": experiments,
                "FAULTLINE_RUNNER_SERVICE": runner,
                "FAULTLINE_SECRET_SERVICE": secrets,
                "FAULTLINE_SCHEDULE_SERVICE": schedules,
                "FAULTLINE_RUNNER_CREDENTIAL": runnerCredential,  // Reliably API: environments in the clear
                // Written once, 0600, on the first start: the owner's API token.
                "FAULTLINE_OWNER_TOKEN_FILE": stateDirectory + "/owner-token",
            ]),
        ]
    }

    /// A file of 32 random bytes in base64, made once with mode 0600 and kept between starts:
    /// the embedded default's master key and runner credential.
    static func secretFile(_ path: String) throws -> String {
        if !FileManager.default.fileExists(atPath: path) {
            // SystemRandomNumberGenerator reads the kernel's CSPRNG (getrandom) on Linux.
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            guard FileManager.default.createFile(atPath: path, contents: Data(Data(bytes).base64EncodedString().utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteNoPermission)
            }
        }
        return path
    }
}

/// A port nothing listens on right now, from the kernel (bind to port 0, read, close).
enum FreePort {
    static func pick() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CocoaError(.fileReadUnknown) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw CocoaError(.fileReadUnknown) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// One line on standard output, unbuffered: scripts and people read these as they come.
private func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
