public import FaultlineProto
public import FaultlineRPC

/// `grpc.health.v1.Health`, served by every Faultline service over its `HealthMonitor`.
public struct HealthServer: HealthV1.HealthService {
    public let monitor: HealthMonitor

    public init(monitor: HealthMonitor) {
        self.monitor = monitor
    }

    public func check(_ request: HealthV1.HealthCheckRequest, context: ServerContext) async throws -> HealthV1.HealthCheckResponse {
        guard let status = monitor.status(of: request.service) else {
            throw RPCError(.notFound, "unknown service '\(request.service)'")
        }
        return HealthV1.HealthCheckResponse(status: status)
    }

    public func watch(
        _ request: HealthV1.HealthCheckRequest,
        responses: RPCWriter<HealthV1.HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        for await status in monitor.updates(of: request.service) {
            try await responses.write(HealthV1.HealthCheckResponse(status: status))
        }
    }
}
