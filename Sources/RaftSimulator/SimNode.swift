import FaunaRaft

/// One simulated server: durable state (`storage`, `stateMachine`) survives crashes; the
/// consensus core and everything in flight inside it does not.
final class SimNode {
    let id: NodeID
    var storage: MemoryStorage
    var stateMachine = SimStateMachine()
    var raft: RaftNode?
    /// Proposals this node accepted as leader, by index: (term, write id). Volatile.
    var proposals: [LogIndex: (term: Term, writeID: UInt64, tick: Int)] = [:]
    /// Reads asked of this node, by context: the highest acknowledged write index when asked.
    var reads: [UInt64: LogIndex] = [:]
    /// A Ready being persisted (slow disk), and the subtick its fsync completes. Lost on crash.
    var outstanding: (ready: Ready, completeAt: Int)?
    /// Highest commit index whose terms were checked against the cluster's committed history.
    var commitChecked: LogIndex = .zero
    /// A slow application (drawn per start): it takes one committed entry per Ready and its
    /// apply queue is often full, so its commit index runs ahead of what it has applied.
    var isSlowApplier = false
    /// Subtick until which the apply queue is full: the node takes no Ready (as a real node
    /// does), but keeps receiving messages and ticking. Volatile.
    var applyBusyUntil = 0

    init(id: NodeID, storage: MemoryStorage) {
        self.id = id
        self.storage = storage
    }

    var isUp: Bool { raft != nil }

    func start(options: SimOptions, seed: UInt64) throws {
        var config = RaftConfig(id: id, randomSeed: seed)
        config.electionTicks = options.electionTicks
        config.heartbeatTicks = options.heartbeatTicks
        config.applied = stateMachine.applied
        // Small limits so flow control, batching and back-pressure are exercised.
        config.inflightMessagesMax = 4
        config.entriesPerMessageBytesMax = 80  // one or two entries per append
        config.uncommittedBytesMax = 4_096
        // A third of the starts hand out one committed entry per Ready (every entry is bigger
        // than 1 byte; at least one is handed out), the rest up to 400 bytes. Derived from the
        // seed so that the simulator's random stream is not consumed.
        isSlowApplier = seed % 3 == 0
        config.committedBytesPerReadyMax = isSlowApplier ? 1 : 400
        // Half of the starts defer the commit broadcast to the next append or tick.
        config.deferCommitBroadcast = seed % 2 == 0
        config.learnerCatchUpEntriesMax = 20
        raft = try RaftNode(config: config, storage: storage)
        commitChecked = min(commitChecked, raft!.commitIndex)
    }

    func crash() {
        raft = nil
        outstanding = nil
        applyBusyUntil = 0
        proposals = [:]
        reads = [:]
    }
}

/// A message on the simulated wire.
struct InFlight {
    var deliverAt: Int
    var sequence: Int
    var message: Message
}
