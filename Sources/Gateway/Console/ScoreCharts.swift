import Foundation

/// The fleet's score over time: the mean score of the scored runs created on each UTC day,
/// drawn on the server as an SVG line (days without a scored run are gaps, not zeros), with the
/// same numbers as a table.
struct ScoreChart {
    let days: Int
    /// One entry per day, oldest first: the day's start, the mean score (0...1) and how many runs.
    let buckets: [(day: Date, mean: Double?, runs: Int)]

    init(executions: [(createdAtUs: Int64, score: Double?)], days: Int, endingAt end: Date) {
        self.days = days
        let last = Calendar.utc.startOfDay(for: end)
        let first = last.addingTimeInterval(-Double(days - 1) * 86_400)
        var sums = [Double](repeating: 0, count: days), counts = [Int](repeating: 0, count: days)
        for execution in executions {
            guard let score = execution.score, score.isFinite else { continue }
            let created = Date(timeIntervalSince1970: Double(execution.createdAtUs) / 1_000_000)
            let index = Int((created.timeIntervalSince(first) / 86_400).rounded(.down))
            guard (0..<days).contains(index) else { continue }
            sums[index] += min(max(score, 0), 1)
            counts[index] += 1
        }
        buckets = (0..<days).map { i in
            (day: first.addingTimeInterval(Double(i) * 86_400), mean: counts[i] > 0 ? sums[i] / Double(counts[i]) : nil, runs: counts[i])
        }
    }

    var scoredRuns: Int { buckets.reduce(0) { $0 + $1.runs } }

    func svg() -> HTML {
        let width = 900, height = 220, left = 44, bottom = 30, top = 10
        let plotHeight = height - bottom - top
        let slot = (width - left) / max(days, 1)
        func x(_ i: Int) -> Int { left + i * slot + slot / 2 }
        func y(_ mean: Double) -> Int { top + Int(((1 - mean) * Double(plotHeight)).rounded()) }
        var parts: [HTML] = []
        for tick in [0, 50, 100] {
            let ty = y(Double(tick) / 100)
            parts.append("<line class=\"grid\" x1=\"\(left)\" y1=\"\(ty)\" x2=\"\(width)\" y2=\"\(ty)\"/>")
            parts.append("<text x=\"\(left - 6)\" y=\"\(ty + 4)\" text-anchor=\"end\">\(tick)%</text>")
        }
        // One polyline per run of consecutive days with a score: a gap is a day nothing was scored.
        var segment: [String] = []
        func flush() {
            if segment.count > 1 { parts.append("<polyline class=\"score-line\" points=\"\(segment.joined(separator: " "))\"/>") }
            segment = []
        }
        for (i, bucket) in buckets.enumerated() {
            guard let mean = bucket.mean else { flush(); continue }
            segment.append("\(x(i)),\(y(mean))")
            parts.append("""
                <circle class="score-point" cx="\(x(i))" cy="\(y(mean))" r="4"><title>\(RunsChart.dayLabel.string(from: bucket.day)): \(Self.percent(mean)) mean of \(bucket.runs) run(s)</title></circle>
                """)
        }
        flush()
        for (i, bucket) in buckets.enumerated() where days <= 16 || i % 2 == 0 {
            parts.append("<text x=\"\(x(i))\" y=\"\(height - 10)\" text-anchor=\"middle\">\(RunsChart.dayLabel.string(from: bucket.day))</text>")
        }
        return """
        <svg class="chart" viewBox="0 0 \(width) \(height)" role="img" aria-labelledby="score-chart-title">
        <title id="score-chart-title">Mean score per day, \(scoredRuns) scored runs in \(days) days</title>\(parts)</svg>
        """
    }

    func table() -> HTML {
        let rows = buckets.map { bucket -> HTML in
            "<tr><th scope=\"row\">\(RunsChart.dayLabel.string(from: bucket.day))</th><td>\(bucket.mean.map(Self.percent) ?? "—")</td><td>\(bucket.runs)</td></tr>"
        }
        return """
        <div class="table-wrap"><table id="score-table"><thead><tr><th scope="col">Day</th><th scope="col">Mean score</th><th scope="col">Scored runs</th></tr></thead>
        <tbody>\(rows)</tbody></table></div>
        """
    }

    static func percent(_ value: Double) -> String { String(format: "%.0f%%", value * 100) }
}

/// A small server-drawn trend of one experiment's latest run scores (oldest to newest).
struct Sparkline {
    let scores: [Double]

    func svg(label: String) -> HTML {
        guard !scores.isEmpty else { return "<span class=\"muted\">no scored runs</span>" }
        let width = 96, height = 24, pad = 3
        let step = scores.count > 1 ? Double(width - 2 * pad) / Double(scores.count - 1) : 0
        let points = scores.enumerated().map { i, score -> (Int, Int) in
            let clamped = min(max(score, 0), 1)
            return (pad + Int((Double(i) * step).rounded()), pad + Int(((1 - clamped) * Double(height - 2 * pad)).rounded()))
        }
        let line = points.map { "\($0.0),\($0.1)" }.joined(separator: " ")
        let (lastX, lastY) = points[points.count - 1]
        let summary = scores.map(ScoreChart.percent).joined(separator: ", ")
        return """
        <svg class="spark" viewBox="0 0 \(width) \(height)" width="\(width)" height="\(height)" role="img" aria-label="\(label): \(summary)">\
        <title>\(label): \(summary)</title>\(HTML.when(scores.count > 1, "<polyline points=\"\(line)\"/>"))<circle cx="\(lastX)" cy="\(lastY)" r="3"/></svg>
        """
    }
}
