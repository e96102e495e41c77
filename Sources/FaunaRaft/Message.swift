/// The kinds of message Raft peers exchange. Raw values are the wire encoding (docs/PROTOCOL.md).
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable {
    /// Leader → follower: entries after (`index`, `logTerm`), and the leader's `commit`.
    case append = 1
    /// Follower → leader: success with `index` = last matching index, or `reject` with
    /// `rejectHint` = conflict index and `logTerm` = conflict term (0 if none).
    case appendResponse = 2
    /// Candidate → all: vote for me in `term`; my last entry is (`index`, `logTerm`).
    case vote = 3
    case voteResponse = 4
    /// Pre-candidate → all: would you vote for me in `term` (not yet my term)? (thesis §9.6)
    case preVote = 5
    case preVoteResponse = 6
    /// Leader → follower: commit = min(match, leader commit); `context` carries the ReadIndex
    /// round being confirmed (empty if none).
    case heartbeat = 7
    case heartbeatResponse = 8
    /// Leader → follower: install `snapshot` (the log before it is compacted on the leader).
    case snapshot = 9
    /// Leader → transfer target: start an election now, ignoring the lease (thesis §3.10).
    case timeoutNow = 10
    /// Follower → leader: please confirm leadership and answer with a read index for `context`.
    case readIndex = 11
    /// Leader → follower: `index` is the read index for `context`.
    case readIndexResponse = 12
}

/// One Raft message. A single flat struct (as in etcd's raftpb.Message) keeps the wire codec
/// small; fields a type does not use are zero/empty and the codec may omit them.
public struct Message: Sendable, Hashable {
    public var type: MessageType
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    /// prevLogTerm (append), lastLogTerm (vote/preVote), conflict term (rejected append).
    public var logTerm: Term
    /// prevLogIndex (append), lastLogIndex (vote), match index (appendResponse),
    /// read index (readIndexResponse).
    public var index: LogIndex
    public var entries: [Entry]
    public var commit: LogIndex
    public var reject: Bool
    /// Conflict index on a rejected append: the leader retries from here.
    public var rejectHint: LogIndex
    public var snapshot: Snapshot?
    public var context: [UInt8]

    public init(
        type: MessageType, from: NodeID, to: NodeID, term: Term,
        logTerm: Term = .zero, index: LogIndex = .zero, entries: [Entry] = [],
        commit: LogIndex = .zero, reject: Bool = false, rejectHint: LogIndex = .zero,
        snapshot: Snapshot? = nil, context: [UInt8] = []
    ) {
        self.type = type
        self.from = from
        self.to = to
        self.term = term
        self.logTerm = logTerm
        self.index = index
        self.entries = entries
        self.commit = commit
        self.reject = reject
        self.rejectHint = rejectHint
        self.snapshot = snapshot
        self.context = context
    }

    /// Approximate encoded size, used for batching and send-queue bounds.
    public var sizeBytes: Int {
        64 + context.count + entries.reduce(0) { $0 + $1.sizeBytes } + (snapshot?.data.count ?? 0)
    }
}

/// A linearizable read is safe to serve once the state machine has applied `index`.
public struct ReadState: Sendable, Hashable {
    public var index: LogIndex
    public var context: [UInt8]
    public init(index: LogIndex, context: [UInt8]) {
        self.index = index
        self.context = context
    }
}
