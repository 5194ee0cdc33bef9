import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird
import Logging
import ServiceKit

/// Plans for `reliably service plan execute`: a ScheduleService plan in Reliably's shape, and the
/// plan statuses the CLI and the control send.
extension ReliablyRoutes {
    static let planStatuses: Set<String> = ["created", "running", "completed", "error", "deleting", "deleted", "creating"]

    func registerPlans(on api: RouterGroup<GatewayContext>) {
        api.get("reliably/plans/{id}") { _, context in
            let principal = try context.require(.read)
            let id = try context.parameters.id("id")
            let schedules = try gateway.required(gateway.schedules, "schedules", variable: "FAULTLINE_SCHEDULE_SERVICE")
            _ = try await schedules.getPlan(.init(planId: id), options: try gateway.callOptions(context))
            return try Response.json(["organization_id": try await ids.organizationUUID(principal.organization),
                                      "id": try await ids.uuid(of: id, .plan, in: principal.organization)])
        }
        api.get("organization/{org}/plans/{id}") { _, context in
            let (principal, _) = try await organization(context, needs: [.read, .report])
            let (uuid, plan) = try await self.plan(context, principal)
            let spec = plan.spec ?? .init()
            let org = principal.organization
            let environment: JSONValue = spec.environmentId.isEmpty ? .null : .object([
                "provider": "reliably_cloud", "id": .string(try await ids.uuid(of: spec.environmentId, .environment, in: org)),
            ])
            var integrations: [JSONValue] = []
            for id in spec.integrationIds { integrations.append(.string(try await ids.uuid(of: id, .integration, in: org))) }
            let schedule: JSONValue = switch spec.schedule?.kind {
            case .cron(let cron)?: .object(["type": "cron", "pattern": .string(cron.expression),
                                            "timezone": .string(cron.timeZone.isEmpty ? "Etc/UTC" : cron.timeZone)])
            default: .object(["type": "now"])
            }
            let status: String = switch plan.lastRun?.state {
            case nil: "created"
            case .pending?, .queued?, .dispatched?: "running"
            case .ended?, .skipped?: "completed"
            default: "error"
            }
            return Response.json(JSONValue.object([
                "id": .string(uuid), "created_date": .string(ReliablyUserState.iso(plan.createdAtUs)), "ref": .string(spec.name),
                "status": .string(status), "error": .null,
                "definition": .object([
                    "environment": environment,
                    // Reliably deploys plans somewhere; a Faultline plan is its own deployment.
                    "deployment": .object(["deployment_id": .string(uuid), "deployment_type": "reliably_cli"]),
                    "schedule": schedule, "integrations": .array(integrations),
                    "experiments": .array([.string(try await ids.uuid(of: spec.experimentId, .experiment, in: org))]),
                ]),
            ]).text)
        }
        api.put("organization/{org}/plans/{id}/status") { request, context in
            let (principal, _) = try await organization(context, needs: [.report])
            _ = try await self.plan(context, principal)
            let body = try await Self.object(request, limit: context.bodyLimit)
            guard let status = body["status"]?.stringValue, Self.planStatuses.contains(status) else {
                throw Problem.badRequest("reliably.plan.status.invalid", "status must be one of \(Self.planStatuses.sorted().joined(separator: ", "))")
            }
            switch body["error"] {
            case nil, .null?, .string?: break
            default: throw Problem.badRequest("reliably.plan.status.invalid", "error must be a string or null")
            }
            // Acknowledged, not stored: in Faultline a plan's outcome is its plan runs' and
            // executions' (Reliably's own plan status reads `completed` after any run, §8.4).
            context.logger.info("reliably plan status", metadata: ["plan.status": "\(status)"])
            return Response.json(#"{"ok":true}"#)
        }
    }

    private func plan(_ context: GatewayContext, _ principal: Principal) async throws -> (String, SchedulesV1.Plan) {
        guard let uuid = ReliablyIDs.canonical(context.parameters.get("id")),
              let id = try await ids.faultlineID(of: uuid, .plan, in: principal.organization) else {
            throw Problem.notFound("plan")
        }
        let schedules = try gateway.required(gateway.schedules, "schedules", variable: "FAULTLINE_SCHEDULE_SERVICE")
        let found = try await schedules.getPlan(.init(planId: id), options: try gateway.callOptions(context))
        return (uuid, found.plan ?? .init())
    }
}
