import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird
import NIOCore

/// `/api/v1/executions`: runs, their journals, logs and events, users' requests, the events
/// the faultline control reports in HTTP mode, and the live SSE stream.
struct ExecutionRoutes {
    let gateway: Gateway
    var client: ExperimentsV1.ExperimentClient { gateway.experiments }

    /// At most this many events per POST (PROTOCOL.md §8).
    static let maximumEventsPerBatch = 500

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("executions") { request, context in
            _ = try context.require(.read)
            var list = ExperimentsV1.ListExecutionsRequest()
            list.pageSize = Int32(try request.integer("page_size", in: 1...200) ?? 50)
            list.pageToken = request.string("page_token") ?? ""
            list.experimentId = request.string("experiment_id") ?? ""
            list.planId = request.string("plan_id") ?? ""
            list.states = try request.uri.queryParameters.getAll("status").map { name in
                guard let state = ExperimentsV1.ExecutionState(apiName: name) else {
                    throw Problem.badRequest("request.parameter.invalid", "unknown status '\(name.prefix(40))'")
                }
                return state
            }
            let page = try await client.listExecutions(list, options: gateway.callOptions(context))
            return try Response.json(ExecutionPage(executions: page.executions.map(ExecutionView.init),
                                                   next_page_token: page.nextPageToken.nonEmpty))
        }
        group.get("executions/{id}") { _, context in
            _ = try context.require(.read)
            let found = try await client.getExecution(.init(executionId: try context.parameters.id(of: .execution)), options: gateway.callOptions(context))
            return try Response.json(ExecutionView(found.execution ?? .init()))
        }
        group.get("executions/{id}/journal") { _, context in
            _ = try context.require(.read)
            let found = try await client.getExecutionJournal(.init(executionId: try context.parameters.id(of: .execution)), options: gateway.callOptions(context))
            guard !found.journalJson.isEmpty else {
                throw Problem(.notFound, code: "journal.not_available", detail: "the execution has no journal (yet)")
            }
            return Response.json(found.journalJson)
        }
        group.get("executions/{id}/log") { _, context in
            _ = try context.require(.read)
            let found = try await client.getExecutionLog(.init(executionId: try context.parameters.id(of: .execution)), options: gateway.callOptions(context))
            struct Body: Encodable { var log: String; var truncated: Bool; var original_size_bytes: Int64 }
            return try Response.json(Body(log: found.log, truncated: found.truncated, original_size_bytes: found.originalSizeBytes))
        }
        group.get("executions/{id}/events") { request, context in
            _ = try context.require(.read)
            var list = ExperimentsV1.ListExecutionEventsRequest()
            list.executionId = try context.parameters.id(of: .execution)
            list.afterSequence = try request.integer("after", in: 0...Int64.max) ?? 0
            list.pageSize = Int32(try request.integer("page_size", in: 1...1000) ?? 100)
            list.pageToken = request.string("page_token") ?? ""
            let page = try await client.listExecutionEvents(list, options: gateway.callOptions(context))
            return try Response.json(EventPage(events: page.events.map(EventView.init), next_page_token: page.nextPageToken.nonEmpty))
        }
        group.post("executions/{id}/pause") { request, context in
            _ = try context.require(.write)
            struct Body: Decodable { var max_duration_us: Int64?; var reason: String? }
            let body = try await request.json(Body.self, context)
            guard (body.max_duration_us ?? 0) >= 0 else {
                throw Problem.badRequest("request.parameter.invalid", "max_duration_us must not be negative")
            }
            let request = ExperimentsV1.PauseExecutionRequest(executionId: try context.parameters.id(of: .execution),
                                                              maxDurationUs: body.max_duration_us ?? 0, reason: body.reason ?? "")
            let paused = try await client.pauseExecution(request, options: gateway.callOptions(context))
            return try Response.json(ExecutionView(paused.execution ?? .init()))
        }
        group.post("executions/{id}/resume") { request, context in
            _ = try context.require(.write)
            struct Body: Decodable { var reason: String? }
            let body = try await request.json(Body.self, context)
            let resumed = try await client.resumeExecution(.init(executionId: try context.parameters.id(of: .execution), reason: body.reason ?? ""),
                                                           options: gateway.callOptions(context))
            return try Response.json(ExecutionView(resumed.execution ?? .init()))
        }
        group.post("executions/{id}/terminate") { request, context in
            _ = try context.require(.write)
            struct Body: Decodable { var skip_rollbacks: Bool?; var reason: String? }
            let body = try await request.json(Body.self, context)
            let request = ExperimentsV1.TerminateExecutionRequest(executionId: try context.parameters.id(of: .execution),
                                                                  skipRollbacks: body.skip_rollbacks ?? false, reason: body.reason ?? "")
            let terminated = try await client.terminateExecution(request, options: gateway.callOptions(context))
            return try Response.json(ExecutionView(terminated.execution ?? .init()))
        }
        group.post("executions/{id}/events") { request, context in
            _ = try context.require(.report)
            let events = try await reportedEvents(request, context)
            let batch = ExperimentsV1.ReportEventsRequest(events: events)
            let report = try await client.reportEvents(options: gateway.callOptions(context)) { writer in
                try await writer.write(batch)
            }
            struct Body: Encodable { var accepted: Int64; var duplicates: Int64 }
            return try Response.json(Body(accepted: report.accepted, duplicates: report.duplicates), status: .accepted)
        }
        group.post("executions/{id}/complete") { request, context in
            _ = try context.require(.report)
            struct Body: Decodable { var journal: JSONValue; var log: String? }
            let id = try context.parameters.id(of: .execution)
            let body = try await request.json(Body.self, context)
            guard case .object = body.journal else {
                throw Problem.badRequest("journal.invalid", "journal must be a Chaos Toolkit journal (a JSON object)")
            }
            var complete = ExperimentsV1.CompleteExecutionRequest()
            complete.executionId = id
            complete.journalJson = body.journal.text
            complete.log = body.log ?? ""
            // One RPC: ExperimentService refuses a runner's execution (a runner completes its own
            // runs from `chaos`'s exit and journal file) and starts a pending one on the way (a
            // plain `chaos run` never says when it started; its first events may not have either).
            complete.external = true
            let completed: ExperimentsV1.CompleteExecutionResponse
            do {
                completed = try await client.completeExecution(complete, options: gateway.callOptions(context))
            } catch let error as RPCError where error.code == .permissionDenied {
                throw Problem(.conflict, code: "execution.runner_owned", detail: error.message)
            }
            return try Response.json(ExecutionView(completed.execution ?? .init()))
        }
        group.get("executions/{id}/events/stream") { request, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .execution)
            let resumeHeader = request.headers[.lastEventID]
            let after: Int64
            if let resumeHeader {
                guard let value = Int64(resumeHeader.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                    throw Problem.badRequest("request.last_event_id.invalid", "Last-Event-ID must be an event sequence number")
                }
                after = value
            } else {
                after = try request.integer("after", in: 0...Int64.max) ?? 0
            }
            // Fail before the 200 when the execution is unknown or another organisation's.
            _ = try await client.getExecution(.init(executionId: id), options: gateway.callOptions(context))
            let stream = EventStream(client: client, options: try gateway.callOptions(context, timeout: .some(nil)), executionID: id)
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    try await stream.run(after: after) { try await writer.write($0) }
                    try await writer.finish(nil)
                }
            )
        }
    }

    /// The events of a `POST .../events` body, in the control's shape (PROTOCOL.md §3.2).
    private func reportedEvents(_ request: Request, _ context: GatewayContext) async throws -> [ExperimentsV1.ExecutionEvent] {
        struct Reported: Decodable {
            var seq: Int64
            var type: String
            var ts_us: Int64
            var payload: JSONValue?
        }
        struct Body: Decodable { var events: [Reported] }
        let executionID = try context.parameters.id(of: .execution)
        let body = try await request.json(Body.self, context)
        guard !body.events.isEmpty, body.events.count <= Self.maximumEventsPerBatch else {
            throw Problem.badRequest("events.count", "send 1 to \(Self.maximumEventsPerBatch) events")
        }
        return try body.events.map { event in
            guard event.seq >= 1, (1...64).contains(event.type.utf8.count) else {
                throw Problem.badRequest("event.invalid", "each event needs seq >= 1 and a type")
            }
            if let payload = event.payload, case .object = payload {} else if event.payload != nil {
                throw Problem.badRequest("event.payload.invalid", "an event's payload must be a JSON object")
            }
            let activity = event.payload?["activity"]?["name"]?.stringValue ?? event.payload?["name"]?.stringValue ?? ""
            return .init(executionId: executionID, sequence: event.seq, type: event.type, occurredAtUs: event.ts_us,
                         payloadJson: event.payload?.text ?? "{}", activityName: activity)
        }
    }
}
