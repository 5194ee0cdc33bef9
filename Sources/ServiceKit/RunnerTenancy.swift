/// Which organisations' runs a runner takes: every one's (shared, the default: a runner alone in
/// a self-hosted install serves everyone), or only the listed ones' (dedicated, e.g. a runner
/// inside one team's network). On the wire (`RegisterRunnerRequest.organizations`) a shared runner
/// lists none.
public enum RunnerTenancy: Sendable, Equatable, CustomStringConvertible {
    case shared
    /// Empty only for a stored list that no longer validates: then it serves no one.
    case dedicated(Set<OrganizationID>)

    public static let maximumOrganizations = 100

    /// The wire form: empty for shared, else the organisations, sorted.
    public var organizations: [String] {
        switch self {
        case .shared: []
        case .dedicated(let organizations): organizations.map(\.rawValue).sorted()
        }
    }

    public func serves(_ organization: OrganizationID) -> Bool {
        switch self {
        case .shared: true
        case .dedicated(let organizations): organizations.contains(organization)
        }
    }

    public var description: String {
        switch self {
        case .shared: "shared by every organisation"
        case .dedicated: "dedicated to \(organizations.joined(separator: ", "))"
        }
    }

    /// From the wire: none is shared; otherwise each must be an organisation id, listed once.
    public init(organizations: [String]) throws(TenancyError) {
        guard !organizations.isEmpty else {
            self = .shared
            return
        }
        guard organizations.count <= Self.maximumOrganizations else {
            throw TenancyError("at most \(Self.maximumOrganizations) organisations, got \(organizations.count)")
        }
        var set = Set<OrganizationID>()
        for text in organizations {
            guard let organization = OrganizationID(text) else {
                throw TenancyError("'\(UntrustedText.shown(text))' is not an organisation id (1-64 of A-Z a-z 0-9 . _ -)")
            }
            guard set.insert(organization).inserted else { throw TenancyError("organisation '\(text)' is listed twice") }
        }
        self = .dedicated(set)
    }

    /// From a runner's configuration (`FAULTLINE_RUNNER_ORGANIZATIONS`): organisation ids separated
    /// by commas (spaces around them ignored). The caller treats an unset setting as shared; a set
    /// one must list at least one organisation, so an empty value (a template variable that
    /// expanded to nothing) never silently opens the runner to everyone.
    public init(parsing text: String) throws(TenancyError) {
        guard text.utf8.count <= 8192 else { throw TenancyError("the organisation list is longer than 8192 bytes") }
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard items.contains(where: { !$0.isEmpty }) else {
            throw TenancyError("the organisation list is empty: list organisation ids, or unset it for a runner shared by every organisation")
        }
        guard !items.contains(where: \.isEmpty) else { throw TenancyError("the organisation list '\(UntrustedText.shown(text))' has an empty entry") }
        try self.init(organizations: items)
    }
}

/// A malformed organisation list; the message names what is wrong.
public struct TenancyError: Error, Equatable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
