import Testing

@testable import FaunaKV

struct CompareCase: Sendable, CustomTestStringConvertible {
    let target: KVCompare.Target
    let op: KVCompare.Operator
    let onExisting: Bool
    let onMissing: Bool
    var testDescription: String { "\(target) \(op)" }
}

@Suite("Transactions (etcd Txn semantics)")
struct TxnTests {
    /// Key "k" is put at revision 2 and again at 4: value "b", version 2, create 2, mod 4.
    /// "missing" never exists (version/create/mod 0; value compares are always false).
    static let cases: [CompareCase] = [
        CompareCase(target: .value(b("b")), op: .equal, onExisting: true, onMissing: false),
        CompareCase(target: .value(b("a")), op: .equal, onExisting: false, onMissing: false),
        CompareCase(target: .value(b("b")), op: .notEqual, onExisting: false, onMissing: false),
        CompareCase(target: .value(b("a")), op: .notEqual, onExisting: true, onMissing: false),
        CompareCase(target: .value(b("c")), op: .less, onExisting: true, onMissing: false),
        CompareCase(target: .value(b("b")), op: .less, onExisting: false, onMissing: false),
        CompareCase(target: .value(b("a")), op: .greater, onExisting: true, onMissing: false),
        CompareCase(target: .value(b("ba")), op: .greater, onExisting: false, onMissing: false),
        CompareCase(target: .value([]), op: .greater, onExisting: true, onMissing: false),
        CompareCase(target: .version(2), op: .equal, onExisting: true, onMissing: false),
        CompareCase(target: .version(0), op: .equal, onExisting: false, onMissing: true),
        CompareCase(target: .version(2), op: .notEqual, onExisting: false, onMissing: true),
        CompareCase(target: .version(3), op: .less, onExisting: true, onMissing: true),
        CompareCase(target: .version(2), op: .less, onExisting: false, onMissing: true),
        CompareCase(target: .version(1), op: .greater, onExisting: true, onMissing: false),
        CompareCase(target: .version(0), op: .greater, onExisting: true, onMissing: false),
        CompareCase(target: .createRevision(Revision(2)), op: .equal, onExisting: true, onMissing: false),
        CompareCase(target: .createRevision(Revision(0)), op: .equal, onExisting: false, onMissing: true),
        CompareCase(target: .createRevision(Revision(4)), op: .notEqual, onExisting: true, onMissing: true),
        CompareCase(target: .createRevision(Revision(3)), op: .less, onExisting: true, onMissing: true),
        CompareCase(target: .createRevision(Revision(2)), op: .greater, onExisting: false, onMissing: false),
        CompareCase(target: .createRevision(Revision(1)), op: .greater, onExisting: true, onMissing: false),
        CompareCase(target: .modRevision(Revision(4)), op: .equal, onExisting: true, onMissing: false),
        CompareCase(target: .modRevision(Revision(2)), op: .equal, onExisting: false, onMissing: false),
        CompareCase(target: .modRevision(Revision(4)), op: .notEqual, onExisting: false, onMissing: true),
        CompareCase(target: .modRevision(Revision(5)), op: .less, onExisting: true, onMissing: true),
        CompareCase(target: .modRevision(Revision(4)), op: .less, onExisting: false, onMissing: true),
        CompareCase(target: .modRevision(Revision(3)), op: .greater, onExisting: true, onMissing: false),
    ]

    static func setUp() throws -> Harness {
        var h = Harness()
        try h.put("other", "x")  // rev 1
        try h.put("k", "a")  // rev 2
        try h.put("other", "y")  // rev 3
        try h.put("k", "b")  // rev 4
        #expect(try h.get("k") == record("b", create: 2, mod: 4, version: 2))
        return h
    }

    /// Runs `if compare then put then=1 else put else=1` and checks branch, results and writes.
    static func run(_ compare: KVCompare, expect: Bool, _ h: inout Harness) throws {
        let txn = KVTxn(
            compares: [compare], success: [.put(KVPut(key: b("then"), value: b("1")))],
            failure: [.put(KVPut(key: b("else"), value: b("1")))])
        let (succeeded, results) = try h.succeed(.txn(txn))
        #expect(succeeded == expect)
        #expect(results == [.put(previous: nil)])
        #expect((try h.get("then") != nil) == expect)
        #expect((try h.get("else") != nil) == !expect)
    }

    @Test("compare on an existing key: each target × operator", arguments: cases)
    func compareExisting(c: CompareCase) throws {
        var h = try Self.setUp()
        try Self.run(KVCompare(key: b("k"), c.target, c.op), expect: c.onExisting, &h)
    }

    @Test("compare on a missing key: zero record, value compares false", arguments: cases)
    func compareMissing(c: CompareCase) throws {
        var h = try Self.setUp()
        try Self.run(KVCompare(key: b("missing"), c.target, c.op), expect: c.onMissing, &h)
    }

    @Test("all compares must hold; a range compare must hold for every key in it")
    func multipleCompares() throws {
        var h = try Self.setUp()
        try Self.run(KVCompare(key: b("k"), .version(2), .equal), expect: true, &h)
        var h2 = try Self.setUp()
        let both = KVTxn(
            compares: [KVCompare(key: b("k"), .version(2), .equal), KVCompare(key: b("other"), .value(b("x")), .equal)],
            success: [.put(KVPut(key: b("then"), value: []))])
        #expect(try h2.succeed(.txn(both)).succeeded == false)
        #expect(try h2.get("then") == nil)
        var h3 = try Self.setUp()
        // Keys "k" (mod 4) and "other" (mod 3) both lie in [a, z): both have mod > 2, not both mod > 3.
        try Self.run(KVCompare(range: KeyRange(start: b("a"), end: b("z")), .modRevision(Revision(2)), .greater), expect: true, &h3)
        var h4 = try Self.setUp()
        try Self.run(KVCompare(range: KeyRange(start: b("a"), end: b("z")), .modRevision(Revision(3)), .greater), expect: false, &h4)
    }

