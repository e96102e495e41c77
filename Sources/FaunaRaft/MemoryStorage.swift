/// An in-memory `RaftStorage` for tests, the simulator and benchmarks.
///
/// Not thread-safe: owned by one node driver, like the core itself.
public final class MemoryStorage: RaftStorage {
    public private(set) var hardState = HardState()
    public private(set) var confState = ConfState()
    public private(set) var currentSnapshot = Snapshot()
    /// `entries[0]` has index `snapshotIndex + 1`.
    public private(set) var storedEntries: [Entry] = []

    public init() {}

    /// The storage of a founding member of a new cluster: `bootstrapEntries(voters:)` as its
    /// committed log, nothing applied yet.
    public convenience init(bootstrap voters: [NodeID]) {
        self.init()
        let entries = bootstrapEntries(voters: voters)
        storedEntries = entries
        hardState = HardState(term: Term(1), vote: nil, commit: entries.last?.index ?? .zero)
    }

    public var snapshotIndex: LogIndex { currentSnapshot.metadata.index }

    public func initialState() throws -> (HardState, ConfState) { (hardState, confState) }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        guard low > snapshotIndex else { throw RaftStorageError.compacted }
        guard high <= lastIndexValue + 1, low <= high else { throw RaftStorageError.unavailable }
        let start = Int(low - (snapshotIndex + 1))
        let end = Int(high - (snapshotIndex + 1))
        var out: [Entry] = []
        var bytes = 0
        for i in start..<end {
            let e = storedEntries[i]
            bytes += e.sizeBytes
            if !out.isEmpty && bytes > maxBytes { break }
            out.append(e)
        }
        return out
    }

    public func term(at index: LogIndex) throws -> Term {
        if index == snapshotIndex { return currentSnapshot.metadata.term }
        guard index > snapshotIndex else { throw RaftStorageError.compacted }
        guard index <= lastIndexValue else { throw RaftStorageError.unavailable }
        return storedEntries[Int(index - (snapshotIndex + 1))].term
    }

    public func firstIndex() throws -> LogIndex { snapshotIndex + 1 }
    public func lastIndex() throws -> LogIndex { lastIndexValue }
    public func snapshot() throws -> Snapshot { currentSnapshot }

    private var lastIndexValue: LogIndex { snapshotIndex + UInt64(storedEntries.count) }

    // MARK: Writes (the caller's side of Ready handling)

    public func setHardState(_ state: HardState) { hardState = state }
    public func setConfState(_ state: ConfState) { confState = state }

    /// Appends `entries`, first truncating any stored suffix they overwrite. Entries before
    /// the snapshot are ignored (they are already compacted).
    public func append(_ entries: [Entry]) {
        guard var first = entries.first?.index else { return }
        var newEntries = entries[...]
        if first <= snapshotIndex {
            newEntries = newEntries.drop { $0.index <= snapshotIndex }
            guard let f = newEntries.first?.index else { return }
            first = f
        }
        precondition(first <= lastIndexValue + 1, "append leaves a gap: first \(first), last \(lastIndexValue)")
        storedEntries.removeSubrange(Int(first - (snapshotIndex + 1))...)
        storedEntries.append(contentsOf: newEntries)
    }

    /// Replaces the whole log with `snapshot` (a follower installing a leader's snapshot).
    /// Entries after the snapshot that agree with it are kept (Raft figure 13 step 6).
    public func applySnapshot(_ snapshot: Snapshot) {
        let meta = snapshot.metadata
        if meta.index <= snapshotIndex { return }
        if meta.index <= lastIndexValue, storedEntries[Int(meta.index - (snapshotIndex + 1))].term == meta.term {
            storedEntries.removeFirst(Int(meta.index - snapshotIndex))
        } else {
            storedEntries.removeAll()
        }
        currentSnapshot = snapshot
        confState = meta.confState
    }

    /// Records a snapshot of the application state at `index` (≤ last index) and compacts the
    /// log up to and including it.
    public func createSnapshot(at index: LogIndex, confState conf: ConfState, data: [UInt8]) throws {
        guard index > snapshotIndex else { return }
        guard index <= lastIndexValue else { throw RaftStorageError.unavailable }
        let t = try term(at: index)
        storedEntries.removeFirst(Int(index - snapshotIndex))
        currentSnapshot = Snapshot(metadata: SnapshotMetadata(index: index, term: t, confState: conf), data: data)
    }
}

/// The first entries of a new cluster's log, identical on every founding member: one
/// `addVoter` conf change per voter (in id order), all in term 1 and committed. A node that
/// joins later replays them like any other entries, so it learns the membership from the log
/// (as etcd-io/raft bootstraps), and the audit chain covers the founding membership too.
public func bootstrapEntries(voters: [NodeID]) -> [Entry] {
    voters.sorted().enumerated().map { offset, voter in
        Entry(term: Term(1), index: LogIndex(UInt64(offset + 1)), type: .confChange,
              data: ConfChange(.addVoter, voter).encoded)
    }
}
