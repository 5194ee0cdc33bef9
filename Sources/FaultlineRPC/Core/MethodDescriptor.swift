/// Names one RPC method, e.g. service `grpc.health.v1.Health`, method `Check`.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// The fully qualified service name, package included.
    public let service: String
    public let method: String
    /// The HTTP/2 `:path` of the method: `/service/method`.
    public let path: String

    public init(service: String, method: String) {
        self.service = service
        self.method = method
        self.path = "/\(service)/\(method)"
    }

    public var description: String { path }
}
