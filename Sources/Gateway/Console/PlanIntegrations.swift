import FaultlineProto
import FaultlineRPC
import Foundation

/// The organisation's integrations as a plan's form and page offer them: a checkbox per
/// integration (`integration_<id>` = `on`, flat names like the window days'), the check of what a
/// form chose, and the plan page's list. The service scopes the list to the caller's
/// organisation, so an id it does not hold is refused without saying whose it is.
struct PlanIntegrations {
    static let fieldPrefix = "integration_"
    /// The form's field (and error slot) for the set as a whole.
    static let field = "integration_ids"
    /// One page of the service's largest: what a checkbox list can offer.
    static let pageSize: Int32 = 500

    let integrations: [SecretsV1.Integration]
    /// False when the organisation has more than one page: an id missing from `integrations` may
    /// still be its own, and the gateway's reference check decides.
    let complete: Bool
    /// True when SecretService could not be reached: the form and page still show, with the
    /// plan's ids as they are and a word on why their names are missing.
    var unavailable = false

    static let empty = PlanIntegrations(integrations: [], complete: true)
    static let unreachable = PlanIntegrations(integrations: [], complete: false, unavailable: true)

    static func load(_ gateway: Gateway, _ options: CallOptions) async throws -> PlanIntegrations {
        guard let secrets = gateway.secrets else { return .empty }
        do {
            let page = try await secrets.listIntegrations(.init(pageSize: pageSize, pageToken: ""), options: options)
            return PlanIntegrations(integrations: page.integrations, complete: page.nextPageToken.isEmpty)
        } catch where ConsoleBackend.unreachable(error) {
            return .unreachable
        }
    }

    static let unavailableNotice = "The organisation\u{2019}s integrations cannot be loaded right now: SecretService is unavailable."

    /// The ids a form chose, in a stable order.
    static func chosen(_ form: PlanForm) -> [String] {
        form.values.filter { $0.key.hasPrefix(fieldPrefix) && $0.key != field && $0.value == "on" }
            .map { String($0.key.dropFirst(fieldPrefix.count)) }.sorted()
    }

    static func formValues(_ ids: [String]) -> [String: String] {
        Dictionary(ids.map { (fieldPrefix + $0, "on") }, uniquingKeysWith: { a, _ in a })
    }

    /// Why `ids` cannot be saved, or nil. An id that is not one of the organisation's is refused
    /// as unknown, whether it is malformed, deleted or another organisation's.
    func problem(with ids: [String]) -> String? {
        guard ids.count <= Self.maximum else { return "Choose at most \(Self.maximum) integrations." }
        // Refused, not saved unchecked: the gateway's reference check asks the same SecretService,
        // so nothing can verify them now, and a plan must not fire with an id nobody checked (a
        // deleted or another organisation's). The form keeps them ticked, so nothing is lost:
        // the user saves again when SecretService is back, or unticks them to save the rest.
        if unavailable, !ids.isEmpty {
            return "The chosen integrations cannot be checked right now (SecretService is unavailable): save again shortly, or untick them to save without them."
        }
        let known = Set(integrations.map(\.id))
        let unknown = ids.filter { id in
            guard !known.contains(id) else { return false }
            return complete || (try? ResourceKind.integration.checked(id)) == nil
        }
        guard !unknown.isEmpty else { return nil }
        return unknown.count == 1 ? "One chosen integration is not one of your organisation\u{2019}s (deleted?): untick it or choose another."
            : "\(unknown.count) chosen integrations are not your organisation\u{2019}s (deleted?): untick them or choose others."
    }

    /// ScheduleService's own limit, checked here so the form says it at the field.
    static let maximum = 50

    /// The form's checkbox list; ids chosen but not listed (deleted since, or typed into a
    /// forged post) stay listed, checked, so saving never drops one unseen.
    func fieldset(_ form: PlanForm, errors: [String: String]) -> HTML {
        let chosen = Self.chosen(form)
        let error = errors[Self.field]
        let described: HTML = "aria-describedby=\"\(Self.field)-hint \(Self.field)-error\"\(error == nil ? .empty : " aria-invalid=\"true\"" as HTML)"
        let box = { (id: String, label: HTML) -> HTML in
            let key = Self.fieldPrefix + id
            return "<li><label class=\"inline\"><input type=\"checkbox\" name=\"\(key)\" id=\"\(key)\"\(chosen.contains(id) ? " checked" as HTML : .empty)> \(label)</label></li>"
        }
        let known = Set(integrations.map(\.id))
        var items = integrations.map { i in box(i.id, "\(i.name) <span class=\"muted\">(\(Self.kindTitle(i)))</span>") }
        let missing: HTML = unavailable ? "(not checked)" : "(not found)"
        items += chosen.filter { !known.contains($0) }.prefix(Self.maximum).map { box($0, "<code>\($0)</code> <span class=\"muted\">\(missing)</span>") }
        let notice: HTML = unavailable ? "<p class=\"notice\" id=\"integrations-unavailable\" role=\"status\">\(Self.unavailableNotice)</p>" : .empty
        let list: HTML = unavailable ? "\(notice)\(items.isEmpty ? .empty : "<ul class=\"choices\" id=\"integration-choices\">\(items)</ul>" as HTML)"
            : items.isEmpty
            ? "<p id=\"no-integrations\">Your organisation has no integrations yet. <a href=\"/console/integrations/new\">Create one</a>, then come back to this form.</p>"
            : "<ul class=\"choices\" id=\"integration-choices\">\(items)</ul>"
        return """
        <fieldset id="\(Self.field)" \(described)><legend>Integrations</legend>
        <p class="hint" id="\(Self.field)-hint">Each chosen integration\u{2019}s control joins every run of this plan (notifications, pre-checks\u{2026}).</p>
        \(list)<p class="field-error" id="\(Self.field)-error" aria-live="polite">\(error ?? "")</p></fieldset>
        """
    }

    /// The plan page's entry: each integration linked with its kind; an id no longer found says so.
    func facts(_ ids: [String]) -> HTML {
        guard !ids.isEmpty else { return "<span class=\"muted\">none</span>" }
        if unavailable {
            let items = ids.map { id -> HTML in "<li><code>\(id)</code></li>" }
            return "<p class=\"muted\" id=\"integrations-unavailable\">Names not shown: \(Self.unavailableNotice)</p><ul id=\"plan-integrations\">\(items)</ul>"
        }
        let byID = Dictionary(integrations.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let items = ids.map { id -> HTML in
            guard let i = byID[id] else { return "<li><code>\(id)</code> <span class=\"muted\">(not found)</span></li>" }
            return "<li><a href=\"/console/integrations/\(i.id)\">\(i.name)</a> <span class=\"muted\">(\(Self.kindTitle(i)))</span></li>"
        }
        return "<ul id=\"plan-integrations\">\(items)</ul>"
    }

    private static func kindTitle(_ integration: SecretsV1.Integration) -> String {
        IntegrationKind.of(integration.config)?.0.title ?? "unknown kind"
    }
}
