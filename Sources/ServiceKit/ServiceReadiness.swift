import Foundation

/// How a service process tells its supervisor (`faultline up`) where it listens: one line on
/// standard output, `faultline-ready HOST:PORT`, once the port is bound.
public enum ServiceReadiness {
    public static let prefix = "faultline-ready "

    public static func announce(host: String, port: Int) {
        // Written straight to the file descriptor: stdout may be a pipe, where print() buffers.
        FileHandle.standardOutput.write(Data("\(prefix)\(host):\(port)\n".utf8))
    }
}
