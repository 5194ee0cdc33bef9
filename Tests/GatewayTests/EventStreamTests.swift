import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import HummingbirdTesting
import ServiceKit
import NIOCore
import NIOPosix
import Testing

@Suite("Gateway SSE", .serialized)
struct EventStreamTests {
    static func events(_ execution: String, _ range: ClosedRange<Int64>) -> ExperimentsV1.ReportEventsRequest {
        .init(events: range.map {
            .init(executionId: execution, sequence: $0, type: "activity-after", occurredAtUs: $0, payloadJson: #"{"n":\#($0)}"#)
        })
    }

    @Test("events stream replays, follows live, and resumes after a dropped connection with Last-Event-ID")
    func resumeAfterDrop() async throws {
        try await Harness.with("sse") { h in
            let organization = h.organizations["a"]!
            let experiment = try await h.importExperiment()
            let execution = try await h.createExecution(of: experiment)
            _ = try await h.experiments.startExecution(.init(executionId: execution), options: .on(behalfOf: organization))
            let firstBatch = Self.events(execution, 1...3)
            _ = try await h.experiments.reportEvents(options: .on(behalfOf: organization)) { try await $0.write(firstBatch) }

            // A raw connection that reads until event 2 is complete, then drops.
            let port = try #require(h.client.port)
            let seen = try await Self.readUntil("id: 2\n", port: port, path: "/api/v1/executions/\(execution)/events/stream", token: h.token("a", .viewer))
            #expect(seen.contains("text/event-stream"))
            #expect(seen.contains("event: execution"))
            #expect(seen.contains("id: 1\n"))

            let secondBatch = Self.events(execution, 4...5)
            _ = try await h.experiments.reportEvents(options: .on(behalfOf: organization)) { try await $0.write(secondBatch) }
            var complete = ExperimentsV1.CompleteExecutionRequest()
            complete.executionId = execution
            complete.exit = .init(exitCode: 1, signal: 0)
            _ = try await h.experiments.completeExecution(complete, options: .on(behalfOf: organization))

            var headers = HTTPFields()
            headers[HTTPField.Name("last-event-id")!] = "2"
            let resumed = try await h.call(.get, "/api/v1/executions/\(execution)/events/stream", token: h.token("a", .viewer), headers: headers)
            #expect(resumed.status == 200)
            let ids = resumed.text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) }
            #expect(ids == ["3", "4", "5"])
            #expect(resumed.text.contains("event: end\n"))
            #expect(resumed.text.contains(#""n":4"#))

            var bad = HTTPFields()
            bad[HTTPField.Name("last-event-id")!] = "yesterday"
            #expect(try await h.call(.get, "/api/v1/executions/\(execution)/events/stream", token: h.token(), headers: bad).status == 400)
            #expect(try await h.call(.get, "/api/v1/executions/unknown/events/stream", token: h.token()).status == 404)
        }
    }

    /// Sends one GET over a plain socket and returns what arrived once `marker` was seen
    /// (followed by the end of its frame), closing the connection mid-stream.
    static func readUntil(_ marker: String, port: Int, path: String, token: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n\r\n"))
            var text = ""
            for try await chunk in inbound {
                text += String(buffer: chunk)
                if let range = text.range(of: marker), text[range.upperBound...].contains("\n\n") { return text }
            }
            throw HarnessError("stream ended before \(marker): \(text)")
        }
    }
}
