public import FaultlineProto
import Synchronization

/// The serving status of each service in this process, as `grpc.health.v1.Health` reports it.
/// The empty name stands for the whole server. Watchers get the current status at once and
/// then each change; a slow watcher only ever holds the latest status, so memory stays bounded.
public final class HealthMonitor: Sendable {
    public typealias Status = HealthV1.HealthCheckResponse.ServingStatus

    private struct Watcher {
        let service: String
        let continuation: AsyncStream<Status>.Continuation
    }

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: Watcher] = [:]
        var nextWatcherID = 0
        var isShutDown = false
    }

    private let state = Mutex(State())

    public init(serving services: [String] = []) {
        state.withLock { state in
            state.statuses[""] = .serving
            for service in services { state.statuses[service] = .serving }
        }
    }

    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    public func setStatus(_ status: Status, of service: String = "") {
        let watchers = state.withLock { state -> [AsyncStream<Status>.Continuation] in
            guard !state.isShutDown, state.statuses[service] != status else { return [] }
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    /// The statuses of `service` from now on: the current one first (`serviceUnknown` for a
    /// name this process does not serve), then every change, until `shutDown()`.
    public func updates(of service: String) -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { state in
            continuation.yield(state.statuses[service] ?? .serviceUnknown)
            guard !state.isShutDown else { return nil }
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            state.watchers[id] = Watcher(service: service, continuation: continuation)
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Marks everything NOT_SERVING, tells the watchers, and ends their streams: called when
    /// the process begins a graceful shutdown, so load balancers stop sending work first.
    public func shutDown() {
        let watchers = state.withLock { state -> [Watcher] in
            guard !state.isShutDown else { return [] }
            state.isShutDown = true
            for service in state.statuses.keys { state.statuses[service] = .notServing }
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            watcher.continuation.yield(.notServing)
            watcher.continuation.finish()
        }
    }
}
