extension KVStateMachine {
    /// Compacts history to `target` (etcd's Compact): for each key, every history entry older
    /// than the newest one at or before `target` is deleted, and that newest one too if it is
    /// a tombstone or if the key's current record was written by `target` (then that record
    /// answers every read from `target` on). Reads at `target` or later then give the same
    /// answers as before; reads below it fail with `compacted`.
    ///
    /// Runs within the one entry that asks for it, so its writes scale with the history it
    /// deletes (see docs/adr/0003, "Not done").
    func compact(to target: Revision, current: Revision, _ view: inout KVReadView) throws {
        let compacted = try view.compactedRevision()
        guard target > compacted else {
            throw AbortOutcome(outcome: .compacted(requested: target, compacted: compacted))
        }
        guard target <= current else {
            throw AbortOutcome(outcome: .futureRevision(requested: target, current: current))
        }
        var doomed: [HistoryKey] = []
        var key: [UInt8]?
        var newest: KVHistoryVersion?  // the newest entry of `key` at or before `target` so far
        var hasLater = false  // whether `key` has an entry after `target`
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
            doomed.append(HistoryKey(key: key, revision: newest.revision))
        }
        try view.scanHistory(in: .all, reverse: false) { entryKey, version in
            if entryKey != key {
                try finishKey()
                key = entryKey
                newest = nil
                hasLater = false
            }
            guard version.revision <= target else {
                hasLater = true
                return true
            }
            if let older = newest { doomed.append(HistoryKey(key: entryKey, revision: older.revision)) }
            newest = version
            return true
        }
        try finishKey()
        for entry in doomed { view.setHistory(nil, forKey: entry.key, at: entry.revision) }
        view.setMeta(encodeUInt64(target.rawValue), forKey: KVMetaKey.compacted)
    }
}
