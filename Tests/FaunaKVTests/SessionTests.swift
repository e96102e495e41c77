import Testing

@testable import FaunaKV

@Suite("Client sessions: exactly-once retries")
struct SessionTests {
    static func session(_ client: UInt64, _ sequence: UInt64) -> ClientSession {
        ClientSession(clientID: ClientID(client), sequence: SequenceNumber(sequence))
    }

    @Test("a retry returns the stored result and writes nothing")
    func retry() throws {
        var h = Harness()
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        let first = try h.apply(put, session: Self.session(1, 1))
        #expect(first == KVApplyResult(revision: Revision(1), outcome: .success(succeeded: true, results: [.put(previous: nil)])))
        let counts = h.backend.entryCounts
        let retry = try h.apply(put, session: Self.session(1, 1))
        #expect(retry == KVApplyResult(revision: Revision(1), outcome: first.outcome, isReplay: true))
        #expect(try h.get("k") == record("v", create: 1, mod: 1, version: 1), "no second put: version still 1")
        #expect(h.backend.entryCounts.history == counts.history)
        #expect(try h.machine.currentRevision(on: h.backend) == Revision(2))

        let next = try h.apply(put, session: Self.session(1, 2))
        #expect(!next.isReplay)
        #expect(try h.get("k")?.version == 2)
        #expect(try h.apply(put, session: Self.session(1, 1)).outcome == .sessionExpired(sequence: SequenceNumber(1), lastApplied: SequenceNumber(2)))
        #expect(try h.get("k")?.version == 2)
        // Gaps are fine: the client gave up on 3.
        #expect(!(try h.apply(put, session: Self.session(1, 4))).isReplay)
        #expect(try h.get("k")?.version == 3)
    }

    @Test("a session must start at sequence 1; another client is independent")
    func newSession() throws {
        var h = Harness()
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        #expect(try h.apply(put, session: Self.session(7, 3)).outcome == .sessionExpired(sequence: SequenceNumber(3), lastApplied: nil))
        #expect(try h.get("k") == nil)
        try h.succeed(put, session: Self.session(7, 1))
        try h.succeed(put, session: Self.session(8, 1))
        #expect(try h.get("k")?.version == 2)
    }

    @Test("domain outcomes are replayed too; replays drop read data but keep counts")
    func replayOutcomes() throws {
        var h = Harness()
        try h.put("k", "v")
        let ifAbsent = KVCommand.put(KVPut(key: b("k"), value: b("w"), ifAbsent: true))
        let refused = try h.apply(ifAbsent, session: Self.session(1, 1))
        #expect(refused.outcome == .alreadyExists(key: b("k")))
        try h.succeed(.delete(b("k")))
        let replay = try h.apply(ifAbsent, session: Self.session(1, 1))
        #expect(replay == KVApplyResult(revision: Revision(2), outcome: .alreadyExists(key: b("k")), isReplay: true))
        #expect(try h.get("k") == nil, "the replay did not put")

        try h.put("k", "v")
        let txn = KVCommand.txn(
            KVTxn(compares: [], success: [.range(KVRangeRequest(range: .all)), .put(KVPut(key: b("k"), value: b("x"), returnsPrevious: true))]))
        let original = try h.apply(txn, session: Self.session(1, 2))
        let again = try h.apply(txn, session: Self.session(1, 2))
        #expect(again.isReplay && again.revision == original.revision)
        #expect(again.outcome == original.outcome.withoutReadData)
        #expect(again.outcome != original.outcome)
        guard case .success(_, let results) = again.outcome, case .range(let r) = results.first else {
            Issue.record("replay: \(again)")
            return
        }
        #expect(r.records.isEmpty && r.count == 1)
        #expect(results.last == .put(previous: nil))
        #expect(try h.get("k")?.version == 2, "one put by the txn, none by the replay")
    }

    @Test("beyond sessionsMax the least recently used session is evicted, deterministically")
    func eviction() throws {
        var h = Harness(sessionsMax: 2)
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        try h.succeed(put, session: Self.session(1, 1))  // rev 1
        try h.succeed(put, session: Self.session(2, 1))  // rev 2
        try h.succeed(put, session: Self.session(1, 2))  // rev 3: client 1 is now newer than 2
        try h.succeed(put, session: Self.session(3, 1))  // rev 4: evicts client 2
        #expect(try h.apply(put, session: Self.session(1, 2)).isReplay)
        #expect(try h.apply(put, session: Self.session(3, 1)).isReplay)
        #expect(try h.apply(put, session: Self.session(2, 2)).outcome == .sessionExpired(sequence: SequenceNumber(2), lastApplied: nil))
        // meta: revision, session count, 2 sessions (the order is theirs: nothing else stored).
        #expect(h.backend.entryCounts.meta == 4)
        let sessions = try (0..<3).map { i in try h.backend.metaValue(forKey: StoredSession.key(ClientID(UInt64(i + 1)))) != nil }
        #expect(sessions == [true, false, true])
    }

    /// The stored session's format byte (1: no owner, 2: owned).
    static func format(_ h: Harness, _ client: UInt64) throws -> UInt8? {
        try h.backend.metaValue(forKey: StoredSession.key(ClientID(client)))?.first
    }

