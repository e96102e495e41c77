import Testing

@testable import FaunaKV

/// A state machine that `purgesHistoryLater` records a compaction and leaves the history to
/// `purgeHistory`, step by step. Against one that deletes it within the compaction: the same
/// answers to every read at or after the compacted revision, before, during and after the
/// purge, and in the end the same history left.
@Suite("History purge in steps")
struct HistoryPurgeTests {
    static let keys = ["a", "a\u{0}", "b", "c", "d"]

    /// Every read a client can make at `revisions` of both replicas, as comparable text.
    static func reads(_ h: Harness, _ revisions: ClosedRange<UInt64>) throws -> [String] {
        var out: [String] = []
        for r in revisions {
            for k in keys { out.append("\(k)@\(r)=\(String(describing: try h.get(k, at: r)))") }
            let all = try h.range(KVRangeRequest(range: .all, revision: Revision(r)))
            out.append("all@\(r)=\(all.records.map { "\($0.key):\($0.record)" })")
        }
        return out
    }

    static func history(_ h: Harness) throws -> [String] {
        var out: [String] = []
        try h.backend.scanHistory(in: .all, reverse: false) { key, version in
            out.append("\(key)@\(version.revision)=\(version.value)")
            return true
        }
        return out
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func stepsLeaveWhatOneCompactionLeaves(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var eager = Harness()
        var lazy = Harness()
        lazy.machine = KVStateMachine(purgesHistoryLater: true)
        func both(_ command: KVCommand) throws {
            let want = try eager.apply(command)
            #expect(try lazy.apply(command) == want, "seed \(seed)")
        }
        func randomWrite() throws {
            let key = b(Self.keys[Int(rng.next() % UInt64(Self.keys.count))])
            if rng.next() % 4 == 0 {
                try both(.delete(key, returnsPrevious: false))
            } else {
                try both(.put(KVPut(key: key, value: b("v\(rng.next() % 1000)"))))
            }
        }
        for _ in 0..<80 { try randomWrite() }
        var compacted = Revision.zero
        for round in 0..<3 {
            compacted = Revision(compacted.rawValue + 1 + rng.next() % (UInt64(eager.revision) - compacted.rawValue))
            try both(.compact(compacted))
            // Entries after the compaction, before or between steps, change nothing either.
            let later = round == 0 ? 0 : Int(rng.next() % 4)
            for _ in 0..<later { try randomWrite() }
            #expect(try Self.reads(lazy, compacted.rawValue...lazy.revision) == Self.reads(eager, compacted.rawValue...eager.revision))
            var rest: KeyRange? = .all
            var steps = 0
            let deletesMax = 1 + Int(rng.next() % 3)
            while let range = rest {
                var batch = KVWriteBatch()
                rest = try lazy.machine.purgeHistory(
                    compactedTo: compacted, in: range, deletesMax: deletesMax, scannedMax: 1 + Int(rng.next() % 5),
                    on: lazy.backend, into: &batch)
                #expect(batch.history.count <= deletesMax, "seed \(seed): a step holds at most deletesMax deletes")
                #expect(batch.records.isEmpty && batch.meta.isEmpty)
                lazy.backend.commit(batch)
                #expect(try Self.reads(lazy, compacted.rawValue...lazy.revision) == Self.reads(eager, compacted.rawValue...eager.revision),
                        "seed \(seed) round \(round) step \(steps)")
                steps += 1
                try #require(steps < 1000, "seed \(seed): the purge does not end")
            }
            if later == 0 { #expect(try Self.history(lazy) == Self.history(eager), "seed \(seed) round \(round)") }
            for _ in 0..<30 { try randomWrite() }
        }
        #expect(try lazy.digest() == eager.digest())
    }

    @Test func aCompactionWritesOnlyItsRevisionWhenThePurgeIsLater() throws {
        var lazy = Harness()
        lazy.machine = KVStateMachine(purgesHistoryLater: true)
        try lazy.put("a", "1")
        try lazy.put("a", "2")
        try lazy.put("a", "3")
        let before = lazy.backend.entryCounts.history
        var batch = KVWriteBatch()
        lazy.revision += 1
        let data = KVProposal(command: .compact(Revision(3))).encoded()
        _ = try lazy.machine.apply(entryData: data, at: Revision(lazy.revision), on: lazy.backend, into: &batch)
        #expect(batch.history.isEmpty)
        #expect(try KVStateMachine.compactedRevision(writtenBy: batch) == Revision(3))
        #expect(try KVStateMachine.compactedRevision(writtenBy: KVWriteBatch()) == nil)
        lazy.backend.commit(batch)
        #expect(lazy.backend.entryCounts.history == before)
        #expect(throws: KVReadError.self) { try lazy.get("a", at: 2) }
    }
}
