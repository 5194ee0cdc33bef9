import Foundation
public import Logging
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// A Postgres cluster this process owns: `initdb` into a directory, `pg_ctl start` on a free port
/// of 127.0.0.1 with a private socket directory, password (SCRAM) authentication over TCP.
/// Reusing a directory keeps its data (`faultline up --state-dir`).
///
/// Layout of `directory`: `data/` (PGDATA), `password` (0600, generated once), `server.log`.
/// Postgres refuses to run as root, so as root every command runs as the `postgres` OS user
/// (via `runuser`) and the directory is owned by it; its parents must let that user through.
///
/// As a `Service` (for `faultline up`), `run()` starts the server if needed and stops it on
/// graceful shutdown; call `start()` first to get the configuration the other services need.
public final class EmbeddedPostgres: Sendable, Service {
    public let directory: String
    /// Off for throwaway test clusters: no fsync, no synchronous commit, no full-page writes.
    public let durable: Bool
    private let logger: Logger
    private struct Running {
        var port: Int
        var socketDirectory: String
        var configuration: PostgresConfiguration
    }
    private let running = Mutex<Running?>(nil)
    /// The port of the last run: a stopped server comes back on it when it is still free, so
    /// clients configured for it reconnect by themselves.
    private let previousPort = Mutex<Int?>(nil)

    /// Postgres's own limit when nil (100).
    private let maxConnections: Int?

    public init(directory: String, durable: Bool = true, maxConnections: Int? = nil,
                logger: Logger = Logger(label: "faultline.postgres.embedded")) {
        self.directory = (directory as NSString).standardizingPath
        self.durable = durable
        self.maxConnections = maxConnections
        self.logger = logger
    }

    private var dataDirectory: String { directory + "/data" }
    private var asRoot: Bool { geteuid() == 0 }

    /// The superuser's configuration for the `postgres` database, once started.
    public var configuration: PostgresConfiguration? { running.withLock { $0?.configuration } }

    /// Initialises the cluster if the directory holds none, then starts it; returns how to reach it.
    @discardableResult
    public func start() async throws -> PostgresConfiguration {
        try await NIOThreadPool.singleton.runIfActive { try self.startBlocking() }
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        try await stop()
    }

