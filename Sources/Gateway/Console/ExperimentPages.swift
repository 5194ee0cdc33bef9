import FaultlineProto
import FaultlineRPC
import Foundation
import Hummingbird

/// Experiments: the list with search and tags, one experiment (its definition, steps,
/// revisions and runs), running it, and importing one with its problems shown at their lines.
struct ExperimentPages {
    let console: Console
    var gateway: Gateway { console.gateway }
    var client: ExperimentsV1.ExperimentClient { console.client }

    struct RunForm: ConsoleForm { var csrf: String? }
    struct ImportForm: ConsoleForm {
        var csrf: String?
        var source: String?
        var format: String?
        var file_name: String?
    }

    func register(on pages: RouterGroup<GatewayContext>) {
        pages.get("experiments") { request, context in try await list(request, context) }
        pages.get("experiments/{id}") { request, context in try await show(request, context) }
        pages.post("experiments/{id}/run") { request, context in
            _ = try context.require(.write)
            let id = try context.parameters.id(of: .experiment)
            _ = try await ConsoleForms.read(RunForm.self, request, context)
            var start = RunnersV1.StartRunRequest()
            start.experimentId = id
            let started = try await gateway.startRun(start, context)
            return Response.seeOther("/console/executions/\(started.run?.executionId ?? "")")
        }
        pages.get("import") { request, context in
            _ = try context.require(.write)
            return try console.page(context, title: "Import", section: .importing, body: importForm(request, form: nil, problems: []), request: request)
        }
        pages.post("import") { request, context in try await importExperiment(request, context) }
    }

    private func list(_ request: Request, _ context: GatewayContext) async throws -> Response {
        _ = try context.require(.read)
        var list = ExperimentsV1.ListExperimentsRequest()
        list.pageSize = 50
        list.pageToken = request.string("page_token") ?? ""
        let query = request.formQuery("q").first ?? ""
        let filter = TagFilter(request)
        let tags = filter.tags
        list.titleQuery = query
        list.tags = tags
        // A filter the service would refuse lists nothing; its problem is said at the field.
        let page = filter.problem == nil ? try await client.listExperiments(list, options: gateway.callOptions(context)) : .init()
        let trends = try await RecentScores.load(for: Set(page.experiments.map(\.id)), client: client, options: gateway.callOptions(context))
        let rows = page.experiments.map { e -> HTML in
            let tagLinks = e.tags.map { tag -> HTML in "<a class=\"tag\" href=\"/console/experiments?tag=\(Self.query(tag))\">\(tag)</a>" }
            let last: HTML = e.lastExecution.map { "<a href=\"/console/executions/\($0.id)\">\(Pages.status($0.state.apiName))</a>" } ?? "<span class=\"muted\">never ran</span>"
            return """
            <tr><td data-label="Title"><a href="/console/experiments/\(e.id)">\(e.title.isEmpty ? "(untitled)" : e.title)</a></td>
            <td data-label="Tags">\(tagLinks)</td><td data-label="Last outcome">\(last)</td>
            <td data-label="Score">\(Pages.score(e.score?.value))</td>
            <td data-label="Trend">\(Sparkline(scores: trends.scores[e.id] ?? []).svg(label: "Scores of the latest runs, oldest first"))</td>
            <td data-label="Updated">\(Pages.time(e.updatedAtUs))</td></tr>
            """
        }
        let table: HTML = filter.problem != nil ? "<p class=\"muted\">Fix the tags above to list experiments.</p>" : page.experiments.isEmpty
            ? "<p class=\"muted\">No experiments\(query.isEmpty && tags.isEmpty ? "" : " match"). <a href=\"/console/import\">Import one</a>.</p>"
            : """
            <div class="table-wrap"><table class="responsive" id="experiments"><caption class="sr-only">Experiments</caption>
            <thead><tr><th scope="col">Title</th><th scope="col">Tags</th><th scope="col">Last outcome</th><th scope="col">Score</th><th scope="col">Trend</th><th scope="col">Updated</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            <p class="muted" id="trend-note">Trend: the scores of each experiment's latest \(RecentScores.perExperiment) scored runs, oldest first, found among the organisation's newest \(trends.scanned) runs\(trends.complete ? "" : " (older runs are not looked at)").</p>
            """
        var nextQuery = "page_token=\(Self.query(page.nextPageToken))&q=\(Self.query(query))"
        for tag in tags { nextQuery += "&tag=\(Self.query(tag))" }
        let next: HTML = page.nextPageToken.isEmpty ? .empty : "<p><a href=\"/console/experiments?\(nextQuery)\">Next page</a></p>"
        let body: HTML = """
        <h1>Experiments</h1>
        <form method="get" action="/console/experiments" role="search" class="row">
        <div><label for="q">Title contains</label><input type="search" id="q" name="q" value="\(query)"></div>
        <div><label for="tags">Tags</label><input type="text" id="tags" name="tags" value="\(filter.fieldText)" aria-describedby="tags-hint tags-error"\(filter.problem == nil ? .empty : " aria-invalid=\"true\"" as HTML) autocomplete="off" spellcheck="false"></div>
        <div><button type="submit">Search</button> <a class="button" href="/console/import">Import</a></div>
        <p class="hint full" id="tags-hint">Separate tags with commas. An experiment is listed only when it carries <strong>all</strong> of them.</p>
        <p class="field-error full" id="tags-error" aria-live="polite">\(filter.problem ?? "")</p>
        </form>
        \(filter.summary(query: query))
        \(table)\(next)
        """
        return try console.page(context, title: "Experiments", section: .experiments, body: body, request: request,
                                status: filter.problem == nil ? .ok : .badRequest)
    }

