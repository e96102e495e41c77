/// Parameters of one Raft node. Times are in ticks: the caller decides how long a tick is.
public struct RaftConfig: Sendable {
    public var id: NodeID
    /// A follower starts an election after a random timeout in
    /// `[electionTicks, 2 * electionTicks)` without hearing from a leader (Raft §5.2).
    public var electionTicks: Int = 10
    /// A leader sends heartbeats every `heartbeatTicks`; must be below `electionTicks`.
    public var heartbeatTicks: Int = 1
    /// The index the application has already applied (on restart; 0 for a new node).
    public var applied: LogIndex = .zero
    /// Entries per append message stop after this many bytes (at least one entry is sent).
    public var entriesPerMessageBytesMax: Int = 1 << 20
    /// Unacknowledged append messages per follower in replicate state.
    public var inflightMessagesMax: Int = 256
    /// Bytes of proposed but not yet committed entries a leader accepts before rejecting
    /// new proposals (flow control when followers or the disk are slow).
    public var uncommittedBytesMax: Int = 64 << 20
    /// Bytes of committed entries handed out per Ready.
    public var committedBytesPerReadyMax: Int = 16 << 20
    /// Bytes of one proposal.
    public var proposalBytesMax: Int = 8 << 20
    /// Linearizable reads waiting for confirmation.
    public var readsPendingMax: Int = 65_536
    /// A learner may be promoted only when its log is at most this far behind the leader's
    /// (thesis §4.2.1: catch up before voting, so promotion does not stall commits).
    public var learnerCatchUpEntriesMax: UInt64 = 1_000
    /// A leader that has not heard from a quorum for an election timeout steps down.
    public var checkQuorum: Bool = true
    /// Run a pre-vote round before incrementing the term (thesis §9.6).
    public var preVote: Bool = true
    /// A leader whose commit index advanced does not send followers an append that only
    /// carries it: the next append (a new proposal) or the next tick does. A follower then
    /// learns of a commit at most one tick later; in exchange a lone client's write costs each
    /// follower one message, one wake-up and one log write less (docs/adr/0006). A commit of a
    /// membership change, a leader transfer in progress and read rounds (heartbeats carry the
    /// commit index) are not deferred. Off: etcd's behaviour, an append at once.
    public var deferCommitBroadcast: Bool = false
    /// Seed of the generator for randomized election timeouts: the only randomness.
    public var randomSeed: UInt64

    public init(id: NodeID, randomSeed: UInt64) {
        self.id = id
        self.randomSeed = randomSeed
    }

    func validate() throws(RaftError) {
        func bad(_ what: String) -> RaftError { RaftError(.invalidConfig, what) }
        if id.rawValue == 0 { throw bad("node id: got 0, want > 0") }
        if heartbeatTicks <= 0 { throw bad("heartbeatTicks: got \(heartbeatTicks), want > 0") }
        if electionTicks <= heartbeatTicks {
            throw bad("electionTicks: got \(electionTicks), want > heartbeatTicks (\(heartbeatTicks))")
        }
        if inflightMessagesMax <= 0 { throw bad("inflightMessagesMax: got \(inflightMessagesMax), want > 0") }
        if entriesPerMessageBytesMax <= 0 || uncommittedBytesMax <= 0 || committedBytesPerReadyMax <= 0 {
            throw bad("byte limits must be > 0")
        }
    }
}

/// Why the core refused a request. A struct with a code, so new codes can be added without
/// breaking callers (swift-nio's error style).
public struct RaftError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: Hashable, Sendable {
        /// Only the leader accepts this; `leaderHint` names the leader if known.
        case notLeader
        /// A leadership transfer is in progress; retry after it completes.
        case transferInProgress
        /// Too many uncommitted bytes (`uncommittedBytesMax`) or a proposal over the size limit.
        case overloaded
        /// Another membership change is not yet applied, or the leader has not yet committed
        /// an entry of its term.
        case confChangeInProgress
        /// The change makes no sense for the current configuration.
        case invalidConfChange
        /// Too many reads waiting (`readsPendingMax`).
        case readQueueFull
        /// A learner is too far behind to be promoted.
        case learnerNotCaughtUp
        /// Invalid `RaftConfig`.
        case invalidConfig
        /// The persisted state contradicts itself (e.g. a commit index beyond the log): the
        /// node must not start on it.
        case inconsistentState
        /// A storage read failed with an error that is not a `RaftStorageError`: the core has
        /// stopped (`RaftNode.storageFailure`) and the node must stop.
        case storageFailed
    }

    public var code: Code
    public var leaderHint: NodeID?
    public var message: String

    public init(_ code: Code, _ message: String, leaderHint: NodeID? = nil) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
    }

    public var description: String {
        if let hint = leaderHint { return "\(code): \(message) (leader: \(hint))" }
        return "\(code): \(message)"
    }
}
