// Client sessions (Raft thesis §6.3): per client, the last applied sequence number and its
// result, so that a retried proposal is answered, not applied again. Layout and eviction rule:
// docs/KV-COMMANDS.md "Sessions".

/// What is stored per client under `kv/session/ ‖ u64 clientID`. Format 1 has no owner; from
/// the sessions-bound level on (`KVStateLevel.sessionsBound`) the state machine writes format
/// 2, which names the user whose writes may use the session. Both share the fixed head
/// (format, sequence, last-used revision) that `KVSessionRecency.lastUsed(ofStored:)` reads.
struct StoredSession {
    static let unownedFormat: UInt8 = 1
    static let ownedFormat: UInt8 = 2
    var sequence: SequenceNumber
    /// The revision of the entry that last used the session: the eviction order.
    var lastUsedRevision: Revision
    /// The result of `sequence`, without read data.
    var result: KVApplyResult
    /// The principal of the writes that may use the session (empty: no user); nil in a
    /// session recorded before sessions were bound, which the next write claims.
    var owner: [UInt8]?

    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(owner == nil ? StoredSession.unownedFormat : StoredSession.ownedFormat)
        w.u64(sequence.rawValue)
        w.u64(lastUsedRevision.rawValue)
        if let owner { w.lengthPrefixed(owner) }
        w.bytes.append(contentsOf: result.encoded())
        return w.bytes
    }

    init(sequence: SequenceNumber, lastUsedRevision: Revision, result: KVApplyResult, owner: [UInt8]?) {
        self.sequence = sequence
        self.lastUsedRevision = lastUsedRevision
        self.result = result
        self.owner = owner
    }

    init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "session")
        let format = try Self.format(&r)
        sequence = SequenceNumber(try r.u64("sequence"))
        lastUsedRevision = Revision(try r.u64("last used revision"))
        owner = format == Self.ownedFormat ? try r.lengthPrefixed("owner", max: KVAuthLimits.nameBytesMax) : nil
        result = try KVApplyResult(from: &r)
        try r.finish()
    }

    /// Reads the format version: 1 or 2.
    static func format(_ r: inout ByteReader) throws(KVDecodingError) -> UInt8 {
        let format = try r.u8("format version")
        guard format == unownedFormat || format == ownedFormat else {
            throw KVDecodingError(.unsupportedVersion, "session format version: got \(format), want \(unownedFormat) or \(ownedFormat)")
        }
        return format
    }

    static func key(_ clientID: ClientID) -> [UInt8] { KVMetaKey.sessionPrefix + encodeUInt64(clientID.rawValue) }
}

/// The eviction order of client sessions: ascending (last-used revision, client ID), the
/// order of the stored sessions themselves. Nothing but the sessions is stored for it (store
/// schema 4); a backend may keep it in memory (FaunaStore's apply path does), and
/// `scanStored` derives it from the session records.
public enum KVSessionRecency {
    /// The prefix of the order index that store schema 3 and earlier kept beside the sessions
    /// (`kv/session-lru/ ‖ u64 lastUsedRevision ‖ u64 clientID`); upgrading removes it.
    public static var legacyIndexPrefix: [UInt8] { KVMetaKey.sessionLRUPrefix }

    /// Whether `a` comes before `b` in eviction order.
    @inlinable
    public static func precedes(_ a: (lastUsed: Revision, client: ClientID), _ b: (lastUsed: Revision, client: ClientID)) -> Bool {
        a.lastUsed != b.lastUsed ? a.lastUsed < b.lastUsed : a.client < b.client
    }

    /// The meta keys of client sessions: one interval of the meta key space, which a store
    /// may keep apart from the other meta keys (Fauna's store keeps it in its own family).
    public static let keyRange = KeyRange.prefix(KVMetaKey.sessionPrefix)

    /// Whether `key` is a client session's meta key.
    public static func isSessionKey(_ key: [UInt8]) -> Bool { key.starts(with: KVMetaKey.sessionPrefix) }

