import Foundation
import Logging
import NIOCore
import NIOPosix

/// What the control asks of a run at its checkpoints (PROTOCOL.md §3.3, §5).
enum DesiredState: Sendable, Equatable {
    case run
    case pause(untilUs: Int64?, reason: String?)
    case terminate(rollbacks: Bool?, reason: String?)

    var answerFields: [String: Any] {
        switch self {
        case .run:
            return ["state": "run"]
        case .pause(let until, let reason):
            var fields: [String: Any] = ["state": "pause"]
            if let until, until > 0 { fields["pause_until_us"] = until }
            if let reason, !reason.isEmpty { fields["reason"] = reason }
            return fields
        case .terminate(let rollbacks, let reason):
            var fields: [String: Any] = ["state": "terminate"]
            if let rollbacks { fields["rollbacks"] = rollbacks }
            if let reason, !reason.isEmpty { fields["reason"] = reason }
            return fields
        }
    }
}

/// One control event as received (PROTOCOL.md §3.2).
struct ControlEvent: Sendable, Codable, Equatable {
    var seq: Int64
    var type: String
    var tsUs: Int64
    /// The payload's JSON text, as re-encoded by the runner.
    var payloadJSON: String
    var activityName: String
}

/// The side of a run the control socket talks to.
protocol ControlPeer: Sendable {
    var executionID: String { get }
    /// Answers a poll from memory: never blocks on anything remote.
    func desiredState() -> DesiredState
    /// An event with its seq; the peer drops duplicates.
    func receive(_ event: ControlEvent)
}

/// The per-run Unix socket the faultline control connects to: newline-delimited JSON, lines of at
/// most 1 MiB, any number of sequential connections per run.
final class ControlSocket: Sendable {
    static let maxLine = 1 << 20

    private let channel: any Channel
    let path: String

    init(path: String, peer: any ControlPeer, logger: Logger) async throws {
        self.path = path
        unlink(path)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlConnectionHandler(peer: peer, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
    }

    func close() async {
        try? await channel.close()
        unlink(path)
    }
}

/// Splits a connection into lines and handles each message.
final class ControlConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let peer: any ControlPeer
    private let logger: Logger
    private var buffer = ByteBuffer()
    /// Inside an over-long line: drop bytes until its newline.
    private var discarding = false
    /// Refused (hello for another execution): nothing more is read from it.
    private var refused = false

    init(peer: any ControlPeer, logger: Logger) {
        self.peer = peer
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while !refused, let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - buffer.readerIndex
            if discarding {
                buffer.moveReaderIndex(forwardBy: length + 1)
                discarding = false
                continue
            }
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if length + 1 > ControlSocket.maxLine {
                logger.warning("control line over 1 MiB discarded", metadata: ["bytes": "\(length + 1)"])
                continue
            }
            handle(line: line, context: context)
        }
        if buffer.readableBytes >= ControlSocket.maxLine {
            logger.warning("control line over 1 MiB discarded")
            buffer.clear()
            discarding = true
        }
        buffer.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A trailing partial line before EOF is discarded (PROTOCOL.md §2).
        buffer.clear()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("control connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func handle(line: ByteBuffer, context: ChannelHandlerContext) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.readableBytesView))) as? [String: Any] else {
            logger.debug("control line is not a JSON object; skipped")
            return
        }
        if let seq = Self.integer(object["seq"]) {
            guard seq >= 1, let type = object["type"] as? String, !type.isEmpty, type.utf8.count <= 128 else {
                logger.debug("malformed control event skipped")
                return
            }
            let payload = object["payload"] as? [String: Any] ?? [:]
            let payloadJSON = (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            let name = type.hasPrefix("activity-") ? (payload["name"] as? String ?? "") : ""
            peer.receive(ControlEvent(seq: seq, type: type, tsUs: Self.integer(object["ts_us"]) ?? 0,
                                      payloadJSON: payloadJSON, activityName: name))
            return
        }
        switch object["type"] as? String {
        case "hello":
            let id = object["execution_id"] as? String
            if id != peer.executionID {
                logger.warning("control hello for another execution; closing", metadata: ["hello": "\(id ?? "null")"])
                refused = true
                buffer.clear()
                context.close(promise: nil)
            }
        case "poll":
            guard let pollID = Self.integer(object["poll_id"]) else { return }
            var answer = peer.desiredState().answerFields
            answer["type"] = "state"
            answer["poll_id"] = pollID
            guard var data = try? JSONSerialization.data(withJSONObject: answer) else { return }
            data.append(UInt8(ascii: "\n"))
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: data)), promise: nil)
        default:
            logger.debug("unknown control message skipped")
        }
    }

    /// JSON integers only (JSONSerialization gives NSNumber; booleans and fractions are refused).
    static func integer(_ value: Any?) -> Int64? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        let int = number.int64Value
        return NSNumber(value: int) == number ? int : nil
    }
}
