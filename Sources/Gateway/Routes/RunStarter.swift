import FaultlineProto
import Hummingbird

extension Gateway {
    /// Starts a run by hand (API or console) on the configured runner. The kill switch covers
    /// these too, not only the scheduler's dispatch: a halted organisation starts nothing.
    func startRun(_ start: RunnersV1.StartRunRequest, _ context: GatewayContext) async throws -> RunnersV1.StartRunResponse {
        guard let runners else {
            throw Problem(.serviceUnavailable, code: "runner.not_configured",
                          detail: "no RunnerService is configured (FAULTLINE_RUNNER_SERVICE)")
        }
        if let schedules,
           let halt = try await schedules.getHaltStatus(.init(), options: callOptions(context)).status, halt.halted {
            throw Problem(.conflict, code: "organization.halted",
                          detail: "the organisation is halted (\(halt.reason.isEmpty ? "no reason given" : halt.reason)); resume it first")
        }
        return try await runners.startRun(start, options: callOptions(context))
    }
}
