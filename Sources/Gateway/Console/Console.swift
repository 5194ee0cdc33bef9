import FaultlineProto
import FaultlineRPC
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The web console under `/console`: server-rendered pages over the same RPC clients and
/// organisation scoping as the JSON API, signed in with a session cookie (`ConsoleSession`).
///
/// GET  /console                                overview: running now, runs per day and mean score (SVG), halt switch
/// POST /console/halt, POST /console/resume     the organisation's kill switch (HaltSwitch)
/// GET  /console/sign-in, POST /console/sign-in paste an API token; POST /console/sign-out
/// GET  /console/experiments[?q=&tags=a,b&tag=]  list (all the tags); /console/experiments/{id}[?revision=N] one
/// POST /console/experiments/{id}/run           run now, then the execution page
/// GET  /console/import, POST /console/import   paste or load JSON/YAML; problems at their lines
/// GET  /console/templates[/{id}], POST …/{id}   new experiment from a template (TemplatePages)
/// GET  /console/executions/{id}                timeline (SSE), journal, log
/// POST /console/executions/{id}/pause|resume|terminate
/// GET  /console/executions/{id}/events/stream  the API's SSE, authorised by the cookie
/// GET  /console/environments[/new|/{id}], POST  create, update, delete (EnvironmentPages)
/// GET  /console/integrations[/new|/{id}], POST  create, update, delete (IntegrationPages)
/// GET  /console/plans…                         plans: list, one, new/edit with a live preview (PlanPages)
/// any other /console/... path                  an HTML 404 page
/// GET  /console/assets/console.css|console.js
struct Console {
    let gateway: Gateway
    var session: ConsoleSession { ConsoleSession(tokens: gateway.tokens) }
    var client: ExperimentsV1.ExperimentClient { gateway.experiments }