    private func show(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let id = try context.parameters.id(of: .experiment)
        let options = try gateway.callOptions(context)
        let experiment = try await client.getExperiment(.init(experimentId: id), options: options).experiment ?? .init()
        let wanted = try request.integer("revision", in: 1...Int64.max) ?? 0
        let revision = try await client.getExperimentRevision(.init(experimentId: id, revision: wanted), options: options).revision ?? .init()
        var revisions = ExperimentsV1.ListExperimentRevisionsRequest()
        revisions.experimentId = id
        revisions.pageSize = 50
        let revisionList = try await client.listExperimentRevisions(revisions, options: options).revisions
        var runs = ExperimentsV1.ListExecutionsRequest()
        runs.experimentId = id
        runs.pageSize = 25
        runs.pageToken = request.string("runs_page") ?? ""
        let runsPage = try await client.listExecutions(runs, options: options)
        let runList = runsPage.executions

        let definition = JSONValue(text: revision.definitionJson) ?? .object([:])
        let pretty = SourceMap(text: revision.definitionJson).prettyJSON() ?? revision.definitionJson
        let warnings = revision.warnings.map { w -> HTML in "<li class=\"warning\"><code>\(w.path)</code> \(w.message)</li>" }
        let revisionRows = revisionList.map { r -> HTML in
            """
            <tr><td data-label="Revision"><a href="/console/experiments/\(id)?revision=\(r.revision)"\(r.revision == revision.revision ? " aria-current=\"true\"" as HTML : .empty)>\(r.revision)</a></td>
            <td data-label="Title">\(r.title)</td><td data-label="Format">\(r.sourceFormat == .yaml ? "YAML" : "JSON")</td><td data-label="Made">\(Pages.time(r.createdAtUs))</td></tr>
            """
        }
        let runButton: HTML = principal.role.allows(.write) ? """
            <form method="post" action="/console/experiments/\(id)/run"><input type="hidden" name="csrf" value="\(ConsoleForms.csrf(of: request) ?? "")">
            <button type="submit" id="run-experiment">Run now</button>
            <a class="button" href="/console/plans/new?experiment_id=\(id)">Plan this experiment</a></form>
            """ : .empty
        let body: HTML = """
        <h1>\(experiment.title.isEmpty ? "(untitled)" : experiment.title)</h1>
        <p>\(experiment.description)</p>
        <dl class="facts"><dt>Id</dt><dd><code>\(id)</code></dd>
        <dt>Tags</dt><dd>\(experiment.tags.map { tag -> HTML in "<a class=\"tag\" href=\"/console/experiments?tag=\(Self.query(tag))\">\(tag)</a>" })</dd>
        <dt>Score</dt><dd>\(Pages.score(experiment.score?.value)) \(runs.pageToken.isEmpty ? Sparkline(scores: runList.compactMap { $0.score?.value }.prefix(RecentScores.perExperiment).reversed()).svg(label: "Scores of the latest runs, oldest first") : .empty)</dd>
        <dt>Revision shown</dt><dd>\(revision.revision) of \(experiment.latestRevision) · <a href="/api/v1/experiments/\(id)/export?revision=\(revision.revision)">export JSON</a> (API token needed)</dd></dl>
        \(runButton)
        \(HTML.when(!warnings.isEmpty, "<h2>Warnings</h2><ul>\(warnings)</ul>"))
        <h2>Steps</h2>
        \(Self.steps(definition))
        <h2 id="runs">Runs</h2>
        \(Pages.executions(runList, caption: "Runs of this experiment"))
        \(HTML.when(!runsPage.nextPageToken.isEmpty, "<p><a id=\"older-runs\" href=\"/console/experiments/\(id)?runs_page=\(Self.query(runsPage.nextPageToken))#runs\">Older runs</a></p>"))
        <h2>Revisions</h2>
        <div class="table-wrap"><table class="responsive"><caption class="sr-only">Revisions</caption>
        <thead><tr><th scope="col">Revision</th><th scope="col">Title</th><th scope="col">Format</th><th scope="col">Made</th></tr></thead>
        <tbody>\(revisionRows)</tbody></table></div>
        <h2>Definition</h2>
        <pre id="definition" tabindex="0" aria-label="Definition, revision \(revision.revision)">\(pretty)</pre>
        """
        return try console.page(context, title: experiment.title, section: .experiments, body: body, request: request)
    }

