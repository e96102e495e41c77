import Testing

@testable import FaunaKV

@Suite("Range reads and delete range")
struct RangeTests {
    static let sampleKeys = ["a", "ab", "abc", "ab\u{7F}", "b", "c"]

    static func setUp() throws -> Harness {
        var h = Harness()
        for key in sampleKeys { try h.put(key, "v-" + key) }
        try h.succeed(.put(KVPut(key: [0x61, 0x62, 0xFF], value: b("ff"))))
        try h.succeed(.put(KVPut(key: [0x61, 0x00], value: b("zero"))))
        return h
    }

    @Test("prefix, explicit and open ranges")
    func ranges() throws {
        let h = try Self.setUp()
        #expect(try h.keys(KVRangeRequest(range: .prefix(b("ab")))) == ["ab", "abc", "ab\u{7F}", "ab\u{FFFD}"])
        #expect(try h.range(KVRangeRequest(range: .prefix(b("ab")))).records.last?.key == [0x61, 0x62, 0xFF])
        #expect(try Array(h.range(KVRangeRequest(range: .prefix(b("a")))).records.map(\.key).prefix(2)) == [b("a"), [0x61, 0x00]])
        #expect(try h.keys(KVRangeRequest(range: KeyRange(start: b("ab"), end: b("b")))).count == 4)
        #expect(try h.keys(KVRangeRequest(range: KeyRange(start: b("b"), end: nil))) == ["b", "c"])
        #expect(try h.range(KVRangeRequest(range: .all)).count == 8)
        #expect(try h.keys(KVRangeRequest(range: KeyRange(start: b("c"), end: b("b")))).isEmpty)
        #expect(try h.keys(KVRangeRequest(range: .single(b("ab")))) == ["ab"])
        #expect(try h.keys(KVRangeRequest(range: .prefix(b("zz")))).isEmpty)
        #expect(KeyRange.prefixEnd([0x61, 0xFF]) == [0x62])
        #expect(KeyRange.prefixEnd([0xFF, 0xFF]) == nil)
    }

    struct Options: Sendable, CustomTestStringConvertible {
        let limit: Int?
        let reverse: Bool
        let keysOnly: Bool
        let countOnly: Bool
        let want: [String]
        let hasMore: Bool
        var testDescription: String { "limit \(limit.map(String.init) ?? "-") rev \(reverse) keys \(keysOnly) count \(countOnly)" }
    }

    static let optionCases: [Options] = [
        Options(limit: nil, reverse: false, keysOnly: false, countOnly: false, want: ["a", "ab", "abc"], hasMore: false),
        Options(limit: 2, reverse: false, keysOnly: false, countOnly: false, want: ["a", "ab"], hasMore: true),
        Options(limit: 3, reverse: false, keysOnly: false, countOnly: false, want: ["a", "ab", "abc"], hasMore: false),
        Options(limit: nil, reverse: true, keysOnly: false, countOnly: false, want: ["abc", "ab", "a"], hasMore: false),
        Options(limit: 1, reverse: true, keysOnly: true, countOnly: false, want: ["abc"], hasMore: true),
        Options(limit: nil, reverse: false, keysOnly: true, countOnly: false, want: ["a", "ab", "abc"], hasMore: false),
        Options(limit: 1, reverse: false, keysOnly: false, countOnly: true, want: [], hasMore: false),
    ]

    @Test("limit, reverse, keys-only and count-only", arguments: optionCases)
    func rangeOptions(o: Options) throws {
        var h = Harness()
        for key in ["a", "ab", "abc", "b"] { try h.put(key, "v-" + key) }
        let request = KVRangeRequest(
            range: KeyRange(start: b("a"), end: b("b")), limit: o.limit, isReversed: o.reverse, isKeysOnly: o.keysOnly,
            isCountOnly: o.countOnly)
        let result = try h.range(request)
        #expect(result.records.map { String(decoding: $0.key, as: UTF8.self) } == o.want)
        #expect(result.count == 3)
        #expect(result.hasMore == o.hasMore)
        #expect(result.revision == Revision(4))
        for entry in result.records {
            #expect(entry.record.value == (o.keysOnly ? [] : b("v-") + entry.key))
            #expect(entry.record.version == 1)
        }
        // The same read at a past revision (all keys existed by revision 3) agrees.
        var past = request
        past.revision = Revision(3)
        #expect(try h.range(past).records == result.records)
    }

    @Test("invalid reads are typed errors")
    func invalidReads() throws {
        let h = try Self.setUp()
        #expect(throws: KVReadError.self) { try h.range(KVRangeRequest(range: .all, limit: 0)) }
        #expect(throws: KVReadError.self) { try h.get("") }
    }

    @Test("delete range and delete prefix leave tombstones in history")
    func deleteRange() throws {
        var h = try Self.setUp()
        let (_, results) = try h.succeed(.deletePrefix(b("ab"), returnsPrevious: true))
        guard case .deleteRange(let deleted, let previous) = results.first else {
            Issue.record("results: \(results)")
            return
        }
        #expect(deleted == 4)
        #expect(previous.map(\.key) == [b("ab"), b("abc"), b("ab\u{7F}"), [0x61, 0x62, 0xFF]])
        #expect(previous.first?.record == record("v-ab", create: 2, mod: 2, version: 1))
        #expect(try h.keys(KVRangeRequest(range: .all)) == ["a", "a\0", "b", "c"])
        #expect(try h.keys(KVRangeRequest(range: .all, revision: Revision(8))).count == 8)
        #expect(try h.succeed(.delete(b("nothing"))).results == [.deleteRange(deleted: 0, previous: [])])
        #expect(try h.succeed(.deleteRange(KVDeleteRange(range: .all))).results == [.deleteRange(deleted: 4, previous: [])])
        #expect(try h.range(KVRangeRequest(range: .all)).count == 0)
        #expect(try h.value("a", at: 10) == "v-a")
        #expect(try h.value("a", at: 11) == nil)
    }
}
