import FaunaAudit
import FaunaKV
import FaunaRaft
import Foundation

/// One node's storage: a RocksDB instance with the column families of docs/STORAGE.md, the Raft
/// log on `raft`, and (see `Store+Apply.swift`) the state machine, journal and Merkle nodes.
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
    /// The second thread of pipelined applies, started by the first long group (guarded by
    /// `applyLock`).
    var applyWriter: ApplyWriter?
    /// Set after a failed apply: the store refuses further applies (fail-stop).
    var applyFailure: StoreError?
    /// The key-value state machine (stateless: its state lives in the kv/history/meta CFs).
    public let kvStateMachine = KVStateMachine()

    struct ColumnFamilies {
        let raft, kv, history, journal, merkle, meta: RocksDBColumnFamily
    }

    /// Tunables of a store. The defaults suit a node; tests shrink them.
    public struct Options: Sendable {
        /// Writes are refused (fail-stop, `.diskFull`) when less than this is free on the data
        /// directory's filesystem: room for memtable flushes and compaction to finish.
        public var diskFreeBytesMin: UInt64 = 256 << 20
        /// Memtables of all column families together stay below this (the largest is flushed
        /// past it): most of a node's memory. Without it six families of up to 2 × 64 MiB each
        /// could hold 768 MiB.
        public var memtableBytesMax = 128 << 20
        /// Bound of the Raft log's group-commit queue.
        public var logPendingUpdatesMax = 4096
        /// BENCHMARKS ONLY (`store-bench`, to measure what the audit chain costs): false skips
        /// the journal and the Merkle tree on apply. Such a store cannot serve proofs and does
        /// not reopen (the journal no longer matches the applied index). Never false in a node.
        public var auditChain = true
        /// Entries per WriteBatch of a pipelined apply: a group longer than this (a follower
        /// or a restarted node catching up) is applied chunk by chunk, the state machine on the
        /// next chunk while the apply writer writes the previous one. Larger
        /// chunks put more sorted keys into one batch, which RocksDB's insert hints turn into
        /// cheaper memtable inserts, at the cost of memory per chunk in flight. Tests use small
        /// chunks to cross chunk boundaries quickly. Must be at least 1.
        public var applyChunkEntries = 1024
        public init() {}
    }

    let diskGuard: DiskSpaceGuard
    /// False only in benchmark stores (`Options.auditChain`).
    public let auditChain: Bool
    /// `Options.applyChunkEntries`.
    public let applyChunkEntries: Int

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
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.fileSystem, "create data directory \(path): \(error)")
        }
        try Self.recoverInstall(root: path)
        // Opening replays the WAL and may flush it to an SST: refuse on a full disk up front.
        try diskGuard.check(adding: 0, operation: "open")
        let dbPath = "\(path)/db"
        let db = try rocks { () throws(RocksDBError) in
            try RocksDB(
                path: dbPath, columnFamilies: StoreColumnFamily.allCases.map(\.options),
                memtableBytesMax: options.memtableBytesMax)
        }
        func cf(_ c: StoreColumnFamily) -> RocksDBColumnFamily {
            guard let handle = db.columnFamily(c.rawValue) else {
                preconditionFailure("open did not create column family \(c.rawValue)")
            }
            return handle
        }
        self.db = db
        self.cfs = ColumnFamilies(
            raft: cf(.raft), kv: cf(.kv), history: cf(.history), journal: cf(.journal), merkle: cf(.merkle),
            meta: cf(.meta))
        try Self.checkSchema(db: db, meta: cfs.meta)
        let applied = try Self.loadAppliedState(db: db, meta: cfs.meta)
        self.applied = applied
        self.frontier = try Self.loadFrontier(db: db, cfs: cfs, applied: applied)
        // Last: it starts the writer thread.
        self.raftLog = try RaftLogStorage(
            db: db, cf: cfs.raft, meta: cfs.meta, diskGuard: diskGuard, pendingUpdatesMax: options.logPendingUpdatesMax)
        try FileIO.removeTree("\(path)/snapshots")
    }

    /// Stops background writers. The database itself closes when the last reference goes.
    public func close() {
        raftLog.close()
        applyLock.withLock { applyWriter }?.stop()
    }

    deinit {
        raftLog.close()
        applyWriter?.stop()
    }

    private static func checkSchema(db: RocksDB, meta: RocksDBColumnFamily) throws(StoreError) {
        func writeCurrentVersion() throws(StoreError) {
            var w = ByteWriter(capacity: 4)
            w.u32(storeSchemaVersion)
            try rocks { () throws(RocksDBError) in try db.put(meta, MetaKey.schema, w.bytes, sync: true) }
        }
        let stored = try rocks { () throws(RocksDBError) in try db.get(meta, MetaKey.schema) }
        guard let stored else { return try writeCurrentVersion() }
        var r = ByteReader(stored)
        let version: UInt32
        do { version = try r.u32(); try r.end() } catch {
            throw StoreError.corrupt(meta.name, key: MetaKey.schema, error.reason)
        }
        switch version {
        case storeSchemaVersion: return
        case 1:
            // Schema 1 also kept each key's current version in history. Reads never consult
            // that copy and compaction deletes it, so the data reads as it is; the new number
            // makes an older build refuse the directory, whose reads would now be wrong.
            try writeCurrentVersion()
        default:
            throw StoreError(
                .corruptRecord,
                "schema version in \(meta.name): got \(version), want \(storeSchemaVersion) (or 1, which is upgraded); "
                    + "a newer Fauna wrote this data directory, or the value is damaged")
        }
    }

    /// A RocksDB property of one column family (e.g. "rocksdb.estimate-num-keys").
    public func property(_ name: String, of family: StoreColumnFamily) -> String? {
        guard let cf = db.columnFamily(family.rawValue) else { return nil }
        return db.property(name, of: cf)
    }
}
