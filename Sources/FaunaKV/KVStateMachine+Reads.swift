extension KVStateMachine {
    /// The record of `key` as of `revision` (nil or 0: the current revision), or nil if the
    /// key did not exist then.
    /// - Throws: `KVReadError` for a compacted or future revision or an invalid key; backend
    ///   errors unchanged.
    public func get(_ key: [UInt8], at revision: Revision? = nil, on backend: some KVBackend) throws -> KVRecord? {
        guard (1...KVLimits.keyBytesMax).contains(key.count) else {
            throw KVReadError.invalid(KVCommandError(.keyLength, "get key: got \(key.count) bytes, want 1...\(KVLimits.keyBytesMax)"))
        }
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        let current = try view.currentRevision()
        let readRevision = try readError(checkedReadRevision(revision, current: current, view)).get()
        return try KVStateMachine.record(forKey: key, at: readRevision, current: current, view)
    }

    /// The keys in `request.range` as of `request.revision` (etcd's Range): records up to the
    /// limit, the total count, whether more exist, and the current revision.
    /// - Throws: `KVReadError` for a compacted or future revision or an invalid request;
    ///   backend errors unchanged.
    public func range(_ request: KVRangeRequest, on backend: some KVBackend) throws -> KVRangeResult {
        do {
            try request.validate()
        } catch {
            throw KVReadError.invalid(error)
        }
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        let current = try view.currentRevision()
        let readRevision = try readError(checkedReadRevision(request.revision, current: current, view)).get()
        return try readRange(request, limit: request.limit ?? Int.max, at: readRevision, current: current, view)
    }

    private func readError(_ result: Result<Revision, AbortOutcome>) -> Result<Revision, KVReadError> {
        result.mapError { abort in
            switch abort.outcome {
            case .compacted(let requested, let compacted): .compacted(requested: requested, compacted: compacted)
            case .futureRevision(let requested, let current): .futureRevision(requested: requested, current: current)
            default: preconditionFailure("read revision check gave \(abort.outcome)")
            }
        }
    }

    static func record<Backend>(
        forKey key: [UInt8], at revision: Revision, current: Revision, _ view: KVReadView<Backend>
    ) throws -> KVRecord? {
        if revision >= current { return try view.record(forKey: key) }
        guard let version = try view.historyVersion(forKey: key, atOrBefore: revision) else { return nil }
        switch version.value {
        case .record(let record): return record
        case .tombstone: return nil
        }
    }

    /// Reads `request.range` at `revision` (already checked), counting every key and keeping
    /// at most `limit` records.
    func readRange<Backend>(
        _ request: KVRangeRequest, limit: Int, at revision: Revision, current: Revision, _ view: KVReadView<Backend>
    ) throws -> KVRangeResult {
        var records: [KVKeyValue] = []
        var count = 0
        let visit = { (key: [UInt8], record: KVRecord) -> Bool in
            count += 1
            if !request.isCountOnly, records.count < limit {
                records.append(KVKeyValue(key: key, record: request.isKeysOnly ? record.withoutValue : record))
            }
            return true
        }
        if revision >= current {
            try view.scanRecords(in: request.range, reverse: request.isReversed, visit)
        } else {
            try KVStateMachine.scanRecords(in: request.range, at: revision, reverse: request.isReversed, view, visit)
        }
        let hasMore = !request.isCountOnly && count > records.count
        return KVRangeResult(records: records, count: count, hasMore: hasMore, revision: current)
    }

    /// Visits the records the keys in `range` had at `revision`, from history: for each key the
    /// newest entry at or before `revision`, skipped if it is a tombstone.
    static func scanRecords<Backend>(
        in range: KeyRange, at revision: Revision, reverse: Bool, _ view: KVReadView<Backend>,
        _ body: ([UInt8], KVRecord) throws -> Bool
    ) throws {
        if reverse {
            // Newest first within a key: the first entry at or before `revision` decides.
            var decidedKey: [UInt8]?
            try view.scanHistory(in: range, reverse: true) { key, version in
                guard key != decidedKey, version.revision <= revision else { return true }
                decidedKey = key
                guard case .record(let record) = version.value else { return true }
                return try body(key, record)
            }
            return
        }
        // Oldest first within a key: the last entry at or before `revision` decides.
        var pendingKey: [UInt8]?
        var pending: KVHistoryValue?
        var stopped = false
        try view.scanHistory(in: range, reverse: false) { key, version in
            if key != pendingKey {
                if let pendingKey, case .record(let record)? = pending, try !body(pendingKey, record) {
                    stopped = true
                    return false
                }
                pendingKey = key
                pending = nil
            }
            if version.revision <= revision { pending = version.value }
            return true
        }
        if !stopped, let pendingKey, case .record(let record)? = pending { _ = try body(pendingKey, record) }
    }
}
