import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird
import Logging

/// The organisation's kill switch on the overview: its state, Halt (confirmed, optionally
/// without rollbacks) and Resume, over ScheduleService like `/api/v1/organization/halt|resume`.
///
/// POST /console/halt     confirm=on, reason, skip_rollbacks: stops every run, blocks dispatch
/// POST /console/resume
struct HaltSwitch {
    let console: Console
    var gateway: Gateway { console.gateway }

    struct HaltForm: ConsoleForm {
        var csrf: String?
        var confirm: String?
        var reason: String?
        var skip_rollbacks: String?
    }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.post("halt") { request, context in
            _ = try context.require(.write)
            let form = try await ConsoleForms.read(HaltForm.self, request, context)
            // The browser's `required` is only a convenience: a halt is never taken unconfirmed.
            guard form.confirm == "on" else {
                throw Problem.badRequest("halt.unconfirmed", "tick the confirmation to halt every run of the organisation")
            }
            let reason = form.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let halted = try await client().halt(.init(skipRollbacks: form.skip_rollbacks == "on", reason: reason),
                                                 options: gateway.callOptions(context))
            return Response.seeOther("/console?terminated=\(halted.executionsTerminated)#halt")
        }
        pages.post("resume") { request, context in
            _ = try context.require(.write)
            _ = try await ConsoleForms.read(Console.Empty.self, request, context)
            _ = try await client().resume(.init(), options: gateway.callOptions(context))
            return Response.seeOther("/console#halt")
        }
    }

    private func client() throws -> SchedulesV1.ScheduleClient {
        try gateway.required(gateway.schedules, "schedules", variable: "FAULTLINE_SCHEDULE_SERVICE")
    }

    /// The overview's section: the state, and the one button that changes it for a writer.
    func section(_ request: Request, _ context: GatewayContext, principal: Principal) async -> HTML {
        let heading: HTML = "<h2 id=\"halt\">Halt switch</h2>"
        guard let schedules = gateway.schedules else {
            return "\(heading)<p class=\"muted\">Unavailable: no ScheduleService is configured.</p>"
        }
        let status: SchedulesV1.HaltStatus
        do {
            status = try await schedules.getHaltStatus(.init(), options: gateway.callOptions(context)).status ?? .init()
        } catch {
            context.logger.warning("halt status unavailable", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            return "\(heading)<p class=\"notice\" role=\"status\">The halt switch's state could not be read; reload to try again.</p>"
        }
        let csrf = ConsoleForms.csrf(of: request) ?? ""
        let canAct = principal.role.allows(.write)
        let terminated = (try? request.integer("terminated", in: 0...Int64(Int32.max))) ?? nil
        if status.halted {
            let by = status.haltedBy.map { $0.displayName.isEmpty ? $0.id : $0.displayName } ?? ""
            return """
            \(heading)
            <div class="halt halted" id="halt-state" data-halted="true" role="status">
            <p><strong>Halted.</strong> No experiment of this organisation runs until it is resumed.</p>
            <dl class="facts"><dt>Since</dt><dd>\(Pages.time(status.haltedAtUs))</dd>
            \(HTML.when(!by.isEmpty, "<dt>By</dt><dd><code>\(by)</code></dd>"))
            <dt>Reason</dt><dd>\(status.reason.isEmpty ? "—" : status.reason)</dd>
            <dt>Rollbacks</dt><dd>\(status.skipRollbacks ? "skipped" : "played")</dd></dl>
            \(HTML.when(terminated != nil, "<p>\(terminated ?? 0) run(s) were asked to stop.</p>"))
            \(HTML.when(canAct, """
                <form method="post" action="/console/resume"><input type="hidden" name="csrf" value="\(csrf)">
                <button type="submit" id="resume-fleet">Resume</button></form>
                """))
            </div>
            """
        }
        return """
        \(heading)
        <div class="halt" id="halt-state" data-halted="false">
        <p>Not halted: experiments run and plans fire as usual.</p>
        \(HTML.when(canAct, """
            <details><summary>Halt every run…</summary>
            <form method="post" action="/console/halt" id="halt-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <label for="halt-reason">Reason (shown to everyone)</label>
            <input type="text" id="halt-reason" name="reason" maxlength="500">
            <p><label class="inline"><input type="checkbox" name="skip_rollbacks" id="halt-skip-rollbacks"> skip rollbacks (stop at once, leave the system as it is)</label></p>
            <p><label class="inline"><input type="checkbox" name="confirm" id="halt-confirm" required> I understand that every running experiment of this organisation stops now and nothing starts until it is resumed</label></p>
            <p><button type="submit" class="danger" id="halt-fleet">Halt</button></p>
            </form></details>
            """))
        </div>
        """
    }
}
