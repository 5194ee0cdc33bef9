/// The starter templates. Each makes a plain Chaos Toolkit experiment out of `http` and
/// `process` activities only (built into chaoslib), so it runs wherever `chaos` runs, with
/// `sh`, `pkill` (procps), `dd` and `rm` on the runner's PATH.
enum TemplateCatalogue {
    static let all: [ExperimentTemplate] = [processKilled, slowDependency, restart, diskFilling, customFault]

    static func template(_ id: String) -> ExperimentTemplate? { all.first { $0.id == id } }

    // MARK: the templates

    static let processKilled = ExperimentTemplate(
        id: "http-healthy-while-process-killed",
        title: "An HTTP endpoint stays healthy while a process is killed",
        goal: "Shows that the endpoint keeps answering with the expected status after a process it may depend on is killed.",
        tags: ["http", "process", "kill"],
        inputs: [
            title("The endpoint stays healthy while my-worker is killed"), serviceURL, expectedStatus, requestTimeout,
            TemplateInput(name: "process_pattern", label: "Process to kill", kind: .text(maxLength: 200), defaultValue: "my-worker",
                          help: "Matched against each process's full command line (pkill -f): every matching process gets the signal, so be specific."),
            TemplateInput(name: "signal", label: "Signal", kind: .choice(["TERM", "KILL", "INT", "HUP", "QUIT"]), defaultValue: "TERM",
                          help: "TERM asks the process to stop; KILL stops it at once, with no chance to clean up."),
            TemplateInput(name: "grace", label: "Wait after the kill", kind: .duration(0...600), defaultValue: "5s",
                          help: "How long the system gets to react (a supervisor restarting the process, a failover) before the endpoint is checked again."),
            TemplateInput(name: "restart_command", label: "Restart command (rollback)", kind: .command, defaultValue: "",
                          help: "Run at the end to bring the process back if nothing restarts it by itself; leave empty for none.", required: false),
        ],
        blueprint: Blueprint(
            hypothesis: "The endpoint answers with the expected status",
            probes: [endpointAnswers()],
            method: [Step(.action, "kill-process",
                          .process(path: "pkill", arguments: ["--signal", .input("signal"), "-f", "--", .input("process_pattern")], timeout: 30),
                          pauseAfter: "grace")],
            rollbacks: [.shell(.action, "restart-process", command: "restart_command", onlyWith: "restart_command")]))

    static let slowDependency = ExperimentTemplate(
        id: "latency-under-budget-while-dependency-slow",
        title: "Latency stays under a budget while a dependency is slow",
        goal: "Shows that the endpoint still answers within its latency budget while a dependency is made slow.",
        tags: ["http", "latency", "dependency"],
        inputs: [
            title("The endpoint answers within budget while a dependency is slow"), serviceURL, expectedStatus,
            TemplateInput(name: "latency_budget", label: "Latency budget", kind: .duration(0.001...120), defaultValue: "500ms",
                          help: "A request that gets no response within this time fails the check (e.g. 300ms, 2s)."),
            TemplateInput(name: "slow_command", label: "Command that slows the dependency", kind: .command,
                          defaultValue: "toxiproxy-cli toxic add --type latency --attribute latency=1000 --toxicName faultline-latency my-dependency",
                          help: "Run with sh -c on the runner, e.g. a toxiproxy or tc call, or a feature flag."),
            TemplateInput(name: "settle", label: "Wait before checking", kind: .duration(0...600), defaultValue: "2s",
                          help: "How long the slowness is in place before the endpoint is checked again."),
            TemplateInput(name: "restore_command", label: "Command that restores the dependency (rollback)", kind: .command,
                          defaultValue: "toxiproxy-cli toxic remove --toxicName faultline-latency my-dependency",
                          help: "Run at the end, even when the check failed; leave empty for none.", required: false),
        ],
        blueprint: Blueprint(
            hypothesis: "The endpoint answers within its latency budget",
            probes: [endpointAnswers(name: "endpoint-answers-within-budget", timeout: "latency_budget")],
            method: [.shell(.action, "slow-down-dependency", command: "slow_command", pauseAfter: "settle")],
            rollbacks: [.shell(.action, "restore-dependency", command: "restore_command", onlyWith: "restore_command")]))

