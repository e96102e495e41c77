import FaunaRaft
import Foundation

/// The Raft log (the `log` column family) with its hard state and snapshot metadata (in
/// `meta`, written through the WAL in the same batches), implementing
/// FaunaRaft's `RaftStorage` (index conventions as in `MemoryStorage`). The membership it
/// reports is not kept here: it is the store's, written in the apply batch with the applied
/// index (`meta/confState`, ADR 0006).
///
/// The same family is the audit journal: a compaction (`compact(through:)`) moves the first
/// index Raft serves (`MetaKey.raftSnapshot`) and deletes nothing, so every entry at or below
/// the applied index stays where it was appended (ADR 0010). Entries below `firstIndex()` are there, but Raft no
/// longer reads them; the store reads them as the journal.
///
/// Reads see only durable state: the in-memory view (first/last index, last term, hard state,
/// snapshot metadata) is published by the group-commit writer after each synced batch
/// returns. Writes go through `submit`/`persist`/`compact`, which the writer thread
/// turns into one synced WriteBatch per group (group commit: docs/STORAGE.md "Write rules").
///
/// `@unchecked Sendable`: `view` is guarded by `lock`; the database is thread-safe; the writer
/// state lives in `RaftLogWriter`, which guards its own.
public final class RaftLogStorage: RaftStorage, @unchecked Sendable {
    /// The state this storage publishes to readers once a write returns: durable, except that
    /// `hardState.commit` may be ahead of the last fsync (a commit-index-only write is not
    /// synced, `RaftLogWriter.mustSync`), which a restart tolerates.
    struct View: Sendable {
        var hardState = HardState()
        var snapshot = SnapshotMetadata()
        /// Invariant: `lastIndex >= snapshot.index`; `lastTerm` is the term at `lastIndex`.
        var lastIndex = LogIndex.zero
        var lastTerm = Term.zero
    }

    let db: RocksDB
    let cf: RocksDBColumnFamily
    /// The `meta` column family: the hard state and compaction point (`MetaKey.raftHardState`,
    /// `MetaKey.raftSnapshot`, written through the WAL) and the membership as of the applied
    /// index (the store's, written with it).
    let meta: RocksDBColumnFamily
    let diskGuard: DiskSpaceGuard
    private let lock = NSLock()
    private var view: View
    private(set) var writer: RaftLogWriter!
    /// The most recent entries written, in memory (under `lock`): contiguous, the last one at
    /// `view.lastIndex` when not empty. The core reads back what it just persisted (committed
    /// entries to hand out, appends to a follower a little behind); serving that from here saves
    /// a RocksDB iterator over memtables and L0 files per Ready. Bounded by `tailEntriesMax`
    /// and `tailBytesMax` (trimmed from the front once twice over, so trimming is amortized).
    private var tail: [Entry] = []
    private var tailBytes = 0
    static let tailEntriesMax = 1_024
    static let tailBytesMax = 8 << 20
    private var tailHits = 0

    /// Loads the durable state from `cf` and starts the group-commit writer thread.
    /// - Parameter applied: the store's applied state. A compaction point above it (the state
    ///   on disk is older than the point Raft compacted to: a crash lost unflushed state) is
    ///   lowered to it, so that Raft hands the entries after it out again to be re-applied.
    init(
        db: RocksDB, cf: RocksDBColumnFamily, meta: RocksDBColumnFamily, diskGuard: DiskSpaceGuard,
        pendingUpdatesMax: Int, applied: AppliedState
    ) throws(StoreError) {
        self.db = db
        self.cf = cf
        self.meta = meta
        self.diskGuard = diskGuard
        var view = try Self.load(db: db, cf: cf, meta: meta)
        if view.snapshot.index > applied.index {
            let point = SnapshotMetadata(index: applied.index, term: applied.term, confState: applied.confState)
            try rocks { () throws(RocksDBError) in try db.put(meta, MetaKey.raftSnapshot, RaftLogCodec.encode(snapshot: point), sync: true) }
            view.snapshot = point
        }
        self.view = view
        self.writer = RaftLogWriter(storage: self, pendingUpdatesMax: pendingUpdatesMax)
    }

