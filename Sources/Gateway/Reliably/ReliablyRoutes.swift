// The Reliably-compatible API: the subset of `/api/v1/organization/{org}/…` that the
// chaostoolkit-reliably control (`chaosreliably.controls.experiment`) and `reliably service plan
// execute` (reliably-cli) call, so they run against Faultline unchanged with RELIABLY_HOST /
// RELIABLY_TOKEN pointing here. Contract: shared/reference/reliably-api.md.
//
// Mapping, not storage: every route answers from ExperimentService (and, for plans,
// environments and integrations, their services). Reliably's clients require UUIDv4 ids, so
// `ReliablyIDs` (schema `gateway_reliably`) maps each Faultline id to one, made on first use;
// `/api/v1/reliably/…` tells a Faultline user the UUIDs to configure. A Faultline API token is
// the Bearer token; `{org}` must be the token's organisation's UUID, else 404 like any other
// organisation's id.
//
// A run reported by the control becomes a Faultline execution: created (B2), started (state
// `running`), its journal turned into control events at every results PUT (JournalEvents), and
// completed with the final journal and log when the journal carries a final status. Pause,
// resume and terminate requests made in Faultline reach the run through the control's state
// polling (ReliablyUserState).
import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceKit

struct ReliablyRoutes {
    let gateway: Gateway
    var client: ExperimentsV1.ExperimentClient { gateway.experiments }
    var ids: ReliablyIDs { ReliablyIDs(database: gateway.tokens.database) }

    /// Results PUTs carry the whole journal and the whole log (as JSON strings).
    static let maximumResultsBytes = 16 << 20
    /// What one CompleteExecution may carry: the RPC client's message limit less room for the rest.
    static let completionBudgetBytes = 4 * 1024 * 1024 - 64 * 1024
    static let logTruncationMarker = "\n…[log truncated by the gateway]\n"