    static func denied(_ result: KVApplyResult) -> Bool {
        if case .invalid(let e) = result.outcome { return e.code == .permissionDenied }
        return false
    }

    @Test("before the sessions-bound level, a session takes any user's writes, as earlier versions applied them")
    func unboundSessions() throws {
        var h = Harness()
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        try h.succeed(put, session: Self.session(1, 1), as: b("alice"))
        try h.succeed(put, session: Self.session(1, 2), as: b("mallory"))
        #expect(try h.apply(put, session: Self.session(1, 2), as: b("alice")).isReplay)
        #expect(try Self.format(h, 1) == StoredSession.unownedFormat)
        try h.succeed(.upgradeState(KVStateLevel.leafV2))
        try h.succeed(put, session: Self.session(1, 3), as: b("mallory"))
        #expect(try Self.format(h, 1) == StoredSession.unownedFormat, "leaf v2 alone does not bind sessions")
    }

    @Test("from the sessions-bound level on, another user's write under a session is refused and changes nothing")
    func boundSessions() throws {
        var h = Harness()
        try h.succeed(.upgradeState(KVStateLevel.current))
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        let other = KVCommand.put(KVPut(key: b("k"), value: b("x")))
        let first = try h.apply(put, session: Self.session(1, 1), as: b("alice"))
        #expect(try Self.format(h, 1) == StoredSession.ownedFormat)
        let stored = try h.backend.metaValue(forKey: StoredSession.key(ClientID(1)))

        // Mallory knows alice's client ID: her next sequence, a replay of the last one, and a
        // jump ahead are all refused, write nothing and leave the session as it was.
        for sequence: UInt64 in [2, 1, 1_000] {
            let r = try h.apply(other, session: Self.session(1, sequence), as: b("mallory"))
            #expect(Self.denied(r), "sequence \(sequence): \(r)")
            #expect(!r.isReplay)
            #expect(try h.backend.metaValue(forKey: StoredSession.key(ClientID(1))) == stored)
        }
        // Nor may a write without a user (the empty principal).
        #expect(Self.denied(try h.apply(other, session: Self.session(1, 2), as: [])))
        #expect(try h.value("k") == "v")

        // Alice's retry is answered from the session, and her next write applies.
        let retry = try h.apply(put, session: Self.session(1, 1), as: b("alice"))
        #expect(retry.isReplay && retry.outcome == first.outcome)
        let next = try h.apply(put, session: Self.session(1, 2), as: b("alice"))
        #expect(!next.isReplay)
        #expect(try h.get("k")?.version == 2, "alice's two puts, none of mallory's")

        // Mallory's own session works as before.
        try h.succeed(other, session: Self.session(2, 1), as: b("mallory"))
        #expect(try h.value("k") == "x")
        // Without users every write has the empty principal: sessions work as before.
        try h.succeed(put, session: Self.session(3, 1), as: [])
        #expect(try h.apply(put, session: Self.session(3, 1), as: []).isReplay)
    }

    @Test("a session recorded before the level is owned by the first write under it after the level")
    func sessionsClaimedAtTheLevel() throws {
        var h = Harness()
        let put = KVCommand.put(KVPut(key: b("k"), value: b("v")))
        try h.succeed(put, session: Self.session(1, 1), as: b("alice"))
        try h.succeed(.upgradeState(KVStateLevel.current))
        #expect(try Self.format(h, 1) == StoredSession.unownedFormat, "the level rewrites no session")
        #expect(try h.apply(put, session: Self.session(1, 1), as: b("alice")).isReplay)
        #expect(try Self.format(h, 1) == StoredSession.unownedFormat, "a replay writes no session")
        try h.succeed(put, session: Self.session(1, 2), as: b("alice"))
        #expect(try Self.format(h, 1) == StoredSession.ownedFormat)
        #expect(Self.denied(try h.apply(put, session: Self.session(1, 3), as: b("mallory"))))
        try h.succeed(put, session: Self.session(1, 3), as: b("alice"))
    }

    @Test("stored sessions of both formats decode, and damage is refused")
    func storedFormats() throws {
        let result = KVApplyResult(revision: Revision(4), outcome: .success(succeeded: true, results: [.put(previous: nil)]))
        for owner in [nil, [], b("alice")] as [[UInt8]?] {
            let s = StoredSession(sequence: SequenceNumber(3), lastUsedRevision: Revision(4), result: result, owner: owner)
            let back = try StoredSession(decoding: s.encoded)
            #expect(back.owner == owner && back.sequence == SequenceNumber(3) && back.result == result)
            #expect(try KVSessionRecency.lastUsed(ofStored: s.encoded) == Revision(4))
            var bad = s.encoded
            bad[0] = 3
            #expect(throws: KVDecodingError.self) { try StoredSession(decoding: bad) }
            #expect(throws: KVDecodingError.self) { try KVSessionRecency.lastUsed(ofStored: bad) }
            #expect(throws: KVDecodingError.self) { try StoredSession(decoding: Array(s.encoded.dropLast())) }
        }
    }
}
