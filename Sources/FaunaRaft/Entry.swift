/// What an entry carries. Encoded as one byte on disk, on the wire and in Merkle leaves
/// (docs/AUDIT.md), so the raw values are fixed forever.
public enum EntryType: UInt8, Sendable, Hashable {
    /// An application command. An empty normal entry is the no-op a new leader appends
    /// (Raft §8) and is ignored by the state machine.
    case normal = 0
    /// A membership change (`ConfChange` encoded with `ConfChange.encoded`).
    case confChange = 1
}

/// One entry of the replicated log.
public struct Entry: Sendable, Hashable {
    public var term: Term
    public var index: LogIndex
    public var type: EntryType
    public var data: [UInt8]

    @inlinable
    public init(term: Term, index: LogIndex, type: EntryType = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.type = type
        self.data = data
    }

    /// The size counted against byte limits (message size, uncommitted bytes): payload plus a
    /// fixed per-entry overhead, so that empty entries are not free.
    @inlinable public var sizeBytes: Int { data.count + Entry.overheadBytes }
    public static let overheadBytes = 24
}

/// The state that must be durable before the node acts on it (Raft figure 2: currentTerm,
/// votedFor; plus the commit index, which lets a restarted node apply without waiting).
public struct HardState: Sendable, Hashable {
    public var term: Term
    /// The candidate this node voted for in `term`, if any.
    public var vote: NodeID?
    /// The highest index known committed. Persisting it is an optimisation, never required
    /// for safety: a stale value is only lower than the truth.
    public var commit: LogIndex

    public init(term: Term = .zero, vote: NodeID? = nil, commit: LogIndex = .zero) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// The membership configuration: voters count toward quorums, learners only receive the log.
/// Invariant: `voters` and `learners` are sorted, without duplicates, and disjoint.
public struct ConfState: Sendable, Hashable {
    public private(set) var voters: [NodeID]
    public private(set) var learners: [NodeID]

    public init(voters: [NodeID] = [], learners: [NodeID] = []) {
        self.voters = Array(Set(voters)).sorted()
        self.learners = Array(Set(learners).subtracting(voters)).sorted()
    }

    public var members: [NodeID] { (voters + learners).sorted() }
    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }
    public func isLearner(_ id: NodeID) -> Bool { learners.contains(id) }
    public func isMember(_ id: NodeID) -> Bool { isVoter(id) || isLearner(id) }
}

/// Describes the state a snapshot captures: everything up to and including `index`.
public struct SnapshotMetadata: Sendable, Hashable {
    public var index: LogIndex
    public var term: Term
    public var confState: ConfState

    public init(index: LogIndex = .zero, term: Term = .zero, confState: ConfState = ConfState()) {
        self.index = index
        self.term = term
        self.confState = confState
    }
}

/// A state machine snapshot. `data` is opaque to the core; the node may leave it empty and
/// stream the real state (a RocksDB checkpoint) out of band, keyed by `metadata`.
public struct Snapshot: Sendable, Hashable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata = SnapshotMetadata(), data: [UInt8] = []) {
        self.metadata = metadata
        self.data = data
    }

    public var isEmpty: Bool { metadata.index == .zero }
}
