extension KVStateMachine {
    /// Compacts history to `target` (etcd's Compact): for each key, every history entry older
    /// than the newest one at or before `target` is deleted, and that newest one too if it is
    /// a tombstone. Reads at `target` or later then give the same answers as before; reads
    /// below it fail with `compacted`.
    ///
    /// Runs within the one entry that asks for it, so its writes scale with the history it
    /// deletes (see docs/adr/0003, "Not done").
    func compact<Backend>(to target: Revision, current: Revision, _ view: inout KVReadView<Backend>) throws {
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
        func finishKey() {
            if let key, let newest, case .tombstone = newest.value {
                doomed.append(HistoryKey(key: key, revision: newest.revision))
            }
        }
        try view.scanHistory(in: .all, reverse: false) { entryKey, version in
            if entryKey != key {
                finishKey()
                key = entryKey
                newest = nil
            }
            guard version.revision <= target else { return true }
            if let older = newest { doomed.append(HistoryKey(key: entryKey, revision: older.revision)) }
            newest = version
            return true
        }
        finishKey()
        for entry in doomed { view.setHistory(nil, forKey: entry.key, at: entry.revision) }
        view.setMeta(encodeUInt64(target.rawValue), forKey: KVMetaKey.compacted)
    }
}
