import FaultlinePostgres
import Foundation
@testable import Gateway
import HTTPTypes
import Testing

/// The template catalogue and its renderer: every input checked with a clear problem, hostile
/// text carried verbatim and never breaking the JSON, and every template's experiment (defaults
/// and edge inputs alike) accepted by the real `chaos validate`.
@Suite("Templates")
struct TemplateTests {
    /// Text that breaks naive JSON, HTML, shell or Chaos Toolkit `${}` handling.
    static let hostileLine = #""quote" \back\slash ${service_url} $$ $HOME </script><!-- 'single' é 🙂"#
    static let hostileCommand = "printf '%s\\n' \"$$ ${HOME} \\\"q\\\" \\\\ </script>\" &&\techo 'é 🙂'\n# a second line ${fault_command}"

    @Test("catalogue: at least five templates; ids, input names and defaults are sound")
    func catalogue() throws {
        let all = TemplateCatalogue.all
        #expect(all.count >= 5)
        #expect(Set(all.map(\.id)).count == all.count)
        for template in all {
            #expect(template.id.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }, "\(template.id)")
            #expect(TemplateCatalogue.template(template.id)?.title == template.title)
            #expect(!template.goal.isEmpty && template.goal.hasSuffix("."))
            #expect(template.inputs.first?.name == "title", "\(template.id)")
            #expect(Set(template.inputs.map(\.name)).count == template.inputs.count, "\(template.id)")
            for input in template.inputs {
                // A configuration key Chaos Toolkit's ${name} can name, and no console form field's name.
                #expect(input.name.range(of: "^[a-z_][a-z0-9_]*$", options: .regularExpression) != nil, "\(input.name)")
                #expect(!["csrf", "action"].contains(input.name))
                #expect(!input.label.isEmpty && !input.help.isEmpty)
                #expect(!input.required || !input.defaultValue.isEmpty, "\(template.id).\(input.name): a required input needs a default")
                #expect(throws: Never.self, "\(template.id).\(input.name) default") { try input.parse(input.defaultValue) }
            }
        }
        #expect(TemplateCatalogue.template("nope") == nil)
    }