    @Test("operations share one revision and see earlier writes of the same txn")
    func sharedRevisionAndVisibility() throws {
        var h = try Self.setUp()
        let txn = KVTxn(
            compares: [],
            success: [
                .put(KVPut(key: b("n1"), value: b("1"))),
                .range(KVRangeRequest(range: .prefix(b("n")))),
                .deleteRange(KVDeleteRange(range: .single(b("k")), returnsPrevious: true)),
                .put(KVPut(key: b("n2"), value: b("2"), returnsPrevious: true)),
                .range(KVRangeRequest(range: .prefix(b("n")), isCountOnly: true)),
                .range(KVRangeRequest(range: .single(b("k")), revision: Revision(4))),
            ])
        let (succeeded, results) = try h.succeed(.txn(txn), gap: 10)
        #expect(succeeded)
        #expect(h.revision == 14)
        guard results.count == 6, case .range(let first) = results[1], case .range(let count) = results[4],
            case .range(let before) = results[5]
        else {
            Issue.record("results: \(results)")
            return
        }
        #expect(first.records == [KVKeyValue(key: b("n1"), record: record("1", create: 14, mod: 14, version: 1))])
        #expect(first.revision == Revision(14))
        #expect(results[2] == .deleteRange(deleted: 1, previous: [KVKeyValue(key: b("k"), record: record("b", create: 2, mod: 4, version: 2))]))
        #expect(results[3] == .put(previous: nil))
        #expect(count.count == 2 && count.records.isEmpty)
        #expect(before.records.map(\.record.value) == [b("b")])
        #expect(try h.get("n2") == record("2", create: 14, mod: 14, version: 1))
        #expect(try h.get("k") == nil)
        #expect(try h.get("k", at: 13) == record("b", create: 2, mod: 4, version: 2))
    }

    @Test("an ifAbsent put on an existing key aborts the whole txn: nothing written")
    func ifAbsentAbortsTxn() throws {
        var h = try Self.setUp()
        let txn = KVTxn(
            compares: [], success: [.put(KVPut(key: b("new"), value: b("1"))), .put(KVPut(key: b("k"), value: b("2"), ifAbsent: true))])
        let result = try h.apply(.txn(txn))
        #expect(result.outcome == .alreadyExists(key: b("k")))
        #expect(try h.get("new") == nil)
        #expect(try h.get("k")?.value == b("b"))
        #expect(try h.machine.currentRevision(on: h.backend) == Revision(5))
    }

    @Test("a read below the compacted revision fails the whole txn (etcd checkRange)")
    func compactedReadInTxn() throws {
        var h = try Self.setUp()
        try h.succeed(.compact(Revision(3)))
        let txn = KVTxn(compares: [], success: [.put(KVPut(key: b("new"), value: [])), .range(KVRangeRequest(range: .all, revision: Revision(2)))])
        #expect(try h.apply(.txn(txn)).outcome == .compacted(requested: Revision(2), compacted: Revision(3)))
        #expect(try h.get("new") == nil)
        let future = KVTxn(compares: [], success: [.range(KVRangeRequest(range: .all, revision: Revision(100)))])
        #expect(try h.apply(.txn(future)).outcome == .futureRevision(requested: Revision(100), current: Revision(7)))
    }

    @Test("ranges in a txn are capped at txnRangeResultsMax")
    func txnRangeCap() throws {
        var h = Harness()
        for i in 0..<(KVLimits.txnRangeResultsMax + 5) {
            try h.put("k\(1_000_000 + i)", "")
        }
        let (_, results) = try h.succeed(.txn(KVTxn(compares: [], success: [.range(KVRangeRequest(range: .all))])))
        guard case .range(let r) = results.first else {
            Issue.record("results: \(results)")
            return
        }
        #expect(r.records.count == KVLimits.txnRangeResultsMax)
        #expect(r.count == KVLimits.txnRangeResultsMax + 5)
        #expect(r.hasMore)
    }

    @Test("a malformed entry is an .invalid outcome that writes nothing but the revision")
    func malformedEntry() throws {
        let h = try Self.setUp()
        var batch = KVWriteBatch()
        let result = try h.machine.apply(entryData: [9, 9, 9], at: Revision(5), on: h.backend, into: &batch)
        guard case .invalid(let error) = result.outcome else {
            Issue.record("outcome: \(result.outcome)")
            return
        }
        #expect(error.code == .malformed)
        #expect(batch.records.isEmpty && batch.history.isEmpty)
        #expect(batch.meta.count == 1)
    }

    @Test("apply refuses a revision that does not grow")
    func revisionMustGrow() throws {
        let h = try Self.setUp()
        var batch = KVWriteBatch()
        #expect(throws: KVApplyError.revisionNotIncreasing(got: Revision(4), current: Revision(4))) {
            try h.machine.apply(KVProposal(command: .compact(Revision(1))), at: Revision(4), on: h.backend, into: &batch)
        }
        #expect(batch.isEmpty)
    }
}