    /// The hypothesis, method and rollbacks of a definition as numbered steps.
    static func steps(_ definition: JSONValue) -> HTML {
        var sections: [HTML] = []
        if let hypothesis = definition["steady-state-hypothesis"] {
            sections.append("""
                <h3>Steady-state hypothesis: \(hypothesis["title"]?.stringValue ?? "")</h3>
                <p class="muted">Checked before the method and again after it.</p>\(activities(hypothesis["probes"]))
                """)
        }
        sections.append("<h3>Method</h3>\(activities(definition["method"]))")
        sections.append("<h3>Rollbacks</h3>\(activities(definition["rollbacks"]))")
        return HTML.join(sections)
    }

    private static func activities(_ value: JSONValue?) -> HTML {
        guard case .array(let items)? = value, !items.isEmpty else { return "<p class=\"muted\">None.</p>" }
        let steps = items.map { item -> HTML in
            if let reference = item.stringValue { return "<li>the activity <code>\(reference)</code> again</li>" }
            let kind = item["type"]?.stringValue ?? "activity"
            let provider = item["provider"]
            var detail: HTML
            switch provider?["type"]?.stringValue {
            case "python":
                detail = "calls <code>\(provider?["module"]?.stringValue ?? "?").\(provider?["func"]?.stringValue ?? "?")</code>"
            case "process":
                detail = "runs <code>\(provider?["path"]?.stringValue ?? "?")</code>"
            case "http":
                detail = "requests <code>\(provider?["url"]?.stringValue ?? "?")</code>"
            case let other?:
                detail = "provider <code>\(other)</code>"
            case nil:
                detail = .empty
            }
            if let arguments = provider?["arguments"] {
                detail = "\(detail) with <code>\(arguments.text)</code>"
            }
            if let tolerance = item["tolerance"] { detail = "\(detail); tolerance <code>\(tolerance.text)</code>" }
            if case .bool(true)? = item["background"] { detail = "\(detail); in the background" }
            if let pauses = item["pauses"] { detail = "\(detail); pauses <code>\(pauses.text)</code>" }
            return "<li><strong>\(kind)</strong> <code>\(item["name"]?.stringValue ?? "?")</code>: \(detail)</li>"
        }
        return "<ol class=\"steps\">\(steps)</ol>"
    }

