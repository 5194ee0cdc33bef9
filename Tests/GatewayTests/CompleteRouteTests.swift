import FaultlineProto
import Foundation
import HTTPTypes
@testable import Gateway
import ServiceKit
import Testing

@Suite("POST /executions/{id}/complete: one RPC, ExperimentService's rules")
struct CompleteRouteTests {
    static let journal = #"{"journal": {"status": "completed", "deviated": false, "run": [], "rollbacks": []}, "log": "ok"}"#

    @Test("pending external run: started and ended at once; a runner's run is 409 runner_owned and untouched; terminal is 400")
    func rules() async throws {
        try await Harness.with("complete-route") { h in
            let experiment = try await h.importExperiment()
            let created = try await h.call(.post, "/api/v1/experiments/\(experiment)/executions", token: h.token("a", .runner), body: #"{"external": true}"#)
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["status"] as? String == "pending")
            let done = try await h.call(.post, "/api/v1/executions/\(id)/complete", token: h.token("a", .runner), body: Self.journal)
            #expect(done.status == 200 && done.json["status"] as? String == "completed")
            let started = try #require(done.json["started_at_us"] as? Int64)
            #expect(started > 0 && started == done.json["ended_at_us"] as? Int64)

            // A runner's execution, pending or running: only its runner ends it.
            let organization = try #require(h.organizations["a"])
            let owned = try #require(try await h.experiments.createExecution(.init(experimentId: experiment, runnerId: "runner-7"),
                                                                              options: .on(behalfOf: organization)).execution)
            let refused = try await h.call(.post, "/api/v1/executions/\(owned.id)/complete", token: h.token("a", .runner), body: Self.journal)
            #expect(refused.status == 409 && refused.code == "execution.runner_owned")
            #expect(try await h.experiments.getExecution(.init(executionId: owned.id), options: .on(behalfOf: organization)).execution == owned)

            // Ended without a journal (lost), then a journal arrives: FAILED_PRECONDITION, 400.
            let late = try await h.call(.post, "/api/v1/experiments/\(experiment)/executions", token: h.token("a", .runner), body: #"{"external": true}"#)
            let lateID = try #require(late.json["id"] as? String)
            _ = try await h.experiments.completeExecution(.init(executionId: lateID), options: .on(behalfOf: organization))
            let after = try await h.call(.post, "/api/v1/executions/\(lateID)/complete", token: h.token("a", .runner), body: Self.journal)
            #expect(after.status == 400 && after.code == "rpc.failed_precondition")
        }
    }
}
