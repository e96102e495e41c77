/// Errors a `RaftStorage` may report. Anything else a storage throws is fatal (fail-stop): the
/// core records the first such error in `RaftNode.storageFailure`, wherever it read the
/// storage, and stops — it hands out no more `Ready`s and ignores every input after it; the
/// node must then stop (ADR 0006 "Storage failures").
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

/// The core's only door to its `RaftStorage`: passes every read through and remembers the
/// first error that is not a `RaftStorageError` (a record that does not decode, an IO error).
/// The core answers some reads with a default when they fail — "no such term" for a term it
/// cannot read, "not there yet" for entries — which is right for `.compacted` and
/// `.unavailable` but would hide a damaged disk; `RaftNode` checks `failure` and stops instead.
///
/// Not thread-safe, like the core that owns it.
final class CheckedStorage: RaftStorage {
    let base: any RaftStorage
    /// The first fatal error a read met, if any.
    private(set) var failure: (any Error)?

    init(_ base: any RaftStorage) { self.base = base }

    /// Records `error` as fatal (unless one is already recorded): also for a
    /// `RaftStorageError` where the core knows the entries must be there.
    func record(_ error: any Error) {
        if failure == nil { failure = error }
    }

    private func read<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RaftStorageError {
            throw error  // the storage's conventions: compacted or not there yet
        } catch {
            record(error)
            throw error
        }
    }

    func initialState() throws -> (HardState, ConfState) { try read { try base.initialState() } }
    func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        try read { try base.entries(from: low, to: high, maxBytes: maxBytes) }
    }
    func term(at index: LogIndex) throws -> Term { try read { try base.term(at: index) } }
    func firstIndex() throws -> LogIndex { try read { try base.firstIndex() } }
    func lastIndex() throws -> LogIndex { try read { try base.lastIndex() } }
    func snapshot() throws -> Snapshot { try read { try base.snapshot() } }
}
