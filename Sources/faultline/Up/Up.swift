import ArgumentParser
import FaultlinePostgres
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `faultline up`: the whole platform on this machine. An embedded Postgres under the state
/// directory (kept between starts) unless DATABASE_URL names one, and every service as its own
/// process on real sockets, each announced as `NAME: HOST:PORT`. Ctrl-C or SIGTERM stops the
/// services first, then Postgres.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the whole platform on this machine on its embedded default."
    )

    @Option(help: "Where the embedded Postgres keeps its data between starts.")
    var stateDir: String = ProcessInfo.processInfo.environment["FAULTLINE_STATE_DIR"] ?? ".state"

    /// The services `up` starts, each as `faultline <name>`.
    static let services = ["experiment-service"]

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

        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.url
        environment["FAULTLINE_LISTEN"] = "127.0.0.1:0"
        let executable = try Self.ownExecutable()
        let children = Self.services.map { name in
            ChildProcess(name: name, executable: executable, arguments: [name], environment: environment,
                         logger: logger) { name, address in announce("\(name): \(address)") }
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

/// One line on standard output, unbuffered: scripts and people read these as they come.
private func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