    @Test("ordered JSON: members in the order given, strings escaped by the encoder, numbers as JSON")
    func orderedJSON() throws {
        let value = OrderedJSON.object(["z": .string("a\"b\\c\n\u{0}</script>"), "a": .array([.integer(-3), .number(0.5), .number(2), .bool(true)]),
                                        "e": .object([]), "l": .array([])])
        #expect(value.prettyText == """
            {
              "z": "a\\"b\\\\c\\n\\u0000</script>",
              "a": [
                -3,
                0.5,
                2,
                true
              ],
              "e": {},
              "l": []
            }

            """)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(value.prettyText.utf8)) as? [String: Any])
        #expect(parsed["z"] as? String == "a\"b\\c\n\u{0}</script>")
    }

    @Test("durations: units and bounds; signs, exponents, nan and junk refused")
    func durations() {
        #expect(TemplateInput.seconds("500ms") == 0.5)
        #expect(TemplateInput.seconds("1.5s") == 1.5)
        #expect(TemplateInput.seconds("2M") == 120)
        #expect(TemplateInput.seconds("1h") == 3600)
        #expect(TemplateInput.seconds("7") == 7)
        #expect(TemplateInput.seconds(".25s") == 0.25)
        #expect(TemplateInput.seconds("0.0004s") == 0)
        for bad in ["", "ms", "-1s", "+1s", "1e3", "nan", "inf", "1.2.3", "5 s", "5x", "٣s", "0x10"] {
            #expect(TemplateInput.seconds(bad) == nil, "\(bad)")
        }
        #expect(TemplateInput.describe(0.5) == "500ms")
        #expect(TemplateInput.describe(120) == "2m")
        #expect(TemplateInput.describe(3600) == "1h")
        #expect(TemplateInput.describe(1.5) == "1.5s")
        #expect(TemplateInput.describe(0) == "0s")
    }

    @Test("inputs: each bad value gets a problem for its own field, with a stable code; all problems at once")
    func inputProblems() throws {
        let cases: [(String, String, String, String)] = [
            ("http-healthy-while-process-killed", "service_url", "not a url", "template.input.url_invalid"),
            ("http-healthy-while-process-killed", "service_url", "ftp://example.com/x", "template.input.url_invalid"),
            ("http-healthy-while-process-killed", "service_url", "javascript:alert(1)", "template.input.url_invalid"),
            ("http-healthy-while-process-killed", "service_url", "http:///path-only", "template.input.url_invalid"),
            ("http-healthy-while-process-killed", "service_url", "http://exa mple.com/", "template.input.url_invalid"),
            ("http-healthy-while-process-killed", "service_url", "http://x/" + String(repeating: "a", count: 3000), "template.input.too_long"),
            ("http-healthy-while-process-killed", "service_url", "", "template.input.required"),
            ("http-healthy-while-process-killed", "expected_status", "99", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "expected_status", "600", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "expected_status", "2OO", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "expected_status", "200.5", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "expected_status", "99999999999999999999999", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "signal", "term", "template.input.not_a_choice"),
            ("http-healthy-while-process-killed", "signal", "TERM; rm -rf /", "template.input.not_a_choice"),
            ("http-healthy-while-process-killed", "grace", "11m", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "grace", "-1s", "template.input.out_of_range"),
            ("http-healthy-while-process-killed", "process_pattern", "two\nlines", "template.input.control_character"),
            ("http-healthy-while-process-killed", "process_pattern", String(repeating: "x", count: 201), "template.input.too_long"),
            ("http-healthy-while-process-killed", "title", "nul\u{0}byte", "template.input.control_character"),
            ("http-healthy-while-process-killed", "title", "   ", "template.input.required"),
            ("latency-under-budget-while-dependency-slow", "latency_budget", "0.0001s", "template.input.out_of_range"),
            ("latency-under-budget-while-dependency-slow", "slow_command", " \r\n\t ", "template.input.required"),
            ("latency-under-budget-while-dependency-slow", "slow_command", "echo \u{1B}[31m", "template.input.control_character"),
            ("latency-under-budget-while-dependency-slow", "slow_command", String(repeating: "x", count: 4097), "template.input.too_long"),
            ("healthy-while-disk-fills", "fill_directory", "relative/dir", "template.input.path_invalid"),
            ("healthy-while-disk-fills", "fill_directory", "/var/../etc", "template.input.path_invalid"),
            ("healthy-while-disk-fills", "fill_size_mb", "0", "template.input.out_of_range"),
            ("healthy-while-disk-fills", "nonsense", "1", "template.input.unknown"),
        ]
        for (id, input, raw, code) in cases {
            let template = try #require(TemplateCatalogue.template(id))
            let error = #expect(throws: InputProblems.self, "\(id).\(input) = \(raw.prefix(40))") { try template.render([input: raw]) }
            #expect(error?.problems.map(\.input) == [input], "\(raw.prefix(40))")
            #expect(error?.problems.first?.code == code, "\(input) = \(raw.prefix(40)): \(String(describing: error))")
            #expect(error?.problems.first?.message.isEmpty == false)
        }
        // Every problem at once, in the form's order.
        let template = TemplateCatalogue.processKilled
        let error = #expect(throws: InputProblems.self) {
            try template.render(["service_url": "nope", "expected_status": "0", "signal": "STOP", "restart_command": "a\u{0}b"])
        }
        #expect(error?.problems.map(\.input) == ["service_url", "expected_status", "signal", "restart_command"])
        #expect(error?.problems.first?.message == "Endpoint URL must be an http:// or https:// address with a host, e.g. http://localhost:8080/health")
    }

    @Test("render: defaults give a complete experiment; text inputs live in configuration, referred to as ${name}; numbers inline")
    func renderDefaults() throws {
        for template in TemplateCatalogue.all {
            let experiment = try Self.parse(try template.render([:]))
            #expect(experiment["title"] as? String == template.input(named: "title")?.defaultValue)
            #expect(experiment["description"] as? String == template.goal)
            #expect(experiment["tags"] as? [String] == template.tags)
            try Self.expectReferencesSound(experiment, template.id)
            let probes = try #require((experiment["steady-state-hypothesis"] as? [String: Any])?["probes"] as? [[String: Any]])
            #expect(!probes.isEmpty)
            for probe in probes {
                let provider = try #require(probe["provider"] as? [String: Any])
                #expect(provider["type"] as? String == "http")
                #expect(provider["url"] as? String == "${service_url}")
                #expect(probe["tolerance"] as? Int == 200)
                #expect(provider["timeout"] is NSNumber)
            }
            #expect(!(try #require(experiment["method"] as? [[String: Any]])).isEmpty)
            let rollbacks = try #require(experiment["rollbacks"] as? [[String: Any]])
            #expect((experiment["runtime"] != nil) == !rollbacks.isEmpty, "\(template.id): rollbacks always played when there are any")
        }
        // The kill template, exactly.
        let kill = try Self.parse(try TemplateCatalogue.processKilled.render(["grace": "1.5s", "signal": "KILL"]))
        #expect(kill["configuration"] as? [String: String] == ["service_url": "http://localhost:8080/health", "signal": "KILL", "process_pattern": "my-worker"])
        let method = try #require(kill["method"] as? [[String: Any]])
        #expect((method[0]["provider"] as? [String: Any])?["arguments"] as? [String] == ["--signal", "${signal}", "-f", "--", "${process_pattern}"])
        #expect((method[0]["pauses"] as? [String: Any])?["after"] as? Double == 1.5)
        #expect((kill["rollbacks"] as? [Any])?.isEmpty == true)  // no restart command given
        #expect(kill["runtime"] == nil)
        // Member order as people write experiments.
        let text = try TemplateCatalogue.processKilled.render([:]).prettyText
        let order = ["\"version\"", "\"title\"", "\"description\"", "\"tags\"", "\"configuration\"", "\"steady-state-hypothesis\"", "\"method\"", "\"rollbacks\""]
        let positions = order.compactMap { text.range(of: $0)?.lowerBound }
        #expect(positions.count == order.count && positions == positions.sorted())
        // Disk: the amount as a number inside an argument, the directory through configuration.
        let disk = try Self.parse(try TemplateCatalogue.diskFilling.render(["fill_directory": "/srv/data/", "fill_size_mb": "64", "hold": "0"]))
        let fill = try #require((disk["method"] as? [[String: Any]])?.first)
        #expect((fill["provider"] as? [String: Any])?["arguments"] as? [String] == ["if=/dev/zero", "of=${fill_directory}/faultline-disk-fill.bin", "bs=1M", "count=64", "status=none"])
        #expect(fill["pauses"] == nil)  // a zero wait is no pause
        #expect((disk["configuration"] as? [String: String])?["fill_directory"] == "/srv/data")
        #expect((disk["runtime"] as? [String: Any]) != nil)
    }

    @Test("render: hostile text is carried verbatim, only in configuration, and the JSON stays valid")
    func renderHostile() throws {
        let template = TemplateCatalogue.customFault
        let rendered = try template.render(["title": Self.hostileLine, "fault_command": Self.hostileCommand + "\r\n",
                                            "rollback_command": Self.hostileCommand, "service_url": "http://[::1]:8080/a$$b?q='x'&r=%7B%7D"])
        let experiment = try Self.parse(rendered)
        #expect(experiment["title"] as? String == Self.hostileLine)
        let configuration = try #require(experiment["configuration"] as? [String: String])
        #expect(configuration["fault_command"] == Self.hostileCommand)  // CRLF trimmed, inner text as typed
        #expect(configuration["rollback_command"] == Self.hostileCommand)
        #expect(configuration["service_url"] == "http://[::1]:8080/a$$b?q='x'&r=%7B%7D")
        try Self.expectReferencesSound(experiment, template.id)
        // The command appears once per configuration entry and nowhere else.
        let encoded = String(decoding: try JSONEncoder().encode(Self.hostileCommand), as: UTF8.self)
        #expect(rendered.prettyText.components(separatedBy: encoded.replacingOccurrences(of: "\\/", with: "/")).count == 3)
    }

    @Test("chaos validate accepts every template with its defaults and with edge inputs",
          .enabled(if: TemplateChaos.available || ProcessInfo.processInfo.environment["FAULTLINE_VENV"] != nil, "no chaos in the venv"))
    func chaosValidate() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("templates-validate")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for template in TemplateCatalogue.all {
            for (variant, inputs) in Self.variants(of: template) {
                let experiment = try template.render(inputs)
                let file = "\(directory)/\(template.id)-\(variant).json"
                try experiment.prettyText.write(toFile: file, atomically: true, encoding: .utf8)
                let (status, output) = try await TemplateChaos.run(["validate", file], in: directory)
                #expect(status == 0, "\(template.id) \(variant): \(output)\n\(experiment.prettyText)")
            }
        }
        // The check can fail: a step whose program is missing on this host is refused.
        let broken = try TemplateCatalogue.customFault.render([:]).prettyText.replacingOccurrences(of: "\"path\": \"sh\"", with: "\"path\": \"no-such-program-faultline\"")
        try broken.write(toFile: directory + "/broken.json", atomically: true, encoding: .utf8)
        let (status, output) = try await TemplateChaos.run(["validate", directory + "/broken.json"], in: directory)
        #expect(status != 0)
        #expect(output.contains("no-such-program-faultline"), "\(output)")
    }

    @Test("chaos run: a hostile command reaches sh exactly as typed ($$, ${HOME}, quotes, backslashes, a second line)",
          .enabled(if: TemplateChaos.available || ProcessInfo.processInfo.environment["FAULTLINE_VENV"] != nil, "no chaos in the venv"))
    func chaosRunVerbatim() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory("templates-run")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await TemplateChaos.HTTPServer.start(in: directory)
        defer { server.stop() }
        let payload = #"$$ ${HOME} "q" \ </script> é 🙂"#
        // Single-quoted for sh: the payload has no single quote of its own.
        let command = "printf '%s' '\(payload)' > '\(directory)/out.txt'\nprintf 'second line ran' > '\(directory)/second.txt'"
        let experiment = try TemplateCatalogue.customFault.render([
            "service_url": "http://127.0.0.1:\(server.port)/health", "fault_command": command, "settle": "0",
            "rollback_command": "printf '%s' '${fault_command}' > '\(directory)/rollback.txt'",
        ])
        let file = directory + "/experiment.json"
        try experiment.prettyText.write(toFile: file, atomically: true, encoding: .utf8)
        let (status, output) = try await TemplateChaos.run(["run", "--journal-path", directory + "/journal.json", file], in: directory)
        #expect(status == 0, "\(output)")
        #expect(try String(contentsOfFile: directory + "/out.txt", encoding: .utf8) == payload)
        #expect(try String(contentsOfFile: directory + "/second.txt", encoding: .utf8) == "second line ran")
        #expect(try String(contentsOfFile: directory + "/rollback.txt", encoding: .utf8) == "${fault_command}")
        let journal = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/journal.json"))) as? [String: Any])
        #expect(journal["status"] as? String == "completed")
        #expect(journal["deviated"] as? Bool == false)
    }

    // MARK: helpers

    /// Defaults, the lower bounds with hostile text, and the upper bounds with hostile text and
    /// every optional input given.
    static func variants(of template: ExperimentTemplate) -> [(String, [String: String])] {
        func edge(upper: Bool) -> [String: String] {
            var inputs: [String: String] = [:]
            for input in template.inputs {
                switch input.kind {
                case .url: inputs[input.name] = upper ? "https://user@example.com:65535/a$$b/%22q%22?x='1'&y=%7B%7D#frag" : "http://[::1]/"
                case .text(let maxLength):
                    inputs[input.name] = upper ? String(String(repeating: hostileLine, count: 10).prefix(maxLength)) : hostileLine
                case .integer(let bounds): inputs[input.name] = String(upper ? bounds.upperBound : bounds.lowerBound)
                case .duration(let bounds): inputs[input.name] = TemplateInput.describe(upper ? bounds.upperBound : bounds.lowerBound)
                case .command: inputs[input.name] = input.required || upper ? hostileCommand : ""
                case .choice(let options): inputs[input.name] = upper ? options.last! : options.first!
                case .path: inputs[input.name] = upper ? "/tmp/dir with space/$$/\"q\"/${HOME}/" : "/"
                }
            }
            return inputs
        }
        return [("defaults", [:]), ("lower", edge(upper: false)), ("upper", edge(upper: true))]
    }

    static func parse(_ experiment: OrderedJSON) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(experiment.prettyText.utf8)) as? [String: Any])
    }

    /// Every `${name}` outside the configuration names a configuration key, and every key is used:
    /// no dangling reference, no text input that got into an activity by itself.
    static func expectReferencesSound(_ experiment: [String: Any], _ id: String) throws {
        let configuration = try #require(experiment["configuration"] as? [String: String], "\(id)")
        var referenced = Set<String>()
        func walk(_ value: Any) {
            switch value {
            case let text as String:
                let regex = try! NSRegularExpression(pattern: #"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"#)
                for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    referenced.insert((text as NSString).substring(with: match.range(at: 1)))
                }
            case let array as [Any]: array.forEach(walk)
            case let object as [String: Any]: object.values.forEach(walk)
            default: break
            }
        }
        for key in ["steady-state-hypothesis", "method", "rollbacks"] { walk(experiment[key] ?? []) }
        #expect(referenced == Set(configuration.keys), "\(id)")
        #expect(configuration.values.allSatisfy { !$0.isEmpty }, "\(id)")
    }
}

/// The API and console routes of templates over a live gateway.
@Suite("Template routes", .serialized)
struct TemplateRouteTests {
    @Test("API: catalogue, one template, 404 for an unknown one, render, per-input 400s, create in one step, organisations, roles")
    func api() async throws {
        try await Harness.with("templates_api") { h in
            #expect(try await h.call(.get, "/api/v1/templates", token: nil).status == 401)
            let catalogue = try await h.call(.get, "/api/v1/templates", token: h.token("a", .viewer))
            #expect(catalogue.status == 200)
            let templates = try #require(catalogue.json["templates"] as? [[String: Any]])
            #expect(templates.map { $0["id"] as? String } == TemplateCatalogue.all.map(\.id))
            let one = try await h.call(.get, "/api/v1/templates/latency-under-budget-while-dependency-slow", token: h.token("a", .viewer))
            #expect(one.status == 200)
            let inputs = try #require(one.json["inputs"] as? [[String: Any]])
            let budget = try #require(inputs.first { $0["name"] as? String == "latency_budget" })
            #expect(budget["kind"] as? String == "duration")
            #expect(budget["minimum"] as? Double == 0.001)
            #expect(budget["maximum"] as? Double == 120)
            #expect(budget["default"] as? String == "500ms")
            #expect(inputs.first { $0["name"] as? String == "restore_command" }?["required"] as? Bool == false)

            for path in ["/api/v1/templates/nope", "/api/v1/templates/%3Cscript%3E", "/api/v1/templates/nope/render"] {
                let method: HTTPRequest.Method = path.hasSuffix("render") ? .post : .get
                let reply = try await h.call(method, path, token: h.token(), body: method == .post ? "{}" : nil)
                #expect(reply.status == 404, "\(path)")
                #expect(reply.code == "template.not_found", "\(path)")
            }

            let id = "http-healthy-while-process-killed"
            let rendered = try await h.call(.post, "/api/v1/templates/\(id)/render", token: h.token("a", .viewer),
                                            body: #"{"inputs": {"service_url": "http://svc.internal/health", "expected_status": 204, "grace": 0.5}}"#)
            #expect(rendered.status == 200, "\(rendered.text)")
            #expect(rendered.headers[.contentType] == "application/json")
            #expect(rendered.json["title"] as? String == "The endpoint stays healthy while my-worker is killed")
            #expect((rendered.json["configuration"] as? [String: String])?["service_url"] == "http://svc.internal/health")
            let probe = try #require(((rendered.json["steady-state-hypothesis"] as? [String: Any])?["probes"] as? [[String: Any]])?.first)
            #expect(probe["tolerance"] as? Int == 204)

            let bad = try await h.call(.post, "/api/v1/templates/\(id)/render", token: h.token(),
                                       body: #"{"inputs": {"service_url": "gopher://x", "expected_status": 1000, "signal": true, "bogus key'\"": "1"}}"#)
            #expect(bad.status == 400)
            #expect(bad.code == "template.inputs.invalid")
            let problems = try #require(bad.json["problems"] as? [[String: Any]])
            #expect(Set(problems.compactMap { $0["path"] as? String })
                    == ["$.inputs.service_url", "$.inputs.expected_status", "$.inputs.signal", #"$.inputs['bogus key\'"']"#])
            #expect(problems.first { $0["path"] as? String == "$.inputs.signal" }?["code"] as? String == "template.input.type")
            #expect(problems.allSatisfy { $0["severity"] as? String == "error" && !($0["message"] as? String ?? "").isEmpty })
            for body in ["[1]", "{\"inputs\": [1]}", "{\"inputs\": {\"title\": 1", "\"x\""] {
                let malformed = try await h.call(.post, "/api/v1/templates/\(id)/render", token: h.token(), body: body)
                #expect(malformed.status == 400, "\(body)")
                #expect(malformed.code == "request.malformed", "\(body)")
            }

            // Create in one step: an editor may, a viewer may not.
            let body = #"{"inputs": {"title": "checkout survives <b>worker</b> loss", "process_pattern": "checkout-worker", "restart_command": "systemctl start checkout-worker"}}"#
            let refused = try await h.call(.post, "/api/v1/templates/\(id)/experiments", token: h.token("a", .viewer), body: body)
            #expect(refused.status == 403)
            let created = try await h.call(.post, "/api/v1/templates/\(id)/experiments", token: h.token("a", .editor), body: body)
            #expect(created.status == 201, "\(created.text)")
            let experiment = try #require(created.json["experiment"] as? [String: Any])
            let experimentID = try #require(experiment["id"] as? String)
            #expect(experiment["title"] as? String == "checkout survives <b>worker</b> loss")
            #expect(experiment["tags"] as? [String] == ["http", "process", "kill"])
            #expect(((created.json["revision"] as? [String: Any])?["warnings"] as? [Any])?.isEmpty == true)
            let export = try await h.call(.get, "/api/v1/experiments/\(experimentID)/export", token: h.token("a", .viewer))
            #expect(export.text == (try TemplateCatalogue.processKilled.render(["title": "checkout survives <b>worker</b> loss", "process_pattern": "checkout-worker",
                                                                                 "restart_command": "systemctl start checkout-worker"]).prettyText))
            // Another organisation neither sees it nor can it be reached by id.
            #expect(try await h.call(.get, "/api/v1/experiments/\(experimentID)", token: h.token("b", .owner)).status == 404)
            let list = try await h.call(.get, "/api/v1/experiments", token: h.token("b", .owner))
            #expect(!list.text.contains(experimentID))
            let invalid = try await h.call(.post, "/api/v1/templates/\(id)/experiments", token: h.token("a", .editor),
                                           body: #"{"inputs": {"service_url": ""}}"#)
            #expect(invalid.status == 400)
            #expect(invalid.code == "template.inputs.invalid")
            #expect(try await h.call(.delete, "/api/v1/templates/\(id)", token: h.token()).status == 405)
        }
    }

    @Test("console: catalogue, form with defaults and preview, errors next to their field, save to the experiment page; CSRF and roles")
    func console() async throws {
        try await Harness.with("templates_console") { h in
            let cookie = try await h.signIn(h.token("a", .editor))
            let csrf = ConsoleSession.csrfToken(for: cookie)
            #expect(try await h.call(.get, "/console/templates", token: nil).status == 302)
            let catalogue = try await h.page("/console/templates", cookie: cookie)
            #expect(catalogue.status == 200)
            #expect(catalogue.text.contains("href=\"/console/templates\" aria-current=\"page\""))
            for template in TemplateCatalogue.all { #expect(catalogue.text.contains("href=\"/console/templates/\(template.id)\"")) }

            let id = "service-recovers-after-restart"
            let form = try await h.page("/console/templates/\(id)", cookie: cookie)
            #expect(form.status == 200)
            #expect(form.text.contains("<label for=\"input-service_url\">Endpoint URL</label>"))
            #expect(form.text.contains("value=\"http://localhost:8080/health\""))
            #expect(form.text.contains("aria-describedby=\"help-recovery_time error-recovery_time\""))
            #expect(form.text.contains("&quot;restart-service&quot;"))  // the defaults previewed, escaped
            #expect(try await h.page("/console/templates/nope", cookie: cookie).status == 404)

            // Preview with problems: 400, each message beside its field, the values kept (escaped).
            let hostile = "<script>alert(1)</script>"
            let preview = try await h.form("/console/templates/\(id)", ["csrf": csrf, "action": "preview", "title": hostile,
                                                                         "service_url": "localhost:8080", "expected_status": "2000",
                                                                         "request_timeout": "5s", "restart_command": "", "recovery_time": "1s"], cookie: cookie)
            #expect(preview.status == 400)
            #expect(preview.text.contains("id=\"template-problems\""))
            #expect(preview.text.contains("<p class=\"field-error\" id=\"error-service_url\">Endpoint URL must be an http:// or https:// address"))
            #expect(preview.text.contains("<p class=\"field-error\" id=\"error-expected_status\">Expected HTTP status must be a whole number from 100 to 599</p>"))
            #expect(preview.text.contains("<p class=\"field-error\" id=\"error-restart_command\">Restart command is required</p>"))
            #expect(preview.text.contains("<p class=\"field-error\" id=\"error-request_timeout\"></p>"))
            #expect(preview.text.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""))
            #expect(!preview.text.contains(hostile))

            // The live preview's JSON.
            let live = try await h.form("/console/templates/\(id)/preview", ["csrf": csrf, "service_url": "http://127.0.0.1:1/x", "title": hostile], cookie: cookie)
            #expect(live.status == 200)
            #expect((live.json["experiment"] as? String)?.contains("http://127.0.0.1:1/x") == true)
            let liveBad = try await h.form("/console/templates/\(id)/preview", ["csrf": csrf, "service_url": "nope"], cookie: cookie)
            #expect(liveBad.json["experiment"] is NSNull)
            #expect((liveBad.json["problems"] as? [[String: Any]])?.map { $0["input"] as? String } == ["service_url"])

            // CSRF: no token, another session's, another origin: 403 and nothing saved.
            let fields = ["action": "save", "title": "recovery probe", "service_url": "http://127.0.0.1:9/health",
                          "restart_command": "true", "recovery_time": "1s", "expected_status": "200", "request_timeout": "2s"]
            let other = try await h.signIn(h.token("a", .editor))
            for (extra, headers) in [([:], [:]), (["csrf": ConsoleSession.csrfToken(for: other)], [:]),
                                     (["csrf": csrf], [HTTPField.Name("origin")!: "https://evil.example"])] as [([String: String], HTTPFields)] {
                let reply = try await h.form("/console/templates/\(id)", fields.merging(extra) { $1 }, cookie: cookie, headers: headers)
                #expect(reply.status == 403)
                let liveReply = try await h.form("/console/templates/\(id)/preview", fields.merging(extra) { $1 }, cookie: cookie, headers: headers)
                #expect(liveReply.status == 403)
            }
            #expect(!(try await h.page("/console/experiments", cookie: cookie)).text.contains("recovery probe"))
            // A viewer may preview but not save.
            let viewer = try await h.signIn(h.token("a", .viewer))
            let viewerPage = try await h.page("/console/templates/\(id)", cookie: viewer)
            #expect(!viewerPage.text.contains("id=\"save-button\""))
            #expect(try await h.form("/console/templates/\(id)", fields.merging(["csrf": ConsoleSession.csrfToken(for: viewer), "action": "preview"]) { $1 }, cookie: viewer).status == 200)
            #expect(try await h.form("/console/templates/\(id)", fields.merging(["csrf": ConsoleSession.csrfToken(for: viewer)]) { $1 }, cookie: viewer).status == 403)

            // Save: the experiment page of a new experiment, of this organisation only.
            let saved = try await h.form("/console/templates/\(id)", fields.merging(["csrf": csrf, "restart_command": "true\r\n"]) { $1 }, cookie: cookie)
            #expect(saved.status == 303)
            let location = try #require(saved.headers[.location])
            #expect(location.hasPrefix("/console/experiments/exp_"))
            let page = try await h.page(location, cookie: cookie)
            #expect(page.text.contains("<h1>recovery probe</h1>"))
            #expect(page.text.contains("restart-service"))
            let experimentID = String(location.dropFirst("/console/experiments/".count))
            #expect(try await h.page(location, cookie: try await h.signIn(h.token("b", .owner))).status == 404)
            let export = try await h.call(.get, "/api/v1/experiments/\(experimentID)/export", token: h.token())
            #expect((export.json["configuration"] as? [String: String])?["restart_command"] == "true")
        }
    }
}

/// `chaos` from `$FAULTLINE_VENV` (default: the package's `.venv`), and a local HTTP server for
/// its probes.
enum TemplateChaos {
    static var venv: String {
        if let dir = ProcessInfo.processInfo.environment["FAULTLINE_VENV"], !dir.isEmpty { return dir }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/.venv"
    }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: venv + "/bin/chaos") }

    /// `chaos --no-version-check <arguments>` in `directory`; waits without blocking a thread.
    static func run(_ arguments: [String], in directory: String) async throws -> (Int32, String) {
        let output = directory + "/chaos-\(UUID().uuidString.prefix(8)).out"
        let process = try start(venv + "/bin/chaos", ["--no-version-check", "--log-file", output + ".log"] + arguments, in: directory, output: output)
        let deadline = ContinuousClock.now + .seconds(240)  // a hang fails the test instead of the run
        while process.isRunning {
            if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: output + ".log", encoding: .utf8)) ?? ""
        return (process.terminationStatus, String((text + "\n--- chaos log\n" + log).suffix(6000)))
    }

    static func start(_ executable: String, _ arguments: [String], in directory: String, output: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        try #require(FileManager.default.createFile(atPath: output, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
        return process
    }

    /// A Python HTTP server on 127.0.0.1 and a free port answering every GET with 200.
    /// `@unchecked`: the Process is only asked its pid after it started.
    final class HTTPServer: @unchecked Sendable {
        let process: Process
        let port: Int

        private init(process: Process, port: Int) {
            self.process = process
            self.port = port
        }

        static func start(in directory: String) async throws -> HTTPServer {
            let script = """
                import http.server
                class H(http.server.BaseHTTPRequestHandler):
                    def log_message(self, *a): pass
                    def do_GET(self):
                        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
                s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
                print(s.server_address[1], flush=True)
                s.serve_forever()
                """
            let output = directory + "/http-server.out"
            let process = try TemplateChaos.start(venv + "/bin/python", ["-c", script], in: directory, output: output)
            for _ in 0..<600 {
                let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                if text.hasSuffix("\n"), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    return HTTPServer(process: process, port: port)
                }
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            kill(process.processIdentifier, SIGKILL)
            throw HarnessError("the HTTP server did not start: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        }

        /// SIGKILL: a child of Foundation's Process inherits the test process's blocked signals,
        /// SIGTERM among them. Not waited for, so no thread of the shared pool blocks.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
        }
    }
}
