import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore

/// One execution's events as server-sent events, backed by WatchExecution. Each control event
/// carries `id: <sequence>`, so a client that reconnects with `Last-Event-ID` gets exactly the
/// events after it. Snapshots (`event: execution`) and `caught_up` carry no id. When the watch
/// ends because this gateway fell behind (`resume_from`, or its own buffer filled while the
/// client read slowly), it is re-opened from the last event sent, invisibly to the client.
struct EventStream: Sendable {
    let client: ExperimentsV1.ExperimentClient
    let options: CallOptions
    let executionID: String

    /// Frames buffered between the RPC and a slow HTTP client before the watch is re-opened.
    static let buffer = 256
    /// An idle stream writes a comment this often: a client that went away is noticed by the
    /// failed write (otherwise its handler would wait for the next event, perhaps forever, and
    /// hold the server's graceful shutdown), and proxies do not time the stream out.
    static let heartbeat: Duration = .seconds(15)
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")

    private enum Outcome: Sendable {
        case ended
        case resume(after: Int64)
    }

    func run(after start: Int64, write: (ByteBuffer) async throws -> Void) async throws {
        var after = start
        while true {
            let (frames, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(Self.buffer))
            let outcome: Outcome
            let from = after
            do {
                outcome = try await withThrowingTaskGroup(of: Outcome?.self) { group in
                    group.addTask {
                        defer { continuation.finish() }
                        return try await watch(after: from, into: continuation)
                    }
                    group.addTask {
                        while (try? await Task.sleep(for: Self.heartbeat)) != nil { continuation.yield(Self.keepAlive) }
                        return nil  // cancelled: the watch ended
                    }
                    // A failed write (the client is gone) throws out of here, cancelling the watch.
                    for await frame in frames { try await write(frame) }
                    group.cancelAll()
                    var outcome = Outcome.ended
                    while let result = try await group.next() { if let result { outcome = result } }
                    return outcome
                }
            } catch let error as RPCError {
                // The 200 is already sent: the failure becomes the stream's last event.
                let problem = Problem(rpc: error)
                try await write(Self.frame(event: "error", id: nil, data: #"{"code":"\#(problem.code)"}"#))
                return
            }
            switch outcome {
            case .ended:
                try await write(Self.frame(event: "end", id: nil, data: "{}"))
                return
            case .resume(let sequence):
                after = sequence
            }
        }
    }

    private func watch(after: Int64, into continuation: AsyncStream<ByteBuffer>.Continuation) async throws -> Outcome {
        let request = ExperimentsV1.WatchExecutionRequest(executionId: executionID, afterSequence: after)
        return try await client.watchExecution(request, options: options) { responses in
            var delivered = after
            for try await response in responses {
                let frame: ByteBuffer
                switch response.item {
                case .event(let event)?:
                    frame = Self.frame(event: "event", id: event.sequence, data: try Self.encode(EventView(event)))
                case .execution(let execution)?:
                    frame = Self.frame(event: "execution", id: nil, data: try Self.encode(ExecutionView(execution)))
                case .caughtUp(let caughtUp)?:
                    frame = Self.frame(event: "caught_up", id: nil, data: #"{"sequence":\#(caughtUp.sequence)}"#)
                case .resumeFrom(let resume)?:
                    return .resume(after: resume.afterSequence)
                case nil:
                    continue
                }
                if case .dropped = continuation.yield(frame) { return .resume(after: delivered) }
                if case .event(let event)? = response.item { delivered = event.sequence }
            }
            return .ended
        }
    }

    static func encode(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder.gateway.encode(value), as: UTF8.self)
    }

    /// JSON never holds a raw newline, so `data` is always one line.
    static func frame(event: String, id: Int64?, data: String) -> ByteBuffer {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(event)\ndata: \(data)\n\n"
        return ByteBuffer(string: text)
    }
}
