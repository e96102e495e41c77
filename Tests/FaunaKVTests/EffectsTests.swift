import Testing

@testable import FaunaKV

/// Leaf v2 (docs/AUDIT.md §1): what the state machine reports an entry did. A write that wrote
/// nothing must not appear among the effects, whatever it proposed.
@Suite struct EffectsTests {
    let k = Array("k".utf8), a = Array("a".utf8), b = Array("b".utf8)

    @Test("a put writes its key; a put-if-absent on an existing key writes nothing")
    func putIfAbsent() throws {
        var h = Harness()
        try h.succeed(.put(KVPut(key: k, value: Array("real".utf8))))
        #expect(Shape(h.lastEffects) == Shape(.success, .none, [W(key: k, value: Array("real".utf8))]))
        let result = try h.apply(.put(KVPut(key: k, value: Array("never-written".utf8), ifAbsent: true)))
        #expect(result.outcome == .alreadyExists(key: k))
        #expect(h.lastEffects == KVEntryEffects(outcome: .alreadyExists))
    }

    @Test("an expired session and a replay write nothing")
    func sessions() throws {
        var h = Harness()
        let first = ClientSession(clientID: ClientID(7), sequence: .first)
        try h.succeed(.put(KVPut(key: k, value: a)), session: first)
        #expect(h.lastEffects.writes.count == 1)
        try h.apply(.put(KVPut(key: k, value: a)), session: first)
        #expect(h.lastEffects == KVEntryEffects(outcome: .replay))
        let unknown = ClientSession(clientID: ClientID(8), sequence: SequenceNumber(5))
        let expired = try h.apply(.put(KVPut(key: k, value: b)), session: unknown)
        guard case .sessionExpired = expired.outcome else { Issue.record("got \(expired.outcome)"); return }
        #expect(h.lastEffects == KVEntryEffects(outcome: .sessionExpired))
    }

    @Test("a txn names its branch; the untaken branch writes nothing")
    func txnBranch() throws {
        var h = Harness()
        let compare = KVCompare(key: k, .version(0), .equal)
        let txn = KVTxn(
            compares: [compare], success: [.put(KVPut(key: b, value: b)), .put(KVPut(key: a, value: a))],
            failure: [.put(KVPut(key: k, value: k))])
        try h.succeed(.txn(txn))
        #expect(Shape(h.lastEffects) == Shape(.success, .then, [W(key: a, value: a), W(key: b, value: b)]))
        try h.succeed(.put(KVPut(key: k, value: a)))
        try h.succeed(.txn(txn))
        #expect(Shape(h.lastEffects) == Shape(.success, .else, [W(key: k, value: k)]))
    }

    @Test("a delete range reports each deleted key, in key order")
    func deletes() throws {
        var h = Harness()
        try h.succeed(.put(KVPut(key: a, value: a)))
        try h.succeed(.put(KVPut(key: b, value: b)))
        try h.succeed(.deletePrefix([]))
        #expect(Shape(h.lastEffects) == Shape(.success, .none, [W(key: a, value: nil), W(key: b, value: nil)]))
        try h.succeed(.deletePrefix([]))
        #expect(Shape(h.lastEffects) == Shape(.success, .none, []))
    }

    @Test("the first upgradeLeaves records the boundary; later ones change nothing")
    func upgradeLeaves() throws {
        var h = Harness()
        try h.succeed(.put(KVPut(key: k, value: a)))
        #expect(try h.machine.leafV2From(on: h.backend) == nil)
        try h.succeed(.upgradeLeaves)
        #expect(h.lastEffects.startsLeafV2)
        #expect(try h.machine.leafV2From(on: h.backend) == Revision(2))
        try h.succeed(.upgradeLeaves)
        #expect(!h.lastEffects.startsLeafV2)
        #expect(try h.machine.leafV2From(on: h.backend) == Revision(2))
        let decoded = try KVProposal(decoding: KVProposal(command: .upgradeLeaves).encoded())
        #expect(decoded.command == .upgradeLeaves)
    }

    @Test("upgradeState records each level up to its own once; levels outside 1...current are invalid")
    func upgradeState() throws {
        var h = Harness()
        try h.succeed(.put(KVPut(key: k, value: a)))
        #expect(try h.machine.stateLevel(on: h.backend) == 0)
        try h.succeed(.upgradeState(KVStateLevel.leafV2))
        #expect(h.lastEffects.startsLeafV2)
        #expect(try h.machine.stateLevel(on: h.backend) == KVStateLevel.leafV2)
        try h.succeed(.upgradeState(KVStateLevel.sessionsBound))
        #expect(!h.lastEffects.startsLeafV2, "the boundary stays at the first entry that recorded it")
        #expect(try h.machine.leafV2From(on: h.backend) == Revision(2))
        #expect(try h.machine.stateLevel(on: h.backend) == KVStateLevel.sessionsBound)

        // A fresh state taken to the current level at once: both levels at the same entry.
        var fresh = Harness()
        try fresh.succeed(.upgradeState(KVStateLevel.current))
        #expect(fresh.lastEffects.startsLeafV2)
        #expect(try fresh.machine.stateLevel(on: fresh.backend) == KVStateLevel.current)
        #expect(try fresh.machine.leafV2From(on: fresh.backend) == Revision(1))
        // After upgradeLeaves, upgradeState adds only the levels above it.
        var old = Harness()
        try old.succeed(.upgradeLeaves)
        #expect(try old.machine.stateLevel(on: old.backend) == KVStateLevel.leafV2)
        try old.succeed(.upgradeState(KVStateLevel.current))
        #expect(!old.lastEffects.startsLeafV2)
        #expect(try old.machine.stateLevel(on: old.backend) == KVStateLevel.current)

        let decoded = try KVProposal(decoding: KVProposal(command: .upgradeState(2)).encoded())
        #expect(decoded.command == .upgradeState(2))
        for level: UInt32 in [0, KVStateLevel.current + 1, .max] {
            #expect(throws: KVDecodingError.self) { try KVProposal(decoding: KVProposal(command: .upgradeState(level)).encoded()) }
            var other = Harness()
            guard case .invalid(let e) = try other.apply(.upgradeState(level)).outcome else {
                Issue.record("level \(level): want invalid")
                continue
            }
            #expect(e.code == .malformed)
            #expect(try other.machine.stateLevel(on: other.backend) == 0)
        }
    }
}

/// What a leaf commits to of an entry's effects: outcome, branch, and each key's new value
/// (the records' revisions are left out).
private struct W: Equatable {
    let key: [UInt8]
    let value: [UInt8]?
}

private struct Shape: Equatable {
    let outcome: KVEntryEffects.Outcome
    let branch: KVEntryEffects.Branch
    let writes: [W]
    init(_ outcome: KVEntryEffects.Outcome, _ branch: KVEntryEffects.Branch, _ writes: [W]) {
        self.outcome = outcome
        self.branch = branch
        self.writes = writes
    }
    init(_ e: KVEntryEffects) {
        self.init(e.outcome, e.branch, e.writes.map { W(key: $0.key, value: $0.value) })
    }
}
