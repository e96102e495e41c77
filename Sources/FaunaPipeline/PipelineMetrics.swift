import CoreMetrics
import FaunaRPC
import FaunaRaft
import FaunaStore

/// The pipeline's counters, gauges and latency histograms (docs/METRICS.md lists them), made
/// by a swift-metrics factory: Prometheus in a node, the no-op handler in the node simulator
/// and wherever nobody reads them. Names follow Prometheus conventions (unit in the name,
/// `_total` on counters); the factory keeps them as given.
public final class PipelineMetrics: Sendable {
    // Raft.
    let term: Gauge
    let commitIndex: Gauge
    let appliedIndex: Gauge
    let isLeader: Gauge
    let hasLeader: Gauge
    let leaderChanges: Counter
    let proposals: Counter
    let readIndexRounds: Counter
    let readRounds: Counter
    let proposeToCommit: Timer
    let logPersist: Timer
    // Apply and audit.
    let applyBatch: Timer
    let appliedEntries: Counter
    let treeSize: Gauge
    let treeHeadsSigned: Counter
    // Queues against their bounds.
    let pendingProposals: Gauge
    let pendingReads: Gauge
    let applyJobsInFlight: Gauge

    /// Metrics made by `factory` (default: nothing is recorded).
    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        func gauge(_ name: String) -> Gauge { Gauge(label: name, factory: factory) }
        func counter(_ name: String) -> Counter { Counter(label: name, factory: factory) }
        func timer(_ name: String) -> Timer { Timer(label: name, factory: factory) }
        term = gauge("fauna_raft_term")
        commitIndex = gauge("fauna_raft_commit_index")
        appliedIndex = gauge("fauna_raft_applied_index")
        isLeader = gauge("fauna_raft_is_leader")
        hasLeader = gauge("fauna_raft_has_leader")
        leaderChanges = counter("fauna_raft_leader_changes_total")
        proposals = counter("fauna_raft_proposals_total")
        readIndexRounds = counter("fauna_raft_read_index_total")
        readRounds = counter("fauna_raft_read_rounds_total")
        proposeToCommit = timer("fauna_raft_propose_to_commit_seconds")
        logPersist = timer("fauna_raft_log_persist_seconds")
        applyBatch = timer("fauna_apply_batch_seconds")
        appliedEntries = counter("fauna_apply_entries_total")
        treeSize = gauge("fauna_audit_tree_size")
        treeHeadsSigned = counter("fauna_audit_tree_heads_signed_total")
        pendingProposals = gauge("fauna_pending_proposals")
        pendingReads = gauge("fauna_pending_reads")
        applyJobsInFlight = gauge("fauna_apply_jobs_in_flight")
    }

    /// Names of the histograms this type makes, for a backend that sets their buckets.
    public static let timerNames = [
        "fauna_raft_propose_to_commit_seconds", "fauna_raft_log_persist_seconds", "fauna_apply_batch_seconds",
    ]
}

/// What the owner thread last saw of its node, published once per round for readers on other
/// threads (health checks, the metrics page): a few words behind a lock, never the core.
public struct NodeVitals: Sendable {
    public var role: RaftRole = .follower
    public var isLearner = false
    public var term: Term = .zero
    public var leader: NodeID?
    public var commitIndex: LogIndex = .zero
    public var appliedIndex: LogIndex = .zero
    public var treeSize: UInt64 = 0
    /// The configuration the node's Raft core is in (voters and learners).
    public var configuration = ConfState()
    /// When the owner finished its last round (the node's monotonic clock).
    public var lastRound: NodeInstant?
    /// Set once the node stops or fail-stops (with why).
    public var stopped: String?
    /// The store's RocksDB and disk figures and its record cache, refreshed about once a
    /// second by the owner (nil until the first refresh).
    public var storage: StorageStats?
    public var recordCache: RecordCacheStats?
    public var storageAt: NodeInstant?

    public init() {}
}

