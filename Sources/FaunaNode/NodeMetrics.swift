import CoreMetrics
import FaunaPipeline
import FaunaRPC
import FaunaStore
import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// One node's metrics (docs/METRICS.md): a Prometheus registry of its own (several nodes may
/// share a process in tests, so nothing goes through swift-metrics' global bootstrap), fed by
/// the pipeline through swift-metrics, by the client port through `RPCServerObserver`, and at
/// each scrape from the owner's published vitals and /proc.
final class NodeMetrics: RPCServerObserver, Sendable {
    let registry: PrometheusCollectorRegistry
    let pipeline: PipelineMetrics
    private let factory: PrometheusMetricsFactory
    /// Requests answered and their latency, by request kind (every client kind made up front).
    private let requests: [FrameKind: (count: CoreMetrics.Counter, latency: CoreMetrics.Timer)]
    /// Error answers by kind and code, made on first use (at most kinds × codes).
    private let errors = NIOLockedValueBox<[ErrorKey: CoreMetrics.Counter]>([:])
    /// When the node started (its `process_start_time_seconds`: faunad runs one node).
    private let startTime = Date().timeIntervalSince1970
    /// Writes and reads answered since the status page's last sample (`takeWindows`).
    private let windows = NIOLockedValueBox((write: LatencyWindow(), read: LatencyWindow()))

    private struct ErrorKey: Hashable {
        var kind: FrameKind
        var code: RPCErrorCode
    }

    /// Latency buckets: 50 µs to 10 s, for loopback round trips as for slow disks.
    static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(10),
    ]

    init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        self.factory = factory
        pipeline = PipelineMetrics(factory: factory)
        var requests: [FrameKind: (CoreMetrics.Counter, CoreMetrics.Timer)] = [:]
        for kind in FrameKind.allCases where Self.isClientRequest(kind) {
            let labels = [("kind", "\(kind)")]
            requests[kind] = (
                CoreMetrics.Counter(label: "fauna_client_requests_total", dimensions: labels, factory: factory),
                CoreMetrics.Timer(label: "fauna_client_request_duration_seconds", dimensions: labels, factory: factory)
            )
        }
        self.requests = requests
    }

    /// Request kinds a client sends (not peer traffic, not answers).
    static func isClientRequest(_ kind: FrameKind) -> Bool {
        switch kind {
        case .peerHello, .raftMessages, .snapshotOffer, .snapshotChunk: false
        default: !kind.isResponse
        }
    }

    func answered(_ request: FrameKind, error: RPCErrorCode?, nanoseconds: Int64) {
        guard let r = requests[request] else { return }
        r.count.increment()
        if nanoseconds > 0 { r.latency.recordNanoseconds(nanoseconds) }
        if request == .write {
            windows.withLockedValue { $0.write.record(nanoseconds) }
        } else if request == .read {
            windows.withLockedValue { $0.read.record(nanoseconds) }
        }
        guard let error else { return }
        let key = ErrorKey(kind: request, code: error)
        let counter = errors.withLockedValue { made in
            if let c = made[key] { return c }
            let c = CoreMetrics.Counter(
                label: "fauna_client_request_errors_total", dimensions: [("kind", "\(request)"), ("code", "\(error)")],
                factory: factory)
            made[key] = c
            return c
        }
        counter.increment()
    }

    /// The writes and reads answered since the last call, and a fresh window for each.
    func takeWindows() -> (write: LatencyWindow, read: LatencyWindow) {
        windows.withLockedValue { w in
            defer { w = (LatencyWindow(), LatencyWindow()) }
            return w
        }
    }

    // MARK: Scrape

    /// The gauge `name` with `labels`, made on first use (the registry returns it after).
    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Prometheus.Gauge {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        return labels.isEmpty ? registry.makeGauge(descriptor: descriptor) : registry.makeGauge(descriptor: descriptor, labels: labels)
    }

    /// The Prometheus text of everything, after setting the gauges that are read at scrape
    /// time. `queues` are (name, depth, bound) of the node's queues.
    func render(vitals v: NodeVitals, queues: [(name: String, depth: Int, bound: Int)]) -> [UInt8] {
        for q in queues {
            gauge("fauna_queue_depth", "Elements waiting in one of the node's queues.", [("queue", q.name)]).set(to: Double(q.depth))
            gauge("fauna_queue_capacity", "The bound of one of the node's queues.", [("queue", q.name)]).set(to: Double(q.bound))
        }
        if let s = v.storage {
            for f in s.families {
                let labels = [("family", f.name)]
                gauge("fauna_rocksdb_memtable_bytes", "Bytes in a column family's memtables.", labels).set(to: Double(f.memtableBytes))
                gauge("fauna_rocksdb_sst_bytes", "Bytes of a column family's SST files.", labels).set(to: Double(f.sstBytes))
                gauge(
                    "fauna_rocksdb_pending_compaction_bytes", "RocksDB's estimate of bytes compaction has yet to rewrite.",
                    labels
                ).set(to: Double(f.pendingCompactionBytes))
            }
            gauge("fauna_rocksdb_write_stopped", "1 while RocksDB stops writes (a stall).").set(to: s.writeStopped ? 1 : 0)
            gauge("fauna_rocksdb_delayed_write_rate_bytes", "Bytes per second RocksDB slows writes to; 0 when not slowed.")
                .set(to: Double(s.delayedWriteRate))
            gauge("fauna_rocksdb_running_compactions", "Compactions running now.").set(to: Double(s.runningCompactions))
            if let free = s.diskFreeBytes {
                gauge("fauna_disk_free_bytes", "Free bytes of the data directory's filesystem.").set(to: Double(free))
            }
            gauge("fauna_disk_free_min_bytes", "Writes stop (fail-stop) below this many free bytes.")
                .set(to: Double(s.diskFreeBytesMin))
        }
        if let c = v.recordCache {
            gauge("fauna_record_cache_hits", "Apply-path lookups the record cache answered (since start).").set(to: Double(c.hits))
            gauge("fauna_record_cache_misses", "Apply-path lookups that went to RocksDB (since start).").set(to: Double(c.misses))
            gauge("fauna_record_cache_bytes", "Bytes the record cache holds.").set(to: Double(c.bytes))
            gauge("fauna_record_cache_budget_bytes", "The record cache's memory budget.").set(to: Double(c.budgetBytes))
            gauge("fauna_record_cache_entries", "Records in the record cache.").set(to: Double(c.entries))
        }
        let p = ProcessFigures.read()
        if let rss = p.residentBytes { gauge("process_resident_memory_bytes", "Resident memory size in bytes.").set(to: Double(rss)) }
        if let cpu = p.cpuSeconds { gauge("process_cpu_seconds_total", "User and system CPU time spent in seconds.").set(to: cpu) }
        if let fds = p.openFDs { gauge("process_open_fds", "Number of open file descriptors.").set(to: Double(fds)) }
        if let max = p.maxFDs { gauge("process_max_fds", "Maximum number of open file descriptors.").set(to: Double(max)) }
        gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.")
            .set(to: startTime)
        return registry.emitToBuffer()
    }
}

