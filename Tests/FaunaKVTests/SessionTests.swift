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
}
