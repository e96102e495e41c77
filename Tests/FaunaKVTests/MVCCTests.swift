import Testing

@testable import FaunaKV

@Suite("MVCC: versions, revisions, history, compaction")
struct MVCCTests {
    /// a: put "1" @1, put "2" @3, delete @5, put "3" @8. b: put "x" @2.
    static func setUp() throws -> Harness {
        var h = Harness()
        try h.put("a", "1")
        try h.put("b", "x")
        try h.put("a", "2")
        try h.succeed(.delete(b("a")), gap: 2)
        try h.put("a", "3", gap: 3)
        return h
    }

    @Test("version counts puts since create; delete resets it; create revision restarts")
    func versions() throws {
        let h = try Self.setUp()
        #expect(try h.get("a", at: 1) == record("1", create: 1, mod: 1, version: 1))
        #expect(try h.get("a", at: 3) == record("2", create: 1, mod: 3, version: 2))
        #expect(try h.get("a") == record("3", create: 8, mod: 8, version: 1))
    }

    @Test(
        "get at a revision returns the state as of it, gaps included",
        arguments: [(0, nil), (1, "1"), (2, "1"), (3, "2"), (4, "2"), (5, nil), (7, nil), (8, "3")] as [(UInt64, String?)])
    func getAt(revision: UInt64, want: String?) throws {
        let h = try Self.setUp()
        if revision == 0 {
            #expect(try h.value("a", at: 0) == "3", "revision 0 means current")
            #expect(try h.value("a", at: nil) == "3")
        } else {
            #expect(try h.value("a", at: revision) == want)
        }
    }

    @Test("a future revision is a typed error")
    func future() throws {
        let h = try Self.setUp()
        #expect(throws: KVReadError.futureRevision(requested: Revision(9), current: Revision(8))) { try h.get("a", at: 9) }
        #expect(throws: KVReadError.futureRevision(requested: Revision(9), current: Revision(8))) {
            try h.range(KVRangeRequest(range: .all, revision: Revision(9)))
        }
    }

    @Test("range at a revision, forward and reverse, with limit")
    func rangeAt() throws {
        let h = try Self.setUp()
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(3))) == ["a", "b"])
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(5))) == ["b"])
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(3), isReversed: true)) == ["b", "a"])
        let limited = try h.range(KVRangeRequest(range: .all, limit: 1, revision: Revision(3), isReversed: true))
        #expect(limited.records.map(\.record) == [record("x", create: 2, mod: 2, version: 1)])
        #expect(limited.count == 2 && limited.hasMore && limited.revision == Revision(8))
        #expect(try h.range(KVRangeRequest(range: .all, revision: Revision(1))).records.map(\.record) == [record("1", create: 1, mod: 1, version: 1)])
    }

    @Test("compaction: reads below fail, reads at or above still work, old history is gone")
    func compaction() throws {
        var h = try Self.setUp()
        #expect(h.backend.entryCounts.history == 3)  // a@1, a@3, the tombstone a@5; a@8 and b@2 are current
        try h.succeed(.compact(Revision(3)))  // rev 9
        #expect(throws: KVReadError.compacted(requested: Revision(2), compacted: Revision(3))) { try h.get("a", at: 2) }
        #expect(throws: KVReadError.compacted(requested: Revision(1), compacted: Revision(3))) {
            try h.range(KVRangeRequest(range: .all, revision: Revision(1)))
        }
        #expect(try h.value("a", at: 3) == "2")
        #expect(try h.value("b", at: 3) == "x")
        #expect(try h.value("a", at: 5) == nil)
        #expect(try h.value("a", at: 8) == "3")
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(4))) == ["a", "b"])
        #expect(h.backend.entryCounts.history == 2)  // a@1 removed
        #expect(try h.machine.compactedRevision(on: h.backend) == Revision(3))

        try h.succeed(.compact(Revision(6)))  // newest a <= 6 is the tombstone @5: dropped with a@3
        #expect(h.backend.entryCounts.history == 0)
        #expect(try h.value("a", at: 6) == nil)
        #expect(try h.value("b", at: 6) == "x")
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(7))) == ["b"])
        #expect(try h.value("a") == "3")
    }

    @Test("history keeps only versions that are no longer current; compaction drops those the current record covers")
    func historyHoldsSupersededVersions() throws {
        var h = Harness()
        try h.put("a", "1")
        try h.put("b", "2")
        #expect(h.backend.entryCounts.history == 0, "a key written once is stored once")
        try h.put("a", "3")  // @3
        #expect(h.backend.entryCounts.history == 1)
        #expect(try h.machine.get(b("a"), at: Revision(2), on: h.backend) == record("1", create: 1, mod: 1, version: 1))
        try h.succeed(.delete(b("b")))  // @4: b@2 and the tombstone b@4
        #expect(h.backend.entryCounts.history == 3)
        #expect(try h.value("b", at: 3) == "2")
        #expect(try h.value("b", at: 4) == nil)
        try h.succeed(.compact(Revision(4)))  // @5
        #expect(h.backend.entryCounts.history == 0, "a@1 is covered by the current a@3; b ended in a tombstone")
        #expect(try h.value("a", at: 4) == "3")
        #expect(try h.value("b", at: 4) == nil)
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(4))) == ["a"])
    }

    @Test("compaction to a compacted or future revision is a typed outcome")
    func compactionOutcomes() throws {
        var h = try Self.setUp()
        try h.succeed(.compact(Revision(3)))
        #expect(try h.apply(.compact(Revision(3))).outcome == .compacted(requested: Revision(3), compacted: Revision(3)))
        #expect(try h.apply(.compact(Revision(2))).outcome == .compacted(requested: Revision(2), compacted: Revision(3)))
        #expect(try h.apply(.compact(Revision(50))).outcome == .futureRevision(requested: Revision(50), current: Revision(11)))
    }

    @Test("an ifAbsent put writes only if the key is absent")
    func ifAbsent() throws {
        var h = try Self.setUp()
        #expect(try h.apply(.put(KVPut(key: b("a"), value: b("4"), ifAbsent: true))).outcome == .alreadyExists(key: b("a")))
        #expect(try h.value("a") == "3")
        try h.succeed(.delete(b("a")))
        let (_, results) = try h.succeed(.put(KVPut(key: b("a"), value: b("5"), ifAbsent: true, returnsPrevious: true)))
        #expect(results == [.put(previous: nil)])
        #expect(try h.get("a") == record("5", create: 11, mod: 11, version: 1))
    }

    @Test("put returns the previous record when asked")
    func previous() throws {
        var h = try Self.setUp()
        let (_, results) = try h.succeed(.put(KVPut(key: b("a"), value: b("4"), returnsPrevious: true)))
        #expect(results == [.put(previous: record("3", create: 8, mod: 8, version: 1))])
        let (_, quiet) = try h.succeed(.put(KVPut(key: b("a"), value: b("5"))))
        #expect(quiet == [.put(previous: nil)])
    }
}
