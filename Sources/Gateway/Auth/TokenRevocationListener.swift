import FaultlinePostgres
import Logging
public import ServiceLifecycle

/// Drops tokens from a `TokenStore`'s cache as soon as any gateway revokes them: it listens on
/// `TokenStore.revocationChannel` on a connection of its own until graceful shutdown.
///
/// `NOTIFY` is not durable: what is sent while this connection is down is lost. Each time it
/// starts listening it therefore forgets every cached live token, and a notification lost
/// during a silent reconnect inside the listener is covered by the cache's TTL, the bound on
/// how long a token revoked elsewhere may still pass here.
public struct TokenRevocationListener: Service {
    let store: TokenStore
    let logger: Logger

    public func run() async throws {
        let store = store, logger = logger
        await cancelWhenGracefulShutdown {
            var delay = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await store.database.listen(to: [TokenStore.revocationChannel]) { notifications in
                        // Listening from here on; a revocation before it may have been missed.
                        store.cache.forgetLive()
                        for await notification in notifications {
                            store.cache.revoke(tokenID: notification.payload)
                        }
                    }
                    delay = .milliseconds(100)
                } catch {
                    logger.warning("cannot listen for token revocations; retrying", metadata: ["error": "\(String(reflecting: type(of: error)))"])
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
