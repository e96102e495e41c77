/// The writes of one or more applied entries, not yet committed. The caller owns it, passes
/// it to every `KVStateMachine.apply` of a group of entries, then commits all of it in one
/// atomic write (a RocksDB WriteBatch with the journal, Merkle nodes and applied index) and
/// starts a new one. Later applies read through it, so entries applied into one batch see each
/// other's writes.
///
/// Each write is the final state of one storage key: the writes commute, so a backend may
/// apply them in any order. nil means "delete".
public struct KVWriteBatch: Sendable {
    /// `kv` CF: user key → record, or nil to delete.
    public private(set) var records: [HashedBytes: KVRecord?] = [:]
    /// `history` CF: (key, revision) → history value, or nil to delete (compaction).
    public private(set) var history: [HistoryKey: KVHistoryValue?] = [:]
    /// `meta` CF: key → bytes, or nil to delete.
    public private(set) var meta: [HashedBytes: [UInt8]?] = [:]

    /// An empty batch.
    public init() {}

    /// An empty batch with room for the writes of about `entries` single-key entries, so that
    /// filling it does not grow (and rehash) its dictionaries again and again.
    public init(expectedEntries entries: Int) {
        records.reserveCapacity(entries)
        history.reserveCapacity(entries)
        meta.reserveCapacity(4)
    }

    /// Whether the batch holds no writes.
    public var isEmpty: Bool { records.isEmpty && history.isEmpty && meta.isEmpty }

    /// The number of writes over all key spaces.
    public var count: Int { records.count + history.count + meta.count }

    /// Sets the current record of `key` (nil: delete it).
    public mutating func setRecord(_ record: KVRecord?, forKey key: [UInt8]) {
        records[HashedBytes(key)] = .some(record)
    }

    /// Sets the history entry of `key` at `revision` (nil: delete it).
    public mutating func setHistory(_ value: KVHistoryValue?, forKey key: [UInt8], at revision: Revision) {
        history[HistoryKey(key: key, revision: revision)] = .some(value)
    }

    /// Sets the meta value of `key` (nil: delete it).
    public mutating func setMeta(_ value: [UInt8]?, forKey key: [UInt8]) {
        meta[HashedBytes(key)] = .some(value)
    }

    /// Adds `other`'s writes; where both write a key, `other`'s write wins.
    mutating func merge(_ other: KVWriteBatch) {
        for (key, value) in other.records { records[key] = .some(value) }
        for (key, value) in other.history { history[key] = .some(value) }
        for (key, value) in other.meta { meta[key] = .some(value) }
    }

    /// The record writes ordered by key.
    public var sortedRecordWrites: [(key: [UInt8], record: KVRecord?)] {
        Self.sorted(records.map { (key: $0.key.bytes, value: $0.value) }, by: bytesPrecede)
            .map { (key: $0.key, record: $0.value) }
    }

    /// The history writes with their storage keys (`HistoryKey.encoded`), ordered by them:
    /// by key, then revision. Sorting the encoded bytes is several times cheaper than
    /// comparing `HistoryKey`s, and a backend encodes them anyway.
    public var encodedHistoryWrites: [(key: [UInt8], value: KVHistoryValue?)] {
        Self.sorted(history.map { (key: $0.key.encoded, value: $0.value) }, by: bytesPrecede)
    }

    /// The meta writes ordered by key.
    public var sortedMetaWrites: [(key: [UInt8], value: [UInt8]?)] {
        Self.sorted(meta.map { (key: $0.key.bytes, value: $0.value) }, by: bytesPrecede)
    }

    /// `entries` ordered by `precedes` on their keys. Sorts positions, not the entries: moving
    /// an entry retains and releases its arrays, and this runs on every applied batch (and
    /// every scan that overlays one).
    static func sorted<Key, Value>(
        _ entries: [(key: Key, value: Value)], by precedes: (Key, Key) -> Bool
    ) -> [(key: Key, value: Value)] {
        let order = entries.indices.sorted { precedes(entries[$0].key, entries[$1].key) }
        return order.map { entries[$0] }
    }
}
