import Foundation

/// One line of progress on stderr, redrawn in place at most every `interval`, for the slow
/// commands (snapshot save and verify, audit --journal). Silent unless stderr is a terminal
/// and the output is not JSON, so scripts and pipes see only the result. Thread-safe: a stream
/// reports from its event loop, a ticker from a task.
public final class ProgressLine: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is read and written under `lock`.
    private let lock = NSLock()
    private let label: String
    private let enabled: Bool
    private let interval: Double
    private let started = Date()
    private var lastDrawn: Date?
    private var drawnWidth = 0

    /// - Parameters:
    ///   - quiet: true for `--json` (never draw).
    ///   - interval: seconds between redraws.
    public init(_ label: String, quiet: Bool, interval: Double = 0.25) {
        self.label = label
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
        self.interval = interval
    }

    /// Whether anything will be drawn.
    public var isEnabled: Bool { enabled }

    /// `bytes` done of `total` (nil: unknown), with the rate since the start.
    public func bytes(_ bytes: UInt64, of total: UInt64?) {
        guard enabled else { return }
        draw { elapsed in
            var text = "\(label): \(Self.mib(bytes))"
            if let total, total > 0 { text += " of \(Self.mib(total)) (\(bytes * 100 / total)%)" }
            if elapsed > 0 { text += ", \(String(format: "%.1f", Double(bytes) / 1_048_576 / elapsed)) MiB/s" }
            return text
        }
    }

    /// A free-form status, with the seconds since the start.
    public func status(_ text: String) {
        guard enabled else { return }
        draw { elapsed in "\(label): \(text), \(Int(elapsed)) s" }
    }

    /// Clears the line (call before printing the result).
    public func finish() {
        guard enabled else { return }
        lock.withLock {
            guard drawnWidth > 0 else { return }
            FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: drawnWidth) + "\r").utf8))
            drawnWidth = 0
        }
    }

    private func draw(_ text: (Double) -> String) {
        lock.withLock {
            let now = Date()
            if let last = lastDrawn, now.timeIntervalSince(last) < interval { return }
            lastDrawn = now
            let line = text(now.timeIntervalSince(started))
            let pad = max(0, drawnWidth - line.count)
            FileHandle.standardError.write(Data(("\r" + line + String(repeating: " ", count: pad)).utf8))
            drawnWidth = line.count
        }
    }

    static func mib(_ bytes: UInt64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}
