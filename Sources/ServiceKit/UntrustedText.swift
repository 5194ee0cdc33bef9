/// Text from outside (an environment variable, a flag) quoted in an error message: clipped, and
/// anything but printable ASCII escaped, so a hostile value cannot drive the terminal or the log.
public enum UntrustedText {
    public static func shown(_ text: String, limit: Int = 64) -> String {
        let scalars = text.unicodeScalars
        let kept = scalars.prefix(limit).map { $0.value >= 0x20 && $0.value < 0x7F ? String($0) : $0.escaped(asASCII: true) }
        return kept.joined() + (scalars.count > limit ? "…" : "")
    }
}
