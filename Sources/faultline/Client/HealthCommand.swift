import ArgumentParser
import FaultlineProto
import FaultlineRPC
import Foundation
import NIOHTTP1
import Logging

/// `faultline health`: one readiness probe, for container health checks (the images have no
/// curl nor grpc_health_probe). Exit 0 when serving, 1 otherwise, with the reason on stderr.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Probe a service once: gRPC health (--grpc HOST:PORT) or an HTTP URL (--http URL).")

    @Option(help: "Ask this gRPC service's grpc.health.v1 Check (overall health).")
    var grpc: String?

    @Option(help: "GET this http:// URL; any 2xx is healthy (e.g. the Gateway's /readyz).")
    var http: String?

    @Option(help: "Give up after this many seconds.")
    var timeout: Int = 5

    func validate() throws {
        guard (grpc == nil) != (http == nil) else { throw ValidationError("give exactly one of --grpc or --http") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        do {
            if let grpc {
                guard let colon = grpc.lastIndex(of: ":"), let port = Int(grpc[grpc.index(after: colon)...]) else {
                    throw ValidationError("--grpc takes HOST:PORT")
                }
                var configuration = RPCClient.Configuration()
                configuration.connectTimeout = .seconds(timeout)
                let client = RPCClient(host: String(grpc[..<colon]), port: port, configuration: configuration,
                                       logger: Logger(label: "faultline.health"))
                let status: HealthV1.HealthCheckResponse.ServingStatus
                do {
                    status = try await HealthV1.HealthClient(client).check(.init(), options: CallOptions(timeout: .seconds(timeout))).status
                } catch {
                    await client.close()
                    throw error
                }
                await client.close()
                guard status == .serving else { throw ClientError(.connection, "\(grpc) is \(status)") }
            } else if let http {
                let endpoint = try GatewayClient.Endpoint(parsing: http)
                let path = URLComponents(string: http)?.percentEncodedPath ?? "/"
                let client = GatewayClient(endpoint: .init(host: endpoint.host, port: endpoint.port, basePath: ""), token: nil)
                _ = try await client.send(.GET, path.isEmpty ? "/" : path, timeout: .seconds(timeout))
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            Output.error("unhealthy: \(error)")
            throw ExitCode.failure
        }
    }
}
