import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify
import Foundation
import Testing

@testable import FaunaStore

/// A committed normal entry that puts `key = value`.
func putEntry(_ index: UInt64, term: UInt64 = 1, key: String, value: String) -> Entry {
    let proposal = KVProposal(command: .put(KVPut(key: Array(key.utf8), value: Array(value.utf8))))
    return Entry(term: Term(term), index: LogIndex(index), type: .normal, data: proposal.encoded())
}

/// A mixed stream: a no-op first, a membership change every 50, puts otherwise.
func workload(_ range: ClosedRange<UInt64>, term: UInt64 = 1, keys: UInt64 = 37) -> [Entry] {
    range.map { i in
        if i == 1 { return Entry(term: Term(term), index: LogIndex(i)) }
        if i % 50 == 0 { return Entry(term: Term(term), index: LogIndex(i), type: .confChange, data: [1, 2, UInt8(i % 256)]) }
        return putEntry(i, term: term, key: "key-\(i % keys)", value: "value-\(i)")
    }
}

/// The RFC 9162 root of the journal leaves, computed from scratch in memory.
func naiveRoot(_ entries: [Entry]) -> MerkleHash {
    var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
    for e in entries {
        tree.append(JournalEntry(index: e.index.rawValue, term: e.term.rawValue, type: e.type.rawValue, payload: e.data).leafHash)
    }
    return tree.rootHash
}

