/// The deadline of the RPC being served by the current task. The server sets it around each
/// handler; clients called from inside a handler send the tighter of it and their own timeout,
/// so a deadline propagates through a chain of services without anyone passing it by hand.
public enum RPCDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?
}
