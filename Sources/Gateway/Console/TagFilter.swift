import Foundation
import Hummingbird

/// The experiments list's tag filter: every `tag=` parameter (tag links and bookmarked URLs) and
/// the form's comma-separated `tags=` field, together. ExperimentService lists the experiments
/// carrying all of them; a filter it would refuse is a problem said at the field instead.
struct TagFilter {
    /// ExperimentService's limits for a list's tags.
    static let maximumTags = 50
    static let maximumBytes = 200

    /// In the order given, each once.
    let tags: [String]
    let problem: String?

    init(_ request: Request) {
        // `tag=` as links and older URLs have it; `tags=` as the form sends it.
        let typed = request.formQuery("tags").flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        self.init(request.uri.queryParameters.getAll("tag") + typed)
    }

    init(_ given: [String]) {
        var seen = Set<String>()
        tags = given.filter { !$0.isEmpty && seen.insert($0).inserted }
        problem = if tags.count > Self.maximumTags {
            "Filter by at most \(Self.maximumTags) tags."
        } else if tags.contains(where: { $0.utf8.count > Self.maximumBytes || $0.utf8.contains(0) }) {
            "A tag is at most \(Self.maximumBytes) bytes, without NUL characters."
        } else {
            nil
        }
    }

    /// What the form's field shows back.
    var fieldText: String { tags.joined(separator: ", ") }

    /// The filter in force, each tag a link that removes it, and one that clears them all.
    func summary(query: String) -> HTML {
        guard !tags.isEmpty, problem == nil else { return .empty }
        func link(_ kept: [String]) -> String {
            "/console/experiments?q=\(ExperimentPages.query(query))" + kept.map { "&tag=\(ExperimentPages.query($0))" }.joined()
        }
        let chips = tags.map { tag -> HTML in
            "<a class=\"tag\" href=\"\(link(tags.filter { $0 != tag }))\" aria-label=\"Remove the tag \(tag) from the filter\">\(tag) \u{00D7}</a>"
        }
        return """
        <p id="tag-filter">\(tags.count == 1 ? "Tagged" : "Tagged with all of"): \(chips) <a href="\(link([]))" id="clear-tags">clear tags</a></p>
        """
    }
}
