public import FaultlineRPC

// Every schedule error is the caller's mistake: INVALID_ARGUMENT with the precise reason. The
// message echoes at most a clipped token of what the caller sent, never anything else.
extension ScheduleError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { .invalidArgument }
    public var rpcErrorMessage: String { message }
}

extension CronParseError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { .invalidArgument }
    public var rpcErrorMessage: String { "invalid cron expression: \(description)" }
}