/// Times proposals from their append on the leader to their commit: the index range of each
/// proposed batch and when it was proposed, oldest first. Bounded: past `capacity` batches
/// the oldest are dropped (not timed); a lost leadership forgets them all.
struct ProposalTimer {
    private var batches: [(last: LogIndex, at: NodeInstant)] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int = 4096) { self.capacity = capacity }

    mutating func proposed(through last: LogIndex, at now: NodeInstant) {
        if batches.count - head >= capacity { head += 1 }
        batches.append((last, now))
        compactIfNeeded()
    }

    /// Calls `body` with the age of every batch now committed (`commit` or below), and drops them.
    mutating func committed(through commit: LogIndex, at now: NodeInstant, _ body: (Duration) -> Void) {
        while head < batches.count, batches[head].last <= commit {
            body(now - batches[head].at)
            head += 1
        }
        compactIfNeeded()
    }

    mutating func forgetAll() {
        batches.removeAll(keepingCapacity: true)
        head = 0
    }

    private mutating func compactIfNeeded() {
        if head > 0 && head * 2 >= batches.count {
            batches.removeFirst(head)
            head = 0
        }
    }
}

extension Timer {
    /// Records a `Duration` (swift-metrics times in nanoseconds).
    func record(_ d: Duration) {
        let (seconds, attoseconds) = d.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The answers of `/livez` and `/readyz` (docs/METRICS.md "Health"), from the vitals alone.
public struct NodeHealth: Sendable {
    /// Each named check and, when it fails, why (the type `status` answers with).
    public var checks: [HealthCheck]
    public var ok: Bool { checks.allSatisfy(\.ok) }

    /// Bounds of readiness.
    public struct Limits: Sendable {
        /// The owner thread must have finished a round within this (else neither live nor ready).
        public var roundAgeMax: Duration = .seconds(5)
        /// Committed entries not yet applied, at most.
        public var applyLagMax: UInt64 = 50_000
        /// Free disk bytes at least (0: the store's own stop threshold only). Above the
        /// store's threshold, so a load balancer turns away before writes stop.
        public var diskFreeBytesMin: UInt64 = 0
        public init() {}
    }

    /// The process works: its owner thread runs rounds and it has not stopped.
    public static func live(_ v: NodeVitals, now: NodeInstant, limits: Limits) -> NodeHealth {
        NodeHealth(checks: [loop(v, now: now, limits: limits), stopped(v)])
    }

    /// The node can serve: live, a leader known, applying within a bound of the commit
    /// index, and disk space above the threshold.
    public static func ready(_ v: NodeVitals, now: NodeInstant, limits: Limits) -> NodeHealth {
        var checks = live(v, now: now, limits: limits).checks
        checks.append(HealthCheck(name: "leader", failure: v.leader == nil ? "no leader known in term \(v.term)" : nil))
        let lag = v.commitIndex.rawValue >= v.appliedIndex.rawValue ? v.commitIndex.rawValue - v.appliedIndex.rawValue : 0
        checks.append(HealthCheck(
            name: "applied",
            failure: lag > limits.applyLagMax
                ? "applied \(v.appliedIndex) is \(lag) entries behind commit \(v.commitIndex), want ≤ \(limits.applyLagMax)" : nil))
        var disk: String?
        if let storage = v.storage {
            let want = max(limits.diskFreeBytesMin, storage.diskFreeBytesMin)
            if let free = storage.diskFreeBytes, free < want {
                disk = "disk nearly full: \(free >> 20) MiB free, want ≥ \(want >> 20) MiB"
            } else if storage.writeStopped {
                disk = "RocksDB stopped writes (compaction behind)"
            }
        }
        checks.append(HealthCheck(name: "disk", failure: disk))
        return NodeHealth(checks: checks)
    }

    private static func loop(_ v: NodeVitals, now: NodeInstant, limits: Limits) -> HealthCheck {
        guard let last = v.lastRound else { return HealthCheck(name: "loop", failure: "the owner thread has not run yet") }
        let age = now - last
        return HealthCheck(name: "loop", failure: age > limits.roundAgeMax ? "the owner thread's last round was \(age) ago" : nil)
    }

    private static func stopped(_ v: NodeVitals) -> HealthCheck { HealthCheck(name: "stopped", failure: v.stopped) }

    /// The body of a health answer: `ok`, or one line per check (`[+]name ok`, `[-]name: why`).
    public var text: String {
        var out = ""
        for c in checks { out += c.ok ? "[+]\(c.name) ok\n" : "[-]\(c.name): \(c.failure!)\n" }
        out += ok ? "ok\n" : "not ok\n"
        return out
    }
}