    func register(on router: Router<GatewayContext>, routes: RouteTable) {
        router.get("console/assets/console.css") { _, _ in Self.asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        router.get("console/assets/console.js") { _, _ in Self.asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }

        let open = router.group("console").add(middleware: ConsolePageMiddleware(session: session, requiresSession: false))
        open.get("sign-in") { request, _ in
            Pages.signIn(error: nil, status: .ok, secure: request.isSecure)
        }
        open.post("sign-in") { request, context in try await signIn(request, context) }

        let signedIn = router.group("console").add(middleware: ConsolePageMiddleware(session: session, requiresSession: true))
        // Each page's main service, so a page whose service is unreachable is a 503 naming it.
        let pages = signedIn.group().add(middleware: ConsoleBackend.Middleware(backend: .experiments))
        let secretPages = signedIn.group().add(middleware: ConsoleBackend.Middleware(backend: .secrets))
        let schedulePages = signedIn.group().add(middleware: ConsoleBackend.Middleware(backend: .schedules))
        pages.get { request, context in try await overview(request, context) }
        signedIn.post("sign-out") { request, context in
            let principal = try context.require(.read)
            _ = try await ConsoleForms.read(Empty.self, request, context)
            try await session.signOut(principal)
            var response = Response.seeOther("/console/sign-in")
            response.setCookie(ConsoleSession.expiredCookie(secure: request.isSecure))
            return response
        }
        ExperimentPages(console: self).register(on: pages)
        ExecutionPages(console: self).register(on: pages)
        HaltSwitch(console: self).register(on: schedulePages)
        EnvironmentPages(console: self).register(on: secretPages)
        IntegrationPages(console: self).register(on: secretPages)
        PlanPages(console: self).register(on: schedulePages)
        TemplatePages(console: self).register(on: pages)
        // Last: the router runs it for unmatched paths too (its not-found responder is built with
        // every router middleware), so an unknown console page is an HTML page, not a problem.
        router.add(middleware: ConsoleNotFoundMiddleware(routes: routes))
    }

    struct Empty: ConsoleForm { var csrf: String? }

    /// A button on one resource's page (pause, terminate, trigger…): write access, this session's
    /// form, then `body` with the resource's id, and back to the page `location(id)` names.
    func act<Form: ConsoleForm>(on kind: ResourceKind, _ form: Form.Type, _ request: Request, _ context: GatewayContext,
                                then location: (_ id: String) -> String,
                                _ body: (_ id: String, Form, CallOptions) async throws -> Void) async throws -> Response {
        _ = try context.require(.write)
        let id = try context.parameters.id(of: kind)
        let form = try await ConsoleForms.read(Form.self, request, context)
        try await body(id, form, gateway.callOptions(context))
        return Response.seeOther(location(id))
    }

    /// Deleting from a console page: an action whose confirmation box must be ticked, which the
    /// server checks whatever the browser did.
    func confirmedDelete(_ kind: ResourceKind, _ request: Request, _ context: GatewayContext, then location: String,
                         _ delete: (_ id: String, CallOptions) async throws -> Void) async throws -> Response {
        try await act(on: kind, FieldsForm.self, request, context, then: { _ in location }) { id, form, options in
            guard form.checked("confirm") else {
                throw Problem.badRequest("\(kind.rawValue).delete_unconfirmed", "tick the confirmation to delete the \(kind.rawValue)")
            }
            try await delete(id, options)
        }
    }

    private func signIn(_ request: Request, _ context: GatewayContext) async throws -> Response {
        // No session yet, so no CSRF token: a cross-site sign-in is refused by its Origin.
        guard ConsoleForms.sameOrigin(request) else { throw Problem.forbidden("cross-site sign-in refused") }
        struct Body: Decodable { var token: String? }
        let body = try await ConsoleForms.decode(Body.self, request, context)
        let value: String
        do {
            value = try await session.signIn(with: body.token ?? "")
        } catch ConsoleSession.SignInError.invalidToken {
            return Pages.signIn(error: "That token is not valid: it may be mistyped, expired or revoked.", status: .unauthorized, secure: request.isSecure)
        } catch ConsoleSession.SignInError.noReadAccess {
            return Pages.signIn(error: "A runner token cannot sign in to the console.", status: .forbidden, secure: request.isSecure)
        }
        var response = Response.seeOther("/console")
        response.setCookie(ConsoleSession.cookie(value, secure: request.isSecure))
        return response
    }

    private func overview(_ request: Request, _ context: GatewayContext) async throws -> Response {
        let principal = try context.require(.read)
        let days = 14
        let now = Date()
        let since = Calendar.utc.startOfDay(for: now).addingTimeInterval(-Double(days - 1) * 86_400)
        var list = ExperimentsV1.ListExecutionsRequest()
        list.pageSize = 200
        list.createdAfterUs = Int64(since.timeIntervalSince1970 * 1_000_000)
        var executions: [ExperimentsV1.Execution] = []
        // Bounded: the chart counts at most 2,000 runs and says so when there were more.
        var truncated = false
        for _ in 0..<10 {
            let page = try await client.listExecutions(list, options: gateway.callOptions(context))
            executions += page.executions
            list.pageToken = page.nextPageToken
            if page.nextPageToken.isEmpty { break }
            truncated = executions.count >= 2_000
        }
        var active = ExperimentsV1.ListExecutionsRequest()
        active.pageSize = 50
        active.states = [.pending, .running]
        let running = try await client.listExecutions(active, options: gateway.callOptions(context)).executions
        // At most 50 distinct experiments, looked up at once on the multiplexed connection.
        let options = try gateway.callOptions(context)
        let titles = await withTaskGroup(of: (String, String).self) { group in
            for id in Set(running.map(\.experimentId)) {
                group.addTask { [client] in
                    let found = try? await client.getExperiment(.init(experimentId: id), options: options)
                    return (id, found?.experiment?.title ?? id)
                }
            }
            return await group.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
        }
        let chart = RunsChart(executions: executions.map { ($0.createdAtUs, $0.state.apiName) }, days: days, endingAt: now)
        let scores = ScoreChart(executions: executions.map { ($0.createdAtUs, $0.score?.value) }, days: days, endingAt: now)
        let halt = await HaltSwitch(console: self).section(request, context, principal: principal)
        return try page(context, title: "Overview", section: .overview,
                        body: Pages.overview(chart: chart, scores: scores, truncated: truncated, running: running, titles: titles, halt: halt),
                        request: request)
    }

    /// A full page for the signed-in caller.
    func page(_ context: GatewayContext, title: String, section: Pages.Section, body: HTML,
              request: Request, status: HTTPResponse.Status = .ok) throws -> Response {
        guard let principal = context.principal else { throw Problem.unauthenticated }
        return Pages.layout(title: title, section: section, principal: principal,
                            csrf: ConsoleForms.csrf(of: request), body: body).response(status: status)
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300", .xContentTypeOptions: "nosniff"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Signs console requests in from the session cookie, sends the signed-out to the sign-in
/// page, and turns every error into an HTML page (the JSON API's problems are for programs).
struct ConsolePageMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let session: ConsoleSession
    let requiresSession: Bool

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        var context = context
        if requiresSession {
            guard let (principal, _) = try await session.principal(of: request) else {
                if request.method == .get || request.method == .head {
                    return Response(status: .found, headers: [.location: "/console/sign-in"])
                }
                return Pages.error(Problem.unauthenticated, signedIn: false).response(status: .unauthorized)
            }
            context.principal = principal
            context.logger[metadataKey: "org"] = "\(principal.organization)"
            context.logger[metadataKey: "token.id"] = "\(principal.tokenID)"
        }
        do {
            return try await next(request, context)
        } catch {
            // A page outside every backend group still never shows the RPC's own words.
            let problem = ConsoleBackend.unreachable(error) ? ConsoleBackend.problem(nil) : Problem(from: error)
            if problem.status.code >= 500 {
                context.logger.error("console request failed", metadata: ["error": "\(String(reflecting: type(of: error)))", "code": "\(problem.code)"])
            }
            return Pages.error(problem, signedIn: context.principal != nil).response(status: problem.status)
        }
    }
}

/// Any path under `/console` that no route matched: a 404 page (signed in or not, it names
/// nothing but the path's absence), or a 405 page when the path is a page asked with another
/// method (the edge adds `Allow`).
struct ConsoleNotFoundMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let routes: RouteTable

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            let path = request.uri.path
            guard path == "/console" || path.hasPrefix("/console/") else { throw error }
            let problem = routes.methods(for: path).isEmpty
                ? Problem(.notFound, code: "console.page_not_found", detail: "there is no such page in the console")
                : .methodNotAllowed(request.method)
            return Pages.error(problem, signedIn: request.cookies[ConsoleSession.cookieName] != nil).response(status: problem.status)
        }
    }
}