    private func importExperiment(_ request: Request, _ context: GatewayContext) async throws -> Response {
        _ = try context.require(.write)
        var form = try await ConsoleForms.read(ImportForm.self, request, context)
        // Browsers send a textarea's lines with CRLF; the experiment is kept with plain LF.
        form.source = form.source?.replacingOccurrences(of: "\r\n", with: "\n")
        let text = form.source ?? ""
        var create = ExperimentsV1.CreateExperimentRequest()
        create.source = .init(text: text, format: form.format == "yaml" ? .yaml : form.format == "json" ? .json : .unspecified,
                              fileName: form.file_name ?? "")
        do {
            guard !text.isEmpty else {
                throw Problem.badRequest("experiment.empty", "paste an experiment or choose a file")
            }
            let created = try await client.createExperiment(create, options: gateway.callOptions(context))
            return Response.seeOther("/console/experiments/\(created.experiment?.id ?? "")")
        } catch let error as RPCError where error.validationReport != nil {
            let problems = error.validationReport?.problems ?? []
            return try console.page(context, title: "Import", section: .importing,
                                    body: importForm(request, form: form, problems: problems), request: request, status: .badRequest)
        } catch let problem as Problem where problem.code == "experiment.empty" {
            let empty = ExperimentsV1.ValidationProblem(path: "$", severity: .error, code: problem.code, message: problem.detail)
            return try console.page(context, title: "Import", section: .importing,
                                    body: importForm(request, form: form, problems: [empty]), request: request, status: .badRequest)
        }
    }

    private func importForm(_ request: Request, form: ImportForm?, problems: [ExperimentsV1.ValidationProblem]) -> HTML {
        let format = form?.format ?? "auto"
        func option(_ value: String, _ label: String) -> HTML {
            "<option value=\"\(value)\"\(format == value ? " selected" as HTML : .empty)>\(label)</option>"
        }
        let errors = problems.filter { $0.severity == .error }.count
        let report: HTML = problems.isEmpty ? .empty : """
            <div class="notice" role="alert" id="import-problems"><p><strong>The experiment was not imported: \(errors) error(s), \(problems.count - errors) warning(s).</strong></p></div>
            \(Self.annotatedSource(form?.source ?? "", problems: problems))
            """
        return """
        <h1>Import an experiment</h1>
        <p>A Chaos Toolkit experiment in JSON or YAML, pasted or loaded from a file. It is kept exactly as given.</p>
        \(report)
        <form method="post" action="/console/import" id="import-form">
        <input type="hidden" name="csrf" value="\(ConsoleForms.csrf(of: request) ?? "")">
        <input type="hidden" name="file_name" id="file-name" value="\(form?.file_name ?? "")">
        <label for="source-file">Load a file (JSON or YAML)</label>
        <input type="file" id="source-file" accept=".json,.yaml,.yml,application/json,application/yaml">
        <label for="source">Experiment</label>
        <textarea id="source" name="source" spellcheck="false" required\(problems.isEmpty ? .empty : " aria-describedby=\"import-problems\"" as HTML)>\(form?.source ?? "")</textarea>
        <label for="format">Format</label>
        <select id="format" name="format">\(option("auto", "Detect"))\(option("json", "JSON"))\(option("yaml", "YAML"))</select>
        <p><button type="submit" id="import-submit">Import</button></p>
        </form>
        """
    }

