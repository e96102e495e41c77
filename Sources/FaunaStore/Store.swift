import FaunaAudit
import FaunaKV
import FaunaRaft
import Foundation

/// One node's storage: a RocksDB instance with the column families of docs/STORAGE.md: the
/// entry log on `log` (the Raft log, and at and below the applied index the audit journal),
/// and (see `Store+Apply.swift`) the applied state: the state machine, the entries' effects and
/// the Merkle nodes, written without RocksDB's WAL and flushed by `StateFlusher`.
///
/// Layout of the data directory `path`: `db/` is the RocksDB instance; `db.incoming/` is a
/// snapshot being installed, `db.old/` the instance it replaces, `snapshots/` checkpoints
/// being streamed out (docs/STORAGE.md). Open with `Store(path:)`; call `close()` and drop
/// the instance before reopening the same directory in-process.
///
/// `@unchecked Sendable`: the database is thread-safe, the Raft log guards its own state and
/// the apply state is guarded by `applyLock`.
public final class Store: @unchecked Sendable {
    /// The data directory.
    public let path: String
    /// The RocksDB directory inside it (what `ldb --db=` takes).
    public var databasePath: String { "\(path)/db" }
    let db: RocksDB
    let cfs: ColumnFamilies
    /// The Raft log and hard state (FaunaRaft's `RaftStorage`); the membership it reports is
    /// the one as of the applied index.
    public let raftLog: RaftLogStorage
    /// Serialises applies and snapshot creation; guards `applied` (and the apply pipeline).
    let applyLock = NSLock()
    var applied: AppliedState
    /// The tree's right edge as of `applied.index` (guarded by `applyLock`).
    var frontier: MerkleFrontier
    /// The tree's last tile as of `applied.index` (guarded by `applyLock`; `MerkleTile`).
    var merkleTiles: MerkleTileWriter
    /// The second thread of pipelined applies, started by the first long group (guarded by
    /// `applyLock`).
    var applyWriter: ApplyWriter?
    /// Set after a failed apply: the store refuses further applies (fail-stop).
    var applyFailure: StoreError?
    /// The data keys of an encrypted directory (nil: not encrypted).
    public let keyring: Keyring?
    /// `Options.masterKey`: snapshots received into this directory are opened with it.
    public let masterKey: MasterKey?
    /// Flushes the state in the background, bounding what a crash makes the node re-apply.
    let flusher: StateFlusher
    /// Current records for the apply path's point reads (nil: off); used and changed only
    /// under `applyLock` (see `RecordCache`).
    let recordCache: RecordCache?
    /// The committed sessions in eviction order, for the apply path only (under `applyLock`).
    let sessionIndex = SessionRecencyIndex()
    /// The state machine's meta values for the apply path (sessions); on with `recordCache`.
    let metaCache: MetaCache?
    /// `recordCache`'s figures as of the last apply, for readers that must not wait for one.
    let recordCacheStatsLock = NSLock()
    var publishedRecordCacheStats = RecordCacheStats()
    /// The key-value state machine (stateless: its state lives in the kv/history/meta CFs).
    /// Its compactions only record their revision; the store purges the history they make
    /// unreadable in bounded steps (`historyPurge`).
    public let kvStateMachine: KVStateMachine
    /// The history purge under way, if any (under `applyLock`; docs/STORAGE.md "History purge").
    var historyPurge: HistoryPurge?
    /// Records read from RocksDB by `RecordPrefetch` since the open (under `applyLock`; tests).
    var prefetchedReads: UInt64 = 0
    /// `Options.historyPurgeStepDeletes`.
    let historyPurgeStepDeletes: Int

