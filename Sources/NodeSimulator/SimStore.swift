import FaunaAudit
import FaunaKV
import FaunaPipeline
import FaunaRaft
import FaunaStore
import FaunaVerify

/// One open instance of a disk (production: one open RocksDB), shared by a `SimStore` and its
/// entry log.
final class SimStoreInstance {
    let disk: SimDisk
    let token: UInt64
    /// The disk's epoch at open: a power loss since kills this instance.
    let epoch: UInt64
    var isClosed = false
    /// Set by `reopen()`: the instance is replaced.
    var isRetired = false
    /// The first failed write: every later write through this instance fails (RocksDB keeps
    /// its background error and refuses writes; the store and the log writer stop).
    var writeFailure: StoreError?

    init(disk: SimDisk, token: UInt64) {
        self.disk = disk
        self.token = token
        self.epoch = disk.epoch
    }

    /// Traps if this instance is used after `reopen()` or a power loss: a driver bug.
    func checkLive(_ what: @autoclosure () -> String) {
        precondition(!isRetired, "\(disk.name): \(what()) on a SimStore after reopen()")
        precondition(epoch == disk.epoch, "\(disk.name): \(what()) on a SimStore that died in a power loss")
    }

    /// Throws unless this instance takes writes: `.closed` after `close()`, `.stopped` after a
    /// failed write.
    func checkWritable(_ what: @autoclosure () -> String) throws(StoreError) {
        checkLive(what())
        if isClosed { throw StoreError(.closed, "\(disk.name): store is closed") }
        if let writeFailure {
            throw StoreError(.stopped, "\(disk.name): stopped after a failed write: \(writeFailure.message)")
        }
    }

    /// The disk's state as the running database sees it.
    func state(_ what: @autoclosure () -> String) -> SimDiskState {
        checkLive(what())
        return disk.current
    }

    /// Writes one batch through this instance; a failure stops the instance's writes.
    func write(_ kind: SimDisk.WriteKind, sync: Bool, _ change: (inout SimDiskState) -> Void) throws(StoreError) {
        try checkWritable("write (\(kind))")
        do { try disk.write(kind, sync: sync, change) } catch {
            writeFailure = error
            throw error
        }
    }
}

/// The state store of a simulated node over a `SimDisk`, with the semantics of the production
/// `Store` (FaunaStore): the same state machine over the same stored formats (FaunaKV's
/// `MemoryKVBackend` stores records, history and meta exactly as the RocksDB backend does), the
/// same journal records and Merkle tree, the same applied-state bookkeeping and the same Raft
/// log conventions (`SimEntryLog`). Only the medium differs: see `SimDisk` for what is synced
/// and what a power loss keeps.
///
/// Opening (`init(disk:)`) sees what is on the disk now, like opening RocksDB after a crash:
/// it swaps in a finished snapshot install first (`SimIncomingSnapshot`), then checks that the
/// journal, tree and applied index agree. One store has a disk open at a time. After
/// `reopen()` or a power loss the instance is dead: any use traps (a driver bug). After
/// `close()` its writes throw `.closed`; its reads still see the disk.
///
/// `stateDigest` answers exactly the production digest (SHA-256 of FaunaKV's digest stream
/// over the same logical KV state), so simulated and real replicas compare.
///
/// `@unchecked Sendable`: the simulator runs every node in one thread; nothing here locks.
public final class SimStore: StateStore, @unchecked Sendable {
    /// Tunables, as `Store.Options`.
    public struct Options: Sendable {
        /// Entries per batch of a long apply (`Store.Options.applyChunkEntries`): each chunk
        /// is its own atomic, unsynced batch, so a power loss may keep some chunks of a group.
        public var applyChunkEntries = 1024
        /// `Store.Options.replayEntriesMax`: the state is flushed every half of it, so a
        /// crash re-applies at most this many entries. Small by default in the simulator, so
        /// that crashes land on both sides of flushes. Must be at least 2.
        public var replayEntriesMax = 16
        public init() {}
    }

