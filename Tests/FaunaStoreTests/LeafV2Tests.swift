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
        // Entries 1 and 2 were applied together: one group record, under index 1.
        #expect(try StoreLayoutTests.keys(store, store.cfs.effects) == [bigEndianBytes(1)])
        var group = try RaftLogCodec.decodeEffectsGroup(try #require(try store.db.get(store.cfs.effects, bigEndianBytes(1))))
        #expect(group.count == 2)
        group[1].effects[0].valueHash = Effect.valueHash(bytes("w"))
        var writer = RaftLogCodec.EffectsGroupWriter()
        for (offset, e) in group.enumerated() { writer.add(e, at: LogIndex(1 + UInt64(offset))) }
        let batch = store.db.makeWriteBatch()
        let taken = writer.take()
        batch.put(store.cfs.effects, bigEndianBytes(1), try #require(taken).record)
        try store.db.write(batch, sync: false)
        #expect(try store.journalRecord(at: LogIndex(2))?.effects == group[1], "a verified read sees the edit too")
        let audit = try store.auditJournal()
        #expect(audit.problem?.contains("journal entry 2") == true, "\(String(describing: audit.problem))")
    }

    @Test("effects group records decode what they encode, one member or all, and refuse damage without trapping")
    func effectsGroupCodec() throws {
        let members = (0..<5).map { i in
            JournalEffects(
                outcome: i == 3 ? .alreadyExists : .success, branch: i == 1 ? .then : .none,
                effects: i == 3 ? [] : (0...i).map { Effect.put(key: bytes("k\(i)-\($0)"), value: bytes("v\($0)")) })
        }
        var writer = RaftLogCodec.EffectsGroupWriter()
        for (i, m) in members.enumerated() { writer.add(m, at: LogIndex(10 + UInt64(i))) }
        #expect(writer.count == 5)
        let taken = writer.take()
        let (first, record) = try #require(taken)
        #expect(first == LogIndex(10))
        #expect(writer.take() == nil, "take leaves an empty writer")
        #expect(try RaftLogCodec.decodeEffectsGroup(record) == members)
        for (i, m) in members.enumerated() { #expect(try RaftLogCodec.decodeEffects(record, offset: UInt64(i)) == m) }
        #expect(try RaftLogCodec.decodeEffects(record, offset: 5) == nil)
        // A version 1 record is a group of one.
        let single = RaftLogCodec.encode(effects: members[2])
        #expect(try RaftLogCodec.decodeEffectsGroup(single) == [members[2]])
        #expect(try RaftLogCodec.decodeEffects(single, offset: 0) == members[2])
        #expect(try RaftLogCodec.decodeEffects(single, offset: 1) == nil)
        for cut in 0..<record.count {
            #expect(throws: DecodeError.self) { try RaftLogCodec.decodeEffectsGroup(Array(record.prefix(cut))) }
            _ = try? RaftLogCodec.decodeEffects(Array(record.prefix(cut)), offset: 4)
        }
        var hugeCount = record
        hugeCount[1] = 0xFF
        #expect(throws: DecodeError.self) { try RaftLogCodec.decodeEffectsGroup(hugeCount) }
        var longMember = record
        longMember[8] = 0x7F  // the first member's length
        #expect(throws: DecodeError.self) { try RaftLogCodec.decodeEffectsGroup(longMember) }
        _ = try? RaftLogCodec.decodeEffects(longMember, offset: 2)
        #expect(throws: DecodeError.self) { try RaftLogCodec.decodeEffectsGroup(record + [0]) }
    }

    @Test("a chunk's effects are split into groups of at most effectsGroupBytes, read back across their edges")
    func effectsGroupsAreBounded() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.applyChunkEntries = 1024
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        // 2 KiB keys: about 32 effects per 64 KiB group, so one 200-entry chunk makes several.
        let long = String(repeating: "x", count: 2048)
        let entries = [Self.upgradeEntry(1)] + (2...200).map { putEntry(UInt64($0), key: "\(long)\($0)", value: "v") }
        try store.applyLogged(entries)
        let keys = try StoreLayoutTests.keys(store, store.cfs.effects)
        #expect(keys.count >= 5 && keys.count <= 8, "\(keys.count) group records")
        for key in keys {
            let record = try #require(try store.db.get(store.cfs.effects, key))
            #expect(record.count < ChunkAudit.effectsGroupBytes + 4096, "a group ends at the first member past the bound")
        }
        let records = try store.journalRecords(from: LogIndex(1), to: LogIndex(201), maxBytes: .max)
        #expect(records.count == 200)
        for r in records.dropFirst() {
            #expect(r.effects?.effects.map(\.key) == [bytes("\(long)\(r.entry.index.rawValue)")])
            #expect(try store.journalRecord(at: r.entry.index) == r)
        }
        #expect(try store.auditJournal().problem == nil)
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