    static let restart = ExperimentTemplate(
        id: "service-recovers-after-restart",
        title: "A service recovers after a restart",
        goal: "Shows that the service answers with the expected status again within its recovery time after it is restarted.",
        tags: ["http", "restart", "recovery"],
        inputs: [
            title("The service recovers after a restart"), serviceURL, expectedStatus, requestTimeout,
            TemplateInput(name: "restart_command", label: "Restart command", kind: .command, defaultValue: "systemctl restart my-service",
                          help: "Run with sh -c on the runner, e.g. systemctl, docker or kubectl."),
            TemplateInput(name: "recovery_time", label: "Recovery time", kind: .duration(0...1800), defaultValue: "15s",
                          help: "How long the service may take to come back before the endpoint is checked again."),
        ],
        blueprint: Blueprint(
            hypothesis: "The service answers with the expected status",
            probes: [endpointAnswers()],
            method: [.shell(.action, "restart-service", command: "restart_command", pauseAfter: "recovery_time")]))

    static let diskFilling = ExperimentTemplate(
        id: "healthy-while-disk-fills",
        title: "A service stays healthy while its disk fills up",
        goal: "Shows that the endpoint keeps answering while a file takes up space on the volume the service writes to.",
        tags: ["http", "disk"],
        inputs: [
            title("The service stays healthy while its disk fills up"), serviceURL, expectedStatus, requestTimeout,
            TemplateInput(name: "fill_directory", label: "Directory on the volume to fill", kind: .path, defaultValue: "/tmp",
                          help: "The file faultline-disk-fill.bin is written here on the runner's host and removed at the end."),
            TemplateInput(name: "fill_size_mb", label: "Amount to write (MiB)", kind: .integer(1...1_048_576), defaultValue: "512",
                          help: "Writing stops early when the volume is full."),
            TemplateInput(name: "hold", label: "Keep it full for", kind: .duration(0...3600), defaultValue: "10s",
                          help: "How long the file stays before the endpoint is checked again."),
        ],
        blueprint: Blueprint(
            hypothesis: "The endpoint answers with the expected status",
            probes: [endpointAnswers()],
            method: [Step(.action, "fill-disk",
                          .process(path: "dd", arguments: ["if=/dev/zero", .joined(["of=", .input("fill_directory"), "/faultline-disk-fill.bin"]),
                                                           "bs=1M", .joined(["count=", .input("fill_size_mb")]), "status=none"], timeout: 1800),
                          pauseAfter: "hold")],
            rollbacks: [Step(.action, "free-disk",
                             .process(path: "rm", arguments: ["-f", "--", .joined([.input("fill_directory"), "/faultline-disk-fill.bin"])], timeout: 120))]))

    static let customFault = ExperimentTemplate(
        id: "custom-fault-http-steady-state",
        title: "Any fault you script, with an HTTP steady state",
        goal: "Shows that the endpoint keeps answering with the expected status while a fault of your own making is in place.",
        tags: ["http", "custom"],
        inputs: [
            title("The endpoint stays healthy during my fault"), serviceURL, expectedStatus, requestTimeout,
            TemplateInput(name: "fault_command", label: "Fault command", kind: .command, defaultValue: "echo 'inject the fault here'",
                          help: "Run with sh -c on the runner: anything that breaks something on purpose."),
            TemplateInput(name: "settle", label: "Wait before checking", kind: .duration(0...600), defaultValue: "5s",
                          help: "How long the fault is in place before the endpoint is checked again."),
            TemplateInput(name: "rollback_command", label: "Command that undoes the fault (rollback)", kind: .command, defaultValue: "",
                          help: "Run at the end, even when the check failed; leave empty for none.", required: false),
        ],
        blueprint: Blueprint(
            hypothesis: "The endpoint answers with the expected status",
            probes: [endpointAnswers()],
            method: [.shell(.action, "inject-fault", command: "fault_command", pauseAfter: "settle")],
            rollbacks: [.shell(.action, "undo-fault", command: "rollback_command", onlyWith: "rollback_command")]))

    // MARK: shared inputs and steps

    static func title(_ value: String) -> TemplateInput {
        TemplateInput(name: "title", label: "Experiment title", kind: .text(maxLength: 200), defaultValue: value,
                      help: "How the experiment is listed.")
    }

    static let serviceURL = TemplateInput(
        name: "service_url", label: "Endpoint URL", kind: .url, defaultValue: "http://localhost:8080/health",
        help: "The address that must keep answering, checked before and after the fault from the runner's host.")

    static let expectedStatus = TemplateInput(
        name: "expected_status", label: "Expected HTTP status", kind: .integer(100...599), defaultValue: "200",
        help: "The status the endpoint answers with when it is healthy.")

    static let requestTimeout = TemplateInput(
        name: "request_timeout", label: "Request timeout", kind: .duration(0.1...120), defaultValue: "5s",
        help: "A request that takes longer counts as a failure.")

    static func endpointAnswers(name: String = "endpoint-answers", timeout: String = "request_timeout") -> Step {
        Step(.probe, name, .http(url: "service_url", timeout: .input(timeout)), expectedStatus: "expected_status")
    }
}
