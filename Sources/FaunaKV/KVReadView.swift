/// The state as the state machine sees it while applying, in three layers: `staged` (the
/// writes of the entry being applied, dropped unless it succeeds) over `base` (the caller's
/// batch: earlier entries of the group) over the committed `backend`. Also the only place that
/// writes: into `staged`, so `base` is never copied or changed while an entry runs — unless
/// `writesInPlace`.
struct KVReadView {
    /// An existential, so the state machine's code is compiled once, concretely, in this
    /// module: generic code over the backend ran unspecialized from FaunaStore (another
    /// module), looking up generic metadata on every call.
    let backend: any KVBackend
    /// The caller's batch as it was before this entry; read-only until `takeMerged` (unless
    /// `writesInPlace`).
    private(set) var base: KVWriteBatch
    /// This entry's writes.
    var staged = KVWriteBatch()
    /// This entry's record writes in order, for its effects (leaf v2): an array, not a
    /// dictionary, because almost every entry writes one key.
    private(set) var recordWrites: [(key: [UInt8], record: KVRecord?)] = []
    /// Set when this entry recorded the leaf v2 boundary (`KVEntryEffects.startsLeafV2`).
    var startsLeafV2 = false
    /// What this entry did to leases, in order (`KVEntryEffects.leaseChanges`).
    var leaseChanges: [KVLeaseChange] = []
    /// Writes go straight into `base`, skipping `staged`. Only for entries that neither throw
    /// nor end in a failed outcome once they have written (`KVCommand.writesOnlyAfterChecks`):
    /// it saves a dictionary insert and a merge per write, a large part of applying a put.
    let writesInPlace: Bool

    init(backend: any KVBackend, base: KVWriteBatch, writesInPlace: Bool = false) {
        self.backend = backend
        self.base = base
        self.writesInPlace = writesInPlace
    }

    /// Hands back `base` without this entry's writes, leaving the view empty.
    mutating func takeBase() -> KVWriteBatch {
        var taken = KVWriteBatch()
        swap(&taken, &base)
        staged = KVWriteBatch()
        recordWrites = []
        leaseChanges = []
        return taken
    }

    /// Hands back `base` with this entry's writes merged in (in place: the view gives up its
    /// reference first, so the batch is not copied), leaving the view empty.
    mutating func takeMerged() -> KVWriteBatch {
        let writes = staged
        var merged = takeBase()
        merged.merge(writes)
        return merged
    }

    /// The writes of `staged` and `base` in one key space, restricted to `range`, with their
    /// keys as `key` makes them.
    private static func overlay<Stored: Hashable, Key, Value>(
        _ base: [Stored: Value?], _ staged: [Stored: Value?], _ isInRange: (Stored) -> Bool,
        key: (Stored) -> Key
    ) -> [(key: Key, value: Value?)] {
        var merged = base.filter { isInRange($0.key) }
        for (stored, value) in staged where isInRange(stored) { merged[stored] = .some(value) }
        return merged.map { (key: key($0.key), value: $0.value) }
    }

    // MARK: Records

    func record(forKey key: [UInt8]) throws -> KVRecord? {
        let hashed = HashedBytes(key)
        if !staged.records.isEmpty, let write = staged.records[hashed] { return write }
        if !base.records.isEmpty, let write = base.records[hashed] { return write }
        return try backend.record(forKey: key)
    }

    /// Visits the current records in `range` in key order (descending if `reverse`).
    func scanRecords(in range: KeyRange, reverse: Bool, _ body: ([UInt8], KVRecord) throws -> Bool) throws {
        guard !range.isEmpty else { return }
        if range.isSingleKey {  // compares and deletes of one key: no pass over the batch
            if let record = try record(forKey: range.start) { _ = try body(range.start, record) }
            return
        }
        let precedes: ([UInt8], [UInt8]) -> Bool = { reverse ? bytesPrecede($1, $0) : bytesPrecede($0, $1) }
        let writes = Self.overlay(base.records, staged.records, { range.contains($0.bytes) }, key: \.bytes)
        let overlay = KVWriteBatch.sorted(writes, by: precedes)
        try mergeScan(
            overlay: overlay,
            precedes: precedes,
            backendScan: { visit in try backend.scanRecords(in: range, reverse: reverse, visit) },
            body)
    }

    // MARK: History

    /// Visits every kept history entry in `range`, by key then revision (both descending if
    /// `reverse`).
    func scanHistory(in range: KeyRange, reverse: Bool, _ body: ([UInt8], KVHistoryVersion) throws -> Bool) throws {
        guard !range.isEmpty else { return }
        let precedes: (HistoryKey, HistoryKey) -> Bool = { reverse ? $1 < $0 : $0 < $1 }
        let writes = Self.overlay(base.history, staged.history, { range.contains($0.key) }, key: { $0 })
        let overlay = KVWriteBatch.sorted(writes, by: precedes)
        try mergeScan(
            overlay: overlay,
            precedes: precedes,
            backendScan: { visit in
                try backend.scanHistory(in: range, reverse: reverse) { key, version in
                    try visit(HistoryKey(key: key, revision: version.revision), version.value)
                }
            },
            { try body($0.key, KVHistoryVersion(revision: $0.revision, value: $1)) })
    }

