extension KVStateMachine {
    /// Compacts history to `target` (etcd's Compact): for each key, every history entry older
    /// than the newest one at or before `target` is deleted, and that newest one too if it is
    /// a tombstone or if the key's current record was written by `target` (then that record
    /// answers every read from `target` on). Reads at `target` or later then give the same
    /// answers as before; reads below it fail with `compacted`.
    ///
    /// With `purgesHistoryLater` the entry only records `target`, and the caller deletes that
    /// history afterwards in bounded steps (`purgeHistory`): the versions it deletes are the
    /// ones no read at `target` or later can return, so reads answer the same before, during
    /// and after the purge. Otherwise the deletes are this entry's writes, and they scale with
    /// the history it deletes (see docs/adr/0003, "Not done").
    func compact(to target: Revision, current: Revision, _ view: inout KVReadView) throws {
        let compacted = try view.compactedRevision()
        guard target > compacted else {
            throw AbortOutcome(outcome: .compacted(requested: target, compacted: compacted))
        }
        guard target <= current else {
            throw AbortOutcome(outcome: .futureRevision(requested: target, current: current))
        }
        if !purgesHistoryLater {
            var all = KeyRange.all
            _ = try Self.unreadableHistory(compactedTo: target, in: &all, deletesMax: .max, scannedMax: .max, view) { key, revision in
                view.setHistory(nil, forKey: key, at: revision)
            }
        }
        view.setMeta(encodeUInt64(target.rawValue), forKey: KVMetaKey.compacted)
    }

    /// One bounded step of deleting the history a compaction to `target` left unreadable,
    /// for a state machine that `purgesHistoryLater`. Reads `backend` and adds deletes to
    /// `batch`; the caller commits them like an apply's writes. Visits the keys of `range` in
    /// order and stops once the deletes reach `deletesMax` or, at the end of a key, the
    /// versions scanned reach `scannedMax`: the batch holds at most `deletesMax` deletes.
    ///
    /// A version is deleted when no read at `target` or later can return it: the rule of
    /// `compact(to:)`, evaluated on the state as it is now. Later entries only add versions
    /// after `target`, which keeps what was unreadable unreadable, so a step may run any
    /// time after the compaction, and again over keys already done.
    /// - Returns: the rest of `range` still to do, or nil when it is done.
    public func purgeHistory(
        compactedTo target: Revision, in range: KeyRange, deletesMax: Int, scannedMax: Int, on backend: some KVBackend,
        into batch: inout KVWriteBatch
    ) throws -> KeyRange? {
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        var rest = range
        let done = try Self.unreadableHistory(
            compactedTo: target, in: &rest, deletesMax: deletesMax, scannedMax: scannedMax, view
        ) { key, revision in batch.setHistory(nil, forKey: key, at: revision) }
        return done ? nil : rest
    }

    /// The compacted revision `batch` records, if it records one (the caller of a state machine
    /// that `purgesHistoryLater` starts a purge when it commits such a batch).
    public static func compactedRevision(writtenBy batch: KVWriteBatch) throws -> Revision? {
        guard let written = batch.meta[HashedBytes(KVMetaKey.compacted)], let bytes = written else { return nil }
        return Revision(try decodeUInt64(bytes, "kv/compacted"))
    }

    /// Calls `delete` for each history version in `range` that no read at `target` or later
    /// can return (see `compact(to:)`), key by key in order. Stops once the deletes reach
    /// `deletesMax` (inside a key if need be) or, at the end of a key, once the versions
    /// scanned reach `scannedMax`, and narrows `range` to what is left (from the key it
    /// stopped in or before).
    /// - Returns: whether the whole range was visited.
    static func unreadableHistory(
        compactedTo target: Revision, in range: inout KeyRange, deletesMax: Int, scannedMax: Int, _ view: KVReadView,
        _ delete: ([UInt8], Revision) throws -> Void
    ) throws -> Bool {
        var key: [UInt8]?
        var newest: KVHistoryVersion?  // the newest entry of `key` at or before `target` so far
        var hasLater = false  // whether `key` has an entry after `target`
        var deletes = 0
        var scanned = 0
        var stoppedBefore: [UInt8]?
        func finishKey() throws {
            guard let key, let newest else { return }
            switch newest.value {
            case .tombstone: break
            case .record:
                // Without a later entry, the current record replaced this one: if it was
                // written by `target`, this one is read at no revision from `target` on.
                if hasLater { return }
                guard let live = try view.record(forKey: key), live.modRevision <= target else { return }
            }
            try delete(key, newest.revision)
            deletes += 1
        }
        try view.scanHistory(in: range, reverse: false) { entryKey, version in
            if entryKey != key {
                // Finishing a key deletes at most one more version: only with room for it.
                if let key, deletes >= deletesMax {
                    stoppedBefore = key
                    return false
                }
                try finishKey()
                if deletes >= deletesMax || scanned >= scannedMax {
                    stoppedBefore = entryKey
                    return false
                }
                key = entryKey
                newest = nil
                hasLater = false
            }
            scanned += 1
            guard version.revision <= target else {
                hasLater = true
                return true
            }
            if let older = newest {
                guard deletes < deletesMax else {
                    // Inside a key with more versions than a step deletes: the next step
                    // scans this key again, without what this one deleted (so each step
                    // progresses).
                    stoppedBefore = entryKey
                    return false
                }
                try delete(entryKey, older.revision)
                deletes += 1
            }
            newest = version
            return true
        }
        if stoppedBefore == nil, let key, deletes >= deletesMax { stoppedBefore = key }
        guard let stoppedBefore else {
            try finishKey()
            return true
        }
        range = KeyRange(start: stoppedBefore, end: range.end)
        return false
    }
}
