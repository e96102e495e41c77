import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify

/// What applying one committed entry produced.
public struct AppliedEntry: Sendable, Hashable {
    public var index: LogIndex
    /// The state machine's result for a normal entry with a payload; nil for no-ops and
    /// membership changes (which only go to the journal and the tree).
    public var result: KVApplyResult?
    /// The records the entry set or deleted, in key order (empty unless it succeeded): what
    /// the node's watchers are sent (docs/PROTOCOL.md "Watch"). In memory only.
    public var writes: [KVEntryEffects.Write]
    /// What the entry did to leases, for the node's lessor. In memory only.
    public var leaseChanges: [KVLeaseChange]

    public init(index: LogIndex, result: KVApplyResult?, writes: [KVEntryEffects.Write] = [], leaseChanges: [KVLeaseChange] = []) {
        self.index = index
        self.result = result
        self.writes = writes
        self.leaseChanges = leaseChanges
    }
}

extension Store {
    /// Applies committed entries in log order. The effects (v2 leaves) and Merkle nodes of every
    /// entry, the KV writes of normal entries with a payload, and the applied index go into one
    /// WriteBatch per chunk of at most `applyChunkEntries` entries (docs/STORAGE.md "Write rules"),
    /// written without the WAL: the entries themselves are already in the entry log, which is
    /// the journal at and below the applied index. After a crash the state stands at the last
    /// flush (all of a chunk or none of it), so each entry is applied exactly once and the tree
    /// size equals the applied index. A longer group is pipelined: chunk n + 1 is
    /// computed while a second thread writes chunk n. Readers may see a group's chunks land one
    /// by one, each a prefix of the committed log.
    ///
    /// Entries at or below the applied index are skipped (a restarted node may replay them).
    /// - Parameters:
    ///   - confState: the membership after these entries, if a membership change is among
    ///     them (recorded so a snapshot carries it).
    ///   - sync: flush the state to disk before returning. The entry log is the durable
    ///     record of committed entries, so applying without it is safe: after a crash the node
    ///     re-applies from the last flushed applied index (at most
    ///     `Options.replayEntriesMax` entries back).
    /// - Throws: `.invalidRequest` for a gap (nothing written); any other error is fail-stop:
    ///   the store refuses further applies.
    @discardableResult
    public func apply(_ entries: [Entry], confState: ConfState? = nil, sync: Bool = false) throws(StoreError) -> [AppliedEntry] {
        applyLock.lock()
        defer { applyLock.unlock() }
        try refuseIfStopped()
        let todo = try Self.entriesToApply(entries, after: applied.index)
        guard !todo.isEmpty else { return [] }
        do {
            let out = try applyLocked(Array(todo), confState: confState, sync: sync)
            try purgeHistoryStep()
            return out
        } catch {
            throw stopApplying(after: error, "apply")
        }
    }

    /// One step of the history purge under way, outside an apply: a node calls it while it
    /// has nothing to apply, so that a cluster that stops writing after a compaction still
    /// finishes purging (and a busy one purges one step per apply as well). Returns whether
    /// more remains; false at once when no purge is under way. Any error is fail-stop, as in
    /// `apply`.
    @discardableResult
    public func purgeHistoryWhileIdle() throws(StoreError) -> Bool {
        applyLock.lock()
        defer { applyLock.unlock() }
        try refuseIfStopped()
        guard historyPurge != nil else { return false }
        do {
            try purgeHistoryStep()
        } catch {
            throw stopApplying(after: error, "history purge")
        }
        return historyPurge != nil
    }

    /// Throws `.stopped` once an apply or purge step has failed (caller holds `applyLock`).
    private func refuseIfStopped() throws(StoreError) {
        if let applyFailure { throw StoreError(.stopped, "state machine stopped after a failed apply: \(applyFailure.message)") }
    }

