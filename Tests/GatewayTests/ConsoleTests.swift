import FaultlineProto
import Foundation
@testable import Gateway
import HTTPTypes
import ServiceKit
import Testing

/// The web console over a live gateway: escaping, organisation scoping, CSRF and the session
/// cookie. (The pages in a real browser: Tests/Console, pytest + Selenium.)
@Suite("Console", .serialized)
struct ConsoleTests {
    static let hostile = #"<script>alert("pwned")</script> & 'quotes'"#

    @Test("HTML: interpolated text is escaped, markup only from literals; JSON for script elements cannot close them")
    func escaping() {
        let title = Self.hostile + "\u{0}"
        let html: HTML = "<h1 title=\"\(title)\">\(title)</h1>"
        #expect(html.text == #"<h1 title="&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;\#u{FFFD}">&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;\#u{FFFD}</h1>"#)
        let nested: HTML = "<p>\(html)</p>"
        #expect(nested.text == "<p>\(html.text)</p>")  // HTML is not escaped twice
        #expect(!HTML.scriptJSON(#"{"t":"</script><!--"}"#).text.contains("<"))
    }

    @Test("SourceMap: JSON paths to lines in JSON and YAML, quoted keys, missing members at their parent; malformed paths")
    func sourceMap() {
        let json = """
            {
              "title": "t",
              "method": [
                {"type": "action",
                 "name": "a", "provider": {"type": "process"}},
                {
                  "weird key's": 1
                }
              ]
            }
            """
        let map = SourceMap(text: json)
        #expect(map.line(of: "$.title") == 2)
        #expect(map.line(of: "$.method[0]") == 4)
        #expect(map.line(of: "$.method[0].provider") == 5)
        #expect(map.line(of: "$.method[0].provider.path") == 5)  // missing: where its parent is
        #expect(map.line(of: #"$.method[1]['weird key\'s']"#) == 7)
        #expect(map.line(of: "$.method[9]") == 3)
        let yaml = SourceMap(text: "title: t\nmethod:\n  - type: action\n    name: x\n")
        #expect(yaml.line(of: "$.method[0].name") == 4)
        for malformed in ["", "method", "$.", "$[x]", "$['open", "$[1"] { #expect(SourceMap.components(of: malformed) == nil) }
        #expect(SourceMap(text: "{\"b\": [1, true, null, \"x\"], \"a\": {}}").prettyJSON() == "{\n  \"b\": [\n    1,\n    true,\n    null,\n    \"x\"\n  ],\n  \"a\": {}\n}")
        #expect(SourceMap.line(inMessage: "unexpected token at line 12, column 3 (byte 99)") == 12)
        #expect(SourceMap.line(inMessage: "no place") == nil)
    }

    @Test("runs chart: runs counted per UTC day and outcome; outside the window ignored")
    func chart() {
        let end = Date(timeIntervalSince1970: 1_700_000_000)  // 2023-11-14 22:13 UTC
        let dayUs: Int64 = 86_400_000_000, endUs: Int64 = 1_700_000_000_000_000
        let chart = RunsChart(executions: [(endUs, "completed"), (endUs - 1, "failed"), (endUs - dayUs, "completed"),
                                           (endUs - 20 * dayUs, "completed"), (endUs, "pending")], days: 3, endingAt: end)
        #expect(chart.buckets.map(\.counts) == [[:], ["completed": 1], ["completed": 1, "failed": 1, "running": 1]])
        #expect(chart.total == 4)
        #expect(chart.svg().text.contains("<title>11-14: 1 failed</title>"))
    }

    @Test("sign-in: session cookie HttpOnly, SameSite=Strict, path /console, Secure behind TLS; not the pasted token; sign-out revokes it")
    func session() async throws {
        try await Harness.with("console_session") { h in
            #expect(try await h.call(.get, "/console/experiments", token: nil).headers[.location] == "/console/sign-in")
            let bad = try await h.form("/console/sign-in", ["token": "flt_nope"])
            #expect(bad.status == 401)
            #expect(bad.text.contains("not valid"))
            #expect(try await h.form("/console/sign-in", ["token": h.token("a", .runner)]).status == 403)

            let signIn = try await h.form("/console/sign-in", ["token": " \(h.token("a", .viewer))\n"])
            #expect(signIn.status == 303)
            let header = try #require(signIn.headers[.setCookie])
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=43200"] { #expect(header.contains(flag)) }
            #expect(!header.contains("Secure"))
            let cookie = try #require(ConsoleTests.cookie(in: header))
            #expect(cookie != h.token("a", .viewer))
            let session = try #require(try await h.tokens.authenticate(cookie))
            #expect(session.role == .viewer)
            #expect(session.organization == h.organizations["a"])

            let secure = try await h.form("/console/sign-in", ["token": h.token("a", .viewer)], headers: [HTTPField.Name("x-forwarded-proto")!: "https"])
            #expect(secure.headers[.setCookie]?.contains("Secure") == true)

            let page = try await h.page("/console/experiments", cookie: cookie)
            #expect(page.status == 200)
            #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(page.text.contains(h.organizations["a"]!.rawValue))
            #expect(!page.text.contains("/console/import\" aria-current"))

            // Sign-out needs the CSRF token, then the session is dead.
            #expect(try await h.form("/console/sign-out", [:], cookie: cookie).status == 403)
            #expect(try await h.page("/console/experiments", cookie: cookie).status == 200)
            let out = try await h.form("/console/sign-out", ["csrf": ConsoleSession.csrfToken(for: cookie)], cookie: cookie)
            #expect(out.status == 303)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await h.page("/console/experiments", cookie: cookie).status == 302)
            #expect(try await h.tokens.authenticate(cookie) == nil)
        }
    }

    @Test("escaping: a hostile experiment title and tag are text on every page, never markup")
    func hostileTitles() async throws {
        try await Harness.with("console_hostile") { h in
            let source = Fixtures.experiment(title: #"<script>alert(\"pwned\")</script>"#, tags: [#"<img src=x onerror=alert(1)>"#])
            let created = try await h.call(.post, "/api/v1/experiments", token: h.token(), body: source)
            #expect(created.status == 201)
            let id = try #require((created.json["experiment"] as? [String: Any])?["id"] as? String)
            let execution = try await h.createExecution(of: id)
            let cookie = try await h.signIn(h.token("a", .editor))
            for path in ["/console/experiments", "/console/experiments/\(id)", "/console/executions/\(execution)", "/console"] {
                let page = try await h.page(path, cookie: cookie)
                #expect(page.status == 200, "\(path)")
                #expect(!page.text.contains("<script>alert"), "\(path)")
                #expect(!page.text.contains("<img src=x"), "\(path)")
                // The only script element is the console's own.
                #expect(page.text.components(separatedBy: "<script").count == 2, "\(path)")
            }
            let list = try await h.page("/console/experiments?q=script", cookie: cookie)
            #expect(list.text.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"))
            #expect(list.text.contains("&lt;img src=x onerror=alert(1)&gt;"))
        }
    }

    @Test("tags filter: several from the form (comma-separated) or the URL (tag=, as before), all of them required; chips remove one; too many or too long said at the field; hostile tags escaped")
    func tagFilter() async throws {
        try await Harness.with("console_tags") { h in
            let both = try await h.importExperiment("tagged web and db", tags: ["web", "db"])
            let web = try await h.importExperiment("tagged web", tags: ["web"])
            _ = try await h.importExperiment("tagged db", tags: ["db"])
            _ = try await h.importExperiment("tagged hostile", tags: [#"<img src=x onerror=alert(1)>"#])
            let cookie = try await h.signIn(h.token("a", .viewer))
            func titles(_ path: String) async throws -> Set<String> {
                let page = try await h.page(path, cookie: cookie)
                let titles = page.text.components(separatedBy: "\">tagged ").dropFirst().map { "tagged " + $0.prefix { $0 != "<" } }
                return Set(titles)
            }
            // The form's field, with spaces and a repeated tag; and the URLs that worked before.
            #expect(try await titles("/console/experiments?q=&tags=web%2C+db%2C+%2Cweb") == ["tagged web and db"])
            #expect(try await titles("/console/experiments?tag=web&tag=db") == ["tagged web and db"])
            #expect(try await titles("/console/experiments?tag=web") == ["tagged web and db", "tagged web"])
            #expect(try await titles("/console/experiments?tag=web&tags=db") == ["tagged web and db"])
            #expect(try await titles("/console/experiments?tags=nothing") == [])
            // A GET form sends spaces as `+`: the title search reads them so too.
            #expect(try await titles("/console/experiments?q=tagged+web&tags=") == ["tagged web and db", "tagged web"])
            let page = try await h.page("/console/experiments?tags=web,+db", cookie: cookie)
            #expect(page.status == 200)
            #expect(page.text.contains(#"<input type="text" id="tags" name="tags" value="web, db" aria-describedby="tags-hint tags-error""#))
            #expect(page.text.contains("carries <strong>all</strong> of them"))
            #expect(page.text.contains(#"<p id="tag-filter">Tagged with all of: "#))
            // Removing web keeps db (and the search), as a URL of tag= parameters.
            #expect(page.text.contains(#"<a class="tag" href="/console/experiments?q=&amp;tag=db" aria-label="Remove the tag web from the filter">web ×</a>"#))
            #expect(page.text.contains(#"href="/console/experiments?q=" id="clear-tags""#))
            #expect(page.text.contains("/console/experiments/\(both)") && !page.text.contains("/console/experiments/\(web)\""))

            let many = (0...50).map { "t\($0)" }.joined(separator: ",")
            for (query, message) in [("tags=\(many)", "at most 50 tags"), ("tag=\(String(repeating: "x", count: 201))", "at most 200 bytes"), ("tag=a%00b", "NUL")] {
                let refused = try await h.page("/console/experiments?\(query)", cookie: cookie)
                #expect(refused.status == 400, "\(message)")
                #expect(refused.text.contains(#"id="tags-error" aria-live="polite">"#) && refused.text.contains(message), "\(message)")
                #expect(refused.text.contains(#"aria-invalid="true""#) && !refused.text.contains("id=\"experiments\""), "\(message)")
            }
            let hostile = try await h.page("/console/experiments?tags=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E", cookie: cookie)
            #expect(hostile.status == 200 && !hostile.text.contains("<img src=x") && hostile.text.contains("&lt;img src=x onerror=alert(1)&gt; ×"))
            #expect(try await titles("/console/experiments?tags=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E") == ["tagged hostile"])
        }
    }

    @Test("organisations: another organisation's experiment and execution are 404 pages showing nothing of them; lists show only one's own")
    func crossOrganisation() async throws {
        try await Harness.with("console_scope") { h in
            let secret = "secret-title-of-org-a"
            let id = try await h.importExperiment(secret, org: "a")
            let execution = try await h.createExecution(of: id, org: "a")
            let cookie = try await h.signIn(h.token("b", .owner))
            for path in ["/console/experiments/\(id)", "/console/executions/\(execution)", "/console/experiments/\(id)?revision=1",
                         "/console/executions/\(execution)/events/stream", "/console/experiments/exp_nonsense"] {
                let page = try await h.page(path, cookie: cookie)
                #expect(page.status == 404, "\(path)")
                #expect(!page.text.contains(secret), "\(path)")
                #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            }
            let csrf = ConsoleSession.csrfToken(for: cookie)
            for action in ["pause", "resume", "terminate"] {
                #expect(try await h.form("/console/executions/\(execution)/\(action)", ["csrf": csrf], cookie: cookie).status == 404)
            }
            #expect(!(try await h.page("/console/experiments", cookie: cookie)).text.contains(secret))
            #expect(!(try await h.page("/console", cookie: cookie)).text.contains(execution))
            let own = try await h.page("/console/experiments", cookie: try await h.signIn(h.token("a", .viewer)))
            #expect(own.text.contains(secret))
        }
    }

    @Test("a deleted experiment: its page and revisions are 404 pages, its runs' pages still show them")
    func deletedExperiment() async throws {
        try await Harness.with("console_deleted") { h in
            let id = try await h.importExperiment("soon deleted")
            let execution = try await h.createExecution(of: id)
            let cookie = try await h.signIn(h.token("a", .viewer))
            #expect(try await h.page("/console/experiments/\(id)", cookie: cookie).status == 200)
            #expect(try await h.call(.delete, "/api/v1/experiments/\(id)", token: h.token()).status == 200)
            for path in ["/console/experiments/\(id)", "/console/experiments/\(id)?revision=1"] {
                let page = try await h.page(path, cookie: cookie)
                #expect(page.status == 404, "\(path)")
                #expect(page.headers[.contentType]?.hasPrefix("text/html") == true, "\(path)")
                #expect(!page.text.contains("soon deleted"), "\(path)")
            }
            let run = try await h.page("/console/executions/\(execution)", cookie: cookie)
            #expect(run.status == 200)
            #expect(run.text.contains("href=\"/console/experiments/\(id)\""))
            #expect(!(try await h.page("/console/experiments", cookie: cookie)).text.contains("soon deleted"))
        }
    }

    @Test("CSRF: form posts without the session's token, with another session's or from another origin are 403 and change nothing")
    func csrf() async throws {
        try await Harness.with("console_csrf") { h in
            let cookie = try await h.signIn(h.token("a", .editor))
            let other = try await h.signIn(h.token("a", .editor))
            let source = Fixtures.experiment(title: "csrf probe")
            let attempts: [([String: String], HTTPFields)] = [
                (["source": source], [:]),
                (["source": source, "csrf": ""], [:]),
                (["source": source, "csrf": ConsoleSession.csrfToken(for: other)], [:]),
                (["source": source, "csrf": ConsoleSession.csrfToken(for: cookie)], [HTTPField.Name("origin")!: "https://evil.example"]),
            ]
            for (fields, headers) in attempts {
                let reply = try await h.form("/console/import", fields, cookie: cookie, headers: headers)
                #expect(reply.status == 403)
                #expect(reply.text.contains("console.csrf"))
            }
            #expect(!(try await h.page("/console/experiments", cookie: cookie)).text.contains("csrf probe"))
            // Sign-in from another origin (login CSRF) is refused too.
            #expect(try await h.form("/console/sign-in", ["token": h.token()], headers: [HTTPField.Name("origin")!: "https://evil.example"]).status == 403)

            let good = try await h.form("/console/import", ["source": source, "csrf": ConsoleSession.csrfToken(for: cookie)], cookie: cookie)
            #expect(good.status == 303)
            let location = try #require(good.headers[.location])
            #expect(location.hasPrefix("/console/experiments/exp_"))
            #expect(try await h.page(location, cookie: cookie).text.contains("csrf probe"))
            // A viewer's session may not import, whatever its token.
            let viewer = try await h.signIn(h.token("a", .viewer))
            #expect(try await h.form("/console/import", ["source": source, "csrf": ConsoleSession.csrfToken(for: viewer)], cookie: viewer).status == 403)
        }
    }

    @Test("import: validation problems are shown under the line they concern; a syntax error at its line; the source is kept")
    func importProblems() async throws {
        try await Harness.with("console_import") { h in
            let cookie = try await h.signIn(h.token())
            let csrf = ConsoleSession.csrfToken(for: cookie)
            let invalid = """
                {
                  "title": "t",
                  "description": "d",
                  "method": [
                    {"type": "action", "name": "no provider"}
                  ]
                }
                """
            let reply = try await h.form("/console/import", ["source": invalid, "csrf": csrf, "format": "json"], cookie: cookie)
            #expect(reply.status == 400)
            #expect(reply.text.contains("id=\"problem-line-5\""))
            #expect(reply.text.contains("&quot;no provider&quot;"))  // the text stays in the form, escaped
            // As a browser sends a textarea: CRLF line breaks.
            let broken = "{\r\n  \"title\": \"t\",\r\n  \"method\": [\r\n}\r\n"
            let syntax = try await h.form("/console/import", ["source": broken, "csrf": csrf], cookie: cookie)
            #expect(syntax.status == 400)
            #expect(syntax.text.contains("id=\"problem-line-4\""))
            let yaml = try await h.form("/console/import", ["source": "title: t\nmethod:\n  - type: action\n    name: x\n", "csrf": csrf, "format": "yaml"], cookie: cookie)
            #expect(yaml.status == 400)
            #expect(yaml.text.contains("id=\"problem-line-3\""))
            let empty = try await h.form("/console/import", ["source": "", "csrf": csrf], cookie: cookie)
            #expect(empty.status == 400)
            #expect(empty.text.contains("experiment.empty"))
        }
    }

    @Test("halt: a halted organisation's Run button is refused (409 page with the reason as text), like the API's run")
    func haltedRun() async throws {
        try await Harness.with("console_halt", runners: true) { h in
            let id = try await h.importExperiment("halted probe")
            let halted = try await h.call(.post, "/api/v1/organization/halt", token: h.token(), body: #"{"reason": "<b>maintenance</b>"}"#)
            #expect(halted.status == 200)
            let cookie = try await h.signIn(h.token("a", .editor))
            let reply = try await h.form("/console/experiments/\(id)/run", ["csrf": ConsoleSession.csrfToken(for: cookie)], cookie: cookie)
            #expect(reply.status == 409)
            #expect(reply.text.contains("organization.halted"))
            #expect(reply.text.contains("&lt;b&gt;maintenance&lt;/b&gt;"))
        }
    }

    static func cookie(in header: String) -> String? {
        let pair = header.split(separator: ";").first.map(String.init) ?? ""
        guard pair.hasPrefix(ConsoleSession.cookieName + "=") else { return nil }
        return String(pair.dropFirst(ConsoleSession.cookieName.count + 1))
    }
}

extension Harness {
    /// A URL-encoded form POST, as a browser of this origin sends it.
    func form(_ uri: String, _ fields: [String: String], cookie: String? = nil, headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers = extra
        if let cookie { headers[.cookie] = "\(ConsoleSession.cookieName)=\(cookie)" }
        let body = fields.map { "\($0.key)=\(Self.formEncode($0.value))" }.joined(separator: "&")
        return try await call(.post, uri, token: nil, body: body, contentType: "application/x-www-form-urlencoded", headers: headers)
    }

    func page(_ uri: String, cookie: String) async throws -> Reply {
        try await call(.get, uri, token: nil, headers: [.cookie: "\(ConsoleSession.cookieName)=\(cookie)"])
    }

    /// Signs in with `token` and returns the session cookie's value.
    func signIn(_ token: String) async throws -> String {
        let reply = try await form("/console/sign-in", ["token": token])
        guard reply.status == 303, let header = reply.headers[.setCookie], let cookie = ConsoleTests.cookie(in: header) else {
            throw HarnessError("sign-in failed: \(reply.status)")
        }
        return cookie
    }

    static func formEncode(_ value: String) -> String {
        (value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? "")
    }
}
