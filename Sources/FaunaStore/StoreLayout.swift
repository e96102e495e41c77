import FaunaRaft

/// The column families of a Fauna data directory and their key layout
/// (docs/STORAGE.md). Names are part of the on-disk format.
public enum StoreColumnFamily: String, CaseIterable, Sendable {
    case raft, kv, history, journal, merkle, meta

    var options: RocksDBColumnFamilyOptions {
        // Memtable bloom filters only where `get` is on a hot path (the state machine's point
        // reads of kv and meta, the log's reads of raft): journal and merkle are append-only
        // and history is read with iterators, so there a filter is only an insert cost.
        // Insert hints where a chunk's sorted keys land scattered over the family (kv,
        // history) or in one ascending run per tree level (merkle).
        switch self {
        case .kv: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4, insertHint: true)
        case .history: return RocksDBColumnFamilyOptions(name: rawValue, compression: .zstd, memtableBloom: false, insertHint: true)
        case .journal: return RocksDBColumnFamilyOptions(name: rawValue, compression: .zstd, memtableBloom: false)
        case .merkle: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4, memtableBloom: false, insertHint: true)
        default: return RocksDBColumnFamilyOptions(name: rawValue, compression: .lz4)
        }
    }
}

/// Keys of the `raft` column family.
enum RaftKey {
    static let entryPrefix = UInt8(ascii: "E")
    static let hardState: [UInt8] = [UInt8(ascii: "H")]
    static let confState: [UInt8] = [UInt8(ascii: "C")]
    static let snapshot: [UInt8] = [UInt8(ascii: "S")]

    /// `E` + u64 BE index.
    static func entry(_ index: LogIndex) -> [UInt8] {
        var w = ByteWriter(capacity: 9)
        w.u8(entryPrefix)
        w.u64(index.rawValue)
        return w.bytes
    }

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
    /// u32 BE: the on-disk schema version.
    static let schema = Array("schema".utf8)
    /// u64 BE term of the last applied entry (needed to describe a snapshot at `applied`).
    static let appliedTerm = Array("appliedTerm".utf8)
    /// Encoded `ConfState` as of `applied` (a snapshot carries the membership it was taken at).
    static let confState = Array("confState".utf8)
    /// `u32 count | u64 BE index…`: the indexes of the last `confChangeIndexesMax` membership
    /// changes applied, ascending (clients prove removals from them, docs/AUDIT.md §9).
    /// Absent in a store written before it: no changes known.
    static let confChanges = Array("confChanges".utf8)
}

/// The schema version this code writes and reads. Bumped on any incompatible layout change.
/// 2: history holds only versions that are no longer current (ADR 0008); 1 is upgraded on open.
let storeSchemaVersion: UInt32 = 2
