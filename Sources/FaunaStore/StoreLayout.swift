import FaunaRaft

/// The column families of a Fauna data directory and their key layout
/// (docs/STORAGE.md). Names are part of the on-disk format.
///
/// `log` is the one durable copy of every entry: the Raft log and, at and below the applied
/// index, the audit journal. It is written through RocksDB's write-ahead log, and with it the
/// hard state and compaction point, which live in `meta` (schema 5: so that `log` holds
/// nothing but entries and only ever appends, docs/STORAGE.md "Append-only keys"). The rest
/// is the applied state, written without the WAL (its WAL is `log`: a crash loses
/// what was not flushed, and the node re-applies it from `log`); atomic flushes keep them at
/// one applied index (docs/adr/0010-write-path-v2.md). `sessions` holds the state machine's
/// client sessions, apart from the rest of `meta` so that its memtable can update them in place
/// (schema 7, docs/STORAGE.md "Sessions").
public enum StoreColumnFamily: String, CaseIterable, Sendable {
    case log, kv, history, effects, merkle, meta, sessions

    /// Written without the WAL: the applied state.
    var isState: Bool { self != .log }

    var options: RocksDBColumnFamilyOptions {
        // Memtable bloom filters only where `get` is on a hot path (the state machine's point
        // reads of kv and meta, the log's term reads): effects and merkle are append-only and
        // history is read with iterators, so there a filter is only an insert cost. Insert
        // hints where a chunk's sorted keys land scattered over the family (kv, history). Not
        // for merkle: an apply writes one tile per 32 nodes there, and its first key, the
        // rewritten last tile, sorts just before the one the previous apply inserted. With a
        // hint there, RocksDB 7.8's skiplist assertions (Debian builds it with them) failed
        // in the store tests; without one, that key costs one search from the top.
        switch self {
        case .kv: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4, insertHint: true)
        case .history: return RocksDBColumnFamilyOptions(name: rawValue, compression: .zstd, memtableBloom: false, insertHint: true)
        case .log: return RocksDBColumnFamilyOptions(name: rawValue, compression: .zstd)
        case .effects: return RocksDBColumnFamilyOptions(name: rawValue, compression: .zstd, memtableBloom: false)
        case .merkle: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4, memtableBloom: false)
        case .meta: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4)
        // Every put with a session rewrites its record. Updated in place, the memtable keeps
        // one entry per session instead of one per put, and inserts search a skiplist of
        // hundreds of keys, not of every put since the last flush. Nothing reads `sessions`
        // through a snapshot or an iterator while it is written (`RocksDBKVBackend`).
        case .sessions: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4, inPlaceUpdates: true)
        }
    }
}

/// Raft groups in the key layout. Every key of every family starts with the u64 BE ID of the
/// group it belongs to (docs/STORAGE.md "Groups"): one data group today, more when the key
/// space is sharded, without a new layout. Group 0 holds the node's own records (the schema
/// version).
public enum StoreGroup {
    /// The node's own records.
    public static let node: UInt64 = 0
    /// The one Raft group of an unsharded cluster.
    public static let data: UInt64 = 1

    /// The key prefix of `group`.
    static func prefix(_ group: UInt64) -> [UInt8] { bigEndianBytes(group) }
}

/// Keys of the `log` column family (inside a group's key space): entries only (schema 5), so
/// the family is append-only.
enum RaftKey {
    static let entryPrefix = UInt8(ascii: "E")
    /// Where schema 4 and earlier kept the hard state and the compaction point, after every
    /// entry key: each flushed file then reached past the entries of every older file, and
    /// compaction rewrote the family again and again. Now in `meta` (`MetaKey.raftHardState`,
    /// `MetaKey.raftSnapshot`); read only by the upgrades.
    static let legacyHardState: [UInt8] = [UInt8(ascii: "H")]
    static let legacySnapshot: [UInt8] = [UInt8(ascii: "S")]

    /// `E` + u64 BE index.
    static func entry(_ index: LogIndex) -> [UInt8] {
        var w = ByteWriter(capacity: 9)
        w.u8(entryPrefix)
        w.u64(index.rawValue)
        return w.bytes
    }

    /// Past every entry key.
    static let entriesEnd: [UInt8] = [entryPrefix + 1]

    /// The index in an entry key, or nil if `key` is not one.
    static func index(ofEntryKey key: [UInt8]) -> LogIndex? {
        guard key.count == 9, key[0] == entryPrefix, let v = uint64(bigEndian: key[1...]) else { return nil }
        return LogIndex(v)
    }
}

/// Keys of the `meta` column family.
enum MetaKey {
    /// u64 BE: the index of the last applied entry (== Merkle tree size).
    static let applied = Array("applied".utf8)
    /// u32 BE: the on-disk schema version (in group 0, `StoreGroup.node`).
    static let schema = Array("schema".utf8)
    /// u64 BE term of the last applied entry (needed to describe a snapshot at `applied`).
    static let appliedTerm = Array("appliedTerm".utf8)
    /// Encoded `ConfState` as of `applied` (a snapshot carries the membership it was taken at).
    static let confState = Array("confState".utf8)
    /// `u32 count | u64 BE index…`: the indexes of the last `confChangeIndexesMax` membership
    /// changes applied, ascending (clients prove removals from them, docs/AUDIT.md §9).
    /// Absent in a store written before it: no changes known.
    static let confChanges = Array("confChanges".utf8)
    /// The Raft hard state (term, vote, commit). Written through the WAL with the entries it
    /// goes with (`RaftLogStorage`), unlike the rest of `meta`.
    static let raftHardState = Array("raftHardState".utf8)
    /// The compaction point: the first index Raft serves is its index + 1 (snapshot
    /// metadata). Written through the WAL, synced.
    static let raftSnapshot = Array("raftSnapshot".utf8)
    /// u64 BE: the compacted revision whose unreadable history is all deleted (the last step
    /// of a history purge writes it; absent: none yet). Below the compacted revision, a purge
    /// is pending (docs/STORAGE.md "History purge").
    static let historyPurged = Array("historyPurged".utf8)
}

/// The schema version this code writes and reads. Bumped on any incompatible layout change.
/// 8: effects in group records, one per run of a chunk's entries keyed by the first index
///    (`RaftLogCodec.EffectsGroupWriter`), instead of one record per entry; a schema 7 record
///    reads as a group of one, so 7 is upgraded on open by recording 8
///    (`StoreUpgrade.effectsGroups`): older versions cannot read the groups.
/// 7: client sessions (`kv/session/…`) in their own family, `sessions`, updated in place;
///    6 is upgraded in place on open (`StoreUpgrade.sessionsFamily`).
/// 6: Merkle nodes in tiles of 32 post-order positions (`MerkleTile`), one record per tile
///    instead of one per node; 5 is upgraded in place on open (`StoreUpgrade.merkleTiles`).
/// 5: append-only keys where the data is append-only: Merkle nodes keyed by post-order
///    position, the hard state and compaction point in `meta`, so `log` holds entries only
///    (docs/STORAGE.md); 4 and 3 are upgraded in place on open (`StoreUpgrade.appendOnlyKeys`).
/// 4: client sessions without their eviction-order index (`kv/session-lru/`, docs/STORAGE.md
///    "Sessions"); 3 is upgraded in place on open (`StoreUpgrade.removeSessionOrderIndex`).
/// 3: one `log` of entries (Raft log and journal), effects beside it, state without the WAL,
///    group IDs in every key (ADR 0010); 2 and 1 are copied into 3 on open (`StoreUpgrade`).
/// 2: history holds only versions that are no longer current (ADR 0008).
let storeSchemaVersion: UInt32 = 8
