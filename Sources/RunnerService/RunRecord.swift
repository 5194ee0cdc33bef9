import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What survives a runner crash about one run it owned: enough to end it as lost on restart,
/// replay its spooled events and kill what is left of its process group.
struct RunRecord: Codable, Sendable, Equatable {
    var executionID: String
    var organization: String
    /// The `chaos` process id, which is also its process group id; 0 before the spawn.
    var pid: Int32
    var runDirectory: String
}

/// The runner's state directory: `runs/<execution>.json` records, `runs/<execution>.events`
/// spools, and `r/<short id>` run directories (short: the control socket path must stay under
/// 108 bytes).
struct StateDirectory: Sendable {
    let root: URL

    init(_ root: URL) throws {
        self.root = root
        for dir in [root, runs, runDirectories] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }

    var runs: URL { root.appendingPathComponent("runs") }
    var runDirectories: URL { root.appendingPathComponent("r") }

    func recordFile(_ executionID: String) -> URL { runs.appendingPathComponent("\(Self.fileName(executionID)).json") }
    func spoolFile(_ executionID: String) -> URL { runs.appendingPathComponent("\(Self.fileName(executionID)).events") }

    /// Execution ids come from ExperimentService; still, never let one name a path outside.
    static func fileName(_ executionID: String) -> String {
        String(executionID.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "-" ? Character($0) : "_" })
    }

    func save(_ record: RunRecord) throws {
        let file = recordFile(record.executionID)
        let temporary = file.appendingPathExtension("tmp")
        try JSONEncoder().encode(record).write(to: temporary)
        guard rename(temporary.path, file.path) == 0 else {
            throw RunnerError.runDirectory("cannot write \(file.path): \(String(cString: strerror(errno)))")
        }
    }

    func records() -> [RunRecord] {
        let files = (try? FileManager.default.contentsOfDirectory(at: runs, includingPropertiesForKeys: nil)) ?? []
        return files.filter { $0.pathExtension == "json" }.compactMap { file in
            (try? Data(contentsOf: file)).flatMap { try? JSONDecoder().decode(RunRecord.self, from: $0) }
        }
    }

    func forget(_ executionID: String) {
        try? FileManager.default.removeItem(at: recordFile(executionID))
        try? FileManager.default.removeItem(at: spoolFile(executionID))
    }
}
