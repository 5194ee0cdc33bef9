import NIOPosix

/// A serial executor that is one OS thread of its own, so an actor isolated to it may block in
/// libpq without starving Swift's cooperative pool or a NIO event loop.
final class DedicatedThreadExecutor: SerialExecutor {
    private let pool = NIOThreadPool(numberOfThreads: 1)

    init() { pool.start() }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pool.submit { _ in job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    /// Ends the thread once every job already enqueued has run.
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