@Suite("Store apply: kv + journal + tree + applied index")
struct StoreApplyTests {
    /// One key rewritten by every apply, one entry each (a counter): each insert into `kv`,
    /// whose memtable takes insert hints, sorts just before the one the previous apply made
    /// there (history's land just after). `merkle`'s rewritten last tile does the same, and
    /// with a hint it tripped RocksDB's skiplist assertions in the store tests (docs/STORAGE.md
    /// "Merkle tiles"); Debian's librocksdb keeps its assertions, so a broken splice here
    /// would abort the test process.
    @Test func oneKeyRewrittenByEveryApply() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        for i in UInt64(1)...3000 {
            try store.applyLogged([putEntry(i, key: "counter", value: "v\(i)")])
        }
        let record = try store.kvStateMachine.get(bytes("counter"), on: store.makeKVBackend())
        #expect(record?.value == bytes("v3000") && record?.version == 3000)
        let old = try store.kvStateMachine.get(bytes("counter"), at: Revision(1234), on: store.makeKVBackend())
        #expect(old?.value == bytes("v1234"))
    }

    @Test func applyWritesEverythingTogether() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let all = workload(1...120)
        let results = try store.applyLogged(Array(all[0..<60]))
        try store.applyLogged(Array(all[60...]), confState: ConfState(voters: [NodeID(1)]))
        #expect(results.count == 60)
        #expect(results[0].result == nil)  // the no-op
        #expect(results[49].result == nil)  // a membership change (index 50)
        #expect(results[1].result?.revision == Revision(2))
        #expect(store.appliedIndex == LogIndex(120))
        #expect(store.treeHead.treeSize == 120)
        #expect(store.treeHead.rootHash == naiveRoot(all))
        for e in all { #expect(try store.journalEntry(at: e.index) == e) }
        #expect(try store.journalEntry(at: LogIndex(121)) == nil)
        let record = try store.kvStateMachine.get(bytes("key-\(119 % 37)"), on: store.makeKVBackend())
        #expect(record?.value == bytes("value-119"))
        #expect(record?.modRevision == Revision(119))
        // Roots at earlier sizes come from the stored nodes.
        let prover = store.makeMerkleProver()
        #expect(try prover.rootHash(atSize: 77) == naiveRoot(Array(all[0..<77])))
    }

    @Test func replaysAreSkippedAndGapsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        try store.applyLogged(workload(1...10))
        let before = try store.stateDigest()
        #expect(try store.applyLogged(workload(5...10)).isEmpty)
        #expect(try store.stateDigest() == before)
        let error = #expect(throws: StoreError.self) { try store.applyLogged(workload(12...13)) }
        #expect(error?.code == .invalidRequest)
        try store.applyLogged(workload(8...12))  // overlapping: only 11 and 12 are new
        #expect(store.appliedIndex == LogIndex(12))
    }

    @Test func reopenKeepsAppliedIndexTreeAndState() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let all = workload(1...200)
        let digest: StateDigest
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(Array(all[0..<150]))
            try store.applyLogged(Array(all[150...]), sync: true)
            digest = try store.stateDigest()
        }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(store.appliedIndex == LogIndex(200))
        #expect(store.treeHead.treeSize == 200)
        #expect(store.treeHead.rootHash == naiveRoot(all))
        #expect(try store.stateDigest() == digest)
        try store.applyLogged(workload(201...210))
        #expect(store.treeHead.rootHash == naiveRoot(workload(1...210)))
    }

    @Test func digestsAgreeAcrossReplicasAndDifferOnDivergence() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let a = try Store(path: dir.sub("a")), b = try Store(path: dir.sub("b")), c = try Store(path: dir.sub("c"))
        defer { a.close(); b.close(); c.close() }
        let all = workload(1...300)
        try a.applyLogged(all)
        for i in stride(from: 0, to: all.count, by: 7) { try b.applyLogged(Array(all[i..<min(i + 7, all.count)])) }
        var diverged = all
        diverged[200] = putEntry(201, key: "key-x", value: "different")
        try c.applyLogged(diverged)
        #expect(try a.stateDigest() == b.stateDigest())
        #expect(a.treeHead.rootHash == b.treeHead.rootHash)
        #expect(try a.stateDigest() != c.stateDigest())
        #expect(a.treeHead.rootHash != c.treeHead.rootHash)
    }

    /// A failed apply writes nothing of its batch and stops the state machine.
    @Test func failedApplyWritesNothingAndStops() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        try store.applyLogged(workload(1...10))
        let digest = try store.stateDigest()
        let head = store.treeHead
        // A corrupt stored record: the next put to that key cannot read it.
        try store.db.put(store.cfs.kv, bytes("victim"), [0xFF, 0x00], sync: true)
        let batch = [putEntry(11, key: "fine", value: "v"), putEntry(12, key: "victim", value: "v")]
        let error = #expect(throws: StoreError.self) { try store.applyLogged(batch) }
        #expect(error?.code == .corruptRecord)
        #expect(error?.isFailStop == true)
        #expect(error?.message.contains("column family kv") == true)
        #expect(store.appliedIndex == LogIndex(10))
        #expect(store.treeHead.treeSize == head.treeSize && store.treeHead.rootHash == head.rootHash)
        #expect(try store.journalEntry(at: LogIndex(11)) == nil)
        #expect(try store.kvStateMachine.get(bytes("fine"), on: store.makeKVBackend()) == nil)
        let again = #expect(throws: StoreError.self) { try store.applyLogged([putEntry(11, key: "fine", value: "v")]) }
        #expect(again?.code == .stopped)
        _ = digest
    }

    @Test func reopenDetectsJournalAppliedMismatch() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(workload(1...5))
            // An entry log that lost applied entries (the journal): its last entry, below the
            // applied index, is gone.
            let batch = store.db.makeWriteBatch()
            batch.delete(store.cfs.log, RaftKey.entry(LogIndex(5)))
            try store.db.write(batch, sync: true)
        }
        let error = #expect(throws: StoreError.self) { _ = try Store(path: dir.sub("n1")) }
        #expect(error?.code == .corruptRecord)
    }
}

