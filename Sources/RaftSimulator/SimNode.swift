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
        config.committedBytesPerReadyMax = 400
        config.learnerCatchUpEntriesMax = 20
        raft = try RaftNode(config: config, storage: storage)
        commitChecked = min(commitChecked, raft!.commitIndex)
    }

    func crash() {
        raft = nil
        outstanding = nil
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
