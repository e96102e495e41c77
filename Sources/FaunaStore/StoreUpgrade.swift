import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify
import Foundation

/// Rewrites a data directory of schema 1 or 2 (the `raft` and `journal` column families, keys
/// without a group) into schema 3 (ADR 0010) when the store opens it.
///
/// The new instance is built beside the old one, in `<data>/db.upgrade`: every journal record
/// becomes an entry of `log` (and its effects, for a v2 leaf, a record of `effects`); the Raft
/// log's hard state, compaction point and the entries above the journal follow; `kv`,
/// `history`, `merkle` and `meta` are copied under the data group's prefix. It is flushed and
/// fsynced, then marked with `UPGRADE-READY`, and swapped in as an installed snapshot is
/// (`db` → `db.old`, `db.upgrade` → `db`). A crash before the mark leaves the old directory as
/// it was (the partial copy is removed on the next open); after it, the next open completes the
/// swap. Memory stays bounded by one batch of `batchRecords`.
enum StoreUpgrade {
    static let readyMarker = "UPGRADE-READY"
    static let staging = "db.upgrade"
    static let batchRecords = 4096

    /// Completes or discards an interrupted upgrade, then upgrades `<root>/db` if it has an
    /// earlier schema.
    static func upgradeIfNeeded(root: String, options: Store.Options) throws(StoreError) {
        try Store.completeSwap(root: root, incoming: "\(root)/\(staging)", marker: readyMarker)
        let dbPath = "\(root)/db"
        guard FileIO.exists("\(dbPath)/CURRENT") else { return }
        let families = try rocks { () throws(RocksDBError) in try RocksDB.listColumnFamilies(path: dbPath) }
        guard families.contains("raft") || families.contains("journal") else { return }
        let diskGuard = DiskSpaceGuard(path: root, freeBytesMin: options.diskFreeBytesMin)
        try diskGuard.check(adding: directoryBytes(dbPath), operation: "schema upgrade (copies the data directory once)")
        let target = "\(root)/\(staging)"
        try FileIO.removeTree(target)
        try copy(from: dbPath, families: families, to: target, memtableBytesMax: options.memtableBytesMax)
        try FileIO.fsyncDirectory(target)
        try FileIO.writeFile("\(target)/\(readyMarker)", [])
        try FileIO.fsyncDirectory(target)
        try FileIO.fsyncDirectory(root)
        try Store.completeSwap(root: root, incoming: target, marker: readyMarker)
    }

