import FaunaPipeline
import FaunaRaft
import FaunaStore

/// The Raft log and hard state of a `SimStore`'s disk, with the conventions of the production
/// `RaftLogStorage` (and FaunaRaft's `MemoryStorage`): a snapshot at `firstIndex - 1`, entries
/// `firstIndex ... lastIndex`, `RaftStorageError.compacted` / `.unavailable` outside, and the
/// membership of `initialState()` taken from the applied state, never from the log (ADR 0006).
///
/// Writes check what `RaftLogWriter.accept` checks (`.invalidRequest`, nothing written) and
/// change the log as `RaftLogWriter.add` does; each call is one batch, synced by the rule of
/// `RaftLogWriter.mustSync`. Reads see every batch written, synced or not (production publishes
/// its view after each write returns).
public final class SimEntryLog: EntryLog {
    let instance: SimStoreInstance

    init(instance: SimStoreInstance) { self.instance = instance }

    private func state(_ what: @autoclosure () -> String) -> SimDiskState { instance.state(what()) }

    // MARK: RaftStorage

    /// The hard state as written, and the membership as of the applied index.
    public func initialState() throws -> (HardState, ConfState) {
        let s = state("initialState")
        return (s.log.hardState, s.data.applied.confState)
    }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        let log = state("entries").log
        guard low > log.snapshot.index else { throw RaftStorageError.compacted }
        guard high <= log.lastIndex + 1, low <= high else { throw RaftStorageError.unavailable }
        var out: [Entry] = []
        var bytes = 0
        var index = low
        while index < high {
            let entry = log.entry(at: index)
            bytes += entry.sizeBytes
            if !out.isEmpty && bytes > maxBytes { break }
            out.append(entry)
            index = index + 1
        }
        return out
    }

    public func term(at index: LogIndex) throws -> Term {
        let log = state("term").log
        if index == log.snapshot.index { return log.snapshot.term }
        guard index > log.snapshot.index else { throw RaftStorageError.compacted }
        guard index <= log.lastIndex else { throw RaftStorageError.unavailable }
        return log.entry(at: index).term
    }

    public func firstIndex() throws -> LogIndex { state("firstIndex").log.firstIndex }
    public func lastIndex() throws -> LogIndex { state("lastIndex").log.lastIndex }
    public func snapshot() throws -> Snapshot { Snapshot(metadata: state("snapshot").log.snapshot) }

    // MARK: Writes

    /// Mirrors `RaftLogWriter.mustSync` (internal to FaunaStore): everything must be durable
    /// before the Ready's messages go, except a new commit index alone, which a restart only
    /// ever finds lower than the truth (etcd's `MustSync`). Unsynced, it still goes to the WAL
    /// in order, and the next synced batch makes it durable too.
    static func mustSync(_ update: RaftLogUpdate, after log: SimLogState) -> Bool {
        if update.snapshot != nil || !update.entries.isEmpty { return true }
        guard let h = update.hardState else { return false }
        return h.term != log.hardState.term || h.vote != log.hardState.vote
    }

    /// Installs `update.snapshot` if newer (the log restarts after it), appends the entries
    /// (dropping those at or below the snapshot, truncating any stored suffix from the first
    /// one), sets the hard state: one batch, synced unless only the commit index moved.
    /// - Throws: `.invalidRequest` for a gap or non-contiguous entries (nothing written); a
    ///   write failure (fail-stop: later writes throw `.stopped`).
    public func persist(_ update: RaftLogUpdate) throws(StoreError) {
        try instance.checkWritable("persist")
        var log = state("persist").log
        let sync = Self.mustSync(update, after: log)
        // RaftLogWriter.accept
        var snapshotIndex = log.snapshot.index
        var lastIndex = log.lastIndex
        if let s = update.snapshot, s.index > snapshotIndex {
            snapshotIndex = s.index
            lastIndex = s.index
        }
        let entries = update.entries.drop { $0.index <= snapshotIndex }
        if let first = entries.first?.index {
            guard first <= lastIndex + 1 else {
                throw StoreError(.invalidRequest, "append leaves a gap: got first index \(first), want ≤ \(lastIndex + 1)")
            }
            for (offset, e) in entries.enumerated() where e.index != first + UInt64(offset) {
                throw StoreError(.invalidRequest, "entries not contiguous: got index \(e.index), want \(first + UInt64(offset))")
            }
        }
        // RaftLogWriter.add
        if let s = update.snapshot, s.index > log.snapshot.index {
            // etcd semantics: a snapshot the core hands over replaces the whole log.
            log.snapshot = s
            log.entries.removeAll()
        }
        if let first = entries.first {
            log.entries.removeSubrange(Int(first.index.rawValue - log.snapshot.index.rawValue - 1)...)
            log.entries.append(contentsOf: entries)
        }
        if let h = update.hardState { log.hardState = h }
        try instance.write(.logPersist, sync: sync) { $0.log = log }
    }

    /// Drops entries through `index`, recording (index, its term, `confState`) as the log's
    /// snapshot metadata; a synced batch, also when `index` is at or before the current
    /// snapshot (then nothing changes), as in production.
    /// - Throws: `.invalidRequest` beyond the last index.
    public func compact(through index: LogIndex, confState: ConfState) throws(StoreError) {
        try instance.checkWritable("compact")
        var log = state("compact").log
        if index > log.snapshot.index {
            guard index <= log.lastIndex else {
                throw StoreError(.invalidRequest, "compact beyond the log: got \(index), last \(log.lastIndex)")
            }
            let term = log.entry(at: index).term
            log.entries.removeFirst(Int(index.rawValue - log.snapshot.index.rawValue))
            log.snapshot = SnapshotMetadata(index: index, term: term, confState: confState)
        }
        try instance.write(.logCompact, sync: true) { $0.log = log }
    }
}
