import FaultlineProto
import FaultlineRPC
import Foundation
import Logging
import ServiceKit
import Synchronization
import Testing
@testable import RunnerService

#if canImport(Glibc)
import Glibc
#endif

/// The control socket against hostile and out-of-order input, over a real Unix socket.
@Suite("Control socket (PROTOCOL.md §2-3)")
struct ControlSocketTests {
    final class Peer: ControlPeer {
        let executionID = "ex-1"
        let state = Mutex<DesiredState>(.run)
        let relay: EventRelay
        let received = Mutex<[ControlEvent]>([])

        /// The relay's client is never called: `deliver()` is not run here.
        init(directory: URL) {
            relay = EventRelay(executionID: "ex-1", organization: .init("org")!,
                               client: .init(RPCClient(host: "127.0.0.1", port: 1)), spoolFile: directory.appendingPathComponent("spool"),
                               limitBytes: 1 << 20, logger: Logger(label: "test"))
        }

        func desiredState() -> DesiredState { state.withLock { $0 } }
        func receive(_ event: ControlEvent) {
            let before = relay.highestSeq
            relay.receive(event)
            if relay.highestSeq != before { received.withLock { $0.append(event) } }
        }
    }

    /// A blocking Unix socket client, as the Python control is.
    struct Client {
        let fd: Int32

        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (i, byte) in path.utf8.enumerated() { buffer[i] = byte }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                sent += n
            }
        }

        func readLine() -> [String: Any]? {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while recv(fd, &byte, 1, 0) == 1 {
                if byte == UInt8(ascii: "\n") {
                    return try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
                }
                line.append(byte)
            }
            return nil
        }

        func close() { Glibc.close(fd) }
    }

    static func event(_ seq: Int, _ type: String = "activity-before") -> String {
        #"{"seq": \#(seq), "type": "\#(type)", "ts_us": 5, "payload": {"name": "a\#(seq)", "x": [1, 2]}}"# + "\n"
    }

    @Test("duplicates, replays and reconnects are de-duplicated by seq; polls answered with the desired state")
    func sequencingAndPolls() async throws {
        let directory = try Env.temporaryDirectory("cs")
        defer { try? FileManager.default.removeItem(at: directory) }
        let peer = Peer(directory: directory)
        let socket = try await ControlSocket(path: directory.appendingPathComponent("c.sock").path, peer: peer, logger: Logger(label: "t"))
        defer { Task { await socket.close() } }

        let first = try Client(path: socket.path)
        first.send(#"{"type": "hello", "protocol": 1, "execution_id": "ex-1", "pid": 1}"# + "\n")
        first.send(Self.event(1) + Self.event(2) + Self.event(2))
        first.send(#"{"type": "poll", "poll_id": 1, "ts_us": 1, "at": {"hook": "before-method"}}"# + "\n")
        let answer = try #require(first.readLine())
        #expect(answer["type"] as? String == "state" && answer["poll_id"] as? Int == 1 && answer["state"] as? String == "run")
        // A partial line before the close is discarded.
        first.send(#"{"seq": 3, "type": "cut"#)
        first.close()

        // Reconnect: replay of 1-2, then new events; one out of order (seq 3 after 4) is a duplicate.
        let second = try Client(path: socket.path)
        second.send(#"{"type": "hello", "protocol": 1, "execution_id": "ex-1", "pid": 1}"# + "\n")
        second.send(Self.event(1) + Self.event(2) + Self.event(4) + Self.event(3))
        peer.state.withLock { $0 = .terminate(rollbacks: false, reason: "stop") }
        second.send(#"{"type": "poll", "poll_id": 2, "ts_us": 1, "at": {"hook": "before-activity"}}"# + "\n")
        let terminate = try #require(second.readLine())
        #expect(terminate["state"] as? String == "terminate" && terminate["rollbacks"] as? Bool == false)
        #expect(terminate["poll_id"] as? Int == 2)
        second.close()
        #expect(peer.received.withLock { $0.map(\.seq) } == [1, 2, 4])
        #expect(peer.received.withLock { $0.first?.activityName } == "a1")
    }

    @Test("garbage, wrong types, over-long lines and a hello for another execution")
    func hostileInput() async throws {
        let directory = try Env.temporaryDirectory("cs")
        defer { try? FileManager.default.removeItem(at: directory) }
        let peer = Peer(directory: directory)
        let socket = try await ControlSocket(path: directory.appendingPathComponent("c.sock").path, peer: peer, logger: Logger(label: "t"))
        defer { Task { await socket.close() } }

        let client = try Client(path: socket.path)
        client.send("not json\n[1,2]\n\"str\"\n{\"seq\": 0, \"type\": \"x\"}\n{\"seq\": 1.5, \"type\": \"x\"}\n{\"seq\": true, \"type\": \"x\"}\n")
        client.send("{\"seq\": 1}\n{\"type\": \"poll\", \"poll_id\": \"x\"}\n")
        client.send(#"{"seq": 1, "type": ""# + String(repeating: "z", count: ControlSocket.maxLine + 10) + "\"}\n")
        client.send(Self.event(1, "loading-before"))
        client.send(#"{"type": "poll", "poll_id": 9, "ts_us": 1}"# + "\n")
        #expect(client.readLine()?["poll_id"] as? Int == 9, "the connection survived the garbage")
        client.close()
        #expect(peer.received.withLock { $0.map(\.seq) } == [1])

        let stranger = try Client(path: socket.path)
        stranger.send(#"{"type": "hello", "protocol": 1, "execution_id": "someone-else", "pid": 1}"# + "\n")
        stranger.send(Self.event(2))
        #expect(stranger.readLine() == nil, "closed on a mismatched hello")
        stranger.close()
        #expect(peer.received.withLock { $0.map(\.seq) } == [1])
    }
}
