/// A Raft consensus node: a deterministic state machine with no IO, clocks or threads.
///
/// Inputs: `tick()`, `step(_:)`, `propose(_:)`, `proposeConfChange(_:)`, `readIndex(context:)`,
/// `transferLeadership(to:)`. Output: `ready()` describes what to persist, send and apply;
/// `advance(_:)` hands it back once done (see `Ready` for the order). Not thread-safe and not
/// Sendable: exactly one owner drives it (ADR 0007).
///
/// A storage read that fails with anything but a `RaftStorageError` stops the node for good:
/// see `storageFailure`.
public final class RaftNode {
    public let id: NodeID
    let config: RaftConfig
    var log: RaftLog

    public internal(set) var term: Term = .zero
    var vote: NodeID?
    public internal(set) var role: RaftRole = .follower
    public internal(set) var leader: NodeID?
    /// Membership as of the last entry handed to the application.
    public internal(set) var conf: ConfState

    /// Leader only: replication state of every member, including this node.
    var progress: [NodeID: Progress] = [:]
    /// Candidate / pre-candidate only: the votes received in this round.
    var votes: [NodeID: Bool] = [:]

    var electionElapsedTicks = 0
    var heartbeatElapsedTicks = 0
    var randomizedElectionTicks = 0
    var random: SplitMix64

    var leadTransferee: NodeID?
    /// Leader only: the commit index advanced since the last broadcast append (`deferCommitBroadcast`).
    var commitBroadcastPending = false
    /// Leader only: a membership change at or below this index may still be unapplied.
    var pendingConfIndex: LogIndex = .zero
    /// Leader only: the index of the no-op that opened this term.
    var termStartIndex: LogIndex = .zero
    var uncommittedBytes = 0

    var reads = ReadQueue()
    var readStates: [ReadState] = []
    /// While true, a leader starts no new heartbeat round for waiting reads; the round in
    /// flight still completes. The caller sets it to pace rounds (the core has no clock finer
    /// than a tick): reads that arrive meanwhile share the next round.
    public var holdsReadRounds = false
    /// Leader only: whether reads wait for a round that `holdsReadRounds` keeps from starting.
    public var hasReadsWaitingForRound: Bool { role == .leader && reads.hasUnassigned && !reads.isRoundInFlight }
    /// Heartbeat rounds started for reads in this role (back to 0 when the role changes).
    public var readRoundsStarted: UInt64 { reads.roundStarted }
    /// How many reads the last of those rounds confirms (forwarded ones and keep-alives included).
    public var readsInLastRound: Int { reads.lastRoundSize }

    var earlyMessages: [Message] = []
    var messages: [Message] = []

    /// The term of the last hard state handed out and advanced (known durable).
    var durableTerm: Term
    var lastHardState: HardState
    var lastSoftState: SoftState
    var pendingConfState: ConfState?
    var isReadyOutstanding = false

    /// The first error the storage threw that is not a `RaftStorageError` (a damaged disk),
    /// wherever the core read it: entries, a term, the first index, the snapshot. Fatal
    /// (`RaftStorage`, fail-stop): once set, `hasReady` is false and `ready()` hands out an
    /// empty `Ready`, so nothing decided on the failed read (a vote over a last term it could
    /// not read, a rejection over a term it could not compare) is persisted or sent;
    /// `step(_:)` and `tick()` do nothing, and proposals, reads and transfers throw
    /// `storageFailed`. The caller must stop the node: check it after stepping and before
    /// using a `Ready`.
    public var storageFailure: (any Error)? { log.storage.failure }

