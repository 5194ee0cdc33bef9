import ServiceKit
import Testing

@Suite struct UntrustedTextTests {
    @Test func printableASCIIStaysEverythingElseIsEscapedAndLongTextClipped() {
        #expect(UntrustedText.shown("org-a,org_b") == "org-a,org_b")
        #expect(UntrustedText.shown("a\u{1B}[2Jb\u{0}é") == "a\\u{1B}[2Jb\\0\\u{00E9}")
        #expect(UntrustedText.shown(String(repeating: "x", count: 100), limit: 40) == String(repeating: "x", count: 40) + "…")
        #expect(UntrustedText.shown(String(repeating: "x", count: 40), limit: 40) == String(repeating: "x", count: 40))
    }
}