/// A form the console posts: URL-encoded, and carrying the session's CSRF token.
protocol ConsoleForm: Decodable {
    var csrf: String? { get }
}

/// Reading console forms.
enum ConsoleForms {
    /// The form of a signed-in request; 403 unless it carries this session's CSRF token and,
    /// when the browser names one, comes from this origin.
    static func read<Form: ConsoleForm>(_ type: Form.Type, _ request: Request, _ context: GatewayContext) async throws -> Form {
        let form = try await decode(Form.self, request, context)
        guard sameOrigin(request), let expected = csrf(of: request),
              let given = form.csrf, ConsoleSession.matches(given, expected) else {
            throw Problem(.forbidden, code: "console.csrf",
                          detail: "the form is stale or did not come from this console; reload the page and try again")
        }
        return form
    }

    /// A URL-encoded body as `Form`; 400 when it is not one.
    static func decode<Form: Decodable>(_ type: Form.Type, _ request: Request, _ context: GatewayContext) async throws -> Form {
        var buffer = try await request.bytes(context)
        let text = buffer.readString(length: buffer.readableBytes) ?? ""
        do {
            return try URLEncodedFormDecoder().decode(Form.self, from: text)
        } catch {
            throw Problem.badRequest("request.malformed", "the form could not be read")
        }
    }

    /// The session's CSRF token, derived from its cookie.
    static func csrf(of request: Request) -> String? {
        request.cookies[ConsoleSession.cookieName].map { ConsoleSession.csrfToken(for: $0.value) }
    }

    /// False when the browser says the request comes from another origin. Browsers send
    /// `Origin` on every POST; a request without one is not a browser's cross-site request.
    static func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }
}

extension Request {
    /// The values of a query parameter a GET form sent, decoded as forms encode them (`+` is a
    /// space; Hummingbird's `queryParameters` keeps it a plus); undecodable values are dropped.
    func formQuery(_ name: String) -> [String] {
        (uri.query ?? "").split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0].replacingOccurrences(of: "+", with: " ").removingPercentEncoding == name else { return nil }
            return parts.count == 1 ? "" : parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
    }

    /// Whether the browser reached the gateway over HTTPS (directly or through a TLS proxy).
    var isSecure: Bool {
        head.scheme == "https" || headers[HTTPField.Name("x-forwarded-proto")!]?.lowercased() == "https"
    }
}

extension Calendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}
