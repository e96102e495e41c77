import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify
import Foundation
import Testing

@testable import FaunaStore

/// Leaf v2 in the store (docs/AUDIT.md §1, ADR 0009): a data directory whose leaves are v1
/// gets a boundary at its first `upgradeLeaves`; leaves before it keep their v1 hashes, so
/// earlier roots (and the heads and proofs signed over them) stay valid; leaves from it on
/// commit to effects that the journal stores, and the journal re-hash needs no state machine.
@Suite struct LeafV2Tests {
    static var options: Store.Options {
        var o = Store.Options()
        o.applyChunkEntries = 64
        return o
    }

    static func upgradeEntry(_ index: UInt64) -> Entry {
        Entry(term: Term(1), index: LogIndex(index), type: .normal, data: KVProposal(command: .upgradeLeaves).encoded())
    }

    @Test("v1 leaves stay v1 after the boundary; v2 leaves carry effects; a reopen keeps the boundary")
    func upgradeAtABoundary() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let before = workload(1...40)
        let rootBefore = try Self.phaseOne(dir, before)
        try Self.phaseTwo(dir, before, rootBefore)
        let store = try Store(path: dir.sub("n1"), options: Self.options)
        defer { store.close() }
        #expect(store.leafV2From == LogIndex(41))
        #expect(store.confChangeIndexes(after: LogIndex(0)) == [LogIndex(44)])
        try store.applyLogged([Self.upgradeEntry(45)])
        #expect(store.leafV2From == LogIndex(41), "a later upgradeLeaves changes nothing")
        #expect(try store.auditJournal().problem == nil)
    }

    static func phaseOne(_ dir: TemporaryDirectory, _ before: [Entry]) throws -> MerkleHash {
        let store = try Store(path: dir.sub("n1"), options: Self.options)
        defer { store.close() }
        try store.applyLogged(before)
        #expect(store.treeHead.rootHash == naiveRoot(before), "a store without a boundary writes v1 leaves")
        #expect(store.leafV2From == nil)
        return store.treeHead.rootHash
    }

    static func phaseTwo(_ dir: TemporaryDirectory, _ before: [Entry], _ rootBefore: MerkleHash) throws {

        // Reopened (as by a newer binary): the marker, then a put-if-absent that finds its key,
        // a put, a membership change.
        let store = try Store(path: dir.sub("n1"), options: Self.options)
        defer { store.close() }
        let ifAbsent = Entry(
            term: Term(1), index: LogIndex(43), type: .normal,
            data: KVProposal(command: .put(KVPut(key: bytes("key-2"), value: bytes("never"), ifAbsent: true))).encoded())
        let after = [Self.upgradeEntry(41), putEntry(42, key: "fresh", value: "v"), ifAbsent,
                     Entry(term: Term(1), index: LogIndex(44), type: .confChange, data: [1, 2, 3])]
        try store.applyLogged(after)
        #expect(store.leafV2From == LogIndex(41))
        #expect(try store.makeMerkleProver().rootHash(atSize: 40) == rootBefore, "earlier roots are unchanged")
        let put = try #require(try store.journalRecord(at: LogIndex(42)))
        #expect(put.effects == JournalEffects(outcome: .success, branch: .none, effects: [Effect.put(key: bytes("fresh"), value: bytes("v"))]))
        let refused = try #require(try store.journalRecord(at: LogIndex(43)))
        #expect(refused.effects == JournalEffects(outcome: .alreadyExists, branch: .none, effects: []))
        #expect(try store.journalRecord(at: LogIndex(44))?.effects?.outcome == .noCommand)
        #expect(try store.journalRecord(at: LogIndex(40))?.effects == nil, "v1 below the boundary")
        // The root is over v1 leaves up to 40 and v2 leaves from 41.
        var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
        for e in before { tree.append(JournalRecord(entry: e, effects: nil).leaf.leafHash) }
        for i in 41...44 { tree.append(try #require(try store.journalRecord(at: LogIndex(UInt64(i)))).leaf.leafHash) }
        #expect(store.treeHead.rootHash == tree.rootHash)
        #expect(try store.auditJournal().problem == nil)
        #expect(store.confChangeIndexes(after: LogIndex(0)) == [LogIndex(44)], "the membership changes applied since the index was kept")
    }

    @Test("an edited effects record is found by the journal re-hash")
    func editedEffectsAreFound() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        try store.applyLogged([Self.upgradeEntry(1), putEntry(2, key: "k", value: "v")])
        var record = try #require(try store.journalRecord(at: LogIndex(2)))
        record.effects?.effects[0].valueHash = Effect.valueHash(bytes("w"))
        let batch = store.db.makeWriteBatch()
        batch.put(store.cfs.effects, bigEndianBytes(2), RaftLogCodec.encode(effects: try #require(record.effects)))
        try store.db.write(batch, sync: false)
        let audit = try store.auditJournal()
        #expect(audit.problem?.contains("journal entry 2") == true, "\(String(describing: audit.problem))")
    }

    @Test("journal records decode what they encode and refuse damage without trapping")
    func journalCodec() throws {
        let entry = putEntry(9, key: "k", value: "v")
        let effects = JournalEffects(
            outcome: .success, branch: .then,
            effects: [Effect(key: bytes("a"), valueHash: nil), Effect.put(key: bytes("b"), value: bytes("x"))])
        let encoded = RaftLogCodec.encode(journal: entry, effects: effects)
        #expect(try RaftLogCodec.decodeJournal(encoded, index: entry.index) == JournalRecord(entry: entry, effects: effects))
        #expect(try RaftLogCodec.decodeJournal(RaftLogCodec.encode(journal: entry, effects: nil), index: entry.index).effects == nil)
        for cut in 1..<30 {
            // Cutting into the effects must throw, never trap (beyond them the payload just shrinks).
            _ = try? RaftLogCodec.decodeJournal(Array(encoded.prefix(cut)), index: entry.index)
        }
        var badKind = encoded
        badKind[20] = 9
        #expect(throws: DecodeError.self) { try RaftLogCodec.decodeJournal(badKind, index: entry.index) }
        var hugeCount = encoded
        hugeCount[12] = 0xFF
        #expect(throws: DecodeError.self) { try RaftLogCodec.decodeJournal(hugeCount, index: entry.index) }
    }
}
