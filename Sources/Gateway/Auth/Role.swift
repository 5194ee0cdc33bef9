/// What a token may do. Every route names the permission it needs; a role grants a fixed set.
public enum Role: String, Codable, Sendable, CaseIterable {
    case owner, editor, viewer, runner

    public enum Permission: Sendable {
        /// Read experiments and executions.
        case read
        /// Import, delete and run experiments; pause, resume and terminate executions.
        case write
        /// Report control events of a run (the faultline control in HTTP mode).
        case report
        /// Manage the organisation's tokens.
        case administer
    }

    public func allows(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (.owner, _): true
        case (.editor, .read), (.editor, .write), (.editor, .report): true
        case (.viewer, .read): true
        case (.runner, .report): true
        default: false
        }
    }
}