    /// Synced batches written and updates they carried since open (group-commit efficiency).
    public var writerCounters: (batches: Int, operations: Int) { writer.counters }

    /// Stops the writer thread after it has written everything already submitted.
    public func close() { writer.stop() }

    deinit { writer.stop() }

    var currentView: View { lock.withLock { view } }

    /// Publishes the view after a write of `operations` returned, and keeps their entries in
    /// the tail.
    func publish(_ v: View, written operations: [RaftLogWriter.Operation]) {
        lock.withLock {
            for case .update(let u) in operations { keepInTail(u) }
            view = v
            // Whatever the updates did, the tail must end at the log's last index.
            if let last = tail.last, last.index != v.lastIndex {
                tail = []
                tailBytes = 0
            }
        }
    }

    /// Under `lock`: the tail after `u` was written.
    private func keepInTail(_ u: RaftLogUpdate) {
        if u.snapshot != nil {
            tail = []
            tailBytes = 0
        }
        guard let first = u.entries.first?.index else { return }
        if let tailFirst = tail.first?.index, first >= tailFirst, first <= tailFirst + UInt64(tail.count) {
            // Entries from `first` on are replaced (a follower's conflicting suffix).
            let keep = Int(first - tailFirst)
            for e in tail[keep...] { tailBytes -= e.sizeBytes }
            tail.removeSubrange(keep...)
        } else {
            tail = []
            tailBytes = 0
        }
        tail.append(contentsOf: u.entries)
        for e in u.entries { tailBytes += e.sizeBytes }
        if tail.count > 2 * Self.tailEntriesMax || tailBytes > 2 * Self.tailBytesMax {
            var drop = 0
            while tail.count - drop > Self.tailEntriesMax || (tailBytes > Self.tailBytesMax && drop < tail.count - 1) {
                tailBytes -= tail[drop].sizeBytes
                drop += 1
            }
            tail.removeFirst(drop)
        }
    }

    /// Entries `low..<high` from the tail, at most `maxBytes` (at least one), if it has them all.
    private func tailEntries(from low: LogIndex, to high: LogIndex, maxBytes: Int) -> [Entry]? {
        lock.withLock {
            guard let tailFirst = tail.first?.index, low >= tailFirst, high <= tailFirst + UInt64(tail.count), low < high else {
                return nil
            }
            let start = Int(low - tailFirst)
            let end = Int(high - tailFirst)
            var out: [Entry] = []
            var bytes = 0
            for e in tail[start..<end] {
                bytes += e.sizeBytes
                if !out.isEmpty && bytes > maxBytes { break }
                out.append(e)
            }
            tailHits += 1
            return out
        }
    }

    /// Reads served from memory so far (tests).
    var tailReads: Int { lock.withLock { tailHits } }

    private static func load(db: RocksDB, cf: RocksDBColumnFamily, meta: RocksDBColumnFamily) throws(StoreError) -> View {
        var v = View()
        func decode<T>(_ key: [UInt8], _ f: ([UInt8]) throws(DecodeError) -> T) throws(StoreError) -> T? {
            guard let bytes = try rocks({ () throws(RocksDBError) in try db.get(meta, key) }) else { return nil }
            do { return try f(bytes) } catch { throw StoreError.corrupt(meta, key: key, error.reason) }
        }
        if let h = try decode(MetaKey.raftHardState, RaftLogCodec.decodeHardState) { v.hardState = h }
        // `RaftKey.confState` (written ahead of the apply by older builds) is never read: see
        // `initialState`.
        if let s = try decode(MetaKey.raftSnapshot, RaftLogCodec.decodeSnapshot) { v.snapshot = s }
        // Indexes near 2^64 cannot be real and would overflow `index + 1` below: corrupt.
        guard v.snapshot.index.rawValue < UInt64.max / 2 else {
            throw StoreError.corrupt(meta, key: MetaKey.raftSnapshot, "snapshot index \(v.snapshot.index) out of range")
        }
        v.lastIndex = v.snapshot.index
        v.lastTerm = v.snapshot.term
        // Entries at and below the compaction point are the journal: the log's entries start
        // at or below the compaction point + 1, and the last one is the log's last unless
        // none is above it.
        let it = db.makeIterator(cf, lowerBound: RaftKey.entry(.zero), upperBound: RaftKey.entriesEnd)
        it.seekToFirst()
        if it.isValid {
            let key = it.key
            guard let first = RaftKey.index(ofEntryKey: key), first <= v.snapshot.index + 1 else {
                throw StoreError.corrupt(cf, key: key, "first entry key: want index ≤ \(v.snapshot.index + 1)")
            }
            it.seekToLast()
            let lastKey = it.key
            guard let last = RaftKey.index(ofEntryKey: lastKey), last.rawValue < UInt64.max / 2 else {
                throw StoreError.corrupt(cf, key: lastKey, "not an entry key")
            }
            if last > v.snapshot.index {
                let bytes = try it.storeValue
                do { v.lastTerm = try RaftLogCodec.decodeTerm(bytes) } catch {
                    throw StoreError.corrupt(cf, key: lastKey, error.reason)
                }
                v.lastIndex = last
            }
        }
        try rocks { () throws(RocksDBError) in try it.checkError() }
        return v
    }

