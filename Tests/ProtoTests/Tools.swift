import Foundation

/// Paths and processes the tests share: the repository, the Python venv, scratch directories.
enum Tools {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$FAULTLINE_VENV`, default `.venv` at the repository root (made by scripts/bootstrap).
    static var venv: URL {
        ProcessInfo.processInfo.environment["FAULTLINE_VENV"].map { URL(fileURLWithPath: $0) } ?? repo.appendingPathComponent(".venv")
    }

    static var python: URL { venv.appendingPathComponent("bin/python") }

    /// A fresh directory under `$FAULTLINE_TEST_TMP` (or the system temporary directory).
    static func scratch() throws -> URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["FAULTLINE_TEST_TMP"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
        let dir = base.appendingPathComponent("proto-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Output goes to files rather than pipes, so a chatty child can never block on a full pipe.
    static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws -> Result {
        let outputs = FileManager.default.temporaryDirectory.appendingPathComponent("proto-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outputs) }
        let outURL = outputs.appendingPathComponent("stdout"), errURL = outputs.appendingPathComponent("stderr")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }

        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// Runs the venv's Python and returns its stdout; a non-zero exit throws with its stderr.
    @discardableResult
    static func python(_ arguments: [String], in directory: URL? = nil) throws -> String {
        let result = try run(python, arguments, in: directory)
        guard result.status == 0 else {
            throw Failure(description: "python \(arguments.prefix(3).joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }
}
