import FaunaRaft

/// What the pipeline needs of a node's settings (production: `NodeSettings.pipeline`).
public struct PipelineSettings: Sendable {
    public var nodeID: NodeID
    /// Raft tick and its multiples (cluster.toml).
    public var tickMs: Int
    public var electionTicks: Int
    public var heartbeatTicks: Int
    /// Applied entries kept in the Raft log before it is compacted to half of them.
    public var snapshotEntries: Int
    /// Seeds the core's election timeouts.
    public var randomSeed: UInt64
    /// Bounds (see `NodeSettings`).
    public var pendingProposalsMax = 65_536
    public var pendingReadsMax = 65_536
    public var applyQueueMax = 256
    public var proposalBatchBytesMax = 1 << 20
    public var requestTimeout = Duration.seconds(10)
    public var readTimeout = Duration.seconds(5)
    /// How long, at most, a heartbeat round for linearizable reads waits after the start of
    /// the one before (`NodeCore.readRoundHold`: less when rounds carry few reads); zero: a
    /// round starts as soon as the last one is confirmed.
    public var readRoundSpacing = Self.readRoundSpacingDefault
    public static let readRoundSpacingDefault = Duration.microseconds(1000)
    /// How long at most a follower keeps newly committed entries back before the apply stage
    /// takes them, so that it applies several at once: one wake-up and one write for all
    /// (`NodeCore.holdsApply`). Never on a leader, never while a read waits for them. Zero:
    /// every Ready's entries go at once.
    public var followerApplyHold = Self.followerApplyHoldDefault
    public static let followerApplyHoldDefault = Duration.microseconds(5000)
    /// Entries at most a follower keeps back (`followerApplyHold`).
    public var followerApplyHoldEntries = 256
    /// `RaftConfig.deferCommitBroadcast`: followers learn a commit with the next append or tick.
    public var deferCommitBroadcast = true
    /// Where a leader's new cluster ID comes from: nil, the system's random source; the node
    /// simulator passes a seeded one so a seed replays byte for byte.
    public var clusterIDBytes: (@Sendable (Int) -> [UInt8])?
    /// Where the pipeline's metrics go (default: nowhere).
    public var metrics = PipelineMetrics()
    /// Bounds of the readiness verdict (`/readyz`, `status` with health).
    public var health = NodeHealth.Limits()

    public init(
        nodeID: NodeID, tickMs: Int, electionTicks: Int, heartbeatTicks: Int, snapshotEntries: Int, randomSeed: UInt64
    ) {
        self.nodeID = nodeID
        self.tickMs = tickMs
        self.electionTicks = electionTicks
        self.heartbeatTicks = heartbeatTicks
        self.snapshotEntries = snapshotEntries
        self.randomSeed = randomSeed
    }
}