    /// The data group's key space in each family (`StoreGroup.data`), and group 0's `meta`.
    struct ColumnFamilies {
        let log, kv, history, effects, merkle, meta, sessions: RocksDBColumnFamily
        /// The node's own records (the schema version): `meta` in group 0.
        let nodeMeta: RocksDBColumnFamily
        /// What a state flush flushes, as stored (whole families, every group): the state
        /// families, written without the WAL, and `log`. Flushing `log` with them makes the
        /// WAL files before the flush obsolete, so RocksDB recycles them (`RocksDB.init`);
        /// left to fill on its own, `log`'s memtable kept every WAL file alive for up to the
        /// whole memtable budget.
        let flushedTogether: [RocksDBColumnFamily]
    }

    /// Tunables of a store. The defaults suit a node; tests shrink them.
    public struct Options: Sendable {
        /// Writes are refused (fail-stop, `.diskFull`) when less than this is free on the data
        /// directory's filesystem: room for memtable flushes and compaction to finish.
        public var diskFreeBytesMin: UInt64 = 256 << 20
        /// Memtables of all column families together stay below this (the largest is flushed
        /// past it): most of a node's memory. Without it seven families of up to 2 × 64 MiB each
        /// could hold 896 MiB.
        public var memtableBytesMax = 128 << 20
        /// Bound of the Raft log's group-commit queue.
        public var logPendingUpdatesMax = 4096
        /// BENCHMARKS ONLY (`store-bench`, to measure what the audit chain costs): false skips
        /// the journal and the Merkle tree on apply. Such a store cannot serve proofs and does
        /// not reopen (the journal no longer matches the applied index). Never false in a node.
        public var auditChain = true
        /// Client sessions kept before the least recently used is evicted (the state machine's
        /// `sessionsMax`; every replica must use the same). Tests shrink it.
        public var sessionsMax = KVLimits.sessionsMaxDefault
        /// Entries per WriteBatch of a pipelined apply: a group longer than this (a follower
        /// or a restarted node catching up) is applied chunk by chunk, the state machine on the
        /// next chunk while the apply writer writes the previous one. Larger
        /// chunks put more sorted keys into one batch, which RocksDB's insert hints turn into
        /// cheaper memtable inserts, at the cost of memory per chunk in flight. Tests use small
        /// chunks to cross chunk boundaries quickly. Must be at least 1.
        public var applyChunkEntries = 1024
        /// At most this many applied entries are re-applied after a crash: the state (written
        /// without a WAL) is flushed in the background every half of it, and an apply waits
        /// for the flush if it gets this far ahead of the last one. Must be at least 2.
        public var replayEntriesMax = 100_000
        /// Where in each interval of `replayEntriesMax / 2` entries this node's state flush
        /// falls, as a fraction in [0, 1): a flush is requested when the applied index passes
        /// `(k + phase) × replayEntriesMax / 2` for some k. Nodes that apply the same log
        /// flush at different entries when their phases differ (the node derives it from its
        /// ID), so a quorum is not slowed by all of its members flushing at once.
        public var stateFlushPhase = 0.0
        /// Memory for the record cache: current records of recently written or read keys, so
        /// that applying an entry need not read RocksDB for the record it replaces
        /// (docs/STORAGE.md "Tuning"). Counts keys, values and the cache's own tables; 0 turns
        /// it off.
        public var recordCacheBytes = 64 << 20
        /// Chunks of at least this many entries read the records their puts replace in one
        /// batch before running the state machine (`RecordPrefetch`), rather than one get at a
        /// time; smaller ones read as they go. `Int.max`: never (`store-bench --no-prefetch`).
        /// Measured (docs/PERFORMANCE.md "Apply: records read ahead"): 1,024-entry chunks
        /// applied 1.1× (new keys) to 1.26× (overwrites) as fast; 64-entry chunks gained
        /// nothing, and a node under load with the threshold at 128 put 3% slower at 64
        /// clients. Above a node's steady chunks (a Ready's entries on the leader, at most 256
        /// held entries on a follower): what remains is replay, catch-up and bulk loads.
        public var prefetchRecordsFrom = 512
        /// Encryption at rest (docs/SECURITY.md): with a master key, values are sealed with
        /// data keys it wraps; a directory written without encryption is rewritten, sealed, on
        /// open. nil: values are stored as they are, and an encrypted directory is refused.
        public var masterKey: MasterKey?
        /// The master key the directory was encrypted with until now, when `masterKey` is a new
        /// one: the data keys are unwrapped with it and wrapped again with `masterKey` on open.
        public var previousMasterKey: MasterKey?
        /// On open, add a fresh data key that seals from then on (older keys stay to read what
        /// they sealed). Needs `masterKey`.
        public var rotateDataKey = false
        /// With `masterKey`: a directory written without encryption is rewritten sealed on open
        /// (a node). False leaves it as it is, in clear (a backup check opening an archive's
        /// unpacked copy, which it then throws away).
        public var sealExisting = true
        /// History versions a compaction made unreadable that the store deletes per apply,
        /// at most (docs/STORAGE.md "History purge"): the bound on the extra writes, memory and
        /// time a compaction adds to any one apply. Tests shrink it.
        public var historyPurgeStepDeletes = 1_024
        public init() {}
    }

