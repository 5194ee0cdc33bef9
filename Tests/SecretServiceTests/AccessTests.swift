import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
import ServiceKit
import Testing
@testable import SecretService

@Suite("runner role, audit, organisation scoping, bad input")
struct AccessTests {
    @Test func onlyTheRunnerCredentialRevealsAndEveryAttemptIsAudited() async throws {
        try await Harness.with(database: "secrets_runner") { h in
            let environment = try await h.createEnvironment(secrets: [Harness.envSecret("TOKEN", "t0k3n")])
            let wrong = ["", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + Harness.runnerCredential + "x",
                         "Bearer " + String(Harness.runnerCredential.dropLast()), "bearer " + Harness.runnerCredential,
                         Harness.runnerCredential]
            for header in wrong {
                await expectRPCError(.permissionDenied, "reveal with '\(header)'") {
                    try await h.service.revealEnvironment(.init(environmentId: environment.id, executionId: "exe-x"),
                                                          context: h.context(runner: header))
                }
                await expectRPCError(.permissionDenied, "render with '\(header)'") {
                    try await h.service.renderControls(.init(integrationIds: [], executionId: "exe-x"), context: h.context(runner: header))
                }
            }
            // The runner role header of the Gateway is not the credential.
            await expectRPCError(.permissionDenied) {
                try await h.service.revealEnvironment(.init(environmentId: environment.id), context: h.context(runner: nil))
            }
            // A server without a configured credential refuses everyone.
            let closed = SecretServer(database: h.database, keyring: h.keyring, runner: RunnerCredential(nil), logger: h.logs.logger("x")).handlers
            await expectRPCError(.permissionDenied) {
                try await closed.revealEnvironment(.init(environmentId: environment.id), context: h.context(runner: "Bearer "))
            }

            let revealed = try await h.reveal(environment.id, execution: "exe-42")
            #expect(revealed.secrets.first?.value == Array("t0k3n".utf8))

            let events = try await h.service.listAuditEvents(.init(executionId: "exe-42"), context: h.context())
            let event = try #require(events.events.first)
            #expect(events.events.count == 1)
            #expect(event.action == .revealEnvironment)
            #expect(event.environmentId == environment.id && event.secretNames == ["TOKEN"])
            #expect(event.actor?.id == "tester" && event.peer == "127.0.0.1:4242" && event.occurredAtUs > 0)
            let denied = try await h.service.listAuditEvents(.init(executionId: "exe-x", actions: [.revealDenied]), context: h.context())
            #expect(denied.events.count == wrong.count * 2)
            #expect(Set(denied.events.map(\.action)) == [.revealDenied])

            // Paging walks every event once, newest first.
            var seen: [String] = [], token = ""
            repeat {
                let page = try await h.service.listAuditEvents(.init(pageSize: 5, pageToken: token), context: h.context())
                seen += page.events.map(\.id)
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(seen.count == Set(seen).count && seen.count == wrong.count * 2 + 4)  // + create, two more refusals, the reveal
            await expectRPCError(.invalidArgument, "token of another query") {
                let first = try await h.service.listAuditEvents(.init(pageSize: 1), context: h.context())
                return try await h.service.listAuditEvents(.init(pageSize: 1, pageToken: first.nextPageToken, executionId: "exe-42"), context: h.context())
            }
            // Audit is per organisation.
            #expect(try await h.service.listAuditEvents(.init(), context: h.context("org-b")).events.isEmpty)
        }
    }

    @Test func everyCallIsScopedByOrganisation() async throws {
        try await Harness.with(database: "secrets_orgs") { h in
            let mine = try await h.createEnvironment(secrets: [Harness.envSecret("S", "v")])
            _ = try await h.createEnvironment(org: "org-b", secrets: [])  // the same name in another organisation is fine
            let other = "org-b"
            await expectRPCError(.notFound) { try await h.service.getEnvironment(.init(environmentId: mine.id), context: h.context(other)) }
            await expectRPCError(.notFound) { try await h.service.updateEnvironment(.init(environmentId: mine.id), context: h.context(other)) }
            await expectRPCError(.notFound) { try await h.service.deleteEnvironment(.init(environmentId: mine.id), context: h.context(other)) }
            await expectRPCError(.notFound) { try await h.reveal(mine.id, org: other) }
            await expectRPCError(.notFound) {
                try await h.service.createIntegration(.init(name: "i", config: IntegrationTests.preCheck(), environmentId: mine.id), context: h.context(other))
            }
            // Integrations: invisible to another organisation, and never rendered for its runner.
            let integration = try #require(try await h.service.createIntegration(
                .init(name: "i", config: IntegrationTests.preCheck(), environmentId: mine.id), context: h.context()).integration)
            await expectRPCError(.notFound) { try await h.service.getIntegration(.init(integrationId: integration.id), context: h.context(other)) }
            await expectRPCError(.notFound) {
                try await h.service.updateIntegration(.init(integrationId: integration.id, name: "x", config: IntegrationTests.preCheck(), environmentId: mine.id),
                                                      context: h.context(other))
            }
            await expectRPCError(.notFound) { try await h.service.deleteIntegration(.init(integrationId: integration.id), context: h.context(other)) }
            await expectRPCError(.notFound) { try await h.service.renderControls(.init(integrationIds: [integration.id]), context: h.runnerContext(other)) }
            #expect(try await h.service.listIntegrations(.init(), context: h.context(other)).integrations.isEmpty)
            #expect(try await h.service.getIntegration(.init(integrationId: integration.id), context: h.context()).integration?.name == "i")
            #expect(try await h.service.listEnvironments(.init(), context: h.context(other)).environments.map(\.name) == ["staging"])
            #expect(try await h.service.listEnvironments(.init(), context: h.context()).environments.map(\.id) == [mine.id])
            await expectRPCError(.unauthenticated) { try await h.service.listEnvironments(.init(), context: h.context(nil)) }
            await expectRPCError(.unauthenticated) { try await h.service.listEnvironments(.init(), context: h.context("bad org!")) }
        }
    }

    @Test func badInputIsRefusedClearlyAndLosesNothing() async throws {
        var configuration = SecretServiceConfiguration()
        configuration.maximumSecrets = 3
        try await Harness.with(database: "secrets_input", configuration: configuration) { h in
            let environment = try await h.createEnvironment(secrets: [Harness.envSecret("KEEP", "kept")])
            let unknown = "env_" + String(repeating: "0", count: 32)
            for id in ["", "env_123", "int_" + String(repeating: "0", count: 32), "env_" + String(repeating: "G", count: 32), "env_\u{0}"] {
                await expectRPCError(.invalidArgument, "id \(id)") { try await h.service.getEnvironment(.init(environmentId: id), context: h.context()) }
            }
            await expectRPCError(.notFound) { try await h.service.getEnvironment(.init(environmentId: unknown), context: h.context()) }
            await expectRPCError(.notFound) { try await h.reveal(unknown) }
            await expectRPCError(.notFound) {
                try await h.service.renderControls(.init(integrationIds: ["int_" + String(repeating: "a", count: 32)]), context: h.runnerContext())
            }
            for name in ["", String(repeating: "n", count: 201), "tab\tname"] {
                await expectRPCError(.invalidArgument, "env name") { try await h.createEnvironment(name, secrets: []) }
            }
            await expectRPCError(.alreadyExists) { try await h.createEnvironment(secrets: []) }
            for secret in ["", "1X", "a-b", "ä", String(repeating: "X", count: 129)] {
                await expectRPCError(.invalidArgument, "secret \(secret)") { try await h.createEnvironment("n", secrets: [Harness.envSecret(secret, "v")]) }
            }
            await expectRPCError(.invalidArgument, "duplicate") {
                try await h.createEnvironment("n", secrets: [Harness.envSecret("A", "1"), Harness.envSecret("A", "2")])
            }
            await expectRPCError(.invalidArgument, "invalid UTF-8 as env var") {
                try await h.createEnvironment("n", secrets: [.init(name: "A", delivery: nil, value: [0xff, 0xfe])])
            }
            for path in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
                await expectRPCError(.invalidArgument, "path \(path)") { try await h.createEnvironment("n", secrets: [Harness.fileSecret("F", [1], path: path)]) }
            }
            await expectRPCError(.invalidArgument, "variable name") { try await h.createEnvironment("n", variables: ["1A": "x"], secrets: []) }
            await expectRPCError(.resourceExhausted, "too many secrets") {
                try await h.createEnvironment("n", secrets: (0..<4).map { Harness.envSecret("S\($0)", "v") })
            }
            await expectRPCError(.resourceExhausted, "secret too large") {
                try await h.createEnvironment("n", secrets: [Harness.fileSecret("F", [UInt8](repeating: 1, count: (64 << 10) + 1), path: "f")])
            }
            // An update that would pass the limit rolls back whole.
            await expectRPCError(.resourceExhausted, "update past the limit") {
                try await h.service.updateEnvironment(.init(environmentId: environment.id, setSecrets: (0..<3).map { Harness.envSecret("N\($0)", "v") }),
                                                      context: h.context())
            }
            await expectRPCError(.aborted, "stale version") {
                try await h.service.updateEnvironment(.init(environmentId: environment.id, expectedVersion: 7), context: h.context())
            }
            await expectRPCError(.invalidArgument) { try await h.service.listEnvironments(.init(pageToken: "garbage!"), context: h.context()) }
            await expectRPCError(.invalidArgument) { try await h.service.listEnvironments(.init(pageSize: -1), context: h.context()) }
            let kept = try await h.reveal(environment.id)
            #expect(kept.secrets.map(\.name) == ["KEEP"] && kept.secrets[0].value == Array("kept".utf8))
            #expect(try await h.service.listEnvironments(.init(), context: h.context()).environments.count == 1)

            // Updates: variables merge or replace, secrets set and delete, version increments.
            let updated = try #require(try await h.service.updateEnvironment(.init(
                environmentId: environment.id, expectedVersion: 1, name: .init(value: "renamed"), replaceVariables: true,
                variables: ["NEW": "1"], setSecrets: [Harness.fileSecret("KUBE", [0, 1, 2], path: "secrets/kube", pathEnvVar: "KUBECONFIG")],
                deleteSecrets: ["KEEP", "UNKNOWN"]), context: h.context()).environment)
            #expect(updated.name == "renamed" && updated.version == 2 && updated.variables == ["NEW": "1"])
            #expect(updated.secrets.map(\.name) == ["KUBE"])
            #expect(updated.secrets[0].delivery == .init(target: .file(.init(path: "secrets/kube", pathEnvVar: "KUBECONFIG"))))
            #expect(try await h.reveal(environment.id).secrets.map(\.value) == [[0, 1, 2]])

            _ = try await h.service.deleteEnvironment(.init(environmentId: environment.id), context: h.context())
            await expectRPCError(.notFound) { try await h.service.deleteEnvironment(.init(environmentId: environment.id), context: h.context()) }
            #expect(try await h.database.query("SELECT count(*) FROM secrets.secrets").first!.decode(Int64.self, at: 0) == 0)
        }
    }
}
