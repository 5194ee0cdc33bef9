import Foundation
public import Logging

/// Where and how to connect, and the pool's limits. Its `description` never shows the password.
public struct PostgresConfiguration: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// Further libpq keywords (`sslmode`, `host` as a socket directory, …) from the URL's query.
    public var options: [String: String]
    public var applicationName: String

    /// Connections the pool opens at most.
    public var maximumConnections: Int = 10
    /// How long a checkout waits, in FIFO order, for a busy pool before failing with `.poolTimeout`.
    public var checkoutTimeout: Duration = .seconds(10)
    /// `SET statement_timeout` on every connection; nil keeps the server's setting.
    public var statementTimeout: Duration?
    /// Statements each connection keeps prepared (least recently used out); 0 sends every
    /// statement unnamed, to be parsed and planned on each execution.
    public var preparedStatements: Int = 256
    /// libpq's `connect_timeout` (whole seconds, at least 2 as libpq requires).
    public var connectTimeout: Duration = .seconds(5)
    public var logger: Logger = Logger(label: "faultline.postgres")

    public init(host: String = "127.0.0.1", port: Int = 5432, user: String, password: String? = nil,
                database: String, applicationName: String = "faultline", options: [String: String] = [:]) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.applicationName = applicationName
        self.options = options
    }

    /// Parses `postgres[ql]://user[:password]@host[:port]/database[?key=value…]`.
    public init(url: String) throws(DatabaseError) {
        guard let components = URLComponents(string: url),
              components.scheme == "postgres" || components.scheme == "postgresql"
        else {
            throw DatabaseError(.connectionFailed, reason: "not a postgres:// URL")  // the URL may hold a password
        }
        var options: [String: String] = [:]
        for item in components.queryItems ?? [] { options[item.name] = item.value ?? "" }
        let database = String(components.path.drop(while: { $0 == "/" }).removingPercentEncoding ?? "")
        let user = components.user ?? ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        self.init(host: components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1",
                  port: components.port ?? 5432,
                  user: user, password: components.password,
                  database: database.isEmpty ? user : database,
                  applicationName: options.removeValue(forKey: "application_name") ?? "faultline",
                  options: options)
    }

    /// The configuration from `DATABASE_URL` (or another variable), nil when it is unset or empty.
    public static func fromEnvironment(_ variable: String = "DATABASE_URL") throws(DatabaseError) -> PostgresConfiguration? {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else { return nil }
        return try PostgresConfiguration(url: url)
    }

    /// The same server, another database.
    public func withDatabase(_ name: String) -> PostgresConfiguration {
        var copy = self
        copy.database = name
        return copy
    }

    /// The URL with the password, for tools that need it (`psql`). Never log it; log `description`.
    public var url: String { makeURL(password: password.map(Self.encode)) }

    /// The URL with the password replaced by `***`.
    public var description: String { makeURL(password: password == nil ? nil : "***") }

    private func makeURL(password: String?) -> String {
        var url = "postgresql://\(Self.encode(user))"
        if let password { url += ":\(password)" }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        url += "@\(hostPart):\(port)/\(Self.encode(database))"
        let query = options.sorted { $0.key < $1.key }.map { "\(Self.encode($0.key))=\(Self.encode($0.value))" }
        if !query.isEmpty { url += "?" + query.joined(separator: "&") }
        return url
    }

    private static func encode(_ part: String) -> String {
        part.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? part
    }

    /// Keyword/value pairs for `PQconnectdbParams`: no connection string to escape or to leak.
    var libpqParameters: [(String, String)] {
        var pairs: [(String, String)] = [
            ("host", host), ("port", String(port)), ("user", user), ("dbname", database),
            ("application_name", applicationName),
            ("connect_timeout", String(max(2, connectTimeout.components.seconds))),
        ]
        if let password { pairs.append(("password", password)) }
        for (key, value) in options.sorted(by: { $0.key < $1.key }) where !pairs.contains(where: { $0.0 == key }) {
            pairs.append((key, value))
        }
        // A socket directory given as `?host=/path` replaces the TCP host.
        if let socketDirectory = options["host"] { pairs[0].1 = socketDirectory }
        return pairs
    }

    /// Removes the password from text libpq or a server produced, whatever it quoted.
    func redact(_ text: String) -> String {
        guard let password, !password.isEmpty else { return text }
        return text.replacingOccurrences(of: password, with: "***")
    }
}
