/// The log as the core sees it: stable entries in `storage`, plus entries (and possibly a
/// snapshot) not yet persisted, plus the commit and apply positions.
///
/// Invariants: `applied <= committed`; `committed <= lastIndex`; unstable entries are
/// contiguous from `unstableOffset`; a pending snapshot, if any, ends at `unstableOffset - 1`.
struct RaftLog {
    /// Every read of stable storage goes through it, so a fatal storage error is recorded
    /// wherever the core meets it (`RaftNode.storageFailure`).
    let storage: CheckedStorage
    /// Entries appended but not yet persisted; `unstable[0].index == unstableOffset`.
    private(set) var unstable: [Entry] = []
    private(set) var unstableOffset: LogIndex
    /// A snapshot received from the leader, not yet persisted by the caller.
    private(set) var pendingSnapshot: Snapshot?
    /// Highest index known to be committed (Raft §5.3).
    private(set) var committed: LogIndex
    /// Highest index handed to the application in a `Ready` (applied or being applied).
    private(set) var applied: LogIndex

    init(storage: any RaftStorage, committed: LogIndex, applied: LogIndex) throws {
        let checked = CheckedStorage(storage)
        self.storage = checked
        let last = try checked.lastIndex()
        self.unstableOffset = last + 1
        let first = try checked.firstIndex()
        // A stale persisted commit can be below the snapshot; the snapshot is committed.
        self.applied = max(applied, first - 1)
        // The application may be ahead of the persisted commit: a Ready hands out committed
        // entries (only ones already in stable storage) before the hard state that carries the
        // new commit index is synced (ADR 0006 "Restart"), so a crash in between leaves
        // applied > commit. Every applied entry was committed, so the commit is at least it.
        self.committed = max(committed, self.applied)
        // Disk state the core cannot reconcile: refuse to start rather than trap or diverge.
        guard self.committed <= last else {
            throw RaftError(
                .inconsistentState,
                "commit \(committed) / applied index \(self.applied) is beyond the last log index \(last): the log lost entries")
        }
    }

    // MARK: Positions

    /// On a storage failure (recorded, the core stops) the first unstable index stands in.
    var firstIndex: LogIndex {
        if let snapshot = pendingSnapshot { return snapshot.metadata.index + 1 }
        do {
            return try storage.firstIndex()
        } catch {
            return unstableOffset
        }
    }

    var lastIndex: LogIndex {
        if let last = unstable.last { return last.index }
        if let snapshot = pendingSnapshot { return snapshot.metadata.index }
        return unstableOffset - 1
    }

    /// Highest index durable in storage (entries before the unstable suffix).
    var stableIndex: LogIndex {
        if pendingSnapshot != nil { return .zero }
        return unstableOffset - 1
    }

    /// Zero on a storage failure (recorded, and the core stops before anything decided on it
    /// leaves: a vote granted over it is never sent).
    var lastTerm: Term { termIfPresent(at: lastIndex) ?? .zero }

    /// The term at `index`, or an error if compacted/unavailable.
    func term(at index: LogIndex) throws -> Term {
        if index >= unstableOffset {
            let offset = Int(index - unstableOffset)
            guard offset < unstable.count else { throw RaftStorageError.unavailable }
            return unstable[offset].term
        }
        if let snapshot = pendingSnapshot {
            if index == snapshot.metadata.index { return snapshot.metadata.term }
            throw RaftStorageError.compacted
        }
        return try storage.term(at: index)
    }

    /// The term at `index`, nil if the log has no entry there (`RaftStorageError`: compacted,
    /// or not written yet). Any other storage error gives nil too, but it is fatal: `storage`
    /// records it, and `RaftNode` stops stepping and hands out no `Ready` that could carry a
    /// decision taken on the nil.
    func termIfPresent(at index: LogIndex) -> Term? {
        do {
            return try term(at: index)
        } catch {
            return nil
        }
    }

    func matchTerm(_ index: LogIndex, _ term: Term) -> Bool {
        termIfPresent(at: index) == term
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex candidateIndex: LogIndex, lastTerm candidateTerm: Term) -> Bool {
        let ourTerm = lastTerm
        return candidateTerm > ourTerm || (candidateTerm == ourTerm && candidateIndex >= lastIndex)
    }

    // MARK: Reading entries

