import FaultlineProto
import FaultlineRPC
import ServiceKit
import Testing

/// The peers' raw-bytes `SetHealth` control call, served by the Faultline side: lets grpcio's
/// health client drive `HealthMonitor` changes at the moments it chooses.
struct HealthControl: RPCService {
    let monitor: HealthMonitor

    var methods: [RegisteredMethod] {
        [
            .unary(PeerControl.setHealth) { (request: RawMessage, _) -> RawMessage in
                let command = request.string
                if command == "shutdown" {
                    monitor.shutDown()
                    return RawMessage([])
                }
                let parts = command.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let statuses: [Substring: HealthMonitor.Status] = ["SERVING": .serving, "NOT_SERVING": .notServing]
                guard parts.count == 2, let status = statuses[parts[1]] else {
                    throw RPCError(.invalidArgument, "expected service=SERVING|NOT_SERVING or shutdown, got '\(command)'")
                }
                monitor.setStatus(status, of: String(parts[0]))
                return RawMessage([])
            },
        ]
    }
}

/// `grpc.health.v1.Health` against implementations nobody here wrote: grpcio-health-checking's
/// client against `HealthServer`, and the Faultline `HealthV1.HealthClient` against grpcio's
/// own `HealthServicer`.
@Suite("grpc.health.v1 interop")
struct HealthTests {
    static let echo = "faultline.testing.v1.Echo"

    // MARK: grpcio health client → HealthServer

    @Test func grpcioCheck() async throws {
        let monitor = HealthMonitor(serving: [Self.echo])
        try await withServer(services: [HealthServer(monitor: monitor)]) { _, port in
            let unknown = "faultline.testing.v1.Missing"
            let out = try await PythonPeer.run("stub_health_client.py", ["\(port)", "check", "", Self.echo, unknown])
            let results = try #require(out["results"] as? [String: Any])
            #expect(results[""] as? String == "SERVING")
            #expect(results[Self.echo] as? String == "SERVING")
            let missing = results[unknown] as? [String: Any]
            #expect(missing?["code"] as? Int == RPCError.Code.notFound.rawValue)
            #expect(missing?["details"] as? String == "unknown service '\(unknown)'")

            monitor.setStatus(.notServing, of: Self.echo)
            let after = try await PythonPeer.run("stub_health_client.py", ["\(port)", "check", Self.echo, ""])
            #expect(after["results"] as? [String: String] == [Self.echo: "NOT_SERVING", "": "SERVING"])
        }
    }

    @Test func grpcioWatch() async throws {
        let monitor = HealthMonitor(serving: [Self.echo])
        try await withServer(services: [HealthServer(monitor: monitor), HealthControl(monitor: monitor)]) { _, port in
            // The client asks for NOT_SERVING, SERVING, then shutDown() after each status it sees.
            let out = try await PythonPeer.run("stub_health_client.py", ["\(port)", "watch", Self.echo])
            #expect(out["seen"] as? [String] == ["SERVING", "NOT_SERVING", "SERVING", "NOT_SERVING"])
            // shutDown() ends the watch with OK rather than leaving it open.
            #expect(out["code"] as? Int == 0, "\(out)")
            #expect(monitor.status(of: Self.echo) == .notServing)
            #expect(monitor.status(of: "") == .notServing)
        }
    }

    @Test func grpcioWatchUnknownService() async throws {
        try await withServer(services: [HealthServer(monitor: HealthMonitor())]) { _, port in
            let out = try await PythonPeer.run("stub_health_client.py", ["\(port)", "watch_unknown", "faultline.testing.v1.Missing"])
            #expect(out["first"] as? String == "SERVICE_UNKNOWN")
            #expect(out["cancelled"] as? Bool == true)
        }
    }

    // MARK: HealthV1.HealthClient → grpcio's HealthServicer

    @Test func faultlineClientAgainstGrpcioHealth() async throws {
        try await withStubPeer { client in
            let health = HealthV1.HealthClient(client)
            #expect(try await health.check(HealthV1.HealthCheckRequest(service: "")).status == .serving)
            #expect(try await health.check(HealthV1.HealthCheckRequest(service: Self.echo)).status == .serving)
            _ = await expectStatus(.notFound) {
                _ = try await health.check(HealthV1.HealthCheckRequest(service: "faultline.testing.v1.Missing"))
            }

            let unknown = try await health.watch(HealthV1.HealthCheckRequest(service: "faultline.testing.v1.Missing")) { stream in
                try await stream.first { _ in true }?.status
            }
            #expect(unknown == .serviceUnknown)

            // After each status seen, ask grpcio for the next change; its graceful shutdown
            // reports NOT_SERVING but keeps the watch open, so the client ends it.
            let steps = ["\(Self.echo)=NOT_SERVING", "\(Self.echo)=SERVING", "shutdown"]
            let seen = try await health.watch(HealthV1.HealthCheckRequest(service: Self.echo), options: CallOptions(timeout: .seconds(60))) { stream in
                var seen: [HealthMonitor.Status] = []
                for try await update in stream {
                    seen.append(update.status)
                    guard seen.count <= steps.count else { break }
                    try await PeerControl.setHealth(client, steps[seen.count - 1])
                }
                return seen
            }
            #expect(seen == [.serving, .notServing, .serving, .notServing])
            #expect(try await health.check(HealthV1.HealthCheckRequest(service: "")).status == .notServing)
        }
    }
}
