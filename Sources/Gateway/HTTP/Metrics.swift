import Hummingbird
import NIOCore
import Prometheus

/// The gateway's Prometheus metrics: requests by route template, method and status, their
/// latency, and the requests in flight. One registry per `Gateway` value (not swift-metrics'
/// process-wide bootstrap), so several gateways in one process (tests) never share counters.
public struct GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "faultline", subsystem: "gateway", metricName: "http_requests", unitName: "total",
            helpText: "HTTP requests answered, by route template, method and status")
    }
    static var duration: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "faultline", subsystem: "gateway", metricName: "http_request_duration", unitName: "seconds",
            helpText: "Time from request head to the last byte of the response, by route template and method")
    }
    static var inFlight: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "faultline", subsystem: "gateway", metricName: "http_requests_in_flight", unitName: "",
            helpText: "Requests being answered now (open event streams included)")
    }
    static let buckets: [Duration] = [.milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
                                      .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                      .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]

    public init() {}

    /// The text exposition format (version 0.0.4).
    func exposition() -> ByteBuffer {
        ByteBuffer(bytes: registry.emitToBuffer())
    }

    func record(route: String, method: String, status: Int, elapsed: Duration) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("method", method), ("status", String(status))])
            .increment()
        registry.makeDurationHistogram(descriptor: Self.duration, labels: [("route", route), ("method", method)], buckets: Self.buckets)
            .record(elapsed)
    }

    var inFlightGauge: Gauge { registry.makeGauge(descriptor: Self.inFlight) }
}

/// Outermost: counts every request with the status it finally got (problems included). The route
/// label is the matched template (`/api/v1/experiments/{id}`), never the raw path, so ids and
/// garbage paths cannot blow up the number of series. A streamed body (SSE) is measured until its
/// last byte, when it ends or the client goes.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let metrics: GatewayMetrics

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        let inFlight = metrics.inFlightGauge
        inFlight.increment()
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            inFlight.decrement()
            throw error
        }
        // `endpointPath` is a reference the router fills in, so it is set by now.
        let route = context.endpointPath ?? "unmatched"
        // Only known methods become labels: a client inventing methods must not invent series.
        let method = EdgeMiddleware.methods.contains(request.method) ? request.method.rawValue : "other"
        let status = response.status.code, metrics = metrics
        if response.body.contentLength != nil {
            inFlight.decrement()
            metrics.record(route: route, method: method, status: status, elapsed: clock.now - start)
        } else {
            let body = response.body
            response.body = ResponseBody { writer in
                defer {
                    inFlight.decrement()
                    metrics.record(route: route, method: method, status: status, elapsed: clock.now - start)
                }
                try await body.write(writer)
            }
        }
        return response
    }
}
