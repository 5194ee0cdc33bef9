public import Hummingbird
import NIOCore

/// Per-request state: the request id (sent to services and logged) and, once authenticated,
/// the caller.
public struct GatewayContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID = ""
    public var principal: Principal?
    /// Set from the gateway configuration by the first middleware.
    public var bodyLimit = 1 << 20

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { bodyLimit }
}
