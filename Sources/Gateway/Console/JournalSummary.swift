import Foundation

/// A Chaos Toolkit journal laid out as a table: every activity the run played, in order (the
/// hypothesis before, the method, the hypothesis after, the rollbacks), with its status, how
/// long it took and what it returned or raised. The JSON itself stays on the page below it.
struct JournalSummary {
    let journal: JSONValue

    struct Row {
        var phase: String
        var run: JSONValue
    }

    var rows: [Row] {
        func runs(_ value: JSONValue?, _ phase: String) -> [Row] {
            guard case .array(let items)? = value else { return [] }
            return items.map { Row(phase: phase, run: $0) }
        }
        let steady = journal["steady_states"]
        return runs(steady?["before"]?["probes"], "hypothesis before") + runs(journal["run"], "method")
            + runs(steady?["after"]?["probes"], "hypothesis after") + runs(journal["rollbacks"], "rollbacks")
    }

    func html() -> HTML {
        let rows = self.rows
        let status = journal["status"]?.stringValue ?? "unknown"
        let met: (String) -> HTML = { phase in
            switch journal["steady_states"]?[phase]?["steady_state_met"] {
            case .bool(true)?: "<span class=\"status s-completed\">met</span>"
            case .bool(false)?: "<span class=\"status s-failed\">not met</span>"
            default: "<span class=\"muted\">not checked</span>"
            }
        }
        let cells = rows.map { row -> HTML in
            let activity = row.run["activity"]
            // A probe that ran but whose value missed its tolerance "succeeded" as an activity.
            let state = row.run["tolerance_met"] == .bool(false) ? "tolerance not met" : row.run["status"]?.stringValue ?? "?"
            let duration: HTML = switch row.run["duration"] {
            case .double(let seconds)?: "\(String(format: "%.2f", seconds)) s"
            case .int(let seconds)?: "\(seconds) s"
            default: "—"
            }
            let detail: String = row.run["exception"].map { Self.excerpt($0) } ?? row.run["output"].map { Self.excerpt($0) } ?? ""
            return """
            <tr class="journal-\(state == "succeeded" ? "ok" : "bad")"><td data-label="Phase">\(row.phase)</td>
            <td data-label="Activity"><code>\(activity?["name"]?.stringValue ?? "?")</code> <span class="muted">\(activity?["type"]?.stringValue ?? "")</span></td>
            <td data-label="Status"><span class="status s-\(state == "succeeded" ? "completed" : "failed")">\(state)</span></td>
            <td data-label="Took">\(duration)</td><td data-label="Output"><code class="excerpt">\(detail)</code></td></tr>
            """
        }
        let table: HTML = rows.isEmpty ? "<p class=\"muted\">The journal records no activity.</p>" : """
            <div class="table-wrap"><table class="responsive" id="journal-activities"><caption class="sr-only">Activities in the journal</caption>
            <thead><tr><th scope="col">Phase</th><th scope="col">Activity</th><th scope="col">Status</th><th scope="col">Took</th><th scope="col">Output or error</th></tr></thead>
            <tbody>\(cells)</tbody></table></div>
            """
        return """
        <dl class="facts" id="journal-facts"><dt>Journal status</dt><dd><code>\(status)</code>\(HTML.when(journal["deviated"] == .bool(true), " (deviated)"))</dd>
        <dt>Hypothesis before</dt><dd>\(met("before"))</dd><dt>Hypothesis after</dt><dd>\(met("after"))</dd></dl>
        \(table)
        """
    }

    /// A value shortened for a table cell.
    static func excerpt(_ value: JSONValue) -> String {
        let text: String = switch value {
        case .string(let s): s
        case .array(let lines) where lines.allSatisfy({ $0.stringValue != nil }): lines.compactMap(\.stringValue).joined()
        default: value.text
        }
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