    /// Stops the server (`pg_ctl stop -m fast`, or `immediate` when the data does not matter).
    public func stop(immediate: Bool = false) async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.stopBlocking(immediate: immediate) }
    }

    /// `pg_ctl restart -m fast` on the same port: every connection is terminated.
    public func restart() async throws {
        try await NIOThreadPool.singleton.runIfActive {
            guard let state = self.running.withLock({ $0 }) else {
                throw DatabaseError(.embeddedServer, reason: "restart before start")
            }
            _ = try self.run(self.binary("pg_ctl"), ["restart", "-D", self.dataDirectory, "-m", "fast", "-w", "-t", "60",
                                                    "-l", self.directory + "/server.log",
                                                    "-o", self.serverOptions(port: state.port, socketDirectory: state.socketDirectory)])
        }
    }

    /// Creates the database unless it exists; returns its configuration.
    @discardableResult
    public func createDatabase(_ name: String) async throws -> PostgresConfiguration {
        guard let configuration else { throw DatabaseError(.embeddedServer, reason: "createDatabase before start") }
        return try await DatabaseAdmin.create(name, on: configuration, replacing: false)
    }

    // MARK: blocking steps, on a thread-pool thread

    private func startBlocking() throws -> PostgresConfiguration {
        if let configuration { return configuration }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try giveToServerUser(directory)
        if asRoot, (try? Self.runProcess("/usr/bin/test", ["-w", directory, "-a", "-x", directory], asServerUser: true)) == nil {
            throw DatabaseError(.embeddedServer, reason:
                "the postgres OS user cannot reach \(directory): every parent directory must let it through (o+x)")
        }
        let password = try loadOrCreatePassword()
        if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            try initialise(password: password)
        }
        let socketDirectory = try makeSocketDirectory()
        var lastError: (any Error)?
        for attempt in 0..<3 {  // a free port can be taken between probing and binding: try another
            let port = try attempt == 0 ? previousPort.withLock { $0 } ?? Self.freePort() : Self.freePort()
            do {
                _ = try run(binary("pg_ctl"), ["start", "-D", dataDirectory, "-w", "-t", "60",
                                               "-l", directory + "/server.log",
                                               "-o", serverOptions(port: port, socketDirectory: socketDirectory)])
                let configuration = PostgresConfiguration(host: "127.0.0.1", port: port, user: "postgres",
                                                          password: password, database: "postgres")
                running.withLock { $0 = Running(port: port, socketDirectory: socketDirectory, configuration: configuration) }
                logger.info("embedded postgres started", metadata: ["db.url": "\(configuration)", "db.directory": "\(directory)"])
                return configuration
            } catch {
                lastError = error
            }
        }
        throw lastError ?? DatabaseError(.embeddedServer, reason: "cannot start")
    }

    /// Synchronous stop, for `atexit` handlers (test processes).
    public func stopBlocking(immediate: Bool) throws {
        guard let state = running.withLock({ $0 }) else { return }
        _ = try run(binary("pg_ctl"), ["stop", "-D", dataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60"])
        running.withLock { $0 = nil }
        previousPort.withLock { $0 = state.port }
        if !state.socketDirectory.hasPrefix(directory) { try? FileManager.default.removeItem(atPath: state.socketDirectory) }
        logger.info("embedded postgres stopped", metadata: ["db.directory": "\(directory)"])
    }

    private func initialise(password: String) throws {
        // A directory without PG_VERSION is a failed initdb of ours: initdb wants it empty.
        if FileManager.default.fileExists(atPath: dataDirectory) {
            try FileManager.default.removeItem(atPath: dataDirectory)
        }
        // initdb reads the password from a file the server user can read; it is gone right after.
        let passwordFile = directory + "/.initdb-password"
        try Data(password.utf8).write(to: URL(fileURLWithPath: passwordFile))
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile)
        try giveToServerUser(passwordFile)
        var arguments = ["-D", dataDirectory, "-U", "postgres", "--pwfile", passwordFile,
                         "--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--no-locale"]
        if !durable { arguments.append("--no-sync") }
        _ = try run(binary("initdb"), arguments)
    }

    private func serverOptions(port: Int, socketDirectory: String) -> String {
        var options = "-c listen_addresses=127.0.0.1 -p \(port) -c unix_socket_directories='\(socketDirectory)'"
        if !durable { options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" }
        if let maxConnections { options += " -c max_connections=\(maxConnections)" }
        return options
    }

    private func loadOrCreatePassword() throws -> String {
        let path = directory + "/password"
        if let data = FileManager.default.contents(atPath: path),
           let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            return text
        }
        var generator = SystemRandomNumberGenerator()
        let password = (0..<32).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined()
        guard FileManager.default.createFile(atPath: path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw DatabaseError(.embeddedServer, reason: "cannot write \(path)")
        }
        return password
    }

    /// A directory only the server user can enter: `<directory>/socket`, or a new one under /tmp
    /// when that path is too long for a socket address (107 bytes).
    private func makeSocketDirectory() throws -> String {
        let inside = directory + "/socket"
        if (inside + "/.s.PGSQL.65535").utf8.count < 100 {
            // Kept across restarts; the server clears a crashed predecessor's socket itself.
            try FileManager.default.createDirectory(atPath: inside, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try giveToServerUser(inside)
            return inside
        }
        var template = Array("/tmp/faultline-pg.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw DatabaseError(.embeddedServer, reason: "cannot create a socket directory")
        }
        let path = String(cString: made)
        try giveToServerUser(path)
        return path
    }

    private func giveToServerUser(_ path: String) throws {
        guard asRoot else { return }
        guard let user = getpwnam("postgres") else {
            throw DatabaseError(.embeddedServer, reason: "running as root needs a 'postgres' OS user to run the server")
        }
        guard chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw DatabaseError(.embeddedServer, reason: "cannot give \(path) to the postgres user")
        }
    }

    // MARK: processes

    private func binary(_ name: String) throws -> String {
        let directory = try Self.binDirectory()
        return directory + "/" + name
    }

    /// `$FAULTLINE_PG_BINDIR`, else `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.
    static func binDirectory() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["FAULTLINE_PG_BINDIR"], !explicit.isEmpty { return explicit }
        if let output = try? runProcess("/usr/bin/env", ["pg_config", "--bindir"], asServerUser: false),
           case let path = output.trimmingCharacters(in: .whitespacesAndNewlines),
           FileManager.default.isExecutableFile(atPath: path + "/initdb") {
            return path
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return "\(root)/\(version)/bin"
        }
        throw DatabaseError(.embeddedServer, reason: "no Postgres server binaries (initdb, pg_ctl) found; install postgresql or set FAULTLINE_PG_BINDIR")
    }

    private func run(_ executable: String, _ arguments: [String]) throws -> String {
        try Self.runProcess(executable, arguments, asServerUser: asRoot)
    }

    /// Runs a command to completion with `posix_spawn`. Foundation's `Process` is no good here:
    /// the server `pg_ctl` leaves running inherits the descriptor `Process` watches, so the wait
    /// never ends; and it must inherit none of ours (sockets, pipes) either. Output goes to a file.
    static func runProcess(_ executable: String, _ arguments: [String], asServerUser: Bool) throws -> String {
        let argv = asServerUser ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        let outputPath = NSTemporaryDirectory() + "/faultline-pgcmd-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) == 0,
              posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600) == 0,
              posix_spawn_file_actions_adddup2(&actions, 1, 2) == 0,
              posix_spawn_file_actions_addclosefrom_np(&actions, 3) == 0,
              posix_spawn_file_actions_addchdir_np(&actions, "/") == 0  // the server user may not enter ours
        else { throw DatabaseError(.embeddedServer, reason: "cannot prepare to run \(argv[0])") }

        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else {
            throw DatabaseError(.embeddedServer, reason: "cannot run \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            let name = (executable as NSString).lastPathComponent
            throw DatabaseError(.embeddedServer, reason: "\(name) \(arguments.first ?? "") failed (status \(status)): "
                + text.split(separator: "\n").suffix(5).joined(separator: " | "))
        }
        return text
    }

    /// A port the kernel just handed out on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DatabaseError(.embeddedServer, reason: "cannot probe for a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw DatabaseError(.embeddedServer, reason: "cannot probe for a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Database creation, shared by the embedded server and the test harness.
