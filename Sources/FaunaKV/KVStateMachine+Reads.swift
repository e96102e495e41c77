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
    /// A range that starts below the system key space stops below it (`KVSystemKeys.clipped`).
    public func range(_ request: KVRangeRequest, on backend: some KVBackend) throws -> KVRangeResult {
        var request = request
        request.range = KVSystemKeys.clipped(request.range)
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

    static func record(
        forKey key: [UInt8], at revision: Revision, current: Revision, _ view: KVReadView
    ) throws -> KVRecord? {
        let live = try view.record(forKey: key)
        if revision >= current { return live }
        // The current record answers if it was written by then; else history, which holds
        // every earlier version (ADR 0008).
        if let live, live.modRevision <= revision { return live }
        guard let version = try view.historyVersion(forKey: key, atOrBefore: revision) else { return nil }
        switch version.value {
        case .record(let record): return record
        case .tombstone: return nil
        }
    }

    /// Reads `request.range` at `revision` (already checked), counting every key and keeping
    /// at most `limit` records.
    func readRange(
        _ request: KVRangeRequest, limit: Int, at revision: Revision, current: Revision, _ view: KVReadView
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
            try KVStateMachine.scanRecords(
                in: request.range, at: revision, reverse: request.isReversed, step: historyScanStep, view, visit)
        }
        let hasMore = !request.isCountOnly && count > records.count
        return KVRangeResult(records: records, count: count, hasMore: hasMore, revision: current)
    }

    /// Visits the records the keys in `range` had at `revision`, in key order (descending if
    /// `reverse`), until `body` returns false. A key's record at `revision` is its current
    /// record if that was written by then, else its newest history entry at or before
    /// `revision` (none or a tombstone: the key did not exist). So the two key spaces are
    /// merged, one step at a time: up to `step` current records and up to as many
    /// keys of history, decided up to the nearer of the two last keys read.
    static func scanRecords(
        in range: KeyRange, at revision: Revision, reverse: Bool, step: Int, _ view: KVReadView,
        _ body: ([UInt8], KVRecord) throws -> Bool
    ) throws {
        let step = max(1, step)
        let precedes: ([UInt8], [UInt8]) -> Bool = { reverse ? bytesPrecede($1, $0) : bytesPrecede($0, $1) }
        var rest = range
        while !rest.isEmpty {
            var live: [([UInt8], KVRecord)] = []
            try view.scanRecords(in: rest, reverse: reverse) { key, record in
                live.append((key, record))
                return live.count < step
            }
            // Per key, the history entry that decides it at `revision` (nil: none at or before).
            var past: [([UInt8], KVHistoryValue?)] = []
            try view.scanHistory(in: rest, reverse: reverse) { key, version in
                if past.last?.0 != key {
                    guard past.count < step else { return false }
                    past.append((key, nil))
                }
                // Ascending: the last entry at or before `revision` wins; descending: the first.
                if version.revision <= revision, !reverse || past[past.count - 1].1 == nil {
                    past[past.count - 1].1 = version.value
                }
                return true
            }
            // A side that filled its step may have more beyond its last key; every key it read
            // is whole (history stops only at a key boundary). Keys are decided up to the
            // nearer of the full sides' last keys (nil: both sides are done).
            var limit: [UInt8]?
            if live.count == step { limit = live[live.count - 1].0 }
            if past.count == step, let last = past.last?.0, limit.map({ precedes(last, $0) }) ?? true { limit = last }
            var i = 0, j = 0
            while i < live.count || j < past.count {
                // The next key in order, from one side or both.
                let fromLive = i < live.count && (j == past.count || !precedes(past[j].0, live[i].0))
                let fromPast = j < past.count && (i == live.count || !precedes(live[i].0, past[j].0))
                let key = fromLive ? live[i].0 : past[j].0
                let current = fromLive ? live[i].1 : nil
                let old = fromPast ? past[j].1 : nil
                if fromLive { i += 1 }
                if fromPast { j += 1 }
                var decided: KVRecord?
                if let current, current.modRevision <= revision {
                    decided = current
                } else if case .record(let record)? = old {
                    decided = record
                }
                if let limit, precedes(limit, key) { break }
                if let decided, try !body(key, decided) { return }
            }
            guard let limit else { return }
            if reverse { rest.end = limit } else { rest.start = limit + [0] }
        }
    }
}
