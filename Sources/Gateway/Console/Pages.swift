import FaultlineProto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceKit

/// The console's page shell and its shared pieces.
enum Pages {
    enum Section {
        case overview, experiments, importing, templates, none
        case environments, integrations
        case plans
    }

    static func layout(title: String, section: Section, principal: Principal?, csrf: String?, body: HTML) -> HTML {
        func link(_ href: String, _ label: String, _ mine: Section) -> HTML {
            "<li><a href=\"\(href)\"\(section == mine ? " aria-current=\"page\"" as HTML : .empty)>\(label)</a></li>"
        }
        let nav: HTML = principal.map { principal in
            """
            <nav aria-label="Main"><ul>\(link("/console", "Overview", .overview))\(link("/console/experiments", "Experiments", .experiments))\(link("/console/import", "Import", .importing))\(link("/console/templates", "From a template", .templates))
            \(link("/console/environments", "Environments", .environments))\(link("/console/integrations", "Integrations", .integrations))\(link("/console/plans", "Plans", .plans))
            </ul></nav>
            <div class="who"><span>\(principal.organization.rawValue) · \(principal.role.rawValue)</span>
            <form method="post" action="/console/sign-out"><input type="hidden" name="csrf" value="\(csrf ?? "")"><button type="submit">Sign out</button></form></div>
            """
        } ?? .empty
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · Faultline</title><link rel="stylesheet" href="/console/assets/console.css"></head>
        <body><a class="skip" href="#content">Skip to content</a>
        <header class="top"><a class="brand" href="/console">Faultline</a>\(nav)</header>
        <main id="content" tabindex="-1">\(body)</main>
        <script src="/console/assets/console.js" defer></script>
        </body></html>
        """
    }

    static func signIn(error: String?, status: HTTPResponse.Status, secure: Bool) -> Response {
        let notice: HTML = error.map { "<p class=\"notice\" role=\"alert\" id=\"sign-in-error\">\($0)</p>" } ?? .empty
        let body: HTML = """
        <h1>Sign in</h1>
        <p>Paste an API token (<code>flt_…</code>) of your organisation. The console keeps a session of its own and never stores the token.</p>
        \(notice)
        <form method="post" action="/console/sign-in">
        <label for="token">API token</label>
        <input type="password" id="token" name="token" autocomplete="off" required spellcheck="false"\(error == nil ? .empty : " aria-describedby=\"sign-in-error\"" as HTML)>
        <p><button type="submit">Sign in</button></p>
        </form>
        """
        var response = layout(title: "Sign in", section: .none, principal: nil, csrf: nil, body: body).response(status: status)
        if error != nil { response.setCookie(ConsoleSession.expiredCookie(secure: secure)) }
        return response
    }

    static func error(_ problem: Problem, signedIn: Bool) -> HTML {
        let next: HTML = signedIn ? "<a href=\"/console\">Back to the overview</a>" : "<a href=\"/console/sign-in\">Sign in</a>"
        return layout(title: problem.status.reasonPhrase, section: .none, principal: nil, csrf: nil, body: """
            <h1>\(problem.status.code) \(problem.status.reasonPhrase)</h1>
            <p class="notice" role="alert">\(problem.detail)</p>
            <p class="muted">Code <code>\(problem.code)</code></p><p>\(next)</p>
            """)
    }

    static func status(_ state: String) -> HTML {
        "<span class=\"status s-\(state)\">\(state.replacingOccurrences(of: "_", with: " "))</span>"
    }

    static func time(_ us: Int64) -> HTML {
        guard us > 0 else { return "—" }
        let date = Date(timeIntervalSince1970: Double(us) / 1_000_000)
        return "<time datetime=\"\(date.formatted(.iso8601))\">\(timestamp.string(from: date)) UTC</time>"
    }

    static func score(_ value: Double?) -> HTML {
        guard let value else { return "<span class=\"muted\">—</span>" }
        return "\(String(format: "%.0f", value * 100))%"
    }

    private static let timestamp: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter
    }()

    /// A table of executions (newest first).
    static func executions(_ executions: [ExperimentsV1.Execution], caption: String, experimentTitles: [String: String] = [:]) -> HTML {
        guard !executions.isEmpty else { return "<p class=\"muted\">\(caption): none.</p>" }
        let rows = executions.map { e -> HTML in
            let experiment: HTML = experimentTitles.isEmpty ? .empty
                : "<td data-label=\"Experiment\"><a href=\"/console/experiments/\(e.experimentId)\">\(experimentTitles[e.experimentId] ?? e.experimentId)</a></td>"
            return """
            <tr><td data-label="Run"><a href="/console/executions/\(e.id)">\(e.id)</a></td>\(experiment)
            <td data-label="Status">\(status(e.state.apiName))</td><td data-label="Started">\(time(e.startedAtUs > 0 ? e.startedAtUs : e.createdAtUs))</td>
            <td data-label="Ended">\(time(e.endedAtUs))</td><td data-label="Score">\(score(e.score?.value))</td></tr>
            """
        }
        let experimentHeader: HTML = experimentTitles.isEmpty ? .empty : "<th scope=\"col\">Experiment</th>"
        return """
        <div class="table-wrap"><table class="responsive"><caption class="sr-only">\(caption)</caption>
        <thead><tr><th scope="col">Run</th>\(experimentHeader)<th scope="col">Status</th><th scope="col">Started</th><th scope="col">Ended</th><th scope="col">Score</th></tr></thead>
        <tbody>\(rows)</tbody></table></div>
        """
    }

    static func overview(chart: RunsChart, scores: ScoreChart, truncated: Bool, running: [ExperimentsV1.Execution],
                         titles: [String: String], halt: HTML) -> HTML {
        """
        <h1>Overview</h1>
        \(halt)
        <h2 id="running-now">Running now</h2>
        \(executions(running, caption: "Runs in progress", experimentTitles: titles))
        <h2 id="runs-per-day">Runs per day by outcome</h2>
        <p class="muted">The last \(chart.days) days, UTC\(truncated ? " (the first 2,000 runs only)" : "").</p>
        \(chart.svg())
        \(chart.legend())
        <details><summary>The same as a table</summary>\(chart.table())</details>
        <h2 id="score-over-time">The fleet's score over time</h2>
        <p class="muted">The mean score of the runs scored each day (UTC); a gap is a day without a scored run.</p>
        \(scores.svg())
        <details><summary>The same as a table</summary>\(scores.table())</details>
        """
    }
}

extension HTML {
    /// The page as a response, with headers that keep it from being framed, sniffed, cached or
    /// made to run anything but the console's own script.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [
            .contentType: "text/html; charset=utf-8",
            .cacheControl: "no-store",
            .contentSecurityPolicy: "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .xContentTypeOptions: "nosniff",
            HTTPField.Name("referrer-policy")!: "same-origin",
        ], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
