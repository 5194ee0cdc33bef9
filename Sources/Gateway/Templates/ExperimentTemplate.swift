import Foundation

/// A starter experiment: the goal people pick it for, the few inputs that matter, and the
/// experiment's shape with those inputs as holes (`Blueprint`). `render` fills the holes.
struct ExperimentTemplate: Sendable {
    let id: String
    let title: String
    /// One sentence: what the experiment shows when it passes.
    let goal: String
    let tags: [String]
    /// The form, in order. The first is always `title`, the experiment's title.
    let inputs: [TemplateInput]
    let blueprint: Blueprint

    func input(named name: String) -> TemplateInput? { inputs.first { $0.name == name } }

    /// Every input checked: a missing one takes its default, an unknown name is a problem.
    func values(from raw: [String: String]) throws(InputProblems) -> [String: TemplateValue] {
        var values: [String: TemplateValue] = [:]
        var problems: [InputProblem] = []
        for input in inputs {
            do {
                values[input.name] = try input.parse(raw[input.name] ?? input.defaultValue)
            } catch {
                problems.append(error)
            }
        }
        for name in raw.keys.sorted() where input(named: name) == nil {
            problems.append(InputProblem(input: name, code: "template.input.unknown", message: "this template has no input of that name"))
        }
        guard problems.isEmpty else { throw InputProblems(problems: problems) }
        return values
    }

    /// The Chaos Toolkit experiment for `raw` inputs, or the problems with them.
    func render(_ raw: [String: String]) throws(InputProblems) -> OrderedJSON {
        var renderer = TemplateRenderer(template: self, values: try values(from: raw))
        return renderer.experiment()
    }
}

/// The experiment a template makes, with inputs as holes.
struct Blueprint: Sendable {
    /// The steady-state hypothesis's title; its probes run before and after the method.
    var hypothesis: String
    var probes: [Step]
    var method: [Step]
    var rollbacks: [Step] = []
}

/// A value in a blueprint: fixed text, an input, or one string joined from both.
enum Slot: Sendable, ExpressibleByStringLiteral {
    case literal(String)
    case input(String)
    case joined([Slot])

    init(stringLiteral value: String) { self = .literal(value) }
}

/// One activity of a blueprint.
struct Step: Sendable {
    enum Kind: String, Sendable { case probe, action }

    enum Provider: Sendable {
        /// GET the address in the `url` input; a response slower than `timeout` seconds fails.
        case http(url: String, timeout: Slot)
        /// `path` run with `arguments` and no shell; killed past `timeout` seconds.
        case process(path: String, arguments: [Slot], timeout: Double)
    }

    var kind: Kind
    var name: String
    var provider: Provider
    /// Probes: the input holding the HTTP status that counts as healthy.
    var expectedStatus: String?
    /// The input holding how long to wait after the step.
    var pauseAfter: String?
    /// Left out when this (optional) input is empty.
    var onlyWith: String?

    init(_ kind: Kind, _ name: String, _ provider: Provider, expectedStatus: String? = nil,
         pauseAfter: String? = nil, onlyWith: String? = nil) {
        self.kind = kind
        self.name = name
        self.provider = provider
        self.expectedStatus = expectedStatus
        self.pauseAfter = pauseAfter
        self.onlyWith = onlyWith
    }

    /// The command in input `command` run by `sh -c`, for up to `timeout` seconds.
    static func shell(_ kind: Kind, _ name: String, command: String, timeout: Double = 300,
                      pauseAfter: String? = nil, onlyWith: String? = nil) -> Step {
        Step(kind, name, .process(path: "sh", arguments: ["-c", .input(command)], timeout: timeout),
             pauseAfter: pauseAfter, onlyWith: onlyWith)
    }
}

/// Fills a blueprint's holes. Text values go into the experiment's `configuration` and are
/// referred to as exactly `${name}`: Chaos Toolkit substitutes such a reference with the value
/// as it is, whereas text written into an activity would itself be scanned for `$` forms
/// (`$$` would become `$`). Numbers are checked values and go in as numbers.
struct TemplateRenderer {
    let template: ExperimentTemplate
    let values: [String: TemplateValue]
    /// Configuration keys in the order first referred to.
    private var referenced: [String] = []