extension StoreApplyTests {
    /// After log compaction the journal still serves the committed entries a slow follower needs.
    @Test func journalServesEntriesTheLogCompacted() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let all = workload(1...100)
        try store.raftLog.persist(RaftLogUpdate(entries: all))
        try store.applyLogged(all)
        try store.raftLog.compact(through: LogIndex(80), confState: ConfState(voters: [NodeID(1)]))
        #expect(throws: RaftStorageError.compacted) {
            try store.raftLog.entries(from: LogIndex(50), to: LogIndex(90), maxBytes: .max)
        }
        #expect(try store.journalEntries(from: LogIndex(50), to: LogIndex(90), maxBytes: .max) == Array(all[49..<89]))
        #expect(try store.journalEntries(from: LogIndex(50), to: LogIndex(90), maxBytes: 0) == [all[49]])
        #expect(try store.journalEntries(from: LogIndex(101), to: LogIndex(101), maxBytes: 10).isEmpty)
        #expect(throws: StoreError.self) { try store.journalEntries(from: LogIndex(99), to: LogIndex(102), maxBytes: 10) }
    }
}

extension StoreApplyTests {
    /// A group longer than a chunk is written as several batches, the next chunk computed while
    /// the apply writer writes the previous one: the results, state, tree and journal must be
    /// those of applying the same entries in small groups, and must survive a reopen.
    @Test func longGroupsArePipelinedInChunks() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let chunk: UInt64 = 64
        var options = Store.Options()
        options.applyChunkEntries = Int(chunk)
        let all = workload(1...(4 * chunk + 17), keys: 23)
        let small = try Store(path: dir.sub("small"))
        defer { small.close() }
        var expected: [AppliedEntry] = []
        for i in stride(from: 0, to: all.count, by: 5) {
            expected += try small.applyLogged(Array(all[i..<min(i + 5, all.count)]))
        }
        let digest: StateDigest
        do {
            let store = try Store(path: dir.sub("long"), options: options)
            defer { store.close() }
            #expect(try store.applyLogged(all) == expected)
            #expect(store.appliedIndex == LogIndex(4 * chunk + 17))
            #expect(store.treeHead.treeSize == 4 * chunk + 17)
            #expect(store.treeHead.rootHash == small.treeHead.rootHash)
            #expect(store.treeHead.rootHash == naiveRoot(all))
            digest = try store.stateDigest()
            #expect(digest == (try small.stateDigest()))
            for e in all where e.index.rawValue % 97 == 0 { #expect(try store.journalEntry(at: e.index) == e) }
            // And on top of a pipelined group, a short one.
            try store.applyLogged(workload((4 * chunk + 18)...(4 * chunk + 20), keys: 23))
        }
        let reopened = try Store(path: dir.sub("long"), options: options)
        defer { reopened.close() }
        #expect(reopened.appliedIndex == LogIndex(4 * chunk + 20))
        #expect(reopened.treeHead.rootHash == naiveRoot(workload(1...(4 * chunk + 20), keys: 23)))
    }

    /// Each chunk is atomic on its own: a failure in a later chunk keeps the chunks before it,
    /// with the applied index, journal and tree in step, and stops the state machine.
    @Test func failureInALaterChunkKeepsTheEarlierOnes() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let chunk: UInt64 = 64
        var options = Store.Options()
        options.applyChunkEntries = Int(chunk)
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        try store.db.put(store.cfs.kv, bytes("victim"), [0xFF, 0x00], sync: true)
        var group = workload(1...(3 * chunk))
        group[Int(chunk) + 10] = putEntry(chunk + 11, key: "victim", value: "v")  // in the second chunk
        let error = #expect(throws: StoreError.self) { try store.applyLogged(group) }
        #expect(error?.code == .corruptRecord)
        #expect(store.appliedIndex == LogIndex(chunk))
        #expect(store.treeHead.treeSize == chunk)
        #expect(store.treeHead.rootHash == naiveRoot(Array(group[0..<Int(chunk)])))
        #expect(try store.journalEntry(at: LogIndex(chunk)) == group[Int(chunk) - 1])
        #expect(try store.journalEntry(at: LogIndex(chunk + 1)) == nil)
        let again = #expect(throws: StoreError.self) { try store.applyLogged([group[Int(chunk)]]) }
        #expect(again?.code == .stopped)
    }
}
