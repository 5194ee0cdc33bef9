import Crypto
import ExperimentService
import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ScheduleService
import SecretService
import ServiceKit
import Synchronization
// Exported: every test file of the target sees LogCapture and its members (MemberImportVisibility).
@_exported import TestSupport

/// A live gateway on port 0 over a real ExperimentService and SecretService (one RPCServer on
/// port 0) and a real Postgres database of its own, with two organisations and a token of every
/// role in each. The gateway and SecretService log at trace level into `logs`.
struct Harness: Sendable {
    let client: any TestClientProtocol
    let logs: LogCapture
    let tokens: TokenStore
    let experiments: ExperimentsV1.ExperimentClient
    let scheduleClient: SchedulesV1.ScheduleClient
    let database: PostgresClient
    /// Token values by organisation ("a", "b") and role.
    let values: [String: [Role: String]]
    let organizations: [String: OrganizationID]

    /// The runner credential SecretService and ScheduleService accept.
    static let runnerCredential = "gateway-test-runner-credential"

    /// `unreachable`: the gateway's client of each of those services points at a port that
    /// refuses connections (the service itself still runs, for the test's own setup).
    static func with(_ name: String, runners: Bool = false, secrets: Bool = true, schedules: Bool = true,
                     unreachable: Set<ConsoleBackend> = [],
                     _ body: @Sendable (Harness) async throws -> Void) async throws {
        var logger = Logger(label: "gateway-test")
        logger.logLevel = .critical
        let logs = LogCapture()
        var configuration = try await TestPostgres.freshDatabase(named: "gw_\(name)")
        configuration.maximumConnections = 4
        let database = PostgresClient(configuration: configuration)
        _ = try await ExperimentServer.migrations.apply(on: database)
        _ = try await TokenStore.migrations.apply(on: database)
        _ = try await SecretServer.migrations.apply(on: database)
        _ = try await ScheduleServer.migrations.apply(on: database)
        let tokens = TokenStore(database: database)
        var values: [String: [Role: String]] = [:]
        var organizations: [String: OrganizationID] = [:]
        for key in ["a", "b"] {
            let organization = try await tokens.createOrganization(name: key)
            organizations[key] = organization
            for role in Role.allCases {
                values[key, default: [:]][role] = try await tokens.createToken(in: organization, name: "\(key)-\(role)", role: role).value
            }
        }
        let server = ExperimentServer(database: database, logger: logger)
        let secretServer = SecretServer(database: database, keyring: try MasterKeyring(current: SymmetricKey(size: .bits256)),
                                        runner: RunnerCredential(runnerCredential), logger: logs.logger("secret-service"))
        // Its dispatcher does not run: plan runs stay recorded (PENDING) and nothing starts.
        let scheduleServer = ScheduleServer(database: database, runner: RunnerCredential(runnerCredential), logger: logger)
        let health = HealthServer(monitor: HealthMonitor(serving: ["faultline.experiments.v1.ExperimentService",
                                                                   "faultline.secrets.v1.SecretService",
                                                                   "faultline.schedules.v1.ScheduleService"]))
        let rpc = RPCServer(configuration: .init(host: "127.0.0.1", port: 0),
                            services: server.services + secretServer.services + scheduleServer.services + [health], logger: logger)
        let tokenValues = values, organizationIDs = organizations
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await rpc.run() }
            group.addTask { try await server.run() }
            let port = try await rpc.listeningPort
            let rpcClient = RPCClient(host: "127.0.0.1", port: port, logger: logger)
            let experiments = ExperimentsV1.ExperimentClient(rpcClient)
            let refusing = try RefusingPort()
            let nowhere = RPCClient(host: "127.0.0.1", port: refusing.port, logger: logger)
            func client(_ backend: ConsoleBackend) -> RPCClient { unreachable.contains(backend) ? nowhere : rpcClient }
            var gatewayConfiguration = GatewayConfiguration()
            gatewayConfiguration.port = 0
            gatewayConfiguration.runnerCredential = Self.runnerCredential  // the Reliably routes reveal with it
            gatewayConfiguration.maximumBodyBytes = 256 << 10
            gatewayConfiguration.allowedOrigins = ["https://ui.example"]
            let gateway = Gateway(configuration: gatewayConfiguration, tokens: tokens, experiments: ExperimentsV1.ExperimentClient(client(.experiments)),
                                  runners: runners ? RunnersV1.RunnerClient(rpcClient) : nil,
                                  secrets: secrets ? SecretsV1.SecretClient(client(.secrets)) : nil,
                                  schedules: schedules ? SchedulesV1.ScheduleClient(client(.schedules)) : nil,
                                  dependencies: [("experiment-service", rpcClient)] + (secrets ? [("secret-service", rpcClient)] : [])
                                      + (schedules ? [("schedule-service", rpcClient)] : []),
                                  logger: logs.logger("gateway"))
            do {
                try await gateway.application().test(.live) { client in
                    try await body(Harness(client: client, logs: logs, tokens: tokens, experiments: experiments,
                                           scheduleClient: SchedulesV1.ScheduleClient(rpcClient), database: database,
                                           values: tokenValues, organizations: organizationIDs))
                }
            } catch {
                await rpcClient.close()
                await nowhere.close()
                group.cancelAll()
                await database.close()
                throw error
            }
            await rpcClient.close()
            await nowhere.close()
            await scheduleServer.close()
            withExtendedLifetime(refusing) {}
            group.cancelAll()
        }
        await database.close()
    }

    func token(_ org: String = "a", _ role: Role = .owner) -> String { values[org]![role]! }

    /// One request; `token: nil` sends none.
    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, token: String?, body: String? = nil,
              contentType: String = "application/json", headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if body != nil { headers[.contentType] = contentType }
        let response = try await client.execute(uri: uri, method: method, headers: headers,
                                                body: body.map { ByteBuffer(string: $0) })
        return Reply(status: response.status.code, headers: response.headers,
                     text: String(buffer: response.body))
    }

    struct Reply: Sendable {
        var status: Int
        var headers: HTTPFields
        var text: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }
        var code: String? { json["code"] as? String }
    }

    /// Imports a small valid experiment for organisation `org`; returns its id.
    func importExperiment(_ title: String = "probe the api", org: String = "a", tags: [String] = ["web"]) async throws -> String {
        let reply = try await call(.post, "/api/v1/experiments", token: token(org, .editor), body: Fixtures.experiment(title: title, tags: tags))
        guard reply.status == 201, let experiment = reply.json["experiment"] as? [String: Any], let id = experiment["id"] as? String else {
            throw HarnessError("import failed: \(reply.status) \(reply.text)")
        }
        return id
    }

    /// An execution of `experiment` made over RPC, as a runner would.
    func createExecution(of experiment: String, org: String = "a") async throws -> String {
        let created = try await experiments.createExecution(.init(experimentId: experiment), options: .on(behalfOf: organizations[org]!))
        return created.execution!.id
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Fixtures {
    static func experiment(title: String, tags: [String] = []) -> String {
        let tagList = tags.map { "\"\($0)\"" }.joined(separator: ",")
        return """
        {"version": "1.0.0", "title": "\(title)", "description": "d", "tags": [\(tagList)],
         "steady-state-hypothesis": {"title": "up", "probes": [
           {"type": "probe", "name": "ok", "tolerance": 0,
            "provider": {"type": "process", "path": "true"}}]},
         "method": [{"type": "action", "name": "noop", "provider": {"type": "process", "path": "true"}}],
         "rollbacks": []}
        """
    }

    static let yaml = """
        version: 1.0.0
        title: from yaml
        description: d
        tags: [yaml]
        method:
          - type: action
            name: noop
            provider:
              type: process
              path: "true"
        """
}

/// A loopback TCP port bound but never listening: every connection to it is refused, and no
/// other process can take the port while this lives.
final class RefusingPort: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard descriptor >= 0, bound else { throw HarnessError("cannot bind a refusing port") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}