enum DatabaseAdmin {
    static func create(_ name: String, on server: PostgresConfiguration, replacing: Bool) async throws -> PostgresConfiguration {
        var admin = server
        admin.maximumConnections = 1
        let client = PostgresClient(configuration: admin)
        do {
            if replacing {
                try await client.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
            }
            let exists = try await !client.query("SELECT 1 FROM pg_database WHERE datname = \(name)").isEmpty
            if !exists {
                do {
                    try await client.execute("CREATE DATABASE \(identifier: name)")
                } catch let error as DatabaseError where error.sqlState == "42P04" {
                    // Created by a concurrent caller meanwhile: that is what was asked for.
                }
            }
            await client.close()
        } catch {
            await client.close()
            throw error
        }
        return server.withDatabase(name)
    }
}

// glibc (2.29/2.34+, Debian 12 has 2.36) declares these only under _GNU_SOURCE, which the Glibc
// module is not built with; the shim header belongs to CLibPQ, so they are bound by name here.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func posix_spawn_file_actions_addclosefrom_np(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
@_silgen_name("posix_spawn_file_actions_addchdir_np")
private func posix_spawn_file_actions_addchdir_np(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32

extension EmbeddedPostgres {
    /// The server a process should use: the one `variable` (default `DATABASE_URL`) names, or
    /// else an embedded cluster in `directory`, started now (data kept across restarts). The
    /// embedded server is returned so its owner can stop it (or run it as a `Service`).
    public static func resolveServer(directory: String, variable: String = "DATABASE_URL",
                                     logger: Logger = Logger(label: "faultline.postgres.embedded"))
        async throws -> (configuration: PostgresConfiguration, embedded: EmbeddedPostgres?)
    {
        if let configuration = try PostgresConfiguration.fromEnvironment(variable) { return (configuration, nil) }
        let embedded = EmbeddedPostgres(directory: directory, logger: logger)
        return (try await embedded.start(), embedded)
    }
}
