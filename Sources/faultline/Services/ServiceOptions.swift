import ArgumentParser
import FaultlinePostgres
import FaultlineRPC
import Foundation
import Logging
import ServiceKit

/// What every service subcommand takes, each option also readable from the environment so a
/// container is configured without flags.
struct ServiceOptions: ParsableArguments {
    @Option(help: "HOST:PORT to serve RPC on (env FAULTLINE_LISTEN; port 0 picks a free one).")
    var listen: String?

    @Option(help: "postgres:// URL of the service's database (env <SERVICE>_DATABASE_URL, then DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env FAULTLINE_LOG_LEVEL).")
    var logLevel: String?

    /// Builds the host for `name`, defaulting to `defaultPort` on 0.0.0.0 as a container would.
    func host(name: String, environmentPrefix: String, defaultPort: Int) throws -> ServiceHost {
        let environment = ProcessInfo.processInfo.environment
        let address = listen ?? environment["FAULTLINE_LISTEN"] ?? "0.0.0.0:\(defaultPort)"
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT, got '\(address)'")
        }
        let url = databaseURL ?? environment["\(environmentPrefix)_DATABASE_URL"] ?? environment["DATABASE_URL"]
        guard let url, !url.isEmpty else {
            throw ValidationError("\(name) needs a database: set --database-url, \(environmentPrefix)_DATABASE_URL or DATABASE_URL")
        }
        let database: PostgresConfiguration
        do {
            database = try PostgresConfiguration(url: url)
        } catch {
            throw ValidationError("the database URL is not a postgres:// URL")  // never echo it: it may hold a password
        }
        var logger = Logger(label: "faultline.\(name)")
        let level = logLevel ?? environment["FAULTLINE_LOG_LEVEL"] ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ValidationError("unknown log level '\(level)'")
        }
        logger.logLevel = parsed
        return ServiceHost(
            name: name,
            listen: RPCServer.Configuration(host: String(address[..<colon]), port: port),
            database: database,
            logger: logger
        )
    }
}