    /// Entries in `[low, high)`, at most about `maxBytes` (at least one if any).
    func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        guard low < high else { return [] }
        if low < firstIndex { throw RaftStorageError.compacted }
        guard high <= lastIndex + 1 else { throw RaftStorageError.unavailable }
        var out: [Entry] = []
        var bytes = 0
        if low < unstableOffset {
            out = try storage.entries(from: low, to: min(high, unstableOffset), maxBytes: maxBytes)
            bytes = out.reduce(0) { $0 + $1.sizeBytes }
            // A storage may return fewer entries because of the byte limit: stop there.
            if let last = out.last, last.index + 1 < min(high, unstableOffset) { return out }
            if out.isEmpty { return out }
        }
        if high > unstableOffset {
            let start = Int(max(low, unstableOffset) - unstableOffset)
            let end = Int(high - unstableOffset)
            for i in start..<end {
                let entry = unstable[i]
                bytes += entry.sizeBytes
                if !out.isEmpty && bytes > maxBytes { break }
                out.append(entry)
            }
        }
        return out
    }

    /// Committed entries the application has not been given yet, up to what is durable here.
    func nextCommittedEntries(maxBytes: Int) throws -> [Entry] {
        let high = min(committed, stableIndex)
        guard applied < high else { return [] }
        return try entries(from: applied + 1, to: high + 1, maxBytes: maxBytes)
    }

    var hasNextCommittedEntries: Bool { applied < min(committed, stableIndex) }

    // MARK: Writing

    /// Appends entries received from a leader after (prevIndex, prevTerm) matched: skips the
    /// ones we already have, truncates at the first conflict (Raft figure 2, receiver step 3),
    /// and returns the index of the last new entry.
    mutating func maybeAppend(after prevIndex: LogIndex, entries newEntries: [Entry]) throws -> LogIndex {
        let lastNew = prevIndex + UInt64(newEntries.count)
        for (offset, entry) in newEntries.enumerated() where !matchTerm(entry.index, entry.term) {
            // A leader never contradicts a committed entry (leader completeness); if one
            // does, refuse the message rather than corrupt the log.
            guard entry.index > committed else { throw LogConflictError(index: entry.index, committed: committed) }
            append(Array(newEntries[offset...]))
            return lastNew
        }
        return lastNew
    }

    /// Appends `entries` (contiguous), truncating any unstable/stable suffix they replace.
    mutating func append(_ entries: [Entry]) {
        guard let first = entries.first?.index else { return }
        precondition(first > committed, "append at \(first) would overwrite committed \(committed)")
        precondition(first <= lastIndex + 1, "append at \(first) leaves a gap after \(lastIndex)")
        if first == unstableOffset + UInt64(unstable.count) {
            unstable.append(contentsOf: entries)
        } else if first <= unstableOffset {
            // Replaces part of the stable log too: the caller truncates storage when persisting.
            unstableOffset = first
            unstable = entries
        } else {
            unstable.removeSubrange(Int(first - unstableOffset)...)
            unstable.append(contentsOf: entries)
        }
    }

    mutating func commit(to index: LogIndex) {
        guard index > committed else { return }
        precondition(index <= lastIndex, "commit \(index) beyond last index \(lastIndex)")
        committed = index
    }

    mutating func applied(to index: LogIndex) {
        guard index > applied else { return }
        precondition(index <= committed, "applied \(index) beyond commit \(committed)")
        applied = index
    }

    /// The caller has persisted entries through (index, term): drop them from `unstable`,
    /// unless they were overwritten meanwhile.
    mutating func stable(to index: LogIndex, term: Term) {
        guard index >= unstableOffset, index < unstableOffset + UInt64(unstable.count),
              unstable[Int(index - unstableOffset)].term == term else { return }
        unstable.removeFirst(Int(index - unstableOffset) + 1)
        unstableOffset = index + 1
    }

    /// The caller has persisted (installed) the pending snapshot.
    mutating func stableSnapshot(to index: LogIndex) {
        if let s = pendingSnapshot, s.metadata.index == index { pendingSnapshot = nil }
    }

    /// Replaces the log with a leader's snapshot (Raft figure 13 steps 6–8).
    mutating func restore(_ snapshot: Snapshot) {
        let index = snapshot.metadata.index
        precondition(index > committed, "restore at \(index) not beyond commit \(committed)")
        committed = index
        applied = index
        unstable = []
        unstableOffset = index + 1
        pendingSnapshot = snapshot
    }
}

/// An append that would overwrite a committed entry: only a faulty leader sends one.
struct LogConflictError: Error {
    var index: LogIndex
    var committed: LogIndex
}
