import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// A compaction entry only records its revision; the store deletes the history it made
/// unreadable at most `historyPurgeStepDeletes` versions per apply, resumes after a reopen,
/// and records the revision as purged at the end (docs/STORAGE.md "History purge").
@Suite("Store history purge")
struct StoreHistoryPurgeTests {
    static func historyCount(_ store: Store) throws -> Int {
        var n = 0
        try store.makeKVBackend().scanHistory(in: .all, reverse: false) { _, _ in
            n += 1
            return true
        }
        return n
    }

    static func purged(_ store: Store) throws -> UInt64? {
        try store.db.get(store.cfs.meta, MetaKey.historyPurged).flatMap { uint64(bigEndian: $0[...]) }
    }

    @Test func thePurgeIsBoundedPerApplyAndSurvivesAReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.historyPurgeStepDeletes = 100
        // 1,200 puts over 40 keys: 1,160 superseded versions in history.
        let puts = (1...1_200).map { i in putEntry(UInt64(i), key: "key-\(i % 40)", value: "value-\(i)") }
        let compact = Entry(term: Term(1), index: LogIndex(1_201), data: KVProposal(command: .compact(Revision(1_150))).encoded())
        var next: UInt64 = 1_202
        func noop() -> Entry {
            defer { next += 1 }
            return Entry(term: Term(1), index: LogIndex(next))
        }
        var counts: [Int] = []
        do {
            let store = try Store(path: dir.sub("n1"), options: options)
            defer { store.close() }
            try store.applyLogged(puts)
            #expect(try Self.historyCount(store) == 1_160)
            let reads = try (1_150...1_200).map { r in try store.kvStateMachine.get(Array("key-7".utf8), at: Revision(UInt64(r)), on: store.makeKVBackend()) }
            counts.append(try Self.historyCount(store))
            try store.applyLogged([compact])
            counts.append(try Self.historyCount(store))
            for _ in 0..<3 {
                try store.applyLogged([noop()])
                counts.append(try Self.historyCount(store))
            }
            // Each apply deletes at most 100; nothing is recorded as purged yet.
            #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 - $1 > 0 && $0 - $1 <= 100 }, "\(counts)")
            #expect(try Self.purged(store) == nil)
            let now = try (1_150...1_200).map { r in try store.kvStateMachine.get(Array("key-7".utf8), at: Revision(UInt64(r)), on: store.makeKVBackend()) }
            #expect(now == reads, "reads at the compacted revision and after do not change")
        }
        // A reopen starts the purge over (the place reached is not kept) and finishes it.
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        #expect(try Self.historyCount(store) == counts.last)
        var steps = 0
        while try Self.purged(store) == nil {
            try store.applyLogged([noop()])
            steps += 1
            try #require(steps < 100, "the purge ends")
        }
        // Versions at or after 1,150 of the keys written after it stay; everything older goes.
        #expect(try Self.purged(store) == 1_150)
        var left: [String] = []
        try store.makeKVBackend().scanHistory(in: .all, reverse: false) { key, version in
            left.append("\(String(decoding: key, as: UTF8.self))@\(version.revision)")
            return true
        }
        // Every key keeps its newest version at or before 1,150 (a read at 1,150 returns it);
        // the 10 keys also written in 1,151...1,160 keep that later version too: 30 + 2 × 10.
        #expect(left.count == 50, "\(left)")
        #expect(try store.kvStateMachine.compactedRevision(on: store.makeKVBackend()) == Revision(1_150))
        // A later compaction starts a new purge: to the current revision (the first
        // compaction's entry; the no-ops after it are not state machine entries), which
        // leaves no history at all.
        let target: UInt64 = 1_201
        try store.applyLogged([Entry(term: Term(1), index: LogIndex(next), data: KVProposal(command: .compact(Revision(target))).encoded())])
        next += 1
        while try Self.purged(store) != target {
            try store.applyLogged([noop()])
            try #require(next < 2_000, "the second purge ends")
        }
        #expect(try Self.historyCount(store) == 0)
    }

    /// A node with nothing to apply purges by idle steps (`purgeHistoryWhileIdle`): each
    /// deletes at most a step's worth, the last records the revision, and after it a step
    /// does nothing and says so.
    @Test func idleStepsFinishThePurgeWithoutApplies() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.historyPurgeStepDeletes = 100
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        #expect(try store.purgeHistoryWhileIdle() == false, "no purge under way")
        try store.applyLogged((1...1_200).map { i in putEntry(UInt64(i), key: "key-\(i % 40)", value: "value-\(i)") })
        // The compaction's own apply takes the first step.
        try store.applyLogged([Entry(term: Term(1), index: LogIndex(1_201), data: KVProposal(command: .compact(Revision(1_150))).encoded())])
        var counts = [try Self.historyCount(store)]
        var more = true
        while more {
            more = try store.purgeHistoryWhileIdle()
            counts.append(try Self.historyCount(store))
            try #require(counts.count < 100, "the purge ends")
        }
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 - $1 >= 0 && $0 - $1 <= 100 }, "\(counts)")
        #expect(counts.count > 5, "several steps: \(counts)")
        #expect(try Self.purged(store) == 1_150)
        #expect(counts.last == 50)
        #expect(store.appliedIndex == LogIndex(1_201), "idle steps apply nothing")
        #expect(try store.purgeHistoryWhileIdle() == false)
    }
}
