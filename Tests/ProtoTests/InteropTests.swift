import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import Testing

/// Byte-for-byte interop with Python's `protobuf`: stubs compiled at test time by
/// `grpc_tools.protoc` from the same protos/, never committed.
@Suite("Interop with Python protobuf")
struct InteropTests {
    @Test func swiftAndPythonAgreeOnEverySample() throws {
        let dir = try Tools.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let stubs = dir.appendingPathComponent("stubs")
        try FileManager.default.createDirectory(at: stubs, withIntermediateDirectories: true)
        try Tools.python(["-m", "grpc_tools.protoc", "-I", "protos", "--python_out=\(stubs.path)",
                      "faultline/testing/v1/field_kinds.proto"], in: Tools.repo)

        for sample in Samples.all {
            let bytes = Array(buffer: try sample.message.serializedBytes())
            try Data(bytes).write(to: dir.appendingPathComponent("\(sample.name).swift.bin"))
        }
        let script = Tools.repo.appendingPathComponent("Tests/ProtoTests/interop.py").path
        let output = try Tools.python([script, stubs.path, dir.path] + Samples.all.map(\.name))
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
        let dir = try Tools.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let protos = try FileManager.default.subpathsOfDirectory(atPath: Tools.repo.appendingPathComponent("protos").path)
            .filter { $0.hasSuffix(".proto") }.sorted()
        #expect(protos.count >= 3)
        try Tools.python(["-m", "grpc_tools.protoc", "-I", "protos", "--python_out=\(dir.path)", "--grpc_python_out=\(dir.path)"] + protos, in: Tools.repo)
    }
}