    let diskGuard: DiskSpaceGuard
    /// False only in benchmark stores (`Options.auditChain`).
    public let auditChain: Bool
    /// `Options.applyChunkEntries`.
    public let applyChunkEntries: Int
    /// `Options.prefetchRecordsFrom`.
    let prefetchRecordsFrom: Int

    /// Opens or creates the store at `path` (the directory and its parent are created).
    ///
    /// - Throws: `StoreError` with `.rocksDB` / `.alreadyInUse` if another process has the
    ///   directory open, `.corruptRecord` if bookkeeping records do not decode.
    public init(path: String, options: Options = Options()) throws(StoreError) {
        self.path = path
        self.diskGuard = DiskSpaceGuard(path: path, freeBytesMin: options.diskFreeBytesMin)
        self.auditChain = options.auditChain
        guard options.applyChunkEntries >= 1 else {
            throw StoreError(.invalidRequest, "apply chunk entries: got \(options.applyChunkEntries), want >= 1")
        }
        self.applyChunkEntries = options.applyChunkEntries
        self.prefetchRecordsFrom = options.prefetchRecordsFrom
        guard options.replayEntriesMax >= 2 else {
            throw StoreError(.invalidRequest, "replay entries max: got \(options.replayEntriesMax), want >= 2")
        }
        guard options.stateFlushPhase >= 0 && options.stateFlushPhase < 1 else {
            throw StoreError(.invalidRequest, "state flush phase: got \(options.stateFlushPhase), want >= 0 and < 1")
        }
        guard options.recordCacheBytes >= 0 else {
            throw StoreError(.invalidRequest, "record cache bytes: got \(options.recordCacheBytes), want >= 0")
        }
        guard options.sessionsMax >= 1 else {
            throw StoreError(.invalidRequest, "sessions max: got \(options.sessionsMax), want >= 1")
        }
        guard options.historyPurgeStepDeletes >= 1 else {
            throw StoreError(.invalidRequest, "history purge step deletes: got \(options.historyPurgeStepDeletes), want >= 1")
        }
        self.historyPurgeStepDeletes = options.historyPurgeStepDeletes
        self.kvStateMachine = KVStateMachine(sessionsMax: options.sessionsMax, purgesHistoryLater: true)
        self.recordCache = options.recordCacheBytes > 0 ? RecordCache(budgetBytes: options.recordCacheBytes) : nil
        self.metaCache = options.recordCacheBytes > 0 ? MetaCache() : nil
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.fileSystem, "create data directory \(path): \(error)")
        }
        try Self.recoverInstall(root: path)
        // Opening replays the WAL and may flush it to an SST: refuse on a full disk up front.
        try diskGuard.check(adding: 0, operation: "open")
        let dbPath = "\(path)/db"
        guard options.masterKey != nil || (options.previousMasterKey == nil && !options.rotateDataKey) else {
            throw StoreError(.encryptionKey, "a previous master key or a data key rotation needs a master key")
        }
        // A directory of an earlier schema is rewritten into this one first (ADR 0010), and one
        // written without encryption is rewritten sealed when a master key is named (ADR 0013).
        try StoreUpgrade.upgradeIfNeeded(root: path, options: options)
        func openDatabase() throws(StoreError) -> RocksDB {
            try rocks { () throws(RocksDBError) in
                try RocksDB(
                    path: dbPath, columnFamilies: StoreColumnFamily.allCases.map(\.options),
                    memtableBytesMax: options.memtableBytesMax)
            }
        }
        var opened: RocksDB? = try openDatabase()
        if options.sealExisting, let master = options.masterKey, try StoreEncryption.holdsDataInClear(opened!) {
            opened = nil  // closed (the last reference): the sealed copy reads the directory itself
            try StoreEncryption.seal(root: path, master: master, options: options)
            opened = try openDatabase()
        }
        let db = opened!
        self.db = db
        let nodeMeta = try Self.columnFamilies(of: db, keyring: nil).nodeMeta
        let schema = try Self.checkSchema(db: db, nodeMeta: nodeMeta)
        let isNew = schema == nil
        var keyring = try Self.openKeyring(db: db, nodeMeta: nodeMeta, isNew: isNew, options: options)
        if options.rotateDataKey, let current = keyring {
            keyring = try current.rotated()
            try StoreEncryption.storeKeyring(keyring!, db: db, nodeMeta: nodeMeta)
        }
        self.keyring = keyring
        self.masterKey = options.masterKey
        self.cfs = try Self.columnFamilies(of: db, keyring: keyring)
        if schema == 3 { try StoreUpgrade.removeSessionOrderIndex(db: db, cfs: cfs) }
        if let schema, schema < 5 { try StoreUpgrade.appendOnlyKeys(db: db, cfs: cfs, diskGuard: diskGuard) }
        if let schema, schema < 6 { try StoreUpgrade.merkleTiles(db: db, cfs: cfs, diskGuard: diskGuard) }
        if let schema, schema < 7 { try StoreUpgrade.sessionsFamily(db: db, cfs: cfs, diskGuard: diskGuard) }
        if let schema, schema < 8 { try StoreUpgrade.effectsGroups(db: db, cfs: cfs, diskGuard: diskGuard) }
        let applied = try Self.loadAppliedState(db: db, meta: cfs.meta)
        self.applied = applied
        self.historyPurge = try Self.pendingHistoryPurge(db: db, cfs: cfs, kv: kvStateMachine)
        // Last: it starts the writer thread.
        self.raftLog = try RaftLogStorage(
            db: db, cf: cfs.log, meta: cfs.meta, diskGuard: diskGuard, pendingUpdatesMax: options.logPendingUpdatesMax,
            applied: applied)
        self.frontier = try Self.loadFrontier(db: db, cfs: cfs, applied: applied, log: raftLog)
        self.merkleTiles = try MerkleTileWriter.load(treeSize: frontier.treeSize, db: db, cf: cfs.merkle)
        self.flusher = StateFlusher(
            db: db, families: cfs.flushedTogether, flushedIndex: applied.index, replayEntriesMax: options.replayEntriesMax,
            phase: options.stateFlushPhase)
        try FileIO.removeTree("\(path)/snapshots")
        publishedRecordCacheStats.budgetBytes = UInt64(options.recordCacheBytes)
    }

    /// The keyring of the directory just opened: the stored one (its keys wrapped again when
    /// `previousMasterKey` opened it), or for a new directory with a master key a new one.
    private static func openKeyring(db: RocksDB, nodeMeta: RocksDBColumnFamily, isNew: Bool, options: Options) throws(StoreError) -> Keyring? {
        guard let master = options.masterKey else {
            return try StoreEncryption.loadKeyring(db: db, nodeMeta: nodeMeta, master: nil)
        }
        if let previous = options.previousMasterKey {
            let record = try rocks { () throws(RocksDBError) in try db.get(nodeMeta, MetaKey.keyring) }
            if let record, Keyring.masterFingerprint(ofRecord: record) == previous.fingerprint {
                let keyring = try Keyring.decode(record, master: previous, source: db.path).rewrapped(by: master)
                try StoreEncryption.storeKeyring(keyring, db: db, nodeMeta: nodeMeta)
                return keyring
            }
        }
        if let stored = try StoreEncryption.loadKeyring(db: db, nodeMeta: nodeMeta, master: master) { return stored }
        guard isNew else {
            // A directory with data in clear was sealed above unless told not to.
            guard !options.sealExisting else {
                throw StoreError(.encryptionKey, "\(db.path) has data in clear after it was to be sealed")
            }
            return nil
        }
        let keyring = try Keyring.new(master: master)
        try StoreEncryption.storeKeyring(keyring, db: db, nodeMeta: nodeMeta)
        return keyring
    }

    /// The group views of an open database with this schema's families; with a keyring, the
    /// data groups' values of sealed families are sealed with it (group 0 never is).
    static func columnFamilies(of db: RocksDB, keyring: Keyring?) throws(StoreError) -> ColumnFamilies {
        func cf(_ c: StoreColumnFamily, _ group: UInt64 = StoreGroup.data) throws(StoreError) -> RocksDBColumnFamily {
            guard let handle = db.columnFamily(c.rawValue) else {
                throw StoreError(.corruptRecord, "database \(db.path) lacks the column family \(c.rawValue)")
            }
            let sealer = group != StoreGroup.node && c.isSealed ? keyring : nil
            return handle.prefixed(by: StoreGroup.prefix(group)).sealed(by: sealer)
        }
        var flushedTogether: [RocksDBColumnFamily] = []
        for c in StoreColumnFamily.allCases {
            guard let whole = db.columnFamily(c.rawValue) else { continue }
            flushedTogether.append(whole)
        }
        return ColumnFamilies(
            log: try cf(.log), kv: try cf(.kv), history: try cf(.history), effects: try cf(.effects), merkle: try cf(.merkle),
            meta: try cf(.meta), sessions: try cf(.sessions), nodeMeta: try cf(.meta, StoreGroup.node),
            flushedTogether: flushedTogether)
    }

    /// Stops background writers and flushes the state, so that a clean restart re-applies
    /// nothing. The database itself closes when the last reference goes.
    public func close() {
        raftLog.close()
        applyLock.withLock { applyWriter }?.stop()
        flusher.stop()
        if applyLock.withLock({ applyFailure == nil }) { _ = try? flushState() }
    }

    deinit {
        raftLog.close()
        applyWriter?.stop()
        flusher.stop()
    }

    /// Writes the applied state to disk now (an atomic flush of every state family) and
    /// returns the applied index it covers. Any error is fail-stop for the caller.
    @discardableResult
    public func flushState() throws(StoreError) -> LogIndex {
        let index = appliedIndex
        try rocks { () throws(RocksDBError) in try db.flush(cfs.flushedTogether) }
        flusher.flushed(through: index)
        return index
    }

    /// The applied index the state on disk is known to have reached (flushed); a crash
    /// re-applies the entries after it.
    public var durableAppliedIndex: LogIndex { flusher.flushedIndex }

    /// Writes the schema version of a new directory, or checks that of an existing one (1
    /// and 2 were already copied into 3 by `StoreUpgrade`). Returns nil for a new directory,
    /// else the stored version: this one's, or an earlier one from 3 on (which the caller
    /// upgrades in place).
    private static func checkSchema(db: RocksDB, nodeMeta meta: RocksDBColumnFamily) throws(StoreError) -> UInt32? {
        let stored = try rocks { () throws(RocksDBError) in try db.get(meta, MetaKey.schema) }
        guard let stored else {
            // A new directory; anything in it would be a directory of another program.
            guard let wholeMeta = db.columnFamily(StoreColumnFamily.meta.rawValue) else { return nil }
            let it = db.makeIterator(wholeMeta)
            it.seekToFirst()
            guard !it.isValid else {
                throw StoreError(.corruptRecord, "meta of \(db.path) has records but no schema version: not a Fauna data directory")
            }
            var w = ByteWriter(capacity: 4)
            w.u32(storeSchemaVersion)
            try rocks { () throws(RocksDBError) in try db.put(meta, MetaKey.schema, w.bytes, sync: true) }
            return nil
        }
        let version: UInt32
        do {
            var r = ByteReader(stored)
            version = try r.u32()
            try r.end()
        } catch {
            throw StoreError.corrupt(meta, key: MetaKey.schema, error.reason)
        }
        guard (3...storeSchemaVersion).contains(version) else {
            throw StoreError(
                .corruptRecord,
                "schema version in \(meta.name): got \(version), want \(storeSchemaVersion); "
                    + "a newer Fauna wrote this data directory, or the value is damaged")
        }
        return version
    }

    /// A RocksDB property of one column family (e.g. "rocksdb.estimate-num-keys").
    public func property(_ name: String, of family: StoreColumnFamily) -> String? {
        guard let cf = db.columnFamily(family.rawValue) else { return nil }
        return db.property(name, of: cf)
    }

    /// Free bytes on the data directory's filesystem (for unprivileged writers), or nil if
    /// statvfs fails.
    public var diskFreeBytes: UInt64? { diskGuard.freeBytes() }

    /// The free space below which writes stop (fail-stop, `Options.diskFreeBytesMin`).
    public var diskFreeBytesMin: UInt64 { diskGuard.freeBytesMin }

    /// RocksDB's memtables, SST files, compaction debt and write stalls, and the disk's free
    /// space (a few dozen property reads: for metrics, about once a second).
    public func storageStats() -> StorageStats {
        func number(_ name: String, _ family: StoreColumnFamily) -> UInt64 {
            property(name, of: family).flatMap { UInt64($0) } ?? 0
        }
        var stats = StorageStats()
        stats.families = StoreColumnFamily.allCases.map { family in
            StorageStats.Family(
                name: family.rawValue, memtableBytes: number("rocksdb.cur-size-all-mem-tables", family),
                sstBytes: number("rocksdb.total-sst-files-size", family),
                pendingCompactionBytes: number("rocksdb.estimate-pending-compaction-bytes", family))
        }
        stats.writeStopped = number("rocksdb.is-write-stopped", .log) != 0
        stats.delayedWriteRate = number("rocksdb.actual-delayed-write-rate", .log)
        stats.runningCompactions = number("rocksdb.num-running-compactions", .log)
        stats.diskFreeBytes = diskFreeBytes
        stats.diskFreeBytesMin = diskFreeBytesMin
        return stats
    }
}

/// What `Store.storageStats()` reports.
public struct StorageStats: Sendable {
    public struct Family: Sendable {
        public var name: String
        /// Bytes in the family's memtables (active and immutable).
        public var memtableBytes: UInt64
        public var sstBytes: UInt64
        /// RocksDB's estimate of the bytes compaction still has to rewrite.
        public var pendingCompactionBytes: UInt64
    }
    public var families: [Family] = []
    /// Writes stopped by RocksDB (too many L0 files or memtables).
    public var writeStopped = false
    /// Bytes per second RocksDB slows writes to; 0: not slowed.
    public var delayedWriteRate: UInt64 = 0
    public var runningCompactions: UInt64 = 0
    /// Free bytes of the data directory's filesystem (nil: statvfs failed or not a disk).
    public var diskFreeBytes: UInt64?
    /// Writes stop below this many free bytes.
    public var diskFreeBytesMin: UInt64 = 0

    public init() {}
}
