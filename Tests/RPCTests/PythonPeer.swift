import Foundation
import Testing

/// Runs the grpcio peers under `Tests/RPCTests/peers` with the project's Python venv
/// (`$FAULTLINE_VENV`, default `.venv` at the package root).
enum PythonPeer {
    static let peers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("peers")

    static var python: String {
        let venv = ProcessInfo.processInfo.environment["FAULTLINE_VENV"]
            ?? peers.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".venv").path
        return venv + "/bin/python"
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a peer script to completion off the cooperative pool; returns its parsed JSON output.
    static func run(_ script: String, _ arguments: [String]) async throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Failure(description: "no Python at \(python): set FAULTLINE_VENV or run scripts/bootstrap")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peers.appendingPathComponent(script).path] + arguments
        process.currentDirectoryURL = peers
        let stdout = Pipe()
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("rpc-peer-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: errorFile)
        process.standardInput = FileHandle.nullDevice
        let (output, status) = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(Data, Int32), any Error>) in
            Thread.detachNewThread {
                do {
                    try process.run()
                    let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (outputData, process.terminationStatus))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        let errors = (try? Data(contentsOf: errorFile)) ?? Data()
        guard status == 0,
              let json = try? JSONSerialization.jsonObject(with: output) as? [String: Any]
        else {
            throw Failure(description: "\(script) \(arguments) exited \(status): \(String(decoding: output, as: UTF8.self)) \(String(decoding: errors.suffix(4000), as: UTF8.self))")
        }
        return json
    }

    /// A running grpcio server; `stop()` closes its stdin and waits for it.
    final class Server: @unchecked Sendable {  // all mutable state is set in init, then read-only
        let port: Int
        private let process: Process
        private let stdin: Pipe

        init(_ script: String = "grpcio_server.py") async throws {
            guard FileManager.default.isExecutableFile(atPath: PythonPeer.python) else {
                throw Failure(description: "no Python at \(PythonPeer.python): set FAULTLINE_VENV or run scripts/bootstrap")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: PythonPeer.python)
            process.arguments = [PythonPeer.peers.appendingPathComponent(script).path]
            process.currentDirectoryURL = PythonPeer.peers
            let stdout = Pipe(), stdin = Pipe()
            process.standardOutput = stdout
            process.standardInput = stdin
            process.standardError = FileHandle.standardError
            try process.run()
            let line = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
                Thread.detachNewThread {
                    var bytes = Data()
                    while !bytes.contains(UInt8(ascii: "\n")) {
                        let chunk = stdout.fileHandleForReading.availableData
                        if chunk.isEmpty { break }
                        bytes += chunk
                    }
                    continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
                }
            }
            guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                process.terminate()
                throw Failure(description: "\(script) did not start: \(line)")
            }
            self.port = port
            self.process = process
            self.stdin = stdin
        }

        func stop() async {
            try? stdin.fileHandleForWriting.close()
            let process = process
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    process.waitUntilExit()
                    continuation.resume()
                }
            }
        }
    }
}