    /// Creates a node over `storage`, which holds its persisted state (empty for a new node,
    /// whose membership must then be bootstrapped into the storage's conf state).
    public init(config: RaftConfig, storage: any RaftStorage) throws {
        try config.validate()
        let (hardState, confState) = try storage.initialState()
        self.id = config.id
        self.config = config
        self.log = try RaftLog(storage: storage, committed: hardState.commit, applied: config.applied)
        self.conf = confState
        self.random = SplitMix64(seed: config.randomSeed)
        self.term = hardState.term
        self.vote = hardState.vote
        self.durableTerm = hardState.term
        self.lastHardState = hardState
        self.lastSoftState = SoftState(role: .follower, leader: nil)
        becomeFollower(term: hardState.term, leader: nil)
    }

    // MARK: Inspection

    public var commitIndex: LogIndex { log.committed }
    public var appliedIndex: LogIndex { log.applied }
    public var lastIndex: LogIndex { log.lastIndex }
    public var firstIndex: LogIndex { log.firstIndex }
    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public var isLeader: Bool { role == .leader }

    /// The term of the entry at `index` in this node's log (stable or not), nil if absent (or
    /// unreadable: then `storageFailure` is set).
    public func term(at index: LogIndex) -> Term? { log.termIfPresent(at: index) }

    /// Leader only: the match index of each member (self: what is durable locally).
    public var matchIndexes: [NodeID: LogIndex] { progress.mapValues(\.match) }

    var quorum: Int { conf.voters.count / 2 + 1 }
    var isPromotable: Bool { conf.isVoter(id) }

    // MARK: Inputs

    /// Advances logical time by one tick: elections on followers, heartbeats and
    /// check-quorum on leaders.
    public func tick() {
        guard storageFailure == nil else { return }
        if role == .leader { tickLeader() } else { tickElection() }
    }

    /// Proposes `data` as a normal entry. Only the leader accepts proposals.
    /// - Returns: the index the entry will have if it commits.
    @discardableResult
    public func propose(_ data: [UInt8]) throws(RaftError) -> LogIndex {
        try checkCanPropose(bytes: data.count + Entry.overheadBytes)
        return appendLocal([Entry(term: term, index: .zero, type: .normal, data: data)])
    }

    /// Proposes several normal entries at once (a batch of client writes).
    /// - Returns: the index of the first entry.
    @discardableResult
    public func propose(batch: [[UInt8]]) throws(RaftError) -> LogIndex {
        let bytes = batch.reduce(0) { $0 + $1.count + Entry.overheadBytes }
        try checkCanPropose(bytes: bytes)
        let first = log.lastIndex + 1
        appendLocal(batch.map { Entry(term: term, index: .zero, type: .normal, data: $0) })
        return first
    }

    func checkCanPropose(bytes: Int) throws(RaftError) {
        try checkStorage()
        guard role == .leader else {
            throw RaftError(.notLeader, "proposal sent to \(role) \(id)", leaderHint: leader)
        }
        if let target = leadTransferee {
            throw RaftError(.transferInProgress, "leadership is moving to \(target)", leaderHint: id)
        }
        if bytes > config.proposalBytesMax {
            throw RaftError(.overloaded, "proposal of \(bytes) bytes, want <= \(config.proposalBytesMax)")
        }
        if uncommittedBytes > 0 && uncommittedBytes + bytes > config.uncommittedBytesMax {
            throw RaftError(.overloaded, "\(uncommittedBytes) uncommitted bytes, limit \(config.uncommittedBytesMax)")
        }
    }

    /// Delivers a message from a peer. Messages for another node are dropped; malformed or
    /// stale ones are ignored (the sender retries), never trusted blindly.
    public func step(_ message: Message) {
        guard storageFailure == nil else { return }
        guard message.to == id, message.from != id else { return }
        guard checkTerm(of: message) else { return }
        switch message.type {
        case .vote, .preVote:
            handleVoteRequest(message)
        default:
            switch role {
            case .leader: stepLeader(message)
            case .candidate, .preCandidate: stepCandidate(message)
            case .follower: stepFollower(message)
            }
        }
    }

    // MARK: Ready / advance