    /// Records a failed write of the state (caller holds `applyLock`): nothing applies any
    /// more, and what the caches hold is not trusted either. Returns the error to throw.
    private func stopApplying(after error: any Error, _ doing: String) -> StoreError {
        let e = (error as? StoreError) ?? (error as? RocksDBError).map(StoreError.init)
            ?? StoreError(.corruptRecord, "\(doing) failed: \(error)")
        applyFailure = e
        recordCache?.removeAll()
        metaCache?.removeAll()
        sessionIndex.reset()
        publishRecordCacheStats()
        return e
    }

    /// The entries of `entries` still to apply to a state at `appliedIndex`: those at or below
    /// it are skipped (a restarted node may be handed them again), the rest must follow it
    /// without a gap. Shared by every `StateStore` (the node simulator's too), so the rule is
    /// tested wherever entries are applied.
    /// - Throws: `.invalidRequest` for a gap or entries out of order (nothing applied).
    public static func entriesToApply(_ entries: [Entry], after appliedIndex: LogIndex) throws(StoreError) -> ArraySlice<Entry> {
        let todo = entries.drop { $0.index <= appliedIndex }
        guard let first = todo.first else { return todo }
        guard first.index == appliedIndex + 1 else {
            throw StoreError(.invalidRequest, "apply gap: got index \(first.index), want \(appliedIndex + 1)")
        }
        for (offset, e) in todo.enumerated() where e.index != first.index + UInt64(offset) {
            throw StoreError(.invalidRequest, "apply: entries not contiguous at \(e.index)")
        }
        return todo
    }

    /// One chunk, computed and encoded, not yet written.
    private struct PreparedChunk {
        var batch: RocksDBWriteBatch
        /// Its state machine writes, for the next chunk to read while this one is in flight.
        var kvWrites: KVWriteBatch
        var results: [AppliedEntry]
        /// The applied state after it.
        var state: AppliedState
        /// What the audit chain still has to add to `batch`.
        var audit: ChunkAudit
    }

    /// The tree after a chunk whose audit runs on the apply writer's thread: set there before
    /// the batch is written, read by the applying thread after `ApplyWriter.wait` (whose lock
    /// orders the two). `@unchecked Sendable` for that hand-over.
    private final class TreeAfterChunk: @unchecked Sendable {
        var value: (frontier: MerkleFrontier, tiles: MerkleTileWriter)?
    }