/// Requests answered in an interval: how many, their total latency, and a log-scale histogram
/// (four buckets per doubling from 1 µs, the last one open: about ±9% on a quantile).
struct LatencyWindow: Sendable {
    static let bucketsPerDoubling = 4.0
    static let bucketCount = 100  // 1 µs × 2^(99/4) ≈ 27 s; slower answers share the last
    private(set) var count = 0
    private(set) var totalNanoseconds: Int64 = 0
    private var buckets = [UInt32](repeating: 0, count: bucketCount)

    mutating func record(_ nanoseconds: Int64) {
        count += 1
        totalNanoseconds &+= max(nanoseconds, 0)
        let micros = max(Double(nanoseconds) / 1000, 1)
        let i = min(Int(log2(micros) * Self.bucketsPerDoubling), Self.bucketCount - 1)
        buckets[i] &+= 1
    }

    /// The mean latency in milliseconds (nil: nothing answered).
    var meanMilliseconds: Double? { count == 0 ? nil : Double(totalNanoseconds) / Double(count) / 1e6 }

    /// The upper bound, in milliseconds, of the bucket holding the `q` quantile (nil: nothing
    /// answered).
    func quantileMilliseconds(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Int((Double(count) * q).rounded(.up))
        var seen = 0
        for (i, n) in buckets.enumerated() {
            seen += Int(n)
            if seen >= rank { return pow(2, Double(i + 1) / Self.bucketsPerDoubling) / 1000 }
        }
        return pow(2, Double(Self.bucketCount) / Self.bucketsPerDoubling) / 1000
    }
}

/// The process figures Prometheus' client libraries export, read from /proc (Linux).
struct ProcessFigures {
    var residentBytes: UInt64?
    var cpuSeconds: Double?
    var openFDs: Int?
    var maxFDs: UInt64?

    static func read() -> ProcessFigures {
        var p = ProcessFigures()
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = UInt64(fields[1]) { p.residentBytes = pages * page }
        }
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            // Fields after "(comm)": state is field 3, utime 14, stime 15 (1-based).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]), ticks > 0 {
                p.cpuSeconds = (user + system) / ticks
            }
        }
        p.openFDs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count
        // "Max open files            1024                 524288               files"
        if let limits = try? String(contentsOfFile: "/proc/self/limits", encoding: .utf8),
            let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") })
        {
            p.maxFDs = line.dropFirst("Max open files".count).split(separator: " ").first.flatMap { UInt64($0) }
        }
        return p
    }
}
