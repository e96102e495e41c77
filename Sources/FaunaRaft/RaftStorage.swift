/// Errors a `RaftStorage` may report. Anything else a storage throws is treated as fatal by
/// the node (fail-stop: DESIGN.md "Storage"); the core reports it in
/// `RaftNode.storageFailure` where it needed the entries, and hands out nothing more.
public enum RaftStorageError: Error, Sendable, Hashable {
    /// The requested index is at or before the snapshot: the entries are compacted away.
    case compacted
    /// The requested index is after the last stored entry.
    case unavailable
}

/// What the consensus core reads from stable storage. The caller writes to it (append entries,
/// persist hard state, apply snapshots) while handling `Ready`; the core only reads.
///
/// Index conventions (as in etcd-io/raft): the storage holds a snapshot at `snapshotIndex`
/// (0 if none) and entries `firstIndex ... lastIndex` where `firstIndex = snapshotIndex + 1`.
/// `term(at: snapshotIndex)` must succeed (it is the snapshot's term).
public protocol RaftStorage {
    /// The persisted hard state (as of the last persisted Ready), and the membership as of
    /// the applied index the caller passes in `RaftConfig.applied` — persisted with that index,
    /// never ahead of it: the core re-applies the changes it hands out again after it.
    func initialState() throws -> (HardState, ConfState)
    /// Entries in `[low, high)`, stopping early once `maxBytes` is exceeded (at least one
    /// entry is returned if any exists in range).
    func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry]
    /// The term of the entry at `index`; throws `.compacted` / `.unavailable` outside
    /// `snapshotIndex ... lastIndex`.
    func term(at index: LogIndex) throws -> Term
    /// The index of the first entry still in the log (snapshot index + 1).
    func firstIndex() throws -> LogIndex
    /// The index of the last entry, or the snapshot index if the log is empty.
    func lastIndex() throws -> LogIndex
    /// The most recent snapshot (metadata; `data` may be empty if the node streams it).
    func snapshot() throws -> Snapshot
}