    private func applyLocked(_ entries: [Entry], confState: ConfState?, sync: Bool) throws -> [AppliedEntry] {
        // A membership change is recorded with the last entry, so such a group stays one batch.
        guard entries.count > applyChunkEntries, confState == nil else {
            let chunk = try prepare(entries[...], after: applied, confState: confState, over: nil)
            let tree = try chunk.audit.complete(chunk.batch, after: (frontier, merkleTiles))
            try rocks { () throws(RocksDBError) in try db.write(chunk.batch, sync: false, logged: false) }
            try finish(chunk, tree: tree)
            if sync { try flushStateLocked() }
            return chunk.results
        }
        let writer = applyWriter ?? ApplyWriter(db: db)
        applyWriter = writer
        var out: [AppliedEntry] = []
        out.reserveCapacity(entries.count)
        var inFlight: (chunk: PreparedChunk, tree: TreeAfterChunk)?
        /// Waits for the chunk in flight, if any, and publishes it once written.
        func collect() throws {
            guard let (chunk, tree) = inFlight else { return }
            inFlight = nil
            try writer.wait()
            guard let after = tree.value else { preconditionFailure("apply writer finished a chunk without its tree") }
            try finish(chunk, tree: after)
        }
        // If anything fails, the chunk in flight is collected first, so `applied` and
        // `frontier` describe exactly what is written (the caller then fail-stops).
        defer { try? collect() }
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + applyChunkEntries, entries.endIndex)
            // A chunk may need the session order, which is built by iterating `sessions`; a
            // write in flight may be updating it in place. So it is built with none in flight:
            // once after an open or a reset, then `finish` keeps it current.
            if !sessionIndex.isBuilt {
                try collect()
                try sessionIndex.buildIfNeeded(from: RocksDBKVBackend(db: db, cfs: cfs))
            }
            let chunk = try prepare(
                entries[start..<end], after: inFlight?.chunk.state ?? applied, confState: nil, over: inFlight?.chunk.kvWrites)
            try collect()
            // The tree after the previous chunk is published now: the writer thread hashes
            // this chunk's leaves onto it, then writes the batch.
            let tree = TreeAfterChunk()
            let (audit, treeBefore) = (chunk.audit, (frontier, merkleTiles))
            writer.submit(chunk.batch) { batch in tree.value = try audit.complete(batch, after: treeBefore) }
            inFlight = (chunk, tree)
            out.append(contentsOf: chunk.results)
            start = end
        }
        try collect()
        if sync { try flushStateLocked() }
        return out
    }

    /// `flushState()` for a caller holding `applyLock`.
    private func flushStateLocked() throws(StoreError) {
        try rocks { () throws(RocksDBError) in try db.flush(cfs.flushedTogether) }
        flusher.flushed(through: applied.index)
    }

    /// Runs the state machine over `entries` (which follow `after`) and encodes its KV writes
    /// and the applied state into one batch; the audit chain's part (effects and Merkle
    /// nodes) is left to `ChunkAudit.complete`, which may run on the apply writer's thread.
    /// - Parameter pending: the previous chunk's KV writes if it may not be written yet.
    private func prepare(
        _ entries: ArraySlice<Entry>, after: AppliedState, confState: ConfState?, over pending: KVWriteBatch?
    ) throws -> PreparedChunk {
        let batch = db.makeWriteBatch()
        let committed = RocksDBKVBackend(db: db, cfs: cfs, sessionIndex: sessionIndex)
        var audit = ChunkAudit(entries: entries, families: cfs, diskGuard: diskGuard, auditChain: auditChain)
        var kvBatch = KVWriteBatch(expectedEntries: entries.count)
        var out: [AppliedEntry] = []
        out.reserveCapacity(entries.count)
        // Each entry decoded once, and the records its puts replace read in one batch.
        let prefetch = entries.count >= prefetchRecordsFrom
            ? try RecordPrefetch(entries, committed: committed, cache: recordCache, pending: pending) : nil
        prefetchedReads += UInt64(prefetch?.read ?? 0)
        func applyKV(_ e: Entry, _ i: Int, on backend: some KVBackend, _ effects: inout KVEntryEffects) throws -> KVApplyResult? {
            guard e.type == .normal && !e.data.isEmpty else { return nil }
            if let proposal = prefetch?.proposals[i] {
                return try kvStateMachine.apply(
                    decoded: proposal, at: Revision(e.index.rawValue), on: backend, into: &kvBatch, effects: &effects)
            }
            return try kvStateMachine.apply(
                entryData: e.data, at: Revision(e.index.rawValue), on: backend, into: &kvBatch, effects: &effects)
        }
        // Keys the chunk in flight writes are answered by its overlay, so the prefetched records
        // and the cache (which hold the state before that chunk) are read only for keys it
        // leaves alone.
        let reader = CachedKVBackend(base: committed, cache: recordCache, meta: metaCache, prefetched: prefetch?.records ?? [:])
        let backend: any KVBackend = if let pending { KVOverlayBackend(base: reader, pending: pending) } else { reader }
        var leafV2From = after.leafV2From
        var confChanges = after.confChangeIndexes
        for (i, e) in entries.enumerated() {
            var effects = KVEntryEffects.noCommand
            let result = try applyKV(e, i, on: backend, &effects)
            if leafV2From == nil && effects.startsLeafV2 { leafV2From = e.index }
            // From the boundary on, the leaf commits to what the entry did (leaf v2).
            if auditChain { audit.effects.append(leafV2From.map { e.index >= $0 } == true ? effects : nil) }
            out.append(AppliedEntry(index: e.index, result: result, writes: effects.writes, leaseChanges: effects.leaseChanges))
            if e.type == .confChange { confChanges.append(e.index) }
        }
        committed.add(kvBatch, to: batch)
        var state = after
        if let last = entries.last {
            state.index = last.index
            state.term = last.term
        }
        if let confState { state.confState = confState }
        state.leafV2From = leafV2From
        state.confChangeIndexes = Array(confChanges.suffix(AppliedState.confChangeIndexesMax))
        add(state, to: batch, over: after)
        audit.appliedIndex = state.index
        return PreparedChunk(batch: batch, kvWrites: kvBatch, results: out, state: state, audit: audit)
    }

    /// Publishes a written chunk's applied state and tree, and lets the flusher bound the
    /// replay (it may wait here for a flush; a failed flush is thrown: fail-stop).
    private func finish(_ chunk: PreparedChunk, tree: (frontier: MerkleFrontier, tiles: MerkleTileWriter)) throws(StoreError) {
        frontier = tree.frontier
        merkleTiles = tree.tiles
        applied = chunk.state
        do {
            if let target = try KVStateMachine.compactedRevision(writtenBy: chunk.kvWrites) {
                historyPurge = HistoryPurge(target: target, rest: .all)
            }
        } catch {
            throw StoreError(.corruptRecord, "compacted revision written by this apply: \(error)")
        }
        do { try sessionIndex.take(chunk.kvWrites.meta) } catch {
            throw StoreError(.corruptRecord, "session written by this apply: \(error)")
        }
        if let recordCache {
            // The chunk's records are in RocksDB now: the cache takes them over (a delete as
            // "absent"). Only here, never from a chunk still in flight.
            for (key, record) in chunk.kvWrites.records { recordCache.set(key.bytes, record) }
            if let metaCache { for (key, value) in chunk.kvWrites.meta { metaCache.update(key, value) } }
            publishRecordCacheStats()
        }
        try flusher.applied(through: chunk.state.index)
    }

    /// One bounded step of the history purge under way, if any (caller holds `applyLock`,
    /// nothing in flight): deletes up to `historyPurgeStepDeletes` history versions the last
    /// compaction made unreadable, in one WriteBatch without the WAL like an apply's, and
    /// records the compacted revision as purged with the last step. The state machine's reads
    /// answer the same before, during and after (`KVStateMachine.purgeHistory`), and the
    /// digest covers current records only, so replicas may purge at their own pace. A crash
    /// loses the unflushed steps and the place reached: the open after it starts over.
    func purgeHistoryStep() throws {
        guard let purge = historyPurge else { return }
        let committed = RocksDBKVBackend(db: db, cfs: cfs)
        // Every chunk is written: the record cache holds the committed records, and the
        // purge's reads of current records go through it as an apply's do.
        let reader = CachedKVBackend(base: committed, cache: recordCache, meta: metaCache)
        var kvBatch = KVWriteBatch()
        let rest = try kvStateMachine.purgeHistory(
            compactedTo: purge.target, in: purge.rest, deletesMax: historyPurgeStepDeletes,
            scannedMax: 16 * historyPurgeStepDeletes, on: reader, into: &kvBatch)
        let batch = db.makeWriteBatch()
        committed.add(kvBatch, to: batch)
        if rest == nil { batch.put(cfs.meta, MetaKey.historyPurged, bigEndianBytes(purge.target.rawValue)) }
        try diskGuard.check(adding: batch.dataBytes, operation: "history purge")
        try rocks { () throws(RocksDBError) in try db.write(batch, sync: false, logged: false) }
        historyPurge = rest.map { HistoryPurge(target: purge.target, rest: $0) }
    }

    /// The purge an open resumes: from the start of the history when the compacted revision
    /// is above the one last recorded as purged (a crash, or a checkpoint taken mid-purge).
    static func pendingHistoryPurge(db: RocksDB, cfs: ColumnFamilies, kv: KVStateMachine) throws(StoreError) -> HistoryPurge? {
        let backend = RocksDBKVBackend(db: db, cfs: cfs)
        let compacted: Revision
        do { compacted = try kv.compactedRevision(on: backend) } catch {
            throw (error as? StoreError) ?? StoreError(.corruptRecord, "compacted revision: \(error)")
        }
        guard compacted > .zero else { return nil }
        let purged = try rocks { () throws(RocksDBError) in try db.get(cfs.meta, MetaKey.historyPurged) }
        if let purged {
            guard let through = uint64(bigEndian: purged[...]), purged.count == 8 else {
                throw StoreError.corrupt(cfs.meta, key: MetaKey.historyPurged, "got \(purged.count) bytes, want 8")
            }
            if Revision(through) >= compacted { return nil }
        }
        return HistoryPurge(target: compacted, rest: .all)
    }

    /// Copies the cache's figures where `recordCacheStats` reads them (caller holds `applyLock`).
    func publishRecordCacheStats() {
        guard let recordCache else { return }
        let stats = recordCache.stats
        recordCacheStatsLock.withLock { publishedRecordCacheStats = stats }
    }

    /// The record cache's hits, misses, entries and bytes as of the last applied chunk (all 0
    /// but the budget while it is off: `Options.recordCacheBytes` 0).
    public var recordCacheStats: RecordCacheStats { recordCacheStatsLock.withLock { publishedRecordCacheStats } }

    /// A `KVBackend` over the latest committed state (for `KVStateMachine` reads).
    public func makeKVBackend() -> RocksDBKVBackend { RocksDBKVBackend(db: db, cfs: cfs) }

    /// The current tree size (== applied index) and root hash.
    public var treeHead: (treeSize: UInt64, rootHash: MerkleHash) {
        applyLock.withLock { (frontier.treeSize, frontier.rootHash) }
    }

    /// A prover for roots and proofs over the stored tree as of now.
    public func makeMerkleProver() -> MerkleProver<RocksDBMerkleNodeReader> {
        let size = applyLock.withLock { frontier.treeSize }
        return MerkleProver(reader: RocksDBMerkleNodeReader(db: db, cf: cfs.merkle, snapshot: nil), treeSize: size)
    }

    /// The committed entry at `index` from the journal (the entry log at and below the applied
    /// index, kept forever), or nil if not applied.
    public func journalEntry(at index: LogIndex) throws(StoreError) -> Entry? {
        try journalRecord(at: index)?.entry
    }

    /// The journal record at `index`: the entry and, for a v2 leaf, its effects; nil if not applied.
    public func journalRecord(at index: LogIndex) throws(StoreError) -> JournalRecord? {
        let (appliedNow, v2From) = applyLock.withLock { (applied.index, applied.leafV2From) }
        guard index >= LogIndex(1), index <= appliedNow else { return nil }
        // Two point reads (every verified read asks for one record), not the range read's iterators.
        let key = RaftKey.entry(index)
        guard let bytes = try rocks({ () throws(RocksDBError) in try db.get(cfs.log, key) }) else {
            throw StoreError.corrupt(cfs.log, key: key, "journal entry missing")
        }
        let entry: Entry
        do { entry = try RaftLogCodec.decodeEntry(bytes, index: index) } catch {
            throw StoreError.corrupt(cfs.log, key: key, error.reason)
        }
        guard let v2From, index >= v2From else { return JournalRecord(entry: entry, effects: nil) }
        // The group holding `index` is the last record at or before it.
        let groups = db.makeIterator(
            cfs.effects, lowerBound: bigEndianBytes(v2From.rawValue), upperBound: bigEndianBytes(index.rawValue + 1))
        groups.seekToLast()
        return JournalRecord(entry: entry, effects: try Self.effects(at: index, in: groups, cfs.effects))
    }

    /// The group record `groups` is at, decoded whole, if it holds `index` (and starts there,
    /// if `startingThere`).
    /// - Throws: `.corruptRecord` if it does not, or does not decode.
    private static func effectsGroup(
        at groups: RocksDBIterator, holding index: LogIndex, startingThere: Bool, _ cf: RocksDBColumnFamily
    ) throws(StoreError) -> (first: UInt64, effects: [JournalEffects]) {
        let (key, first, bytes) = try groupRecord(at: groups, for: index, startingThere: startingThere, cf)
        let effects: [JournalEffects]
        do { effects = try RaftLogCodec.decodeEffectsGroup(bytes) } catch {
            throw StoreError.corrupt(cf, key: key, error.reason)
        }
        guard index.rawValue - first < UInt64(effects.count) else { throw effectsMissing(index, cf) }
        return (first, effects)
    }

    /// The effects of the entry at `index` from the group record `groups` is at (the last at
    /// or before `index`), decoding only that entry's.
    /// - Throws: `.corruptRecord` if that record does not hold `index` or does not decode.
    private static func effects(at index: LogIndex, in groups: RocksDBIterator, _ cf: RocksDBColumnFamily) throws(StoreError) -> JournalEffects {
        let (key, first, bytes) = try groupRecord(at: groups, for: index, startingThere: false, cf)
        let found: JournalEffects?
        do { found = try RaftLogCodec.decodeEffects(bytes, offset: index.rawValue - first) } catch {
            throw StoreError.corrupt(cf, key: key, error.reason)
        }
        guard let found else { throw effectsMissing(index, cf) }
        return found
    }

    /// The key, first index and value of the group record `groups` is at, checked to start at
    /// or before `index` (at it, if `startingThere`).
    private static func groupRecord(
        at groups: RocksDBIterator, for index: LogIndex, startingThere: Bool, _ cf: RocksDBColumnFamily
    ) throws(StoreError) -> (key: [UInt8], first: UInt64, value: [UInt8]) {
        guard groups.isValid else {
            try rocks { () throws(RocksDBError) in try groups.checkError() }
            throw effectsMissing(index, cf)
        }
        let key = groups.key
        guard let first = uint64(bigEndian: key[...]), startingThere ? first == index.rawValue : first <= index.rawValue else {
            throw StoreError.corrupt(cf, key: key, "effects group key: want \(startingThere ? "" : "one at or before ")\(index)")
        }
        return (key, first, try groups.storeValue)
    }

    private static func effectsMissing(_ index: LogIndex, _ cf: RocksDBColumnFamily) -> StoreError {
        StoreError.corrupt(cf, key: bigEndianBytes(index.rawValue), "effects of a v2 leaf missing")
    }

    /// Committed entries `[low, high)` from the journal, stopping once `maxBytes` is exceeded
    /// (at least one entry if any is in range), like `RaftStorage.entries`. Serves entries the
    /// Raft log no longer serves (below its compaction point, docs/STORAGE.md); only applied
    /// entries are there.
    /// - Throws: `.invalidRequest` if `high` is beyond the applied index + 1 or `low` is 0;
    ///   `.corruptRecord` if an entry inside the journal is missing or does not decode.
    public func journalEntries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws(StoreError) -> [Entry] {
        try journalRecords(from: low, to: high, maxBytes: maxBytes).map(\.entry)
    }

    /// `journalEntries(from:to:maxBytes:)` with each entry's effects (v2 leaves).
    public func journalRecords(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws(StoreError) -> [JournalRecord] {
        let (appliedNow, v2From) = applyLock.withLock { (applied.index, applied.leafV2From) }
        return try journalRecords(from: low, to: high, maxBytes: maxBytes, applied: appliedNow, leafV2From: v2From)
    }

    /// The journal read: entries from the `log` family, effects from `effects` for indexes at
    /// or after the leaf v2 boundary, two iterators side by side.
    private func journalRecords(
        from low: LogIndex, to high: LogIndex, maxBytes: Int, applied appliedNow: LogIndex, leafV2From v2From: LogIndex?
    ) throws(StoreError) -> [JournalRecord] {
        guard low >= LogIndex(1), low <= high, high <= appliedNow + 1 else {
            throw StoreError(.invalidRequest, "journal range [\(low), \(high)): want 1 ≤ low ≤ high ≤ \(appliedNow + 1)")
        }
        var out: [JournalRecord] = []
        var bytes = 0
        var expected = low
        let entries = db.makeIterator(cfs.log, lowerBound: RaftKey.entry(low), upperBound: RaftKey.entry(high))
        entries.seekToFirst()
        let effectsFrom = max(low, v2From ?? high)
        // Group records, from the one holding `effectsFrom` (which may start before it).
        let effects = db.makeIterator(
            cfs.effects, lowerBound: bigEndianBytes((v2From ?? high).rawValue), upperBound: bigEndianBytes(high.rawValue))
        var group: (first: UInt64, effects: [JournalEffects])?
        while entries.isValid {
            let key = entries.key
            guard RaftKey.index(ofEntryKey: key) == expected else {
                throw StoreError.corrupt(cfs.log, key: key, "journal: want the entry at index \(expected)")
            }
            let entry: Entry
            let entryBytes = try entries.storeValue
            do { entry = try RaftLogCodec.decodeEntry(entryBytes, index: expected) } catch {
                throw StoreError.corrupt(cfs.log, key: key, error.reason)
            }
            var recorded: JournalEffects?
            if expected >= effectsFrom {
                if let g = group, expected.rawValue - g.first < UInt64(g.effects.count) {
                    recorded = g.effects[Int(expected.rawValue - g.first)]
                } else {
                    // The next group must start where the last one ended; the first one read
                    // is the last at or before `effectsFrom`.
                    if group == nil { effects.seekForPrev(bigEndianBytes(expected.rawValue)) } else { effects.next() }
                    let g = try Self.effectsGroup(at: effects, holding: expected, startingThere: group != nil, cfs.effects)
                    group = g
                    recorded = g.effects[Int(expected.rawValue - g.first)]
                }
            }
            bytes += entry.sizeBytes
            if !out.isEmpty && bytes > maxBytes { return out }
            out.append(JournalRecord(entry: entry, effects: recorded))
            expected = expected + 1
            entries.next()
        }
        try rocks { () throws(RocksDBError) in try entries.checkError() }
        guard expected == high else {
            throw StoreError.corrupt(cfs.log, key: RaftKey.entry(expected), "journal entry missing")
        }
        return out
    }

    /// Loads the tree frontier and checks that the journal, tree and applied index agree: the
    /// entry log holds every entry up to the applied index (first and last checked here; the
    /// rest by `auditJournal`), and the tree has exactly that many leaves.
    static func loadFrontier(db: RocksDB, cfs: ColumnFamilies, applied: AppliedState, log: RaftLogStorage) throws(StoreError) -> MerkleFrontier {
        if applied.index > .zero {
            let (first, last) = try log.storedEntryRange()
            guard let first, let last, first == LogIndex(1), last >= applied.index else {
                throw StoreError(
                    .corruptRecord,
                    "the entry log holds \(first.map { "\($0)" } ?? "no entry")...\(last.map { "\($0)" } ?? "-"), "
                        + "want every entry 1...\(applied.index) (the applied index): the journal lost entries")
            }
        }
        do {
            let reader = RocksDBMerkleNodeReader(db: db, cf: cfs.merkle, snapshot: nil)
            return try MerkleFrontier.load(treeSize: applied.index.rawValue, from: reader)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.corruptRecord, "merkle tree of size \(applied.index) does not load: \(error)")
        }
    }
}

/// A history purge under way: the compacted revision it purges to and the user keys whose
/// history is still to visit.
struct HistoryPurge: Sendable {
    var target: Revision
    var rest: KeyRange
}
