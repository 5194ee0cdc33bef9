/// How a gateway is set up; `faultline gateway` fills it from the environment.
public struct GatewayConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Larger request bodies are refused with 413.
    public var maximumBodyBytes = 1 << 20
    /// Each request's RPCs get this deadline (`grpc-timeout`); SSE streams have none.
    public var requestTimeout: Duration = .seconds(30)
    /// Origins allowed by CORS; `*` allows any; empty = no CORS headers.
    public var allowedOrigins: Set<String> = []
    /// Where a first start writes the bootstrap owner token.
    public var ownerTokenFile: String?
    /// The runner credential, for the Reliably routes that reveal environments and render
    /// integrations (SecretService answers those to runners only); nil = they answer 503.
    public var runnerCredential: String?

    public init() {}
}
