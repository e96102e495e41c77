/// The storage the state machine reads: three ordered key spaces (docs/STORAGE.md):
///
/// - records (`kv` CF): user key → `KVRecord`, the current state;
/// - history (`history` CF): (user key, revision) → `KVHistoryValue`, every version of every
///   key still kept (the current one included), ordered by key, then revision;
/// - meta (`meta` CF): the state machine's bookkeeping under the prefix `kv/` (revision,
///   compacted revision, client sessions: docs/KV-COMMANDS.md "Meta keys").
///
/// The backend never writes on its own: the state machine puts its writes into a
/// `KVWriteBatch` the caller owns, and the caller commits that batch atomically with whatever
/// else belongs to the entry (journal, Merkle nodes, applied index). Reads must see exactly
/// the committed state; the state machine overlays the uncommitted batch itself.
///
/// Keys compare byte-wise lexicographically (RocksDB's default comparator). Any error a read
/// throws is an operating failure (disk, corruption): the state machine passes it on
/// unchanged and the node must stop (fail-stop), never apply the entry half-way.
/// Implementations must not trap on bad stored bytes; throw instead (`KVDecodingError`).
public protocol KVBackend {
    /// The current record of `key`, or nil if the key does not exist.
    func record(forKey key: [UInt8]) throws -> KVRecord?

    /// Visits the current records with keys in `range`, ascending (descending if `reverse`),
    /// until `body` returns false or the range ends.
    func scanRecords(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ record: KVRecord) throws -> Bool
    ) throws

    /// The newest history entry of `key` with revision at most `revision`, or nil if none.
    func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion?

    /// Visits every history entry with a key in `range`, ordered by key, then revision —
    /// both ascending, or both descending if `reverse` — until `body` returns false.
    func scanHistory(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ version: KVHistoryVersion) throws -> Bool
    ) throws

    /// The meta value stored under `key`, or nil.
    func metaValue(forKey key: [UInt8]) throws -> [UInt8]?

    /// Visits the meta entries with keys in `range`, ascending, until `body` returns false.
    func scanMeta(in range: KeyRange, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws

    /// Visits the stored client sessions in eviction order — ascending (last-used revision,
    /// client ID) — until `body` returns false. The default reads and sorts every session
    /// (`KVSessionRecency.scanStored`); a backend may keep the order in memory instead.
    func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws
}
