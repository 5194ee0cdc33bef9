import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import Testing

/// Byte-for-byte interop with Python's `protobuf`: stubs compiled at test time by
/// `grpc_tools.protoc` from the same protos/, never committed.
@Suite("Interop with Python protobuf")
struct InteropTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var python: URL {
        let env = ProcessInfo.processInfo.environment
        let venv = env["FAULTLINE_VENV"].map { URL(fileURLWithPath: $0) } ?? repo.appendingPathComponent(".venv")
        return venv.appendingPathComponent("bin/python")
    }

    /// A fresh directory under `$FAULTLINE_TEST_TMP` (or the system temporary directory).
    static func scratch() throws -> URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["FAULTLINE_TEST_TMP"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
        let dir = base.appendingPathComponent("proto-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @discardableResult
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> String {
        let process = Process()
        process.executableURL = python
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting: a full pipe would otherwise block the child forever.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw InteropFailure(description: "python \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: stderr, as: UTF8.self))")
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    struct InteropFailure: Error, CustomStringConvertible { let description: String }

    @Test func swiftAndPythonAgreeOnEverySample() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let stubs = dir.appendingPathComponent("stubs")
        try FileManager.default.createDirectory(at: stubs, withIntermediateDirectories: true)
        try Self.run(["-m", "grpc_tools.protoc", "-I", "protos", "--python_out=\(stubs.path)",
                      "faultline/testing/v1/field_kinds.proto"], in: Self.repo)

        for sample in Samples.all {
            let bytes = Array(buffer: try sample.message.serializedBytes())
            try Data(bytes).write(to: dir.appendingPathComponent("\(sample.name).swift.bin"))
        }
        let script = Self.repo.appendingPathComponent("Tests/ProtoTests/interop.py").path
        let output = try Self.run([script, stubs.path, dir.path] + Samples.all.map(\.name))
        let verdicts = Dictionary(uniqueKeysWithValues: output.split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            return (String(parts[0]), String(parts.count > 1 ? parts[1] : ""))
        })

        for sample in Samples.all {
            // Python decoded Swift's bytes to the same message...
            let verdict = try #require(verdicts[sample.name], "no verdict for \(sample.name): \(output)")
            #expect(!verdict.hasPrefix("MISMATCH"), "\(sample.name): \(verdict)")
            if sample.byteExact {
                #expect(verdict == "same", "\(sample.name): Python encodes other bytes")
            }
            // ...and Swift decodes Python's bytes to the same message.
            let python = try Data(contentsOf: dir.appendingPathComponent("\(sample.name).python.bin"))
            let decoded = try TestingV1.FieldKinds(serializedBytes: [UInt8](python))
            #expect(decoded == sample.message, "\(sample.name): Swift decoded Python's bytes differently")
        }
    }

    @Test func everyContractFileCompilesWithGrpcTools() throws {
        // The contract is usable by a stock toolchain (grpcio peers, other languages).
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let protos = try FileManager.default.subpathsOfDirectory(atPath: Self.repo.appendingPathComponent("protos").path)
            .filter { $0.hasSuffix(".proto") }.sorted()
        #expect(protos.count >= 3)
        try Self.run(["-m", "grpc_tools.protoc", "-I", "protos", "--python_out=\(dir.path)", "--grpc_python_out=\(dir.path)"] + protos, in: Self.repo)
    }
}
