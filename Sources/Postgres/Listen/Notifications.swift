import Foundation
import Logging
import Synchronization

/// One `NOTIFY` received on a listening connection.
public struct PostgresNotification: Sendable, Hashable {
    public let channel: String
    public let payload: String
    /// The notifying backend's process id.
    public let processID: Int32
}

/// Notifications on the channels of one `PostgresClient.listen` call, in arrival order. The
/// sequence ends when the iterating task is cancelled or the `listen` body returns.
/// After the server restarts, the connection is reopened and `LISTEN` issued again; what was
/// sent while it was down is lost (`NOTIFY` is not durable), so consumers re-read state then.
public struct PostgresNotifications: AsyncSequence, Sendable {
    public typealias Element = PostgresNotification
    let listener: NotificationListener

    public struct AsyncIterator: AsyncIteratorProtocol {
        let listener: NotificationListener
        public mutating func next() async -> PostgresNotification? {
            let listener = self.listener
            return await withTaskCancellationHandler {
                await listener.next()
            } onCancel: {
                listener.stop()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(listener: listener) }
}

/// A dedicated connection that only listens. Its thread sleeps in `poll` on the connection's
/// socket and on a pipe that `stop()` writes to, so stopping needs no timeout.
actor NotificationListener {
    private let executor = DedicatedThreadExecutor()
    private let core: LibPQConnection
    private let channels: [String]
    private let wakeRead: Int32, wakeWrite: Int32
    private let stopped = Mutex(false)
    private var buffered: [PostgresNotification] = []
    private var logger: Logger { core.configuration.logger }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(configuration: PostgresConfiguration, channels: [String]) throws(DatabaseError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw DatabaseError(.connectionFailed, reason: "cannot create a wake-up pipe") }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        self.core = LibPQConnection(configuration: configuration)
        self.channels = channels
    }

    /// Connects and listens; a failure here goes to the caller of `listen`.
    func start() throws(DatabaseError) {
        try core.connect()
        try listenAll()
    }

    private func listenAll() throws(DatabaseError) {
        for channel in channels {
            try core.executeScript("LISTEN " + SQL.quoteIdentifier(channel))
        }
    }

    func next() -> PostgresNotification? {
        var backoffMilliseconds: Int32 = 50
        while true {
            if !buffered.isEmpty { return buffered.removeFirst() }
            if stopped.withLock({ $0 }) { return nil }
            guard let socket = core.socket else {
                do {
                    try core.connect()
                    try listenAll()
                    logger.info("listening connection re-established", metadata: ["db.channels": "\(channels)"])
                    backoffMilliseconds = 50
                } catch {
                    core.close()
                    waitForWake(milliseconds: backoffMilliseconds)
                    backoffMilliseconds = min(backoffMilliseconds * 2, 2_000)
                }
                continue
            }
            var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, -1) >= 0 else { continue }  // EINTR
            if fds[1].revents != 0 { drainWake(); continue }
            if fds[0].revents != 0 {
                do {
                    buffered += try core.readNotifications()
                } catch {
                    logger.warning("listening connection lost; reconnecting", metadata: ["db.channels": "\(channels)"])
                }
            }
        }
    }

    /// Sleeps on the wake pipe: the reconnect backoff that `stop()` can cut short.
    private func waitForWake(milliseconds: Int32) {
        var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        if poll(&fd, 1, milliseconds) > 0 { drainWake() }
    }

    private func drainWake() {
        var byte: UInt8 = 0
        while read(wakeRead, &byte, 1) > 0 {}
    }

    /// Ends the sequence: from any thread, at once.
    nonisolated func stop() {
        stopped.withLock { $0 = true }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    nonisolated func close() async {
        stop()
        await closeIsolated()
        await executor.shutdown()
    }

    private func closeIsolated() {
        core.close()
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }
}

extension PostgresClient {
    /// Listens on `channels` on a connection of its own (outside the pool) for the body's
    /// duration. `LISTEN` has been issued when the body starts, so nothing sent after is missed.
    ///
    /// ```swift
    /// try await client.listen(to: ["runs"]) { notifications in
    ///     for await n in notifications { print(n.payload) }
    /// }
    /// ```
    public func listen<T: Sendable>(to channels: [String], _ body: (PostgresNotifications) async throws -> T) async throws -> T {
        let listener = try NotificationListener(configuration: configuration, channels: channels)
        do {
            try await listener.start()
            let result = try await body(PostgresNotifications(listener: listener))
            await listener.close()
            return result
        } catch {
            await listener.close()
            throw error
        }
    }

    /// `pg_notify(channel, payload)`; delivered when the surrounding transaction commits.
    public func notify(channel: String, payload: String = "") async throws {
        try await execute("SELECT pg_notify(\(channel), \(payload))")
    }
}