    /// The newest kept history entry of `key` at or before `revision`.
    func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion? {
        let inBatch = { (write: HistoryKey) in write.key == key }
        if !base.history.keys.contains(where: inBatch) && !staged.history.keys.contains(where: inBatch) {
            return try backend.historyVersion(forKey: key, atOrBefore: revision)
        }
        var found: KVHistoryVersion?
        try scanHistory(in: .single(key), reverse: true) { _, version in
            guard version.revision <= revision else { return true }
            found = version
            return false
        }
        return found
    }

    // MARK: Meta

    func metaValue(forKey key: [UInt8]) throws -> [UInt8]? {
        let hashed = HashedBytes(key)
        if !staged.meta.isEmpty, let write = staged.meta[hashed] { return write }
        if !base.meta.isEmpty, let write = base.meta[hashed] { return write }
        return try backend.metaValue(forKey: key)
    }

    /// Visits the meta entries in `range`, ascending, until `body` returns false.
    func scanMeta(in range: KeyRange, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let writes = Self.overlay(base.meta, staged.meta, { range.contains($0.bytes) }, key: \.bytes)
        let overlay = KVWriteBatch.sorted(writes, by: bytesPrecede)
        try mergeScan(
            overlay: overlay, precedes: bytesPrecede,
            backendScan: { visit in try backend.scanMeta(in: range, visit) }, body)
    }

    /// The first meta entry in `range` (ascending).
    func firstMeta(in range: KeyRange) throws -> ([UInt8], [UInt8])? {
        var first: ([UInt8], [UInt8])?
        try scanMeta(in: range) { key, value in
            first = (key, value)
            return false
        }
        return first
    }

    /// The stored sessions in eviction order as this view sees them: the backend's order,
    /// with each session the batch writes (or deletes) in its new place (or gone).
    func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws {
        var written: [ClientID: Revision?] = [:]
        for meta in [base.meta, staged.meta] where !meta.isEmpty {
            for (key, value) in meta {
                guard let client = KVSessionRecency.client(ofMetaKey: key.bytes) else { continue }
                // A nil value (the session deleted) is kept as such: updateValue, not `= nil`.
                written.updateValue(try value.map(KVSessionRecency.lastUsed(ofStored:)), forKey: client)
            }
        }
        guard !written.isEmpty else { return try backend.scanSessionsByRecency(body) }
        let batch = written.compactMap { client, lastUsed in lastUsed.map { (lastUsed: $0, client: client) } }
            .sorted(by: KVSessionRecency.precedes)
        var i = 0
        var stopped = false
        try withoutActuallyEscaping(body) { body in
            try backend.scanSessionsByRecency { lastUsed, client in
                guard written.index(forKey: client) == nil else { return true }
                while i < batch.count, KVSessionRecency.precedes(batch[i], (lastUsed, client)) {
                    defer { i += 1 }
                    if try !body(batch[i].lastUsed, batch[i].client) {
                        stopped = true
                        return false
                    }
                }
                if try !body(lastUsed, client) {
                    stopped = true
                    return false
                }
                return true
            }
        }
        guard !stopped else { return }
        while i < batch.count {
            if try !body(batch[i].lastUsed, batch[i].client) { return }
            i += 1
        }
    }

    // MARK: Writes

    mutating func setRecord(_ record: KVRecord?, forKey key: [UInt8]) {
        recordWrites.append((key: key, record: record))
        if writesInPlace { base.setRecord(record, forKey: key) } else { staged.setRecord(record, forKey: key) }
    }

    mutating func setHistory(_ value: KVHistoryValue?, forKey key: [UInt8], at revision: Revision) {
        if writesInPlace {
            base.setHistory(value, forKey: key, at: revision)
        } else {
            staged.setHistory(value, forKey: key, at: revision)
        }
    }

    mutating func setMeta(_ value: [UInt8]?, forKey key: [UInt8]) {
        if writesInPlace { base.setMeta(value, forKey: key) } else { staged.setMeta(value, forKey: key) }
    }
}

/// Merges a backend scan with the batch's writes to the same key space: both come in scan
/// order; a batch write replaces the backend entry of the same key (nil: hides it). Stops as
/// soon as `body` returns false.
func mergeScan<Key: Equatable, Value>(
    overlay: [(key: Key, value: Value?)],
    precedes: (Key, Key) -> Bool,
    backendScan: ((Key, Value) throws -> Bool) throws -> Void,
    _ body: (Key, Value) throws -> Bool
) throws {
    // withoutActuallyEscaping: the closure handed to `backendScan` calls `body`; both are
    // only used during this call, which Swift cannot prove on its own.
    try withoutActuallyEscaping(body) { body in
        try withoutActuallyEscaping(precedes) { precedes in
            var i = 0
            var stopped = false
            try backendScan { key, value in
                while i < overlay.count, precedes(overlay[i].key, key) {
                    defer { i += 1 }
                    if let staged = overlay[i].value, try !body(overlay[i].key, staged) {
                        stopped = true
                        return false
                    }
                }
                if i < overlay.count, overlay[i].key == key {
                    defer { i += 1 }
                    guard let staged = overlay[i].value else { return true }
                    stopped = try !body(key, staged)
                    return !stopped
                }
                stopped = try !body(key, value)
                return !stopped
            }
            guard !stopped else { return }
            while i < overlay.count {
                defer { i += 1 }
                if let staged = overlay[i].value, try !body(overlay[i].key, staged) { return }
            }
        }
    }
}
