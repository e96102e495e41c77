import FaunaKV

/// FaunaKV's `KVBackend` over the `kv`, `history`, `meta` and `sessions` column families,
/// reading either the latest committed state or a consistent snapshot of it. The meta keys of
/// client sessions (`KVSessionRecency.keyRange`) are in `sessions`, the others in `meta`.
///
/// `sessions` is updated in place (`StoreColumnFamily.options`), so a snapshot does not hold
/// it still: only the apply path reads sessions, and it builds its session order with no
/// write in flight (`Store.applyLocked`). A snapshot reader (the state digest) reads none.
///
/// Bytes read from disk that do not decode throw `StoreError.corruptRecord` naming the CF and
/// key (fail-stop); nothing here traps on stored data.
public struct RocksDBKVBackend: KVBackend {
    let db: RocksDB
    let kv: RocksDBColumnFamily
    let history: RocksDBColumnFamily
    let meta: RocksDBColumnFamily
    let sessions: RocksDBColumnFamily
    let snapshot: RocksDBReadSnapshot?
    /// The apply path's session order (`Store.sessionIndex`); nil: read from disk each time.
    let sessionIndex: SessionRecencyIndex?

    init(db: RocksDB, cfs: Store.ColumnFamilies, snapshot: RocksDBReadSnapshot? = nil, sessionIndex: SessionRecencyIndex? = nil) {
        self.db = db
        self.kv = cfs.kv
        self.history = cfs.history
        self.meta = cfs.meta
        self.sessions = cfs.sessions
        self.snapshot = snapshot
        self.sessionIndex = sessionIndex
    }

    public func record(forKey key: [UInt8]) throws -> KVRecord? {
        try db.get(kv, key, snapshot: snapshot).map { try decodeRecord($0, key: key) }
    }

    /// The record stored at `key` in `kv`, or `.corruptRecord` naming the key.
    private func decodeRecord(_ bytes: [UInt8], key: [UInt8]) throws -> KVRecord {
        do { return try KVRecord(decoding: bytes) } catch { throw StoreError.corrupt(kv, key: key, error.reason) }
    }

    /// The current records of `keys`, in their order, read in one RocksDB MultiGet. Reads the
    /// latest state: not for a snapshot reader.
    func records(forKeys keys: [[UInt8]]) throws -> [KVRecord?] {
        precondition(snapshot == nil, "records(forKeys:) reads the latest state, not a snapshot")
        let values = try db.multiGet(kv, keys)
        return try zip(keys, values).map { (key, bytes) -> KVRecord? in try bytes.map { try decodeRecord($0, key: key) } }
    }

    public func scanRecords(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ record: KVRecord) throws -> Bool
    ) throws {
        guard !range.isEmpty else { return }
        let it = db.makeIterator(kv, lowerBound: range.start, upperBound: range.end, snapshot: snapshot)
        reverse ? it.seekToLast() : it.seekToFirst()
        while it.isValid {
            let key = it.key
            let record: KVRecord
            let bytes = try it.value
            do { record = try KVRecord(decoding: bytes) } catch {
                throw StoreError.corrupt(kv, key: key, error.reason)
            }
            guard try body(key, record) else { return }
            reverse ? it.previous() : it.next()
        }
        try it.checkError()
    }

    public func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion? {
        let prefix = HistoryKey.prefix(for: key)
        let it = db.makeIterator(history, lowerBound: prefix, snapshot: snapshot)
        it.seekForPrev(HistoryKey(key: key, revision: revision).encoded)
        guard it.isValid else {
            try it.checkError()
            return nil
        }
        let stored = it.key
        guard stored.starts(with: prefix) else { return nil }
        return try decodeHistory(key: stored, value: try it.value).1
    }

    public func scanHistory(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ version: KVHistoryVersion) throws -> Bool
    ) throws {
        guard !range.isEmpty else { return }
        let it = db.makeIterator(
            history, lowerBound: HistoryKey.bound(for: range.start), upperBound: range.end.map(HistoryKey.bound(for:)),
            snapshot: snapshot)
        reverse ? it.seekToLast() : it.seekToFirst()
        while it.isValid {
            let (key, version) = try decodeHistory(key: it.key, value: try it.value)
            guard try body(key, version) else { return }
            reverse ? it.previous() : it.next()
        }
        try it.checkError()
    }

    private func decodeHistory(key stored: [UInt8], value: [UInt8]) throws -> ([UInt8], KVHistoryVersion) {
        do {
            let hk = try HistoryKey(decoding: stored)
            let v = try KVHistoryValue(decoding: value)
            return (hk.key, KVHistoryVersion(revision: hk.revision, value: v))
        } catch {
            throw StoreError.corrupt(history, key: stored, error.reason)
        }
    }

    /// The family that holds the meta key `key`.
    private func family(ofMetaKey key: [UInt8]) -> RocksDBColumnFamily {
        KVSessionRecency.isSessionKey(key) ? sessions : meta
    }

    public func metaValue(forKey key: [UInt8]) throws -> [UInt8]? {
        try db.get(family(ofMetaKey: key), key, snapshot: snapshot)
    }

    /// The session keys are one interval of the meta key space, so `range` is read in up to
    /// three consecutive parts, in key order: from `meta` below that interval, from
    /// `sessions` within it, from `meta` above it.
    public func scanMeta(in range: KeyRange, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws {
        let s = KVSessionRecency.keyRange
        func lower(_ a: [UInt8]?, _ b: [UInt8]?) -> [UInt8]? {
            guard let a else { return b }
            guard let b else { return a }
            return compareBytes(a, b) <= 0 ? a : b
        }
        let higher = { (a: [UInt8], b: [UInt8]) in compareBytes(a, b) >= 0 ? a : b }
        var parts = [(meta, KeyRange(start: range.start, end: lower(range.end, s.start)))]
        parts.append((sessions, KeyRange(start: higher(range.start, s.start), end: lower(range.end, s.end))))
        if let sessionsEnd = s.end { parts.append((meta, KeyRange(start: higher(range.start, sessionsEnd), end: range.end))) }
        for (family, part) in parts where !part.isEmpty {
            let it = db.makeIterator(family, lowerBound: part.start, upperBound: part.end, snapshot: snapshot)
            it.seekToFirst()
            while it.isValid {
                guard try body(it.key, try it.value) else { return }
                it.next()
            }
            try it.checkError()
        }
    }

    public func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws {
        guard let sessionIndex else { return try KVSessionRecency.scanStored(on: self, body) }
        try sessionIndex.scan(building: self, body)
    }

    /// Adds the writes of `kvBatch` to `batch`. They commute, so any order is correct; key
    /// order is the fast one: RocksDB's memtable skiplist reuses its insert position (splice)
    /// for ascending keys, and random-order inserts were the largest cost of applying.
    func add(_ kvBatch: KVWriteBatch, to batch: RocksDBWriteBatch) {
        for (key, record) in kvBatch.sortedRecordWrites {
            if let record { batch.put(kv, key, record.encoded) } else { batch.delete(kv, key) }
        }
        for (key, value) in kvBatch.encodedHistoryWrites {
            if let value { batch.put(history, key, value.encoded) } else { batch.delete(history, key) }
        }
        for (key, value) in kvBatch.sortedMetaWrites {
            let family = family(ofMetaKey: key)
            if let value { batch.put(family, key, value) } else { batch.delete(family, key) }
        }
    }
}
