import FaultlineProto
import FaultlineRPC
import Foundation
import HTTPTypes
import Hummingbird

/// New experiment from a template: the catalogue, each template as a form with only its
/// inputs (errors next to the field they concern), a preview of the experiment, and Save.
///
/// GET  /console/templates                    the catalogue
/// GET  /console/templates/{id}               the form, previewing the defaults
/// POST /console/templates/{id}               action=preview: the page again; action=save: create, then the experiment's page
/// POST /console/templates/{id}/preview       the live preview for the page's script: {"experiment": text|null, "problems": [...]}
/// GET  /console/assets/templates.css|.js     this page's style and script
struct TemplatePages {
    let console: Console
    var gateway: Gateway { console.gateway }

    /// The form: the CSRF token, the button pressed, and the template's inputs by name.
    struct Form: ConsoleForm {
        var csrf: String?
        var action: String?
        var fields: [String: String] = [:]

        private struct Key: CodingKey {
            var stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            for key in container.allKeys {
                // Only plain fields: `a[b]` forms are nothing this page sends.
                guard let value = try? container.decode(String.self, forKey: key) else { continue }
                switch key.stringValue {
                case "csrf": csrf = value
                case "action": action = value
                default: fields[key.stringValue] = value
                }
            }
        }
    }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("assets/templates.css") { _, _ in Console.asset(Self.css, type: "text/css; charset=utf-8") }
        pages.get("assets/templates.js") { _, _ in Console.asset(Self.js, type: "text/javascript; charset=utf-8") }
        pages.get("templates") { request, context in
            _ = try context.require(.read)
            return try console.page(context, title: "New from a template", section: .templates, body: catalogue(), request: request)
        }
        pages.get("templates/{id}") { request, context in
            _ = try context.require(.read)
            let template = try TemplateRoutes.template(context)
            let defaults = Dictionary(uniqueKeysWithValues: template.inputs.map { ($0.name, $0.defaultValue) })
            return try formPage(template, fields: defaults, problems: [], notice: nil, request: request, context: context)
        }
        pages.post("templates/{id}") { request, context in try await submit(request, context) }
        pages.post("templates/{id}/preview") { request, context in
            _ = try context.require(.read)
            let template = try TemplateRoutes.template(context)
            let form = try await ConsoleForms.read(Form.self, request, context)
            struct Preview: Encodable {
                var experiment: String?
                var problems: [Item]
                struct Item: Encodable { var input: String; var code: String; var message: String }
                enum CodingKeys: CodingKey { case experiment, problems }
                func encode(to encoder: any Encoder) throws {
                    var container = encoder.container(keyedBy: CodingKeys.self)
                    try container.encode(experiment, forKey: .experiment)  // null, not absent, while inputs need fixing
                    try container.encode(problems, forKey: .problems)
                }
            }
            do {
                return try Response.json(Preview(experiment: try template.render(Self.known(form.fields, of: template)).prettyText, problems: []))
            } catch let error as InputProblems {
                return try Response.json(Preview(experiment: nil, problems: error.problems.map { .init(input: $0.input, code: $0.code, message: $0.message) }))
            }
        }
    }

    /// The fields that are inputs of `template`; anything else a form carries is ignored.
    static func known(_ fields: [String: String], of template: ExperimentTemplate) -> [String: String] {
        fields.filter { template.input(named: $0.key) != nil }
    }

    private func submit(_ request: Request, _ context: GatewayContext) async throws -> Response {
        _ = try context.require(.read)
        let template = try TemplateRoutes.template(context)
        let form = try await ConsoleForms.read(Form.self, request, context)
        let fields = Self.known(form.fields, of: template)
        let saving = form.action == "save"
        if saving { _ = try context.require(.write) }
        let experiment: OrderedJSON
        do {
            experiment = try template.render(fields)
        } catch {
            return try formPage(template, fields: fields, problems: error.problems, notice: nil, request: request, context: context, status: .badRequest)
        }
        guard saving else {
            return try formPage(template, fields: fields, problems: [], notice: nil, request: request, context: context)
        }
        do {
            let created = try await gateway.experiments.createExperiment(TemplateRoutes.creation(of: experiment, from: template),
                                                                         options: gateway.callOptions(context))
            return Response.seeOther("/console/experiments/\(created.experiment?.id ?? "")")
        } catch let error as RPCError where error.validationReport != nil {
            // A template that renders what the service refuses is a bug here; show it rather than hide it.
            let report = (error.validationReport?.problems ?? []).map { "\($0.path): \($0.message)" }.joined(separator: "; ")
            return try formPage(template, fields: fields, problems: [], notice: "The experiment was refused: \(report)",
                                request: request, context: context, status: .badRequest)
        }
    }

    private func catalogue() -> HTML {
        let cards = TemplateCatalogue.all.map { t -> HTML in
            """
            <li class="card"><h2><a href="/console/templates/\(t.id)" id="template-\(t.id)">\(t.title)</a></h2>
            <p>\(t.goal)</p><p>\(t.tags.map { tag -> HTML in "<span class=\"tag\">\(tag)</span>" })</p></li>
            """
        }
        return """
        <link rel="stylesheet" href="/console/assets/templates.css">
        <h1>New experiment from a template</h1>
        <p>Pick what you want to show. Each template asks only for what matters and makes a plain Chaos Toolkit experiment you can preview, save and run, or export and run with <code>chaos run</code> anywhere.</p>
        <ul class="cards" id="templates">\(cards)</ul>
        <p>Have an experiment file already? <a href="/console/import">Import it</a>.</p>
        """
    }

    private func formPage(_ template: ExperimentTemplate, fields: [String: String], problems: [InputProblem], notice: String?,
                          request: Request, context: GatewayContext, status: HTTPResponse.Status = .ok) throws -> Response {
        let principal = try context.require(.read)
        let byInput = Dictionary(problems.map { ($0.input, $0.message) }, uniquingKeysWith: { first, _ in first })
        let rendered = problems.isEmpty ? try? template.render(fields) : nil
        let controls = template.inputs.map { input in
            Self.field(input, value: fields[input.name] ?? input.defaultValue, problem: byInput[input.name])
        }
        let summary: HTML = problems.isEmpty ? .empty : """
            <div class="notice" role="alert" id="template-problems"><p><strong>\(problems.count == 1 ? "One field needs" : "\(problems.count) fields need") fixing:</strong></p>
            <ul>\(problems.map { p -> HTML in "<li><a href=\"#input-\(p.input)\">\(template.input(named: p.input)?.label ?? p.input)</a>: \(p.message)</li>" })</ul></div>
            """
        let refused: HTML = notice.map { "<div class=\"notice\" role=\"alert\" id=\"template-refused\"><p>\($0)</p></div>" } ?? .empty
        let save: HTML = principal.role.allows(.write)
            ? "<button type=\"submit\" name=\"action\" value=\"save\" id=\"save-button\">Save experiment</button>"
            : "<span class=\"muted\">A viewer may preview but not save.</span>"
        let body: HTML = """
        <link rel="stylesheet" href="/console/assets/templates.css">
        <p class="muted"><a href="/console/templates">Templates</a> ›</p>
        <h1>\(template.title)</h1>
        <p id="template-goal">\(template.goal)</p>
        \(summary)\(refused)
        <div class="template-layout">
        <form method="post" action="/console/templates/\(template.id)" id="template-form" novalidate data-preview="/console/templates/\(template.id)/preview">
        <input type="hidden" name="csrf" value="\(ConsoleForms.csrf(of: request) ?? "")">
        \(controls)
        <div class="controls"><button type="submit" name="action" value="preview" class="secondary" id="preview-button">Preview</button> \(save)</div>
        </form>
        <section aria-labelledby="preview-heading" class="template-preview">
        <h2 id="preview-heading">Preview</h2>
        <p id="preview-status" class="muted" aria-live="polite">\(rendered == nil ? "Fix the fields marked above to see the experiment." : "The experiment as it will be saved: plain Chaos Toolkit JSON.")</p>
        <pre id="preview" tabindex="0" aria-labelledby="preview-heading"\(rendered == nil ? " data-stale=\"true\"" as HTML : .empty)>\(rendered?.prettyText ?? "")</pre>
        </section>
        </div>
        <script src="/console/assets/templates.js" defer></script>
        """
        return try console.page(context, title: template.title, section: .templates, body: body, request: request, status: status)
    }

    /// One input: label, control, help with its bounds, and its error (always present, so the
    /// live preview can fill it).
    static func field(_ input: TemplateInput, value: String, problem: String?) -> HTML {
        let id = "input-\(input.name)"
        let invalid: HTML = problem == nil ? .empty : " aria-invalid=\"true\""
        let described: HTML = " aria-describedby=\"help-\(input.name) error-\(input.name)\""
        let required: HTML = input.required ? " required" : .empty
        let control: HTML
        var bounds = ""
        switch input.kind {
        case .url:
            control = "<input type=\"url\" id=\"\(id)\" name=\"\(input.name)\" value=\"\(value)\" inputmode=\"url\" autocomplete=\"off\" spellcheck=\"false\"\(required)\(invalid)\(described)>"
        case .text(let maxLength):
            control = "<input type=\"text\" id=\"\(id)\" name=\"\(input.name)\" value=\"\(value)\" maxlength=\"\(maxLength)\" autocomplete=\"off\"\(required)\(invalid)\(described)>"
        case .path:
            control = "<input type=\"text\" id=\"\(id)\" name=\"\(input.name)\" value=\"\(value)\" autocomplete=\"off\" spellcheck=\"false\"\(required)\(invalid)\(described)>"
        case .integer(let range):
            bounds = " From \(range.lowerBound) to \(range.upperBound)."
            control = "<input type=\"number\" id=\"\(id)\" name=\"\(input.name)\" value=\"\(value)\" min=\"\(range.lowerBound)\" max=\"\(range.upperBound)\" step=\"1\" inputmode=\"numeric\"\(required)\(invalid)\(described)>"
        case .duration(let range):
            bounds = " From \(TemplateInput.describe(range.lowerBound)) to \(TemplateInput.describe(range.upperBound)), e.g. 500ms, 5s or 2m."
            control = "<input type=\"text\" id=\"\(id)\" name=\"\(input.name)\" value=\"\(value)\" autocomplete=\"off\" spellcheck=\"false\" class=\"short\"\(required)\(invalid)\(described)>"
        case .command:
            control = "<textarea id=\"\(id)\" name=\"\(input.name)\" rows=\"3\" spellcheck=\"false\" class=\"command\"\(required)\(invalid)\(described)>\(value)</textarea>"
        case .choice(let options):
            let items = options.map { option -> HTML in "<option value=\"\(option)\"\(option == value ? " selected" as HTML : .empty)>\(option)</option>" }
            control = "<select id=\"\(id)\" name=\"\(input.name)\"\(invalid)\(described)>\(items)</select>"
        }
        return """
            <div class="field\(problem == nil ? "" : " has-error")" data-input="\(input.name)">
            <label for="\(id)">\(input.label)\(input.required ? .empty : " <span class=\"muted\">(optional)</span>" as HTML)</label>
            \(control)
            <p class="help" id="help-\(input.name)">\(input.help)\(bounds)</p>
            <p class="field-error" id="error-\(input.name)">\(problem ?? "")</p>
            </div>
            """
    }

    static let css = #"""
    .cards { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: 12px; }
    .card { border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; }
    .card h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
    .template-layout { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 24px; align-items: start; }
    .template-layout .field { margin-bottom: .75rem; }
    .template-layout input[type=url], .template-layout input[type=number], .template-layout textarea.command { font: inherit; padding: 6px 8px; border: 1px solid #6e7781; border-radius: 4px; width: 100%; max-width: 40rem; }
    .template-layout textarea.command { font-family: ui-monospace, monospace; font-size: .9rem; min-height: 4.5rem; }
    .template-layout input.short { max-width: 12rem; }
    .template-layout .help { margin: .25rem 0 0; font-size: .9rem; color: var(--muted); }
    .template-layout .field-error { margin: .25rem 0 0; color: var(--bad); font-weight: 600; }
    .template-layout .field-error:empty { display: none; }
    .template-layout [aria-invalid="true"] { border: 2px solid var(--bad); }
    .template-preview pre { max-height: 48rem; white-space: pre-wrap; overflow-wrap: anywhere; }
    .template-preview pre[data-stale="true"] { opacity: .5; } .template-preview pre:empty { display: none; }
    @media (max-width: 900px) { .template-layout { grid-template-columns: 1fr; } }
    """#

    /// Refreshes the preview and the fields' errors as people type (the Preview button does the
    /// same without script).
    static let js = #"""
    "use strict";
    (function () {
      var form = document.getElementById("template-form");
      if (!form || !window.fetch || !window.URLSearchParams) return;
      var preview = document.getElementById("preview");
      var status = document.getElementById("preview-status");
      var timer = null, sequence = 0;

      function show(problems) {
        Array.prototype.forEach.call(form.querySelectorAll("[data-input]"), function (field) {
          var name = field.getAttribute("data-input");
          var message = problems[name] || "";
          document.getElementById("error-" + name).textContent = message;
          var control = document.getElementById("input-" + name);
          if (message) { control.setAttribute("aria-invalid", "true"); field.classList.add("has-error"); }
          else { control.removeAttribute("aria-invalid"); field.classList.remove("has-error"); }
        });
      }

      function refresh() {
        var mine = ++sequence;
        var body = new URLSearchParams(new FormData(form));
        fetch(form.getAttribute("data-preview"), { method: "POST", body: body, credentials: "same-origin" })
          .then(function (response) { if (!response.ok) throw new Error(String(response.status)); return response.json(); })
          .then(function (result) {
            if (mine !== sequence) return;
            var problems = {};
            result.problems.forEach(function (p) { problems[p.input] = p.message; });
            show(problems);
            if (result.experiment !== null) {
              preview.textContent = result.experiment;
              preview.removeAttribute("data-stale");
              status.textContent = "The experiment as it will be saved: plain Chaos Toolkit JSON.";
            } else {
              preview.setAttribute("data-stale", "true");
              status.textContent = "Fix the fields marked above to see the experiment.";
            }
          })
          .catch(function () {
            if (mine === sequence) status.textContent = "The live preview is unavailable; use the Preview button.";
          });
      }

      form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
      form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
    })();
    """#
}