    init(template: ExperimentTemplate, values: [String: TemplateValue]) {
        self.template = template
        self.values = values
    }

    mutating func experiment() -> OrderedJSON {
        let blueprint = template.blueprint
        let hypothesis = OrderedJSON.object([
            "title": .string(blueprint.hypothesis),
            "probes": .array(blueprint.probes.compactMap { step($0) }),
        ])
        let method = blueprint.method.compactMap { step($0) }
        let rollbacks = blueprint.rollbacks.compactMap { step($0) }
        let title: String = if case .text(let text)? = values["title"] { text } else { template.title }
        var members: [OrderedJSON.Member] = [
            .init(key: "version", value: .string("1.0.0")),
            .init(key: "title", value: .string(title)),
            .init(key: "description", value: .string(template.goal)),
            .init(key: "tags", value: .array(template.tags.map(OrderedJSON.string))),
            .init(key: "configuration", value: .object(referenced.map { key in
                let value: OrderedJSON = if case .text(let text)? = values[key] { .string(text) } else { .string("") }
                return OrderedJSON.Member(key: key, value: value)
            })),
            .init(key: "steady-state-hypothesis", value: hypothesis),
            .init(key: "method", value: .array(method)),
            .init(key: "rollbacks", value: .array(rollbacks)),
        ]
        if !rollbacks.isEmpty {
            // A fault must be undone even when the run failed (a probe timed out) or was stopped;
            // Chaos Toolkit's default skips rollbacks then.
            members.append(.init(key: "runtime", value: .object(["rollbacks": .object(["strategy": .string("always")])])))
        }
        return .object(members)
    }

    private mutating func step(_ step: Step) -> OrderedJSON? {
        if let needed = step.onlyWith, values[needed] == nil { return nil }
        var provider: [OrderedJSON.Member]
        switch step.provider {
        case .http(let url, let timeout):
            provider = [.init(key: "type", value: "http"), .init(key: "url", value: resolve(.input(url))),
                        .init(key: "method", value: "GET"), .init(key: "timeout", value: resolve(timeout))]
        case .process(let path, let arguments, let timeout):
            provider = [.init(key: "type", value: "process"), .init(key: "path", value: .string(path)),
                        .init(key: "arguments", value: .array(arguments.map { resolve($0) })),
                        .init(key: "timeout", value: .number(timeout))]
        }
        var members: [OrderedJSON.Member] = [.init(key: "type", value: .string(step.kind.rawValue)),
                                             .init(key: "name", value: .string(step.name))]
        if let status = step.expectedStatus { members.append(.init(key: "tolerance", value: resolve(.input(status)))) }
        members.append(.init(key: "provider", value: .object(provider)))
        if let pause = step.pauseAfter, case .seconds(let seconds)? = values[pause], seconds > 0 {
            members.append(.init(key: "pauses", value: .object(["after": .number(seconds)])))
        }
        return .object(members)
    }

    private mutating func resolve(_ slot: Slot) -> OrderedJSON {
        switch slot {
        case .literal(let text): return .string(text)
        case .input(let name):
            switch values[name] {
            case .integer(let value)?: return .integer(value)
            case .seconds(let value)?: return .number(value)
            case .text?, nil: return .string(reference(name))
            }
        case .joined(let parts):
            return .string(parts.map { part in
                switch resolve(part) {
                case .string(let text): text
                case .integer(let value): String(value)
                case .number(let value): OrderedJSON.numberText(value)
                default: ""
                }
            }.joined())
        }
    }

    private mutating func reference(_ name: String) -> String {
        if !referenced.contains(name) { referenced.append(name) }
        return "${\(name)}"
    }
}

extension OrderedJSON: ExpressibleByStringLiteral {
    init(stringLiteral value: String) { self = .string(value) }
}
