import ArgumentParser

@main
struct Faultline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faultline",
        abstract: "A self-hosted chaos-engineering platform around Chaos Toolkit.",
        subcommands: [
            Up.self,
            ExperimentServiceCommand.self,
            RunnerCommand.self,
            SecretServiceCommand.self,
            ScheduleServiceCommand.self,
            GatewayCommand.self,
            ExperimentCommand.self,
            RunCommand.self,
            ExecutionCommand.self,
            PlanCommand.self,
            EnvironmentCommand.self,
            IntegrationCommand.self,
            HaltCommand.self,
            ResumeCommand.self,
            HealthCommand.self,
        ]
    )
}