    static func directoryBytes(_ path: String) -> Int {
        let names = (try? FileIO.regularFiles(in: path)) ?? []
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(path)/\(name)")[.size] as? NSNumber)?.intValue
            return total + (size ?? 0)
        }
    }

    /// Builds the schema 3 instance at `target` from the old one at `source`. Both are closed
    /// when this returns.
    private static func copy(from source: String, families: [String], to target: String, memtableBytesMax: Int) throws(StoreError) {
        let old = try rocks { () throws(RocksDBError) in
            try RocksDB(path: source, columnFamilies: families.map { RocksDBColumnFamilyOptions(name: $0) }, createIfMissing: false)
        }
        func oldFamily(_ name: String) throws(StoreError) -> RocksDBColumnFamily {
            guard let cf = old.columnFamily(name) else {
                throw StoreError(.corruptRecord, "schema upgrade of \(source): no column family \(name)")
            }
            return cf
        }
        let oldMeta = try oldFamily("meta")
        let version = try rocks { () throws(RocksDBError) in try old.get(oldMeta, MetaKey.schema) }
        guard version == bigEndianBytes32(1) || version == bigEndianBytes32(2) else {
            throw StoreError(
                .corruptRecord,
                "schema upgrade of \(source): meta/schema is \(version.map { "\($0)" } ?? "absent"), want 1 or 2")
        }
        let new = try rocks { () throws(RocksDBError) in
            try RocksDB(path: target, columnFamilies: StoreColumnFamily.allCases.map(\.options), memtableBytesMax: memtableBytesMax)
        }
        let cfs = try Store.columnFamilies(of: new, keyring: nil)
        var batch = new.makeWriteBatch()
        var pending = 0
        func put(_ cf: RocksDBColumnFamily, _ key: [UInt8], _ value: [UInt8]) throws(StoreError) {
            batch.put(cf, key, value)
            pending += 1
            guard pending >= batchRecords else { return }
            try rocks { () throws(RocksDBError) in try new.write(batch, sync: false, logged: false) }
            batch = new.makeWriteBatch()
            pending = 0
        }
        /// Every record of an old family, in key order.
        func each(_ name: String, _ body: ([UInt8], [UInt8]) throws(StoreError) -> Void) throws(StoreError) {
            let it = old.makeIterator(try oldFamily(name))
            it.seekToFirst()
            while it.isValid {
                try body(it.key, try it.storeValue)
                it.next()
            }
            try rocks { () throws(RocksDBError) in try it.checkError() }
        }
        for name in ["kv", "history", "merkle"] {
            let to = name == "kv" ? cfs.kv : name == "history" ? cfs.history : cfs.merkle
            try each(name) { (k, v) throws(StoreError) in try put(to, k, v) }
        }
        try each("meta") { (k, v) throws(StoreError) in
            if k != MetaKey.schema { try put(cfs.meta, k, v) }
        }
        var journalLast: UInt64 = 0
        try each("journal") { (k, v) throws(StoreError) in
            guard let index = uint64(bigEndian: k[...]), index == journalLast + 1 else {
                throw StoreError.corrupt("journal", key: k, "schema upgrade: want the entry at index \(journalLast + 1)")
            }
            let record: JournalRecord
            do throws(DecodeError) { record = try RaftLogCodec.decodeJournal(v, index: LogIndex(index)) } catch {
                throw StoreError.corrupt("journal", key: k, error.reason)
            }
            try put(cfs.log, RaftKey.entry(LogIndex(index)), RaftLogCodec.encode(entry: record.entry))
            if let effects = record.effects { try put(cfs.effects, k, RaftLogCodec.encode(effects: effects)) }
            journalLast = index
        }
        try each("raft") { (k, v) throws(StoreError) in
            if k == RaftKey.legacyHardState || k == RaftKey.legacySnapshot {
                try put(cfs.log, k, v)
            } else if let index = RaftKey.index(ofEntryKey: k), index.rawValue > journalLast {
                try put(cfs.log, k, v)
            }
            // `C` (a membership older builds kept ahead of the apply) was never read: dropped.
        }
        // Schema 3, sessions' order index included: the open that follows removes it.
        try put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(3))
        try rocks { () throws(RocksDBError) in
            try new.write(batch, sync: false, logged: false)
            try new.flush()
        }
    }

    /// Schema 3 → 4, in place: removes the sessions' order index (`kv/session-lru/`, one
    /// record per session that every write by the session rewrote) and records schema 4, in
    /// one synced write. The order is now derived from the sessions themselves
    /// (`SessionRecencyIndex`), which this leaves as they were.
    static func removeSessionOrderIndex(db: RocksDB, cfs: Store.ColumnFamilies) throws(StoreError) {
        let prefix = KVSessionRecency.legacyIndexPrefix
        guard let end = KeyRange.prefixEnd(prefix) else {
            throw StoreError(.corruptRecord, "session order index prefix has no end")
        }
        let batch = db.makeWriteBatch()
        batch.deleteRange(cfs.meta, from: prefix, to: end)
        batch.put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(4))
        try rocks { () throws(RocksDBError) in try db.write(batch, sync: true) }
    }

    /// Schema 4 → 5, in place: append-only keys for the append-only families (docs/STORAGE.md
    /// "Upgrade"). Every Merkle node moves from its level-first key to its post-order key
    /// (`NodeAddress.storageKey`), `batchRecords` at a time; then the hard state and compaction
    /// point move from `log` to `meta` and schema 5 is recorded, in one synced write. Every
    /// write goes through the WAL, so the synced last one makes the earlier ones durable too.
    /// A crash before it leaves schema 4 with some nodes under new keys: the next open moves
    /// the rest (a node is moved by one batch: new key and old key never both or neither).
    static func appendOnlyKeys(db: RocksDB, cfs: Store.ColumnFamilies, diskGuard: DiskSpaceGuard) throws(StoreError) {
        let writes = InPlaceWrites(db: db, diskGuard: diskGuard, schema: 5)
        var batch: RocksDBWriteBatch { writes.batch }
        var pending = 0
        func write(sync: Bool) throws(StoreError) {
            try writes.write(sync: sync)
            pending = 0
        }
        // The iterator reads the state as of its creation: the keys written below are not seen.
        let it = db.makeIterator(cfs.merkle)
        it.seekToFirst()
        while it.isValid {
            let key = it.key
            switch key.count {
            case NodeAddress.legacyStorageKeySizeBytes:
                let address: NodeAddress
                do { address = try NodeAddress(legacyStorageKey: key) } catch {
                    throw StoreError.corrupt(cfs.merkle, key: key, error.reason)
                }
                batch.put(cfs.merkle, address.storageKey, try it.storeValue)
                batch.delete(cfs.merkle, key)
                pending += 1
                if pending >= batchRecords { try write(sync: false) }
            case NodeAddress.storageKeySizeBytes:
                break  // moved by an upgrade a crash interrupted
            default:
                throw StoreError.corrupt(cfs.merkle, key: key, "schema upgrade: a node key of \(key.count) bytes, want 9 or 8")
            }
            it.next()
        }
        try rocks { () throws(RocksDBError) in try it.checkError() }
        for (old, new) in [(RaftKey.legacyHardState, MetaKey.raftHardState), (RaftKey.legacySnapshot, MetaKey.raftSnapshot)] {
            guard let value = try rocks({ () throws(RocksDBError) in try db.get(cfs.log, old) }) else { continue }
            batch.put(cfs.meta, new, value)
            batch.delete(cfs.log, old)
        }
        batch.put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(5))
        try write(sync: true)
    }

    /// Schema 5 → 6, in place: Merkle nodes move from one key each (`NodeAddress.storageKey`)
    /// into tiles of 32 (`MerkleTile`, docs/STORAGE.md "Upgrade"). Every `batchRecords` nodes,
    /// a write puts the tiles they fill and removes their old keys with one range deletion;
    /// the last write puts the partial last tile and records schema 6, synced. Every write goes
    /// through the WAL, so the synced last one makes the earlier ones durable too. A crash
    /// before it leaves schema 5 with the first whole tiles moved: the next open moves the
    /// rest, from the first old key left, which starts a tile.
    static func merkleTiles(db: RocksDB, cfs: Store.ColumnFamilies, diskGuard: DiskSpaceGuard) throws(StoreError) {
        let writes = InPlaceWrites(db: db, diskGuard: diskGuard, schema: 6)
        // Schema 5's keys (8 bytes, a position below 2^56 starts with 0) sort before every tile
        // key; the iterator reads the state as of its creation, not the writes below.
        let it = db.makeIterator(cfs.merkle, lowerBound: nil, upperBound: [MerkleTile.keyPrefix])
        it.seekToFirst()
        var next: UInt64?  // the position the next old key must have
        var batchStart: UInt64 = 0  // the first position the current batch moves
        var tail: [UInt8] = []
        while it.isValid {
            let key = it.key
            guard key.count == NodeAddress.storageKeySizeBytes, let position = uint64(bigEndian: key[...]) else {
                throw StoreError.corrupt(cfs.merkle, key: key, "schema upgrade to 6: a node key of \(key.count) bytes, want 8")
            }
            if next == nil {
                guard position % MerkleTile.nodesPerTile == 0 else {
                    throw StoreError.corrupt(
                        cfs.merkle, key: key, "schema upgrade to 6: the first node left is at position \(position), want a tile's first")
                }
                next = position
                batchStart = position
            }
            guard position == next else {
                throw StoreError.corrupt(cfs.merkle, key: key, "schema upgrade to 6: want the node at position \(next!)")
            }
            let hash = try it.storeValue
            guard hash.count == MerkleHash.sizeBytes else {
                throw StoreError.corrupt(cfs.merkle, key: key, "schema upgrade to 6: a hash of \(hash.count) bytes, want 32")
            }
            tail += hash
            next = position + 1
            if position % MerkleTile.nodesPerTile == MerkleTile.nodesPerTile - 1 {
                writes.batch.put(cfs.merkle, MerkleTile.key(position / MerkleTile.nodesPerTile), tail)
                tail = []
                if position + 1 - batchStart >= UInt64(batchRecords) {
                    writes.batch.deleteRange(cfs.merkle, from: bigEndianBytes(batchStart), to: bigEndianBytes(position + 1))
                    try writes.write(sync: false)
                    batchStart = position + 1
                }
            }
            it.next()
        }
        try rocks { () throws(RocksDBError) in try it.checkError() }
        if let next {
            if !tail.isEmpty { writes.batch.put(cfs.merkle, MerkleTile.key(next / MerkleTile.nodesPerTile), tail) }
            writes.batch.deleteRange(cfs.merkle, from: bigEndianBytes(batchStart), to: bigEndianBytes(next))
        }
        writes.batch.put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(6))
        try writes.write(sync: true)
    }

    /// Schema 6 → 7, in place: the client sessions (`KVSessionRecency.keyRange` in `meta`)
    /// move into their own family, `sessions` (docs/STORAGE.md "Sessions"). Each write moves
    /// up to `batchRecords` of them — put in `sessions`, deleted from `meta` — through the WAL,
    /// so a session is in exactly one family after any crash; the last write records schema 7,
    /// synced, which makes the earlier ones durable too. A crash before it leaves schema 6 with
    /// some sessions moved: the next open moves the rest. Sessions are few (`sessionsMax`,
    /// 10,000 by default), so this takes one or a few writes.
    static func sessionsFamily(db: RocksDB, cfs: Store.ColumnFamilies, diskGuard: DiskSpaceGuard) throws(StoreError) {
        let writes = InPlaceWrites(db: db, diskGuard: diskGuard, schema: 7)
        // The iterator reads `meta` as of its creation, not the deletions below.
        let range = KVSessionRecency.keyRange
        let it = db.makeIterator(cfs.meta, lowerBound: range.start, upperBound: range.end)
        it.seekToFirst()
        var inBatch = 0
        while it.isValid {
            let key = it.key
            writes.batch.put(cfs.sessions, key, try it.storeValue)
            writes.batch.delete(cfs.meta, key)
            inBatch += 1
            if inBatch == batchRecords {
                try writes.write(sync: false)
                inBatch = 0
            }
            it.next()
        }
        try rocks { () throws(RocksDBError) in try it.checkError() }
        writes.batch.put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(7))
        try writes.write(sync: true)
    }

    /// Schema 7 → 8: effects move into group records (docs/STORAGE.md "Effects in groups"). A schema 7
    /// record is a version 1 record under its entry's index, which the group reader takes as a
    /// group of one, so nothing is rewritten: recording schema 8 (synced) keeps older versions,
    /// which cannot read groups, from opening the directory once new applies have written some.
    static func effectsGroups(db: RocksDB, cfs: Store.ColumnFamilies, diskGuard: DiskSpaceGuard) throws(StoreError) {
        let writes = InPlaceWrites(db: db, diskGuard: diskGuard, schema: 8)
        writes.batch.put(cfs.nodeMeta, MetaKey.schema, bigEndianBytes32(8))
        try writes.write(sync: true)
    }
}

/// The writes of an in-place upgrade to `schema`: each batch through the WAL (so a synced
/// last write makes the earlier ones durable too), checked against the free space first.
private final class InPlaceWrites {
    let db: RocksDB
    let diskGuard: DiskSpaceGuard
    let schema: UInt32
    /// The batch being filled.
    private(set) var batch: RocksDBWriteBatch

    init(db: RocksDB, diskGuard: DiskSpaceGuard, schema: UInt32) {
        self.db = db
        self.diskGuard = diskGuard
        self.schema = schema
        self.batch = db.makeWriteBatch()
    }

    /// Writes the batch and starts the next one.
    func write(sync: Bool) throws(StoreError) {
        try diskGuard.check(adding: batch.dataBytes, operation: "schema upgrade to \(schema)")
        let full = batch
        try rocks { () throws(RocksDBError) in try db.write(full, sync: sync) }
        batch = db.makeWriteBatch()
    }
}
