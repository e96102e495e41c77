import Testing

@testable import FaunaKV

@Suite("Storage encodings: records, history values, history keys, results")
struct StorageCodecTests {
    @Test("record round trip and fixed layout")
    func recordLayout() throws {
        let r = record("v", create: 2, mod: 0x0102, version: 3)
        let bytes = r.encoded
        #expect(bytes == [1] + [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 1, 2] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 1, 0x76])
        #expect(try KVRecord(decoding: bytes) == r)
        for n in 0..<bytes.count {
            #expect(throws: KVDecodingError.self) { try KVRecord(decoding: Array(bytes[..<n])) }
        }
        #expect(throws: KVDecodingError.self) { try KVRecord(decoding: bytes + [0]) }
    }

    @Test(
        "records breaking an invariant are rejected",
        arguments: [
            record("", create: 0, mod: 0, version: 1),  // create 0
            record("", create: 5, mod: 4, version: 1),  // create after mod
            record("", create: 1, mod: 1, version: 0),  // version 0
        ])
    func recordInvariants(bad: KVRecord) {
        #expect(throws: KVDecodingError.self) { try KVRecord(decoding: bad.encoded) }
    }

    @Test("history value round trip")
    func historyValue() throws {
        let values: [KVHistoryValue] = [.tombstone, .record(record("x", create: 1, mod: 9, version: 4))]
        for value in values { #expect(try KVHistoryValue(decoding: value.encoded) == value) }
        #expect(KVHistoryValue.tombstone.encoded == [0])
        #expect(throws: KVDecodingError.self) { try KVHistoryValue(decoding: [2]) }
        #expect(throws: KVDecodingError.self) { try KVHistoryValue(decoding: [0, 0]) }
    }

    /// The reason for the escaped layout: byte order of encoded keys equals (key, revision)
    /// order even for keys that are prefixes of each other and contain 0x00 / 0xFF.
    @Test("history key byte order equals (key, revision) order", arguments: [UInt64(5), 6])
    func historyKeyOrder(seed: UInt64) throws {
        var gen = ProposalGenerator(rng: SeededGenerator(seed: seed))
        let revisions: [UInt64] = [0, 1, 0xFF, 0x0100, UInt64.max - 1, UInt64.max]
        var keys: [HistoryKey] = []
        for _ in 0..<200 {
            keys.append(HistoryKey(key: gen.bytes(0...5), revision: Revision(revisions.randomElement(using: &gen.rng)!)))
        }
        for a in keys {
            #expect(try HistoryKey(decoding: a.encoded) == a)
            for c in keys.prefix(60) {
                #expect((a < c) == a.encoded.lexicographicallyPrecedes(c.encoded), "\(a) vs \(c)")
            }
        }
    }

    @Test("plain key ‖ revision would interleave; the escaped form does not")
    func historyKeyPrefixFree() {
        let a9 = HistoryKey(key: [0x61], revision: Revision(1))
        let a0 = HistoryKey(key: [0x61, 0x00], revision: Revision(0))
        #expect(a9 < a0)
        #expect(a9.encoded.lexicographicallyPrecedes(a0.encoded))
        #expect(!a9.encoded.starts(with: HistoryKey.prefix(for: [0x61, 0x00])))
        #expect(HistoryKey.bound(for: [0x61]).lexicographicallyPrecedes(a9.encoded))
    }

    @Test(
        "malformed history keys are rejected",
        arguments: [
            [UInt8](), [0x61], [0x61, 0x00], [0x61, 0x00, 0x02] + [UInt8](repeating: 0, count: 8),
            [0x61, 0x00, 0x01] + [UInt8](repeating: 0, count: 7), [0x61, 0x00, 0x01] + [UInt8](repeating: 0, count: 9),
        ])
    func historyKeyRejects(bytes: [UInt8]) {
        #expect(throws: KVDecodingError.self) { try HistoryKey(decoding: bytes) }
    }

    static let results: [KVApplyResult] = [
        KVApplyResult(revision: Revision(3), outcome: .success(succeeded: true, results: [])),
        KVApplyResult(
            revision: Revision(4),
            outcome: .success(
                succeeded: false,
                results: [
                    .put(previous: record("p", create: 1, mod: 2, version: 2)), .put(previous: nil),
                    .deleteRange(deleted: 2, previous: [KVKeyValue(key: b("k"), record: record("", create: 1, mod: 1, version: 1))]),
                    .range(KVRangeResult(records: [KVKeyValue(key: b("z"), record: record("zz", create: 3, mod: 3, version: 1))], count: 7, hasMore: true, revision: Revision(4))),
                ]), isReplay: true),
        KVApplyResult(revision: Revision(5), outcome: .alreadyExists(key: b("k"))),
        KVApplyResult(revision: Revision(6), outcome: .compacted(requested: Revision(1), compacted: Revision(2))),
        KVApplyResult(revision: Revision(7), outcome: .futureRevision(requested: Revision(9), current: Revision(6))),
        KVApplyResult(revision: Revision(8), outcome: .invalid(KVCommandError(.duplicateKeyInTxn, "got ä twice"))),
        KVApplyResult(revision: Revision(9), outcome: .sessionExpired(sequence: SequenceNumber(1), lastApplied: nil)),
        KVApplyResult(revision: Revision(9), outcome: .sessionExpired(sequence: SequenceNumber(1), lastApplied: SequenceNumber(4))),
    ]

    @Test("apply result round trip, drip feed and bit flips", arguments: results)
    func resultCodec(result: KVApplyResult) throws {
        let bytes = result.encoded()
        #expect(try KVApplyResult(decoding: bytes) == result)
        for n in 0..<bytes.count {
            #expect(throws: KVDecodingError.self) { try KVApplyResult(decoding: Array(bytes[..<n])) }
        }
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            // Reasons are informational UTF-8: an invalid sequence decodes to U+FFFD, so only
            // the other outcomes must be canonical.
            if let decoded = try? KVApplyResult(decoding: flipped), !decoded.outcome.isInvalid {
                #expect(decoded.encoded() == flipped)
            }
        }
    }

    @Test("a huge record count is rejected before allocating")
    func resultHugeCount() {
        // success, 1 result, delete range, deleted 0, record count 2^32-1, nothing after.
        let bytes: [UInt8] = [1] + [UInt8](repeating: 0, count: 8) + [0, 0, 1, 0, 1, 2] + [UInt8](repeating: 0, count: 8) + [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: KVDecodingError.self) { try KVApplyResult(decoding: bytes) }
    }
}

extension KVOutcome {
    var isInvalid: Bool {
        if case .invalid = self { return true }
        return false
    }
}
