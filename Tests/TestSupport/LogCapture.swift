import Foundation
public import Logging
import Synchronization

/// Every line a logger wrote, rendered with its metadata, for "no secret in any log" and
/// "this was logged" checks; also printed with FAULTLINE_TEST_LOG set.
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])
    public var all: [String] { lines.withLock { $0 } }

    public init() {}

    public func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ line: String) {
        lines.withLock { $0.append(line) }
        if ProcessInfo.processInfo.environment["FAULTLINE_TEST_LOG"] != nil { print(line) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append("\(event.level) \(event.message) \(merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }
}
