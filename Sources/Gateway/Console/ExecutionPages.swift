import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird

/// One execution: its live timeline (drawn by the console script from the event stream),
/// pause/resume/terminate, and the journal and log.
struct ExecutionPages {
    let console: Console
    var gateway: Gateway { console.gateway }
    var client: ExperimentsV1.ExperimentClient { console.client }

    struct ActionForm: ConsoleForm {
        var csrf: String?
        var skip_rollbacks: String?
    }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("executions/{id}") { request, context in try await show(request, context) }
        pages.post("executions/{id}/pause") { request, context in
            try await act(request, context) { id, form, options in
                _ = try await client.pauseExecution(.init(executionId: id, maxDurationUs: 0, reason: "paused from the console"), options: options)
            }
        }
        pages.post("executions/{id}/resume") { request, context in
            try await act(request, context) { id, _, options in
                _ = try await client.resumeExecution(.init(executionId: id, reason: "resumed from the console"), options: options)
            }
        }
        pages.post("executions/{id}/terminate") { request, context in
            try await act(request, context) { id, form, options in
                _ = try await client.terminateExecution(.init(executionId: id, skipRollbacks: form.skip_rollbacks == "on",
                                                              reason: "terminated from the console"), options: options)
            }
        }
        // The page's live stream: the API's SSE, authorised by the session cookie (an
        // EventSource cannot send a bearer token).
        pages.get("executions/{id}/events/stream") { request, context in
            _ = try context.require(.read)
            let id = try context.parameters.id(of: .execution)
            let after = request.headers[.lastEventID].flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.map { max($0, 0) } ?? 0
            _ = try await client.getExecution(.init(executionId: id), options: gateway.callOptions(context))
            let stream = EventStream(client: client, options: try gateway.callOptions(context, timeout: .some(nil)), executionID: id)
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: ResponseBody { writer in
                                try await stream.run(after: after) { try await writer.write($0) }
                                try await writer.finish(nil)
                            })
        }
    }

    /// The log without terminal colour codes (chaos colours its log lines), which a page would
    /// show as stray characters.
    static func plain(_ log: String) -> String {
        log.replacing(/\x{1B}\[[0-9;?]*[ -\/]*[@-~]/, with: "")
    }

    private func act(_ request: Request, _ context: GatewayContext,
                     _ body: (String, ActionForm, CallOptions) async throws -> Void) async throws -> Response {
        try await console.act(on: .execution, ActionForm.self, request, context, then: { "/console/executions/\($0)" }, body)
    }

    private func show(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let id = try context.parameters.id(of: .execution)
        let options = try gateway.callOptions(context)
        let execution = try await client.getExecution(.init(executionId: id), options: options).execution ?? .init()
        let experiment = try? await client.getExperiment(.init(experimentId: execution.experimentId), options: options).experiment
        let terminal = execution.state.isTerminal
        var journal: HTML = "<p class=\"muted\">The journal is written when the run ends.</p>"
        var log: HTML = "<p class=\"muted\">No log yet.</p>"
        if terminal {
            let found = try? await client.getExecutionJournal(.init(executionId: id), options: options)
            if let text = found?.journalJson, !text.isEmpty {
                journal = """
                    \(JournalSummary(journal: JSONValue(text: text) ?? .null).html())
                    <details id="journal-details"><summary>The whole journal (JSON)</summary>
                    <pre id="journal" tabindex="0" aria-label="Journal">\(SourceMap(text: text).prettyJSON() ?? text)</pre></details>
                    """
            }
            if let found = try? await client.getExecutionLog(.init(executionId: id), options: options), !found.log.isEmpty {
                log = "<pre id=\"log\" tabindex=\"0\" aria-label=\"Log\">\(Self.plain(found.log))</pre>\(found.truncated ? "<p class=\"muted\">The log was truncated.</p>" as HTML : .empty)"
            }
        }
        let csrf = ConsoleForms.csrf(of: request) ?? ""
        let paused: Bool = if case .pause? = execution.userState?.request { true } else { false }
        let canAct = principal.role.allows(.write) && !terminal
        func button(_ action: String, _ label: String, enabled: Bool, style: String = "", extra: HTML = .empty) -> HTML {
            """
            <form method="post" action="/console/executions/\(id)/\(action)"><input type="hidden" name="csrf" value="\(csrf)">\(extra)
            <button type="submit" id="\(action)-button" class="\(style)"\(enabled ? .empty : " disabled" as HTML)>\(label)</button></form>
            """
        }
        let controls: HTML = principal.role.allows(.write) ? """
            <div class="controls" aria-label="Run controls">
            \(button("pause", "Pause", enabled: canAct && !paused, style: "secondary"))
            \(button("resume", "Resume", enabled: canAct && paused, style: "secondary"))
            \(button("terminate", "Terminate", enabled: canAct, style: "danger",
                     extra: "<label class=\"inline\"><input type=\"checkbox\" name=\"skip_rollbacks\"> skip rollbacks</label>"))
            </div>
            """ : .empty
        let state = execution.state.apiName
        let body: HTML = """
        <h1>Run <code>\(id)</code></h1>
        <dl class="facts">
        <dt>Experiment</dt><dd><a href="/console/experiments/\(execution.experimentId)">\(experiment?.title ?? execution.experimentId)</a> (revision \(execution.experimentRevision))</dd>
        <dt>Status</dt><dd>\(Pages.status(state))\(paused ? " (pause requested)" as HTML : .empty)</dd>
        <dt>Created</dt><dd>\(Pages.time(execution.createdAtUs))</dd>
        <dt>Started</dt><dd>\(Pages.time(execution.startedAtUs))</dd>
        <dt>Ended</dt><dd>\(Pages.time(execution.endedAtUs))</dd>
        <dt>Score</dt><dd>\(Pages.score(execution.score?.value))</dd>
        \(HTML.when(!execution.reason.isEmpty, "<dt>Reason</dt><dd>\(execution.reason) <code>\(execution.reasonCode)</code></dd>"))
        </dl>
        \(controls)
        <h2 id="timeline-heading">Timeline</h2>
        <p id="run-status" aria-live="polite">Status: \(state.replacingOccurrences(of: "_", with: " "))</p>
        <ul class="legend" aria-label="Legend"><li><span class="swatch bar running"></span>running</li><li><span class="swatch bar succeeded"></span>succeeded / steady state met</li>
        <li><span class="swatch bar failed"></span>failed / not met</li><li><span class="swatch bar paused"></span>paused</li></ul>
        <ol class="timeline" id="timeline" aria-labelledby="timeline-heading" data-stream="/console/executions/\(id)/events/stream"
            data-status="\(state)" data-live="\(terminal ? "false" : "true")"></ol>
        <noscript><p>The timeline needs JavaScript; the journal below has every activity.</p></noscript>
        <h2>Journal</h2>
        \(journal)
        <h2>Log</h2>
        \(log)
        """
        return try console.page(context, title: "Run \(id)", section: .experiments, body: body, request: request)
    }
}
