// Client sessions (Raft thesis §6.3): per client, the last applied sequence number and its
// result, so that a retried proposal is answered, not applied again. Layout and eviction rule:
// docs/KV-COMMANDS.md "Sessions".

/// What is stored per client under `kv/session/ ‖ u64 clientID`.
struct StoredSession {
    static let formatVersion: UInt8 = 1
    var sequence: SequenceNumber
    /// The revision of the entry that last used the session: the eviction order.
    var lastUsedRevision: Revision
    /// The result of `sequence`, without read data.
    var result: KVApplyResult

    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(StoredSession.formatVersion)
        w.u64(sequence.rawValue)
        w.u64(lastUsedRevision.rawValue)
        w.bytes.append(contentsOf: result.encoded())
        return w.bytes
    }

    init(sequence: SequenceNumber, lastUsedRevision: Revision, result: KVApplyResult) {
        self.sequence = sequence
        self.lastUsedRevision = lastUsedRevision
        self.result = result
    }

    init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "session")
        let format = try r.u8("format version")
        guard format == StoredSession.formatVersion else {
            throw KVDecodingError(.unsupportedVersion, "session format version: got \(format), want \(StoredSession.formatVersion)")
        }
        sequence = SequenceNumber(try r.u64("sequence"))
        lastUsedRevision = Revision(try r.u64("last used revision"))
        result = try KVApplyResult(from: &r)
        try r.finish()
    }

    static func key(_ clientID: ClientID) -> [UInt8] { KVMetaKey.sessionPrefix + encodeUInt64(clientID.rawValue) }

    static func lruKey(_ clientID: ClientID, _ revision: Revision) -> [UInt8] {
        KVMetaKey.sessionLRUPrefix + encodeUInt64(revision.rawValue) + encodeUInt64(clientID.rawValue)
    }
}

extension KVStateMachine {
    /// The result for a proposal the session already decided: the stored result of a retry
    /// (`isReplay`), or `.sessionExpired` for an older or forgotten sequence. nil: apply it.
    func sessionOutcome(
        _ session: ClientSession, at revision: Revision, _ view: KVReadView
    ) throws -> KVApplyResult? {
        guard let bytes = try view.metaValue(forKey: StoredSession.key(session.clientID)) else {
            if session.sequence == .first { return nil }
            return KVApplyResult(revision: revision, outcome: .sessionExpired(sequence: session.sequence, lastApplied: nil))
        }
        let stored = try StoredSession(decoding: bytes)
        if session.sequence == stored.sequence {
            var replay = stored.result
            replay.isReplay = true
            return replay
        }
        if session.sequence < stored.sequence {
            return KVApplyResult(
                revision: revision, outcome: .sessionExpired(sequence: session.sequence, lastApplied: stored.sequence))
        }
        return nil
    }

    /// Stores `result` as the session's latest and moves the session to the newest end of the
    /// eviction order; a new session beyond `sessionsMax` evicts the least recently used ones.
    func recordSession(
        _ session: ClientSession, _ result: KVApplyResult, at revision: Revision, _ view: inout KVReadView
    ) throws {
        let key = StoredSession.key(session.clientID)
        if let bytes = try view.metaValue(forKey: key) {
            let old = try StoredSession(decoding: bytes)
            view.setMeta(nil, forKey: StoredSession.lruKey(session.clientID, old.lastUsedRevision))
        } else {
            var count: UInt64 = 0
            if let bytes = try view.metaValue(forKey: KVMetaKey.sessionCount) {
                count = try decodeUInt64(bytes, "kv/session-count")
            }
            while count >= UInt64(sessionsMax) {
                try evictLeastRecentlyUsed(&view)
                count -= 1
            }
            view.setMeta(encodeUInt64(count + 1), forKey: KVMetaKey.sessionCount)
        }
        var stored = result
        stored.outcome = result.outcome.withoutReadData
        view.setMeta(StoredSession(sequence: session.sequence, lastUsedRevision: revision, result: stored).encoded, forKey: key)
        view.setMeta([], forKey: StoredSession.lruKey(session.clientID, revision))
    }

    /// Deletes the session with the smallest last-used revision (first LRU key).
    private func evictLeastRecentlyUsed(_ view: inout KVReadView) throws {
        guard let lruKey = try view.firstMeta(in: .prefix(KVMetaKey.sessionLRUPrefix))?.0 else {
            throw KVDecodingError(.invalidValue, "meta kv/session-count: got a positive count, want an LRU entry too")
        }
        let suffix = Array(lruKey.dropFirst(KVMetaKey.sessionLRUPrefix.count))
        guard suffix.count == 16 else {
            throw KVDecodingError(.invalidValue, "meta session LRU key: got \(suffix.count) bytes after the prefix, want 16")
        }
        let clientID = ClientID(try decodeUInt64(Array(suffix[8...]), "session LRU client ID"))
        view.setMeta(nil, forKey: lruKey)
        view.setMeta(nil, forKey: StoredSession.key(clientID))
    }
}