    /// The source with line numbers and each problem in a row right under the line it concerns
    /// (problems without a line come first).
    static func annotatedSource(_ source: String, problems: [ExperimentsV1.ValidationProblem]) -> HTML {
        let map = SourceMap(text: source)
        // "\r\n" is one Character in Swift: split on any line break.
        let lines = source.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var byLine: [Int: [ExperimentsV1.ValidationProblem]] = [:]
        var unplaced: [ExperimentsV1.ValidationProblem] = []
        for problem in problems {
            let line = SourceMap.line(inMessage: problem.message) ?? (problem.path == "$" ? nil : map.line(of: problem.path))
            if let line, (1...lines.count).contains(line) { byLine[line, default: []].append(problem) } else { unplaced.append(problem) }
        }
        func row(_ problem: ExperimentsV1.ValidationProblem, line: Int?) -> HTML {
            let severity = problem.severity == .warning ? "warning" : "error"
            return """
                <tr class="problem \(severity)"\(line.map { " id=\"problem-line-\($0)\"" as HTML } ?? .empty)><td class="n"><span class="sr-only">\(severity)</span>!</td>
                <td>\(line.map { "Line \($0): " } ?? "")<strong>\(severity)</strong> <code>\(problem.code)</code> at <code>\(problem.path)</code>: \(problem.message)</td></tr>
                """
        }
        var rows = unplaced.map { row($0, line: nil) }
        for (index, line) in lines.enumerated() {
            let number = index + 1
            let here = byLine[number] ?? []
            rows.append("<tr\(here.isEmpty ? .empty : " class=\"has-problem\"" as HTML)><td class=\"n\">\(number)</td><td>\(line)</td></tr>")
            rows += here.map { row($0, line: number) }
        }
        return "<div class=\"table-wrap\"><table class=\"source\" id=\"annotated-source\"><caption class=\"sr-only\">The experiment with its problems</caption><tbody>\(rows)</tbody></table></div>"
    }

    /// A value for a URL query.
    static func query(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? ""
    }
}

/// The latest run scores of the experiments on a list page, from one bounded scan of the
/// organisation's newest runs (pages of 200, at most `scanLimit` runs) instead of a call per
/// experiment. It stops early once every listed experiment has its `perExperiment` scores.
struct RecentScores {
    static let perExperiment = 10
    static let scanLimit = 1_000

    /// Oldest first, per experiment id.
    var scores: [String: [Double]] = [:]
    var scanned = 0
    /// False when the scan stopped at its limit with runs left.
    var complete = true

    static func load(for experiments: Set<String>, client: ExperimentsV1.ExperimentClient, options: CallOptions) async throws -> RecentScores {
        var found = RecentScores()
        guard !experiments.isEmpty else { return found }
        var newestFirst: [String: [Double]] = [:]
        var list = ExperimentsV1.ListExecutionsRequest()
        list.pageSize = 200
        while found.scanned < scanLimit {
            let page = try await client.listExecutions(list, options: options)
            found.scanned += page.executions.count
            for execution in page.executions where experiments.contains(execution.experimentId) {
                guard let score = execution.score?.value, newestFirst[execution.experimentId, default: []].count < perExperiment else { continue }
                newestFirst[execution.experimentId, default: []].append(score)
            }
            list.pageToken = page.nextPageToken
            if page.nextPageToken.isEmpty { break }
            if experiments.allSatisfy({ newestFirst[$0]?.count == perExperiment }) { break }
            if found.scanned >= scanLimit { found.complete = false }
        }
        found.scores = newestFirst.mapValues { Array($0.reversed()) }
        return found
    }
}

extension Response {
    /// 303: the browser follows with a GET (after a form POST).
    static func seeOther(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }
}
