/// An in-memory `KVBackend` for tests and the simulator.
///
/// It stores bytes exactly as the RocksDB backend does — records and history values encoded,
/// history keys as `HistoryKey.encoded`, all ordered byte-wise — so the storage formats and the
/// order of escaped history keys are exercised by every test, not only by the store's.
/// A value type: copy it to fork a replica's state.
public struct MemoryKVBackend: KVBackend, Sendable {
    var records = SortedByteMap()
    var history = SortedByteMap()
    var meta = SortedByteMap()

    /// An empty store.
    public init() {}

    /// Commits `batch` atomically (it is applied in one go; nothing can observe half of it).
    public mutating func commit(_ batch: KVWriteBatch) {
        for (key, record) in batch.records { records[key.bytes] = record?.encoded }
        for (key, value) in batch.history { history[key.encoded] = value?.encoded }
        for (key, value) in batch.meta { meta[key.bytes] = value }
    }

    /// How many entries each key space holds (for tests of compaction and eviction).
    public var entryCounts: (records: Int, history: Int, meta: Int) {
        (records.count, history.count, meta.count)
    }

    public func record(forKey key: [UInt8]) throws -> KVRecord? {
        guard let bytes = records[key] else { return nil }
        return try KVRecord(decoding: bytes)
    }

    public func scanRecords(
        in range: KeyRange, reverse: Bool, _ body: ([UInt8], KVRecord) throws -> Bool
    ) throws {
        try records.scan(from: range.start, to: range.end, reverse: reverse) { key, bytes in
            try body(key, try KVRecord(decoding: bytes))
        }
    }

    public func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion? {
        let prefix = HistoryKey.prefix(for: key)
        guard let found = history.last(atOrBelow: HistoryKey(key: key, revision: revision).encoded) else { return nil }
        let (storedKey, bytes) = found
        guard storedKey.starts(with: prefix) else { return nil }
        let decoded = try HistoryKey(decoding: storedKey)
        return KVHistoryVersion(revision: decoded.revision, value: try KVHistoryValue(decoding: bytes))
    }

    public func scanHistory(
        in range: KeyRange, reverse: Bool, _ body: ([UInt8], KVHistoryVersion) throws -> Bool
    ) throws {
        let end = range.end.map(HistoryKey.bound(for:))
        try history.scan(from: HistoryKey.bound(for: range.start), to: end, reverse: reverse) { storedKey, bytes in
            let decoded = try HistoryKey(decoding: storedKey)
            return try body(decoded.key, KVHistoryVersion(revision: decoded.revision, value: try KVHistoryValue(decoding: bytes)))
        }
    }

    public func metaValue(forKey key: [UInt8]) throws -> [UInt8]? { meta[key] }

    public func scanMeta(in range: KeyRange, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try meta.scan(from: range.start, to: range.end, reverse: false, body)
    }
}

/// A map from byte strings to byte strings kept in byte-wise order: a sorted array with binary
/// search. Inserts are O(n); simple and obviously correct, which is what tests need.
struct SortedByteMap: Sendable {
    private var keys: [[UInt8]] = []
    private var values: [[UInt8]] = []

    var count: Int { keys.count }

    /// The index of the first key not below `key`.
    private func lowerBound(_ key: [UInt8]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid].lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    subscript(key: [UInt8]) -> [UInt8]? {
        get {
            let i = lowerBound(key)
            return i < keys.count && keys[i] == key ? values[i] : nil
        }
        set {
            let i = lowerBound(key)
            let present = i < keys.count && keys[i] == key
            switch (present, newValue) {
            case (true, let value?): values[i] = value
            case (true, nil):
                keys.remove(at: i)
                values.remove(at: i)
            case (false, let value?):
                keys.insert(key, at: i)
                values.insert(value, at: i)
            case (false, nil): break
            }
        }
    }

    /// The entry with the greatest key `<= key`.
    func last(atOrBelow key: [UInt8]) -> ([UInt8], [UInt8])? {
        var i = lowerBound(key)
        if i < keys.count && keys[i] == key { return (keys[i], values[i]) }
        i -= 1
        return i >= 0 ? (keys[i], values[i]) : nil
    }

    /// Visits the entries with keys in `[start, end)` (no end: to the last) in order.
    func scan(
        from start: [UInt8], to end: [UInt8]?, reverse: Bool, _ body: ([UInt8], [UInt8]) throws -> Bool
    ) rethrows {
        let low = lowerBound(start)
        let high = end.map { Swift.max(low, lowerBound($0)) } ?? keys.count
        if reverse {
            for i in stride(from: high - 1, through: low, by: -1) {
                if try !body(keys[i], values[i]) { return }
            }
        } else {
            for i in low..<high {
                if try !body(keys[i], values[i]) { return }
            }
        }
    }
}