    public let disk: SimDisk
    public let options: Options
    let instance: SimStoreInstance
    /// The entry log on the same disk (typed; `entryLog` is the port's view).
    public let log: SimEntryLog
    public let kvStateMachine = KVStateMachine()
    /// The tree's right edge as of the applied index (production keeps it in memory too,
    /// loaded from the stored nodes at open).
    private var frontier: MerkleFrontier
    /// Set after a failed apply: the store refuses further applies (fail-stop).
    private var applyFailure: StoreError?

    /// Opens the disk as it is now: swaps in a finished snapshot install, then loads and
    /// checks the applied state.
    /// - Throws: `.rocksDB`/`alreadyInUse` if another store has the disk open (not
    ///   fail-stop); `.invalidRequest` for bad options; `.corruptRecord` if journal, tree and
    ///   applied index disagree; an injected failure of the install swap.
    public init(disk: SimDisk, options: Options = Options()) throws(StoreError) {
        guard options.applyChunkEntries >= 1 else {
            throw StoreError(.invalidRequest, "apply chunk entries: got \(options.applyChunkEntries), want >= 1")
        }
        guard options.replayEntriesMax >= 2 else {
            throw StoreError(.invalidRequest, "replay entries max: got \(options.replayEntriesMax), want >= 2")
        }
        let token = try disk.claim()
        do {
            try disk.swapInPendingInstall()
            self.frontier = try Self.check(disk.current.data)
        } catch {
            disk.release(token)
            throw error
        }
        self.disk = disk
        self.options = options
        self.instance = SimStoreInstance(disk: disk, token: token)
        self.log = SimEntryLog(instance: instance)
    }

