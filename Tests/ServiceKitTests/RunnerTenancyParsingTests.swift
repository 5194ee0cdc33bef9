import ServiceKit
import Testing

/// A runner's organisation list (`FAULTLINE_RUNNER_ORGANIZATIONS`, RegisterRunner's
/// `organizations`): what is shared, what is dedicated, what is refused and how it is named.
@Suite struct RunnerTenancyParsingTests {
    static func org(_ text: String) -> OrganizationID { OrganizationID(text)! }

    @Test func listsDedicateARunner() throws {
        #expect(try RunnerTenancy(parsing: "org-a") == .dedicated([Self.org("org-a")]))
        #expect(try RunnerTenancy(parsing: " org-b ,\torg-a") == .dedicated([Self.org("org-a"), Self.org("org-b")]))
        let tenancy = try RunnerTenancy(parsing: "org-b,org-a")
        #expect(tenancy.organizations == ["org-a", "org-b"])
        #expect(tenancy.serves(Self.org("org-a")) && !tenancy.serves(Self.org("org-c")))
        #expect(try RunnerTenancy(organizations: []) == .shared)
        #expect(RunnerTenancy.shared.organizations.isEmpty && RunnerTenancy.shared.serves(Self.org("anyone")))
    }

    @Test(arguments: [
        ("", "is empty"),
        ("   ", "is empty"),
        (",", "is empty"),
        ("org-a,,org-b", "empty entry"),
        ("org-a,", "empty entry"),
        (",org-a", "empty entry"),
        ("org a", "'org a' is not an organisation id"),
        ("org-a;DROP TABLE x", "is not an organisation id"),
        ("org\u{1B}[31m", "'org\\u{1B}[31m' is not an organisation id"),
        ("orgé", "is not an organisation id"),
        (String(repeating: "o", count: 65), "is not an organisation id"),
        ("org-a,org-a", "listed twice"),
        ((0...100).map { "o\($0)" }.joined(separator: ","), "at most 100 organisations"),
        (String(repeating: "o,", count: 5000), "longer than 8192 bytes"),
    ])
    func malformedListsAreRefusedByName(text: String, message: String) {
        #expect(throws: TenancyError.self) { try RunnerTenancy(parsing: text) }
        do {
            _ = try RunnerTenancy(parsing: text)
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(error.description.count < 300, "hostile text is clipped")
        }
    }

    @Test func hostileTextIsClippedAndEscaped() {
        do {
            _ = try RunnerTenancy(organizations: [String(repeating: "\u{7}", count: 500)])
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("\u{7}"))
            #expect(error.description.contains("…"))
        }
    }
}