    /// Whether `ready()` has anything for the caller.
    public var hasReady: Bool {
        if isReadyOutstanding || storageFailure != nil { return false }
        if hasReadsWaitingForRound && !holdsReadRounds { return true }
        if SoftState(role: role, leader: leader) != lastSoftState { return true }
        if hardState != lastHardState { return true }
        if log.pendingSnapshot != nil || !log.unstable.isEmpty { return true }
        if !earlyMessages.isEmpty || !messages.isEmpty || !readStates.isEmpty { return true }
        return (log.hasNextCommittedEntries && storageFailure == nil) || pendingConfState != nil
    }

    /// Collects what the caller must do next. Call `advance(_:)` before calling it again.
    public func ready() -> Ready {
        precondition(!isReadyOutstanding, "ready() called again before advance()")
        startReadRoundIfIdle()
        var ready = Ready()
        let soft = SoftState(role: role, leader: leader)
        if soft != lastSoftState {
            ready.softState = soft
            lastSoftState = soft
        }
        let hard = hardState
        if hard != lastHardState {
            ready.hardState = hard
            ready.mustSync = hard.term != lastHardState.term || hard.vote != lastHardState.vote
        }
        ready.snapshot = log.pendingSnapshot
        ready.entries = log.unstable
        if !ready.entries.isEmpty || ready.snapshot != nil { ready.mustSync = true }
        // Entries are bounded by what is already durable, so this cannot fail but on a
        // storage error, which is fatal for the node, even a `RaftStorageError` (durable
        // entries gone): recorded, not trapped (the bytes came from disk), and nothing is
        // handed out around the hole (see below).
        if storageFailure == nil {
            do {
                ready.committedEntries = try log.nextCommittedEntries(maxBytes: config.committedBytesPerReadyMax)
            } catch {
                log.storage.record(error)
            }
        }
        applyConfChanges(in: ready.committedEntries)
        if ready.snapshot != nil || pendingConfState != nil {
            ready.confState = conf
            pendingConfState = nil
        }
        if role == .leader {
            for entry in ready.committedEntries { uncommittedBytes -= min(uncommittedBytes, entry.sizeBytes) }
        }
        ready.earlyMessages = earlyMessages
        ready.messages = messages
        ready.readStates = readStates
        earlyMessages = []
        messages = []
        readStates = []
        isReadyOutstanding = true
        // A storage failure, met before or while building this Ready: hand out nothing.
        return storageFailure == nil ? ready : Ready()
    }

    /// Tells the core that everything in `ready` was done (persisted, sent, applied).
    public func advance(_ ready: Ready) {
        precondition(isReadyOutstanding, "advance() without an outstanding ready()")
        isReadyOutstanding = false
        guard storageFailure == nil else { return }  // stopped: nothing moves any more
        if let hard = ready.hardState {
            lastHardState = hard
            durableTerm = hard.term
        }
        if let snapshot = ready.snapshot { log.stableSnapshot(to: snapshot.metadata.index) }
        if let last = ready.entries.last {
            log.stable(to: last.index, term: last.term)
            if role == .leader, log.matchTerm(last.index, last.term) { selfPersisted(through: last.index) }
        }
        if let last = ready.committedEntries.last { log.applied(to: last.index) }
    }

    /// Throws once a storage failure stopped the core (`storageFailure`).
    func checkStorage() throws(RaftError) {
        if let failure = storageFailure {
            throw RaftError(.storageFailed, "node \(id) stopped on a storage error: \(failure)")
        }
    }

    /// Leader: our own log is durable through `index`, so we count toward its commit.
    func selfPersisted(through index: LogIndex) {
        guard var own = progress[id] else { return }
        if own.maybeUpdate(match: index) {
            progress[id] = own
            commitAndAnnounce()
        }
    }
}

/// SplitMix64: a tiny, fast, seedable generator (Steele, Lea, Flood 2014), so one seed
/// reproduces every election timeout.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
