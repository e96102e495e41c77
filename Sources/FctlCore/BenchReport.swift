import Foundation
import Histogram

/// Request latencies of one worker, in microseconds with 3 significant digits (HdrHistogram).
/// Each worker owns one, so recording takes no lock; `merge` combines them at the end.
public struct BenchLatencies: Sendable {
    /// Values above this (one hour) are recorded as this.
    public static let microsecondsMax: UInt64 = 3_600_000_000

    /// Auto-resizing: a worker's histogram grows only as far as its slowest request.
    public private(set) var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)

    public init() {}

    /// Records one request that took `duration` (clamped to 1 µs...`microsecondsMax`).
    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let micros = seconds < 0 ? 0 : UInt64(clamping: seconds) &* 1_000_000 &+ UInt64(clamping: attoseconds / 1_000_000_000_000)
        record(microseconds: micros)
    }

    /// Records one request that took `microseconds`.
    public mutating func record(microseconds: UInt64) {
        let recorded = histogram.record(min(max(microseconds, 1), Self.microsecondsMax))
        precondition(recorded, "latency \(microseconds) µs not recorded by an auto-resizing histogram")
    }

    /// Adds every value of `other`.
    public mutating func merge(_ other: BenchLatencies) { histogram.add(other.histogram) }

    /// Requests recorded.
    public var count: UInt64 { histogram.totalCount }

    /// The latency at `percentile` (0...100) in milliseconds; 0 when nothing was recorded.
    public func milliseconds(atPercentile percentile: Double) -> Double {
        count == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    /// The slowest request in milliseconds (exact, not bucketed).
    public var maxMilliseconds: Double { count == 0 ? 0 : Double(histogram.maxRecorded) / 1000 }

    /// The mean in milliseconds.
    public var meanMilliseconds: Double { count == 0 ? 0 : histogram.mean / 1000 }
}

/// The figures of one `fctl bench` run (or its preload), printed as text or JSON.
public struct BenchReport: Sendable {
    /// The percentiles reported, with their names.
    public static let percentiles: [(name: String, value: Double)] = [
        ("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9),
    ]

    public var parameters: BenchParameters
    /// Wall time from the first send to the last answer.
    public var elapsedSeconds: Double
    /// Requests that got an answer (including domain outcomes counted in `notes`).
    public var successes: Int
    /// Requests that failed after the client's retries, or whose write outcome was a rejection,
    /// by kind (FaunaClientError code, or `outcome.<name>`).
    public var errorsByKind: [String: Int]
    /// Answers worth knowing that are not errors: `getMiss` (key absent), `txnElse`
    /// (compare failed), `replay` (a retried write the cluster had applied already).
    public var notes: [String: Int]
    /// Latencies of the successful requests.
    public var latencies: BenchLatencies
    /// Other figures of the run by name (watch events delivered, leases alive at the end...):
    /// one text line, and JSON fields of their own.
    public var figures: [String: Double] = [:]

    public init(
        parameters: BenchParameters, elapsedSeconds: Double, successes: Int, errorsByKind: [String: Int],
        notes: [String: Int], latencies: BenchLatencies
    ) {
        self.parameters = parameters
        self.elapsedSeconds = elapsedSeconds
        self.successes = successes
        self.errorsByKind = errorsByKind
        self.notes = notes
        self.latencies = latencies
    }

    public var errors: Int { errorsByKind.values.reduce(0, +) }
    /// Requests answered or failed.
    public var operations: Int { successes + errors }
    /// Requests (answered or failed) per second of wall time.
    public var operationsPerSecond: Double { elapsedSeconds > 0 ? Double(operations) / elapsedSeconds : 0 }

    /// The exit status: ok when no request failed (docs/CLI.md "fctl bench").
    public var exitStatus: ExitStatus { errors == 0 ? .ok : .notFound }

    /// Text lines for a terminal, `label` naming the phase (`bench put`, `preload`).
    public func text(label: String) -> String {
        var lines = [
            "\(label): \(operations) ops in \(Self.fixed(elapsedSeconds, 2)) s = \(Self.fixed(operationsPerSecond, 1)) ops/s (\(parameters.summary))"
        ]
        var latency = Self.percentiles.map { "\($0.name) \(Self.fixed(latencies.milliseconds(atPercentile: $0.value), 3))" }
        latency.append("max \(Self.fixed(latencies.maxMilliseconds, 3))")
        lines.append("latency ms: " + latency.joined(separator: "  "))
        lines.append("errors: \(errors)" + Self.kinds(errorsByKind))
        if !notes.isEmpty {
            lines.append("notes: " + notes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if !figures.isEmpty {
            lines.append(figures.sorted { $0.key < $1.key }.map { "\($0.key) \(Self.figure($0.value))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// The figures and the parameters as JSON fields.
    public var json: [String: Any] {
        var latency: [String: Any] = [:]
        for (name, value) in Self.percentiles { latency[name] = Self.rounded(latencies.milliseconds(atPercentile: value)) }
        latency["max"] = Self.rounded(latencies.maxMilliseconds)
        latency["mean"] = Self.rounded(latencies.meanMilliseconds)
        var object: [String: Any] = [
            "parameters": parameters.json, "ops": operations, "successes": successes, "errors": errors,
            "errorsByKind": errorsByKind, "notes": notes, "elapsedSeconds": Self.rounded(elapsedSeconds),
            "opsPerSecond": Self.rounded(operationsPerSecond), "latencyMs": latency,
        ]
        for (name, value) in figures { object[name] = Self.rounded(value) }
        return object
    }

    /// ` (kind n, kind n)` sorted by kind, or "" when empty.
    static func kinds(_ counts: [String: Int]) -> String {
        guard !counts.isEmpty else { return "" }
        return " (" + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }

    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    /// A whole number without decimals, anything else with 3.
    static func figure(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : fixed(value, 3) }

    /// `value` rounded to 3 decimals for JSON.
    static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