    /// The first and last index of the entries stored (journal included), or nils if none.
    func storedEntryRange() throws(StoreError) -> (first: LogIndex?, last: LogIndex?) {
        let it = db.makeIterator(cf, lowerBound: RaftKey.entry(.zero), upperBound: RaftKey.entriesEnd)
        it.seekToFirst()
        guard it.isValid else {
            try rocks { () throws(RocksDBError) in try it.checkError() }
            return (nil, nil)
        }
        let firstKey = it.key
        it.seekToLast()
        let lastKey = it.isValid ? it.key : firstKey
        try rocks { () throws(RocksDBError) in try it.checkError() }
        guard let first = RaftKey.index(ofEntryKey: firstKey) else { throw StoreError.corrupt(cf, key: firstKey, "not an entry key") }
        guard let last = RaftKey.index(ofEntryKey: lastKey) else { throw StoreError.corrupt(cf, key: lastKey, "not an entry key") }
        return (first, last)
    }

    // MARK: RaftStorage

    /// The durable hard state, and the membership as of the store's applied index: the one
    /// written in the same batch as that index (`meta/confState`), which the node passes to the
    /// core as `RaftConfig.applied`. Never a membership persisted ahead of the apply: the core
    /// re-applies the configuration changes after the applied index as it hands them out again,
    /// and over a later membership that passes through configurations that never existed
    /// (ADR 0006).
    public func initialState() throws -> (HardState, ConfState) {
        let v = currentView
        return (v.hardState, try Store.loadAppliedState(db: db, meta: meta).confState)
    }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        let v = currentView
        guard low > v.snapshot.index else { throw RaftStorageError.compacted }
        guard high <= v.lastIndex + 1, low <= high else { throw RaftStorageError.unavailable }
        if let cached = tailEntries(from: low, to: high, maxBytes: maxBytes) { return cached }
        var out: [Entry] = []
        var bytes = 0
        let it = db.makeIterator(cf, lowerBound: RaftKey.entry(low), upperBound: RaftKey.entry(high))
        it.seekToFirst()
        var expected = low
        while it.isValid {
            let key = it.key
            guard RaftKey.index(ofEntryKey: key) == expected else { break }
            let entry: Entry
            let stored = try it.storeValue
            do { entry = try RaftLogCodec.decodeEntry(stored, index: expected) } catch {
                throw StoreError.corrupt(cf, key: key, error.reason)
            }
            bytes += entry.sizeBytes
            if !out.isEmpty && bytes > maxBytes { return out }
            out.append(entry)
            expected = expected + 1
            it.next()
        }
        try rocks { () throws(RocksDBError) in try it.checkError() }
        if expected < high {
            // A concurrent compaction or truncation changed the log after `v` was read.
            let now = currentView
            if now.snapshot.index >= expected { throw RaftStorageError.compacted }
            if now.lastIndex < expected { throw RaftStorageError.unavailable }
            throw StoreError.corrupt(cf, key: RaftKey.entry(expected), "entry missing inside the log")
        }
        return out
    }

    public func term(at index: LogIndex) throws -> Term {
        let v = currentView
        if index == v.snapshot.index { return v.snapshot.term }
        if index == v.lastIndex { return v.lastTerm }
        guard index > v.snapshot.index else { throw RaftStorageError.compacted }
        guard index <= v.lastIndex else { throw RaftStorageError.unavailable }
        return try storedTerm(at: index, view: v)
    }

    /// The term of a stored entry read from disk (not the cache).
    func storedTerm(at index: LogIndex, view v: View) throws -> Term {
        let key = RaftKey.entry(index)
        guard let bytes = try rocks({ () throws(RocksDBError) in try db.get(cf, key) }) else {
            let now = currentView
            if now.snapshot.index >= index { throw RaftStorageError.compacted }
            if now.lastIndex < index { throw RaftStorageError.unavailable }
            throw StoreError.corrupt(cf, key: key, "entry missing inside the log")
        }
        do { return try RaftLogCodec.decodeTerm(bytes) } catch {
            throw StoreError.corrupt(cf, key: key, error.reason)
        }
    }

    public func firstIndex() throws -> LogIndex { currentView.snapshot.index + 1 }
    public func lastIndex() throws -> LogIndex { currentView.lastIndex }
    public func snapshot() throws -> Snapshot { Snapshot(metadata: currentView.snapshot) }

    // MARK: Writes

    /// Queues `update` for the next synced batch; `completion` runs on the writer thread once
    /// it is durable (or failed). Throws `.overloaded` when the queue is full, `.stopped` after
    /// a failed write, `.invalidRequest` if the entries would leave a gap.
    public func submit(
        _ update: RaftLogUpdate, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void
    ) throws(StoreError) {
        try writer.submit(.update(update), completion: completion)
    }

    /// Persists `update` and waits until it is durable: on the calling thread when nothing
    /// else is queued (no hand-off to the writer thread), else in the writer's next batch.
    /// Blocks the calling thread: call it from a thread of your own, never from an event loop
    /// or the cooperative pool.
    public func persist(_ update: RaftLogUpdate) throws(StoreError) {
        try writer.writeInline(.update(update))
    }

    /// Persists `update`, suspending until it is durable.
    public func persist(_ update: RaftLogUpdate) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            do {
                try writer.submit(.update(update)) { result in c.resume(with: result) }
            } catch {
                c.resume(throwing: error)
            }
        }
    }

    /// Moves the first index Raft serves past `index` (a follower behind it gets a checkpoint);
    /// records the snapshot metadata (term at `index`, `confState`). Deletes nothing: entries at
    /// and below the applied index are the journal. Waits for durability. A no-op if `index`
    /// is at or before the current compaction point.
    public func compact(through index: LogIndex, confState: ConfState) throws(StoreError) {
        try writer.submitAndWait(.compact(index, confState))
    }
}

/// One Ready's worth of log writes, applied atomically in this order: install `snapshot`
/// (log restarts after it), append `entries` (truncating any conflicting suffix), set
/// `hardState`. There is no membership here: it is persisted with the applied index
/// (`Store.apply(_:confState:)`), never ahead of it.
public struct RaftLogUpdate: Sendable {
    public var snapshot: SnapshotMetadata?
    public var entries: [Entry]
    public var hardState: HardState?

    public init(snapshot: SnapshotMetadata? = nil, entries: [Entry] = [], hardState: HardState? = nil) {
        self.snapshot = snapshot
        self.entries = entries
        self.hardState = hardState
    }
}

extension RaftLogUpdate {
    /// What `ready` asks the caller to persist before its messages go (step 1 of `Ready`):
    /// its entries and hard state. Not `ready.confState`: that is the membership after the
    /// Ready's committed entries, which goes to the store with them when they are applied
    /// (step 3; ADR 0006). A snapshot is installed by the caller through `SnapshotReceiver`,
    /// not through this update.
    public init(_ ready: Ready) {
        self.init(entries: ready.entries, hardState: ready.hardState)
    }
}