    /// The checks of `Store`'s open (`loadAppliedState`, `loadFrontier`): the journal's last
    /// index is the applied index, the tree of that size loads, and the leaf v2 boundary agrees
    /// with the KV meta. Returns the tree's frontier.
    private static func check(_ data: SimStateData) throws(StoreError) -> MerkleFrontier {
        let applied = data.applied
        guard UInt64(data.journal.count) == applied.index.rawValue else {
            throw StoreError(.corruptRecord, "journal last index \(data.journal.count) != applied index \(applied.index)")
        }
        for (i, record) in data.journal.enumerated() where record.entry.index.rawValue != UInt64(i + 1) {
            throw StoreError(.corruptRecord, "journal record \(i + 1) holds index \(record.entry.index)")
        }
        let stored: [UInt8]?
        do { stored = try data.kv.metaValue(forKey: KVStateMachine.leafV2FromMetaKey) } catch {
            throw StoreError(wrapping: error, "leaf v2 boundary")
        }
        let fromMeta = try stored.map { (b: [UInt8]) throws(StoreError) -> LogIndex in
            guard b.count == 8 else { throw StoreError(.corruptRecord, "meta kv/leaf-v2-from: got \(b.count) bytes, want 8") }
            return LogIndex(b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        guard fromMeta == applied.leafV2From else {
            throw StoreError(
                .corruptRecord, "leaf v2 boundary: meta says \(String(describing: fromMeta)), applied state \(String(describing: applied.leafV2From))")
        }
        do {
            return try MerkleFrontier.load(treeSize: applied.index.rawValue, from: data.merkle)
        } catch {
            throw StoreError(.corruptRecord, "merkle tree of size \(applied.index) does not load: \(error)")
        }
    }

    private var data: SimStateData { instance.state("read").data }

    // MARK: StateStore

    public var entryLog: any EntryLog { log }
    public var appliedIndex: LogIndex { data.applied.index }
    public var durableAppliedIndex: LogIndex {
        instance.checkLive("durableAppliedIndex")
        return disk.durableAppliedIndex
    }

    @discardableResult
    public func flushState() throws(StoreError) -> LogIndex {
        try instance.checkWritable("flushState")
        disk.flushState()
        return disk.durableAppliedIndex
    }
    public var appliedConfState: ConfState { data.applied.confState }

    public var treeHead: (treeSize: UInt64, rootHash: MerkleHash) {
        instance.checkLive("treeHead")
        return (frontier.treeSize, frontier.rootHash)
    }

    public var leafV2From: LogIndex? { data.applied.leafV2From }
    public var auditChain: Bool { true }

    public func stateLevel() throws(StoreError) -> UInt32 {
        do { return try kvStateMachine.stateLevel(on: data.kv) } catch { throw StoreError(wrapping: error, "state level") }
    }

    public func clusterID() throws(StoreError) -> ClusterID? {
        let bytes: [UInt8]?
        do { bytes = try kvStateMachine.clusterID(on: data.kv) } catch { throw StoreError(wrapping: error, "cluster ID") }
        guard let bytes else { return nil }
        guard let id = ClusterID(bytes: bytes) else {
            throw StoreError(.corruptRecord, "meta kv/cluster-id: got \(bytes.count) bytes, want \(ClusterID.sizeBytes)")
        }
        return id
    }

    /// `Store.apply`: entries at or below the applied index are skipped; a gap or a hole is
    /// `.invalidRequest` (nothing written); each chunk of at most `applyChunkEntries` entries
    /// (one chunk if `confState` is given) is one unsynced batch with its KV writes, journal
    /// records, tree nodes and applied state. Any other error is fail-stop: the store refuses
    /// further applies.
    @discardableResult
    public func apply(_ entries: [Entry], confState: ConfState?) throws(StoreError) -> [AppliedEntry] {
        instance.checkLive("apply")
        if let applyFailure { throw StoreError(.stopped, "state machine stopped after a failed apply: \(applyFailure.message)") }
        // The production rule itself (a mutant of it is a mutant of both stores).
        let todo = try Store.entriesToApply(entries, after: data.applied.index)
        guard !todo.isEmpty else { return [] }
        do {
            return try applyChunks(Array(todo), confState: confState)
        } catch {
            applyFailure = error
            throw error
        }
    }

    /// Applies and writes chunk by chunk (production pipelines them; the result is the same).
    private func applyChunks(_ entries: [Entry], confState: ConfState?) throws(StoreError) -> [AppliedEntry] {
        let chunk = confState == nil ? options.applyChunkEntries : entries.count
        var out: [AppliedEntry] = []
        out.reserveCapacity(entries.count)
        var start = 0
        while start < entries.count {
            let end = min(start + chunk, entries.count)
            var next = data
            var nextFrontier = frontier
            let results: [AppliedEntry]
            do {
                results = try prepare(entries[start..<end], into: &next, frontier: &nextFrontier, confState: confState)
            } catch let e as StoreError {
                throw e
            } catch {
                throw StoreError(.corruptRecord, "apply failed: \(error)")
            }
            try instance.write(.apply, sync: false) { $0.data = next }
            frontier = nextFrontier
            out += results
            start = end
            // `StateFlusher`: a flush every half bound (here it completes at once).
            if next.applied.index.rawValue >= disk.durableAppliedIndex.rawValue + UInt64(options.replayEntriesMax / 2) {
                disk.flushState()
            }
        }
        return out
    }

    /// `Store.prepare` over values: runs the state machine over `entries` (which follow
    /// `data`), appends their journal records and tree nodes, commits the KV writes, and
    /// updates the applied state.
    private func prepare(
        _ entries: ArraySlice<Entry>, into data: inout SimStateData, frontier: inout MerkleFrontier, confState: ConfState?
    ) throws -> [AppliedEntry] {
        // The state machine reads the state before the chunk and overlays its own batch.
        let committed = data.kv
        var kvBatch = KVWriteBatch(expectedEntries: entries.count)
        var out: [AppliedEntry] = []
        out.reserveCapacity(entries.count)
        var leafV2From = data.applied.leafV2From
        var confChanges = data.applied.confChangeIndexes
        for e in entries {
            var effects = KVEntryEffects.noCommand
            var result: KVApplyResult?
            if e.type == .normal && !e.data.isEmpty {
                result = try kvStateMachine.apply(
                    entryData: e.data, at: Revision(e.index.rawValue), on: committed, into: &kvBatch, effects: &effects)
            }
            if leafV2From == nil && effects.startsLeafV2 { leafV2From = e.index }
            // From the boundary on, the leaf commits to what the entry did (leaf v2).
            let record = JournalRecord(entry: e, effects: leafV2From.map { e.index >= $0 } == true ? JournalEffects(effects) : nil)
            data.journal.append(record)
            frontier.append(record.leaf.leafHash, to: &data.merkle)
            out.append(AppliedEntry(index: e.index, result: result, writes: effects.writes, leaseChanges: effects.leaseChanges))
            if e.type == .confChange { confChanges.append(e.index) }
        }
        data.kv.commit(kvBatch)
        if let last = entries.last {
            data.applied.index = last.index
            data.applied.term = last.term
        }
        if let confState { data.applied.confState = confState }
        data.applied.leafV2From = leafV2From
        data.applied.confChangeIndexes = Array(confChanges.suffix(AppliedState.confChangeIndexesMax))
        precondition(frontier.treeSize == data.applied.index.rawValue, "tree size \(frontier.treeSize) != applied \(data.applied.index)")
        return out
    }

    public func range(_ request: KVRangeRequest) throws -> KVRangeResult {
        try kvStateMachine.range(request, on: data.kv)
    }

    public func compactedRevision() throws -> Revision {
        try kvStateMachine.compactedRevision(on: data.kv)
    }

    public func leases() throws -> [KVLease] { try kvStateMachine.leases(on: data.kv) }

    public func authSnapshot() throws -> KVAuthSnapshot { try kvStateMachine.authSnapshot(on: data.kv) }

    public func lease(_ id: UInt64, keysMax: Int) throws -> (lease: KVLease, keys: [[UInt8]], truncated: Bool)? {
        try kvStateMachine.lease(id, keysMax: keysMax, on: data.kv)
    }

    /// The production digest: SHA-256 of FaunaKV's digest stream of the applied KV state.
    public func stateDigest() throws(StoreError) -> StateDigest {
        let data = self.data
        do {
            return try StateDigest(appliedIndex: data.applied.index) { sink in
                try kvStateMachine.digestStream(on: data.kv, sink)
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.corruptRecord, "digest: \(error)")
        }
    }

    /// The production digest as of `revision` (0: the applied index).
    /// - Throws: `.invalidRequest` beyond the applied index or below the compacted revision.
    public func stateDigest(at revision: Revision) throws(StoreError) -> StateDigest {
        let data = self.data
        let appliedNow = data.applied.index
        let at = revision == .zero ? Revision(appliedNow.rawValue) : revision
        guard at.rawValue <= appliedNow.rawValue else {
            throw StoreError(.invalidRequest, "state digest at \(at): beyond the applied index \(appliedNow)")
        }
        do {
            return try StateDigest(appliedIndex: LogIndex(at.rawValue)) { sink in
                try kvStateMachine.digestStream(at: at, on: data.kv, sink)
            }
        } catch let e as KVReadError {
            throw StoreError(.invalidRequest, "state digest at \(revision): \(e)")
        } catch {
            throw StoreError(wrapping: error, "state digest at \(revision)")
        }
    }

    /// `Store.auditJournal`: re-hashes every journal record (v2 leaves from their stored
    /// effects), rebuilds the tree and compares every stored node with the rebuilt one.
    public func auditJournal() throws(StoreError) -> JournalAudit {
        let data = self.data
        let size = data.applied.index.rawValue
        guard UInt64(data.journal.count) >= size else {
            throw StoreError(.corruptRecord, "journal entry \(data.journal.count + 1) missing")
        }
        var rebuilt = MerkleFrontier()
        for (i, record) in data.journal.prefix(Int(size)).enumerated() {
            var writes = NodeWrites()
            rebuilt.append(record.leaf.leafHash, to: &writes)
            for (address, hash) in writes.writes {
                let have = data.merkle.hash(at: address)
                guard have == hash else {
                    let what = address.level == 0
                        ? "journal entry \(address.index + 1) (leaf \(address.index)) hashes to \(hash)"
                        : "tree node (level \(address.level), index \(address.index)) rebuilt from the journal is \(hash)"
                    return JournalAudit(
                        entries: UInt64(i + 1), rebuiltRoot: rebuilt.rootHash,
                        problem: "\(what); the stored tree has \(have.map { "\($0)" } ?? "nothing")")
                }
            }
        }
        return JournalAudit(entries: size, rebuiltRoot: rebuilt.rootHash, problem: nil)
    }

    /// A prover over the stored tree as of now.
    func makeMerkleProver() -> MerkleProver<SimMerkleNodes> {
        let data = self.data
        return MerkleProver(reader: data.merkle, treeSize: frontier.treeSize)
    }

    public func rootHash(atSize size: UInt64) throws -> MerkleHash { try makeMerkleProver().rootHash(atSize: size) }

    public func inclusionProof(for leaf: LeafIndex, treeSize: UInt64) throws -> InclusionProof {
        try makeMerkleProver().inclusionProof(for: leaf, treeSize: treeSize)
    }

    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof {
        try makeMerkleProver().consistencyProof(from: oldSize, to: newSize)
    }

    public func journalRecord(at index: LogIndex) throws(StoreError) -> JournalRecord? {
        let data = self.data
        guard index > .zero, index <= data.applied.index else { return nil }
        return data.journal[Int(index.rawValue - 1)]
    }

    public func confChangeIndexes(after index: LogIndex) -> [LogIndex] {
        data.applied.confChangeIndexes.filter { $0 > index }
    }

    /// A value copy of exactly the applied state (what a RocksDB checkpoint holds but the
    /// Raft log, which an install rewrites).
    public func makeCheckpoint() throws(StoreError) -> any StateCheckpoint { makeSimCheckpoint() }

    /// `makeCheckpoint()`, typed.
    public func makeSimCheckpoint() -> SimCheckpoint {
        let data = self.data
        return SimCheckpoint(
            metadata: SnapshotMetadata(index: data.applied.index, term: data.applied.term, confState: data.applied.confState),
            data: data)
    }

    /// Closes this instance and opens the disk again (which swaps in a finished install).
    /// This instance must not be used afterwards (it traps).
    public func reopen() throws(StoreError) -> any StateStore { try reopenSim() }

    /// `reopen()`, typed.
    public func reopenSim() throws(StoreError) -> SimStore {
        instance.checkLive("reopen")
        // Production reopens by closing (which flushes the state) and opening.
        if applyFailure == nil && instance.writeFailure == nil { disk.flushState() }
        instance.isRetired = true
        disk.release(instance.token)
        return try SimStore(disk: disk, options: options)
    }

    /// Closes this instance: its writes throw `.closed`, the disk may be opened again.
    /// Allowed at any time, also after a power loss or `reopen()` (then a no-op).
    public func close() {
        guard !instance.isRetired, instance.epoch == disk.epoch, !instance.isClosed else { return }
        // `Store.close` flushes the state, unless an apply failed.
        if applyFailure == nil && instance.writeFailure == nil { disk.flushState() }
        instance.isClosed = true
        disk.release(instance.token)
    }

    /// The simulated store reads its in-memory state directly: no record cache (reported off).
    public var recordCacheStats: RecordCacheStats { RecordCacheStats() }

    /// A rough figure: the bytes of the stored entries, KV entries and tree nodes.
    public var sizeBytes: UInt64 {
        let state = instance.state("sizeBytes")
        let counts = state.data.kv.entryCounts
        let kv = 64 * (counts.records + counts.history + counts.meta)
        let journal = state.data.journal.reduce(0) { $0 + $1.entry.sizeBytes }
        let log = state.log.entries.reduce(0) { $0 + $1.sizeBytes }
        return UInt64(kv + journal + log + 32 * state.data.merkle.nodeCount)
    }

    // MARK: Founding

    /// Nothing logged, voted or applied (`FaunaNode.isFresh`).
    public var isFresh: Bool {
        let state = instance.state("isFresh")
        return state.log.lastIndex == .zero && state.data.applied.index == .zero && state.log.hardState == HardState()
    }

    /// Writes the founding log as `FaunaNode.found` does: `bootstrapEntries(voters:)`,
    /// committed, term 1 (synced).
    public func found(voters: [NodeID]) throws(StoreError) {
        let entries = bootstrapEntries(voters: voters)
        try log.persist(RaftLogUpdate(entries: entries, hardState: HardState(term: Term(1), vote: nil, commit: entries.last?.index ?? .zero)))
    }

    /// Founds a new cluster's member on a fresh disk: opens it, writes the founding log,
    /// closes it. `.invalidRequest` if the disk is not fresh.
    public static func found(disk: SimDisk, voters: [NodeID]) throws(StoreError) {
        let store = try SimStore(disk: disk)
        defer { store.close() }
        guard store.isFresh else { throw StoreError(.invalidRequest, "\(disk.name) is not fresh: cannot found a cluster on it") }
        try store.found(voters: voters)
    }
}
