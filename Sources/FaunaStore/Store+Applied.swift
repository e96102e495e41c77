import FaunaKV
import FaunaRaft
import Foundation

/// What the state machine has applied: kept in the `meta` CF in the same WriteBatch as the
/// writes of the entries (so after a crash it matches kv, journal and tree exactly). Public
/// for the node simulator's store, which keeps the same record.
public struct AppliedState: Sendable, Hashable {
    /// The last applied index; equals the journal's last index and the Merkle tree size.
    public var index = LogIndex.zero
    /// The term of the entry at `index` (0 if none).
    public var term = Term.zero
    /// The membership as of `index`, as the node reported it when applying.
    public var confState = ConfState()
    /// The first index whose leaf is v2 (KV meta `kv/leaf-v2-from`, written by the state
    /// machine in the same batch), or nil while every leaf is v1.
    public var leafV2From: LogIndex?
    /// The indexes of the last `confChangeIndexesMax` membership-change entries applied,
    /// ascending (meta `confChanges`).
    public var confChangeIndexes: [LogIndex] = []

    /// How many membership-change indexes the applied state keeps.
    public static let confChangeIndexesMax = 64

    public init() {}
}

extension Store {
    static func loadAppliedState(db: RocksDB, meta: RocksDBColumnFamily) throws(StoreError) -> AppliedState {
        var state = AppliedState()
        func u64(_ key: [UInt8]) throws(StoreError) -> UInt64? {
            guard let b = try rocks({ () throws(RocksDBError) in try db.get(meta, key) }) else { return nil }
            guard let v = uint64(bigEndian: b[...]) else {
                throw StoreError.corrupt(meta, key: key, "got \(b.count) bytes, want 8")
            }
            return v
        }
        state.index = LogIndex(try u64(MetaKey.applied) ?? 0)
        guard state.index.rawValue < UInt64.max / 2 else {
            throw StoreError.corrupt(meta, key: MetaKey.applied, "applied index \(state.index) out of range")
        }
        state.term = Term(try u64(MetaKey.appliedTerm) ?? 0)
        // Written by the state machine (`KVStateMachine.leafV2From`) in an apply batch.
        state.leafV2From = try u64(KVStateMachine.leafV2FromMetaKey).map { LogIndex($0) }
        if let b = try rocks({ () throws(RocksDBError) in try db.get(meta, MetaKey.confChanges) }) {
            var r = ByteReader(b)
            do throws(DecodeError) {
                let n = Int(try r.u32())
                guard n <= AppliedState.confChangeIndexesMax else { throw DecodeError(reason: "got \(n) indexes, want <= \(AppliedState.confChangeIndexesMax)") }
                for _ in 0..<n { state.confChangeIndexes.append(LogIndex(try r.u64())) }
                try r.end()
            } catch {
                throw StoreError.corrupt(meta, key: MetaKey.confChanges, error.reason)
            }
        }
        if let b = try rocks({ () throws(RocksDBError) in try db.get(meta, MetaKey.confState) }) {
            do { state.confState = try RaftLogCodec.decodeConfState(b) } catch {
                throw StoreError.corrupt(meta, key: MetaKey.confState, error.reason)
            }
        }
        return state
    }

    /// Adds to `batch` the applied-state records of `state` that differ from `previous`, the
    /// state as stored before this batch: the index always; the term, membership and
    /// membership-change indexes only when they change (a new term, a membership change),
    /// which at one entry per apply saves three of a put's ten or so memtable inserts. What is
    /// stored stays `state` whichever prefix of the batches reaches disk: a record left out
    /// holds the same value from an earlier batch, and every flush covers all the families
    /// (`atomic_flush`).
    func add(_ state: AppliedState, to batch: RocksDBWriteBatch, over previous: AppliedState) {
        batch.put(cfs.meta, MetaKey.applied, bigEndianBytes(state.index.rawValue))
        if state.term != previous.term {
            batch.put(cfs.meta, MetaKey.appliedTerm, bigEndianBytes(state.term.rawValue))
        }
        if state.confState != previous.confState {
            batch.put(cfs.meta, MetaKey.confState, RaftLogCodec.encode(confState: state.confState))
        }
        if state.confChangeIndexes != previous.confChangeIndexes {
            var w = ByteWriter(capacity: 4 + 8 * state.confChangeIndexes.count)
            w.u32(UInt32(state.confChangeIndexes.count))
            state.confChangeIndexes.forEach { w.u64($0.rawValue) }
            batch.put(cfs.meta, MetaKey.confChanges, w.bytes)
        }
    }

    /// The indexes of membership-change entries above `index` among the last 64 applied,
    /// ascending: a client proves removals of members it pinned from these entries.
    public func confChangeIndexes(after index: LogIndex) -> [LogIndex] {
        applyLock.withLock { applied.confChangeIndexes.filter { $0 > index } }
    }

    /// The first index whose leaf is v2 (docs/AUDIT.md §1), or nil while every leaf is v1.
    public var leafV2From: LogIndex? { applyLock.withLock { applied.leafV2From } }

    /// The index of the last applied entry.
    public var appliedIndex: LogIndex { applyLock.withLock { applied.index } }

    /// The membership as of the applied index (what a log compaction there must record).
    public var appliedConfState: ConfState { applyLock.withLock { applied.confState } }

    /// Finishes or discards a snapshot install interrupted by a crash (see `SnapshotReceiver`).
    /// `db.incoming/INSTALL-READY` is written (and fsynced) only after every file verified and
    /// the log was rewritten, so with it the swap is completed, without it discarded.
    static func recoverInstall(root: String) throws(StoreError) {
        try completeSwap(root: root, incoming: "\(root)/db.incoming", marker: SnapshotReceiver.readyMarker)
    }

    /// Makes `incoming` the database directory if it holds `marker` (`db` → `db.old`,
    /// `incoming` → `db`, fsync, remove `db.old`); otherwise removes it. Shared by snapshot
    /// installs and schema upgrades.
    static func completeSwap(root: String, incoming: String, marker: String) throws(StoreError) {
        let current = "\(root)/db", old = "\(root)/db.old"
        if FileIO.exists("\(incoming)/\(marker)") {
            if FileIO.exists(current) {
                try FileIO.removeTree(old)
                try FileIO.rename(current, old)
            }
            try FileIO.rename(incoming, current)
            try FileIO.fsyncDirectory(root)
            try FileIO.removeTree("\(current)/\(marker)")
        }
        try FileIO.removeTree(incoming)
        try FileIO.removeTree(old)
    }
}