    func register(on api: RouterGroup<GatewayContext>) {
        api.get("reliably/organization") { _, context in
            let principal = try context.require(.read)
            return try Response.json(["id": try await ids.organizationUUID(principal.organization)])
        }
        api.get("reliably/experiments/{id}") { _, context in
            let principal = try context.require(.read)
            let id = try context.parameters.id(of: .experiment)
            _ = try await client.getExperiment(.init(experimentId: id), options: gateway.callOptions(context))
            let org = try await ids.organizationUUID(principal.organization)
            let uuid = try await ids.uuid(of: id, .experiment, in: principal.organization)
            return try Response.json(["organization_id": org, "experiment_id": uuid,
                                      "raw_path": "/api/v1/organization/\(org)/experiments/\(uuid)/raw"])
        }

        registerSecrets(on: api)
        registerPlans(on: api)
        let prefix = "organization/{org}/experiments/{exp}"
        api.get("\(prefix)/raw") { _, context in
            let scope = try await resolve(context, needs: [.read, .report])
            let found = try await client.getExperimentRevision(.init(experimentId: scope.experimentID), options: gateway.callOptions(context))
            guard let definition = JSONValue(text: found.revision?.definitionJson ?? "") else {
                throw Problem(.internalServerError, code: "internal", detail: "internal error")
            }
            // Exactly `application/json`: the CLI refuses any parameter (reliably-api.md §8.5).
            return Response.json(try Self.withControl(definition, org: scope.organizationUUID, experiment: scope.experimentUUID).text)
        }
        api.post("\(prefix)/executions") { request, context in
            let scope = try await resolve(context, needs: [.report])
            let body = try await Self.object(request, limit: Self.maximumResultsBytes)
            let planID = try await plan(body["plan_id"], scope)
            let journal = try Self.journal(body["result"], required: false)  // checked before anything is made
            var create = ExperimentsV1.CreateExecutionRequest()
            create.experimentId = scope.experimentID
            create.planId = planID ?? ""
            create.external = true
            let created = try await client.createExecution(create, options: gateway.callOptions(context))
            guard let execution = created.execution else { throw Problem(.internalServerError, code: "internal", detail: "internal error") }
            let uuid = try await ids.uuid(of: execution.id, .execution, in: scope.principal.organization)
            if let journal {
                try await report(journal, execution: execution, context)
            }
            return try Response.json(Self.executionView(execution, uuid: uuid, scope: scope, planUUID: body["plan_id"]?.stringValue),
                                     status: .created)
        }
        api.get("\(prefix)/executions/{exec}/state") { _, context in
            let scope = try await resolve(context, needs: [.read, .report])
            do {
                let (uuid, execution) = try await self.execution(of: scope, context)
                return Response.json(try await state(of: execution, uuid: uuid, scope: scope).text)
            } catch let error where Problem(from: error).status.code >= 500 {
                // The control's poller retries at once, without sleeping, after any status above
                // 399 (reliably-api.md §8.2): on our own failure, say "no state" and let it wait.
                context.logger.warning("reliably state unavailable", metadata: ["code": "\(Problem(from: error).code)"])
                return Response.json("null")
            }
        }
        api.put("\(prefix)/executions/{exec}/state") { request, context in
            let scope = try await resolve(context, needs: [.report])
            let body = try await Self.object(request, limit: context.bodyLimit)
            let (uuid, execution) = try await self.execution(of: scope, context)
            let updated = try await apply(body, to: execution, uuid: uuid, scope: scope, context)
            return Response.json(try await state(of: updated, uuid: uuid, scope: scope).text)
        }
        api.put("\(prefix)/executions/{exec}/results") { request, context in
            let scope = try await resolve(context, needs: [.report])
            let body = try await Self.object(request, limit: Self.maximumResultsBytes)
            guard let journal = try Self.journal(body["result"], required: true) else { throw Self.resultRequired }
            let log: String
            switch body["log"] {
            case nil, .null?: log = ""
            case .string(let text)?: log = text
            default: throw Problem.badRequest("reliably.log.invalid", "log must be a string")
            }
            var (_, execution) = try await self.execution(of: scope, context)
            if execution.state == .pending {
                execution = try await client.startExecution(.init(executionId: execution.id), options: gateway.callOptions(context)).execution ?? execution
            }
            try await report(journal, execution: execution, context)
            if JournalEvents(journal: journal.value).finalStatus != nil, !execution.state.isTerminal {
                try await complete(execution.id, journal: journal.text, log: log, context)
            }
            return Response.json(#"{"ok":true}"#)
        }
    }

    // MARK: scope

    struct Scope {
        var principal: Principal
        var organizationUUID: String
        var experimentUUID: String
        var experimentID: String
    }

    /// The caller, checked against `{org}`, and the experiment `{exp}` names. Any id that is
    /// malformed, unknown or another organisation's is a 404.
    private func resolve(_ context: GatewayContext, needs permissions: [Role.Permission]) async throws -> Scope {
        let (principal, organization) = try await self.organization(context, needs: permissions)
        guard let experimentUUID = ReliablyIDs.canonical(context.parameters.get("exp")),
              let experimentID = try await ids.faultlineID(of: experimentUUID, .experiment, in: principal.organization) else {
            throw Problem.notFound("experiment")
        }
        return Scope(principal: principal, organizationUUID: organization, experimentUUID: experimentUUID, experimentID: experimentID)
    }

    /// The execution `{exec}` of the scope's experiment.
    private func execution(of scope: Scope, _ context: GatewayContext) async throws -> (String, ExperimentsV1.Execution) {
        guard let uuid = ReliablyIDs.canonical(context.parameters.get("exec")),
              let id = try await ids.faultlineID(of: uuid, .execution, in: scope.principal.organization) else {
            throw Problem.notFound("execution")
        }
        let found = try await client.getExecution(.init(executionId: id), options: gateway.callOptions(context))
        guard let execution = found.execution, execution.experimentId == scope.experimentID else { throw Problem.notFound("execution") }
        return (uuid, execution)
    }

    /// The Faultline plan a body's `plan_id` names; nil for none. Plans are ScheduleService's:
    /// a plan UUID this gateway never handed out names nothing.
    private func plan(_ value: JSONValue?, _ scope: Scope) async throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            guard let uuid = ReliablyIDs.canonical(text),
                  let id = try await ids.faultlineID(of: uuid, .plan, in: scope.principal.organization) else {
                throw Problem.badRequest("reliably.plan.unknown", "plan_id names no plan of this organisation")
            }
            return id
        default:
            throw Problem.badRequest("reliably.plan.invalid", "plan_id must be a UUID or null")
        }
    }

    // MARK: state

    private func state(of execution: ExperimentsV1.Execution, uuid: String, scope: Scope) async throws -> JSONValue {
        let seen = try await ids.seenVersion(of: uuid, in: scope.principal.organization)
        let plan = execution.planId.isEmpty ? nil : try await ids.existingUUID(of: execution.planId, .plan, in: scope.principal.organization)
        return ReliablyUserState.view(of: execution, seenVersion: seen, planUUID: plan, nowUs: WallClock.nowMicros())
    }

    /// A state PUT. The control reports its own state (`running`, `pause`, `finished`); a
    /// user's `terminate` or `resume` becomes the same request in Faultline.
    private func apply(_ body: JSONValue, to execution: ExperimentsV1.Execution, uuid: String, scope: Scope,
                       _ context: GatewayContext) async throws -> ExperimentsV1.Execution {
        let options = try gateway.callOptions(context)
        var execution = execution
        switch body["current"]?.stringValue {
        case "pending":
            break
        case "running":
            if execution.state == .pending {
                execution = try await client.startExecution(.init(executionId: execution.id), options: options).execution ?? execution
            }
        case "pause":
            guard case .int(let seconds) = body["duration"].map(Self.number) ?? .int(0), seconds >= 0 else {
                throw Problem.badRequest("reliably.state.invalid", "a pause needs a duration: a number of seconds >= 0")
            }
        case "finished":
            guard let status = body["status"]?.stringValue, JournalEvents.terminalStatuses.contains(status) else {
                throw Problem.badRequest("reliably.state.invalid", "finished needs status completed, failed, aborted or interrupted")
            }
            if !execution.state.isTerminal {
                // The final results PUT completes a run; reaching here means it never came.
                execution = try await complete(execution.id, journal: "", log: "", reason: "the Reliably control reported \(status) without its final journal", context)
            }
        case "terminate":
            _ = try context.require(.write)
            guard case .bool(let skip)? = body["skip_rollbacks"] else {
                throw Problem.badRequest("reliably.state.invalid", "terminate needs skip_rollbacks: true or false")
            }
            execution = try await client.terminateExecution(.init(executionId: execution.id, skipRollbacks: skip, reason: "requested through the Reliably API"),
                                                            options: options).execution ?? execution
            return execution
        case "resume":
            _ = try context.require(.write)
            execution = try await client.resumeExecution(.init(executionId: execution.id, reason: "requested through the Reliably API"),
                                                         options: options).execution ?? execution
            return execution
        default:
            throw Problem.badRequest("reliably.state.invalid", "current must be pending, running, pause, resume, terminate or finished")
        }
        // The control has seen every request up to now: a resume it acted on is not shown again.
        try await ids.markSeen(execution.userState?.version ?? 0, uuid: uuid, in: scope.principal.organization)
        return execution
    }

    /// Autopause sends float durations, Reliably's own server wants integers: take any number.
    private static func number(_ value: JSONValue) -> JSONValue {
        switch value {
        case .int: value
        case .double(let d) where d.isFinite && d >= 0 && d < 1e12: .int(Int64(d.rounded(.up)))
        default: .null
        }
    }

    // MARK: journal and completion

    struct Journal {
        var value: JSONValue
        var text: String
    }

    /// A body's `result`: the journal as a JSON string, which must hold a JSON object.
    private static func journal(_ value: JSONValue?, required: Bool) throws -> Journal? {
        switch value {
        case .string(let text)?:
            guard let parsed = JSONValue(text: text), case .object = parsed else {
                throw Problem.badRequest("reliably.result.invalid", "result must be the journal: a JSON object, as a string")
            }
            return Journal(value: parsed, text: text)
        case nil, .null?:
            if required { throw resultRequired }
            return nil
        default:
            throw Problem.badRequest("reliably.result.invalid", "result must be the journal: a JSON object, as a string")
        }
    }

    static let resultRequired = Problem.badRequest("reliably.result.missing", "result (the journal as a string) is required")

    /// Reports the journal's events that ExperimentService does not have yet.
    private func report(_ journal: Journal, execution: ExperimentsV1.Execution, _ context: GatewayContext) async throws {
        guard !execution.state.isTerminal else { return }
        let events = JournalEvents(journal: journal.value).events(executionID: execution.id)
        let now = WallClock.nowMicros()
        let fresh = events.enumerated().filter { Int64($0.offset + 1) > execution.contiguousSequence }.map { index, event in
            ExperimentsV1.ExecutionEvent(executionId: execution.id, sequence: Int64(index + 1), type: event.type, occurredAtUs: now,
                                         payloadJson: event.payload.text, activityName: event.payload["name"]?.stringValue ?? "")
        }
        guard !fresh.isEmpty else { return }
        let batches = stride(from: 0, to: fresh.count, by: 200).map { ExperimentsV1.ReportEventsRequest(events: Array(fresh[$0..<min($0 + 200, fresh.count)])) }
        _ = try await client.reportEvents(options: gateway.callOptions(context)) { writer in
            for batch in batches { try await writer.write(batch) }
        }
    }

    /// Ends the execution with the journal and as much of the log as one RPC can carry (the
    /// service keeps the head of a log anyway).
    @discardableResult
    private func complete(_ id: String, journal: String, log: String, reason: String = "", _ context: GatewayContext) async throws -> ExperimentsV1.Execution {
        let budget = Self.completionBudgetBytes - journal.utf8.count - reason.utf8.count
        guard budget >= Self.logTruncationMarker.utf8.count else {
            throw Problem(.contentTooLarge, code: "reliably.journal.too_large",
                          detail: "the journal exceeds \(Self.completionBudgetBytes) bytes, more than an execution can keep")
        }
        var kept = log
        if log.utf8.count > budget {
            kept = String(decoding: log.utf8.prefix(budget - Self.logTruncationMarker.utf8.count), as: UTF8.self) + Self.logTruncationMarker
        }
        let request = ExperimentsV1.CompleteExecutionRequest(executionId: id, journalJson: journal, log: kept, reason: reason)
        let completed = try await client.completeExecution(request, options: gateway.callOptions(context))
        return completed.execution ?? .init()
    }

    // MARK: shapes

    /// The experiment as Reliably serves it: with its control, pointing at this organisation
    /// and experiment (replacing the ids of one already there, e.g. from Reliably's SaaS).
    static func withControl(_ definition: JSONValue, org: String, experiment: String) throws -> JSONValue {
        guard case .object(var members) = definition else {
            throw Problem(.conflict, code: "reliably.experiment.invalid", detail: "the experiment is not a JSON object")
        }
        var controls: [JSONValue]
        switch members["controls"] {
        case nil, .null?: controls = []
        case .array(let items)?: controls = items
        default: throw Problem(.conflict, code: "reliably.experiment.invalid", detail: "the experiment's controls is not a list")
        }
        let arguments: JSONValue = .object(["org_id": .string(org), "exp_id": .string(experiment)])
        if let index = controls.firstIndex(where: { $0["provider"]?["module"]?.stringValue == "chaosreliably.controls.experiment" }),
           case .object(var control) = controls[index], case .object(var provider)? = control["provider"] {
            provider["arguments"] = arguments
            control["provider"] = .object(provider)
            controls[index] = .object(control)
        } else {
            controls.append(.object(["name": "reliably", "provider": .object([
                "type": "python", "module": "chaosreliably.controls.experiment", "arguments": arguments,
            ])]))
        }
        members["controls"] = .array(controls)
        return .object(members)
    }

    /// Reliably's Execution; the control reads only `id`.
    static func executionView(_ execution: ExperimentsV1.Execution, uuid: String, scope: Scope, planUUID: String?) -> JSONValue {
        .object([
            "id": .string(uuid), "org_id": .string(scope.organizationUUID), "experiment_id": .string(scope.experimentUUID),
            "plan_id": planUUID.map(JSONValue.string) ?? .null, "user_id": .null,
            "created_date": .string(ReliablyUserState.iso(execution.createdAtUs)),
            "user_state": ReliablyUserState.view(of: execution, seenVersion: 0, planUUID: planUUID, nowUs: WallClock.nowMicros()),
            "result": .null,
        ])
    }

    /// The request body as a JSON object; 413 past `limit`, 400 when it is not an object.
    static func object(_ request: Request, limit: Int) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw Problem(.contentTooLarge, code: "request.too_large", detail: "the body exceeds \(limit) bytes")
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)), case .object = value else {
            throw Problem.badRequest("request.malformed", "the body is not a JSON object")
        }
        return value
    }
}
