import FaunaConfig
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore

/// Everything a node needs to start: the cluster description, which node it is, and limits.
public struct NodeSettings: Sendable {
    public var cluster: ClusterConfig
    /// This node's entry in `cluster`.
    public var node: ClusterConfig.NodeConfig
    /// Where this node keeps its state (default: `<cluster data_dir>/<node name>`).
    public var dataDirectory: String
    /// Start without founding a cluster: an empty node waits to be added as a learner
    /// (`fctl member add-learner`) and receives the log or a snapshot from the leader.
    public var join: Bool = false
    /// Seed of the Raft core's election timeouts (random by default; fixed in tests).
    public var randomSeed: UInt64 = UInt64.random(in: 1...UInt64.max)
    /// Event-loop threads for the peer and client ports (faunad --event-loop-threads); nil:
    /// `eventLoopThreadsDefault`.
    public var eventLoopThreads: Int?
    /// One loop for a plaintext node, two with TLS. A put crosses the loops several times
    /// (client in, appends out, acknowledgements in, answer out), and between two loops every
    /// crossing can cost a wake-up: on the 2-core machine measured, one loop put more writes
    /// through at 64 and 256 clients for less CPU. TLS does its crypto on the loops, where
    /// the second one paid (docs/PERFORMANCE.md "One event loop").
    public var eventLoopThreadsDefault: Int { tls == nil ? 1 : 2 }
    /// Events waiting for the owner thread; more client requests are answered `overloaded`.
    public var eventsMax = 65_536
    /// Writes proposed but not yet applied; more are answered `overloaded`.
    public var pendingProposalsMax = 65_536
    /// Linearizable reads waiting for their read index or apply.
    public var pendingReadsMax = 65_536
    /// Committed-entry batches waiting for the apply stage; the owner takes no new Ready
    /// while it is full.
    public var applyQueueMax = 256
    /// Bytes of one proposal batch (many client writes in one append).
    public var proposalBatchBytesMax = 1 << 20
    /// A write not applied within this time is answered `timeout` (outcome unknown).
    public var requestTimeoutSeconds = 10.0
    /// A linearizable read not served within this time is answered `timeout`.
    public var readTimeoutSeconds = 5.0
    /// `PipelineSettings.readRoundSpacing` (faunad --read-round-us).
    public var readRoundSpacing = Self.readRoundSpacingDefault
    public static let readRoundSpacingDefault = PipelineSettings.readRoundSpacingDefault
    /// `PipelineSettings.followerApplyHold` (faunad --follower-apply-hold-us).
    public var followerApplyHold = Self.followerApplyHoldDefault
    public static let followerApplyHoldDefault = PipelineSettings.followerApplyHoldDefault
    public var storeOptions = Store.Options()
    /// Bounds of the node's watches (docs/PROTOCOL.md "Watch").
    public var watch = WatchSettings()
    /// The node's TLS (`[tls]` of cluster.toml), for both ports and every connection it makes;
    /// nil: plaintext. `reload()` on SIGHUP rotates certificates.
    public var tls: TLSContexts?
    /// Bounds of `/readyz` (docs/METRICS.md "Health"): by default a node turns unready below
    /// twice the free disk space at which its writes stop.
    public var health: NodeHealth.Limits = {
        var limits = NodeHealth.Limits()
        limits.diskFreeBytesMin = 2 * Store.Options().diskFreeBytesMin
        return limits
    }()

    public var nodeID: NodeID { node.nodeID }

    /// Where in each state flush interval this node flushes (`Store.Options.stateFlushPhase`):
    /// the fractional part of ID × 0.618…, which spreads consecutive IDs over [0, 1) with
    /// gaps of at least 0.236 for up to three of them. Members then flush at different
    /// entries of the same log, and a write's quorum does not wait on every member's flush
    /// at once.
    public static func stateFlushPhase(of id: NodeID) -> Double {
        let x = Double(id.rawValue % 1_000_003) * 0.618_033_988_749_894_9
        return min(x - x.rounded(.down), 0.999_999)
    }

    /// What the pipeline takes of these settings.
    public var pipeline: PipelineSettings {
        var p = PipelineSettings(
            nodeID: nodeID, tickMs: cluster.tickMs, electionTicks: cluster.electionTicks, heartbeatTicks: cluster.heartbeatTicks,
            snapshotEntries: cluster.snapshotEntries, randomSeed: randomSeed)
        p.pendingProposalsMax = pendingProposalsMax
        p.pendingReadsMax = pendingReadsMax
        p.applyQueueMax = applyQueueMax
        p.proposalBatchBytesMax = proposalBatchBytesMax
        p.requestTimeout = .milliseconds(Int64(requestTimeoutSeconds * 1000))
        p.readTimeout = .milliseconds(Int64(readTimeoutSeconds * 1000))
        p.readRoundSpacing = readRoundSpacing
        p.followerApplyHold = followerApplyHold
        p.health = health
        return p
    }

    /// Settings for node `name` of `cluster`, with its data directory under `data_dir`
    /// (relative paths are taken relative to `baseDirectory`, the config file's directory).
    public init(cluster: ClusterConfig, name: String, baseDirectory: String) throws(ConfigError) {
        self.cluster = cluster
        self.node = try cluster.node(named: name)
        let root = cluster.dataDirectory.hasPrefix("/") ? cluster.dataDirectory : "\(baseDirectory)/\(cluster.dataDirectory)"
        self.dataDirectory = "\(root)/\(name)"
        storeOptions.stateFlushPhase = Self.stateFlushPhase(of: node.nodeID)
        if let tls = cluster.tls {
            let files = tls.nodeFiles(name)
            let path = { (p: String) in p.hasPrefix("/") ? p : "\(baseDirectory)/\(p)" }
            do {
                self.tls = try TLSContexts(
                    files: TLSFiles(ca: path(files.ca), certificate: path(files.certificate), key: path(files.key)), role: .node,
                    requireClientCertificate: tls.requireClientCertificate)
            } catch {
                throw ConfigError("[tls] of \(name): \(error.message)")
            }
        }
        if let encryption = cluster.encryption {
            let files = encryption.nodeFiles(name)
            let path = { (p: String) in p.hasPrefix("/") ? p : "\(baseDirectory)/\(p)" }
            do {
                storeOptions.masterKey = try MasterKey.load(path: path(files.masterKey))
                storeOptions.previousMasterKey = try files.previousMasterKey.map { (p) throws(StoreError) in try MasterKey.load(path: path(p)) }
            } catch {
                throw ConfigError("[encryption] of \(name): \(error.message)")
            }
        }
    }
}
