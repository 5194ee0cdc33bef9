import Foundation

/// Runs per UTC day by outcome, drawn on the server as an SVG stacked bar chart (with the same
/// numbers as a table, for screen readers and for copying).
struct RunsChart {
    /// Stacking order, bottom to top; anything else (pending, running) counts as `running`.
    static let outcomes = ["completed", "deviated", "failed", "interrupted", "aborted", "timed_out", "lost", "running"]

    let days: Int
    /// One entry per day, oldest first: the day's start and its count per outcome.
    let buckets: [(day: Date, counts: [String: Int])]

    init(executions: [(createdAtUs: Int64, state: String)], days: Int, endingAt end: Date) {
        self.days = days
        let last = Calendar.utc.startOfDay(for: end)
        var buckets = (0..<days).map { offset in
            (day: last.addingTimeInterval(-Double(days - 1 - offset) * 86_400), counts: [String: Int]())
        }
        let first = buckets[0].day
        for execution in executions {
            let created = Date(timeIntervalSince1970: Double(execution.createdAtUs) / 1_000_000)
            let index = Int((created.timeIntervalSince(first) / 86_400).rounded(.down))
            guard buckets.indices.contains(index) else { continue }
            let outcome = Self.outcomes.contains(execution.state) ? execution.state : "running"
            buckets[index].counts[outcome, default: 0] += 1
        }
        self.buckets = buckets
    }

    var total: Int { buckets.reduce(0) { $0 + $1.counts.values.reduce(0, +) } }

    static let dayLabel: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MM-dd"
        return formatter
    }()

    func svg() -> HTML {
        let width = 900, height = 260, left = 40, bottom = 30, top = 10
        let plotHeight = height - bottom - top
        let maximum = max(buckets.map { $0.counts.values.reduce(0, +) }.max() ?? 0, 1)
        let slot = (width - left) / max(days, 1)
        let barWidth = max(slot - 8, 2)
        var parts: [HTML] = []
        // Axis: 0 and the maximum.
        parts.append("<line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(width)\" y2=\"\(top + plotHeight)\" stroke=\"#57606a\"/>")
        parts.append("<text x=\"\(left - 6)\" y=\"\(top + plotHeight)\" text-anchor=\"end\">0</text>")
        parts.append("<text x=\"\(left - 6)\" y=\"\(top + 10)\" text-anchor=\"end\">\(maximum)</text>")
        for (i, bucket) in buckets.enumerated() {
            let x = left + i * slot + 4
            var y = top + plotHeight
            for outcome in Self.outcomes {
                guard let count = bucket.counts[outcome], count > 0 else { continue }
                let h = max(count * plotHeight / maximum, 1)
                y -= h
                parts.append("""
                    <rect class="f-\(outcome)" x="\(x)" y="\(y)" width="\(barWidth)" height="\(h)"><title>\(Self.dayLabel.string(from: bucket.day)): \(count) \(outcome.replacingOccurrences(of: "_", with: " "))</title></rect>
                    """)
            }
            if days <= 16 || i % 2 == 0 {
                parts.append("<text x=\"\(x + barWidth / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">\(Self.dayLabel.string(from: bucket.day))</text>")
            }
        }
        return """
        <svg class="chart" viewBox="0 0 \(width) \(height)" role="img" aria-labelledby="runs-chart-title">
        <title id="runs-chart-title">Runs per day by outcome, \(total) runs in \(days) days</title>\(parts)</svg>
        """
    }

    func legend() -> HTML {
        let items = Self.outcomes.map { outcome -> HTML in
            "<li><span class=\"swatch f-\(outcome)\"></span>\(outcome.replacingOccurrences(of: "_", with: " "))</li>"
        }
        return "<ul class=\"legend\" aria-label=\"Legend\">\(items)</ul>"
    }

    func table() -> HTML {
        let header = Self.outcomes.map { outcome -> HTML in "<th scope=\"col\">\(outcome.replacingOccurrences(of: "_", with: " "))</th>" }
        let rows = buckets.map { bucket -> HTML in
            let cells = Self.outcomes.map { outcome -> HTML in "<td>\(bucket.counts[outcome] ?? 0)</td>" }
            return "<tr><th scope=\"row\">\(Self.dayLabel.string(from: bucket.day))</th>\(cells)</tr>"
        }
        return "<div class=\"table-wrap\"><table id=\"runs-table\"><thead><tr><th scope=\"col\">Day</th>\(header)</tr></thead><tbody>\(rows)</tbody></table></div>"
    }
}