    /// The client of a meta key under `sessionPrefix`, nil for any other meta key.
    public static func client(ofMetaKey key: [UInt8]) -> ClientID? {
        let prefix = KVMetaKey.sessionPrefix
        guard key.count == prefix.count + 8, key.starts(with: prefix) else { return nil }
        return ClientID(key[prefix.count...].reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// The last-used revision of a stored session (its fixed-size head only).
    public static func lastUsed(ofStored bytes: [UInt8]) throws(KVDecodingError) -> Revision {
        var r = ByteReader(bytes, context: "session")
        _ = try StoredSession.format(&r)
        _ = try r.u64("sequence")
        return Revision(try r.u64("last used revision"))
    }

    /// Visits every session `backend` stores, in eviction order, until `body` returns false:
    /// reads and sorts them all (at most `sessionsMax`).
    public static func scanStored(
        on backend: some KVBackend, _ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool
    ) throws {
        var sessions: [(lastUsed: Revision, client: ClientID)] = []
        try backend.scanMeta(in: .prefix(KVMetaKey.sessionPrefix)) { key, value in
            guard let client = client(ofMetaKey: key) else {
                throw KVDecodingError(.invalidValue, "session key: got \(key.count) bytes, want the prefix and 8")
            }
            sessions.append((try lastUsed(ofStored: value), client))
            return true
        }
        sessions.sort(by: precedes)
        for s in sessions where try !body(s.lastUsed, s.client) { return }
    }
}

extension KVBackend {
    /// The default: `KVSessionRecency.scanStored`, which reads every session.
    public func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws {
        try KVSessionRecency.scanStored(on: self, body)
    }
}

extension KVStateMachine {
    /// Who owns the session `proposal` writes under, once sessions are bound to users
    /// (`KVStateLevel.sessionsBound`): its principal (empty: no user). nil without a session
    /// or before the level.
    func sessionOwner(of proposal: KVProposal, _ view: KVReadView) throws -> [UInt8]? {
        guard proposal.session != nil, try view.metaValue(forKey: KVMetaKey.sessionsBoundFrom) != nil else { return nil }
        return proposal.principal ?? []
    }

    /// The result for a proposal the session already decided: the stored result of a retry
    /// (`isReplay`), or `.sessionExpired` for an older or forgotten sequence. With `owner`
    /// (sessions are bound), a session another user owns refuses the proposal with
    /// `permissionDenied` and stays as it was: its owner's retries and next writes are not
    /// disturbed, and its results are not shown to anyone else. nil: apply it.
    func sessionOutcome(
        _ session: ClientSession, owner: [UInt8]?, at revision: Revision, _ view: KVReadView
    ) throws -> KVApplyResult? {
        guard let bytes = try view.metaValue(forKey: StoredSession.key(session.clientID)) else {
            if session.sequence == .first { return nil }
            return KVApplyResult(revision: revision, outcome: .sessionExpired(sequence: session.sequence, lastApplied: nil))
        }
        let stored = try StoredSession(decoding: bytes)
        if let owner, let storedOwner = stored.owner, storedOwner != owner {
            return KVApplyResult(revision: revision, outcome: .invalid(KVCommandError(
                .permissionDenied, "client session \(session.clientID.rawValue) belongs to another user; a client writes under a session of its own")))
        }
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

    /// Stores `result` as the session's latest, owned by `owner` (nil: before sessions were
    /// bound, format 1), and moves the session to the newest end of the eviction order; a new
    /// session beyond `sessionsMax` evicts the least recently used ones.
    func recordSession(
        _ session: ClientSession, _ result: KVApplyResult, owner: [UInt8]?, at revision: Revision, _ view: inout KVReadView
    ) throws {
        let key = StoredSession.key(session.clientID)
        if try view.metaValue(forKey: key) == nil {
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
        // The stored last-used revision is the session's place in the eviction order.
        let record = StoredSession(sequence: session.sequence, lastUsedRevision: revision, result: stored, owner: owner)
        view.setMeta(record.encoded, forKey: key)
    }

    /// Deletes the session that comes first in eviction order (smallest last-used revision,
    /// then client ID).
    private func evictLeastRecentlyUsed(_ view: inout KVReadView) throws {
        var first: ClientID?
        try view.scanSessionsByRecency { _, client in
            first = client
            return false
        }
        guard let first else {
            throw KVDecodingError(.invalidValue, "meta kv/session-count: got a positive count, want a stored session too")
        }
        view.setMeta(nil, forKey: StoredSession.key(first))
    }
}
