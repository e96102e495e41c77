import Crypto
import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// The RocksDB backend must answer exactly like FaunaKV's in-memory reference backend: the same
/// random commands (puts, deletes, ranges, txns, compactions; keys with 0x00 and 0xFF bytes)
/// give the same apply results, digests, and MVCC reads at every revision, forward and reverse.
/// The store purges compacted history a few versions per apply (`historyPurgeStepDeletes` 2
/// here), the reference within the compaction: reads must not tell them apart.
@Suite("RocksDB KV backend vs MemoryKVBackend")
struct KVBackendDifferentialTests {
    static let keys: [[UInt8]] = [
        [0x61], [0x61, 0x00], [0x61, 0x00, 0x62], [0x61, 0x62], [0x62], [0x00], [0xFF], [0x62, 0x00, 0x00],
        [0x63], [0x61, 0xFF], [0x00, 0x00],
    ]

    func randomCommand(_ rng: inout SplitMix, current: UInt64) -> KVCommand {
        func key() -> [UInt8] { Self.keys[Int(rng.next() % UInt64(Self.keys.count))] }
        func value() -> [UInt8] { (0..<Int(rng.next() % 6)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        switch rng.next() % 20 {
        case 0..<9: return .put(KVPut(key: key(), value: value(), returnsPrevious: rng.next() % 2 == 0))
        case 9: return .put(KVPut(key: key(), value: value(), ifAbsent: true))
        case 10, 11: return .delete(key(), returnsPrevious: true)
        case 12: return .deletePrefix(key())
        case 13:
            let a = key(), b = key()
            let (low, high) = a.lexicographicallyPrecedes(b) ? (a, b) : (b, a)
            return .deleteRange(KVDeleteRange(range: KeyRange(start: low, end: high)))
        case 14..<18:
            let k = key()
            let compare: KVCompare
            switch rng.next() % 3 {
            case 0: compare = KVCompare(key: k, .version(rng.next() % 3), .greater)
            case 1: compare = KVCompare(key: k, .value(value()), .notEqual)
            default: compare = KVCompare(range: .prefix([0x61]), .modRevision(Revision(rng.next() % (current + 1))), .less)
            }
            return .txn(KVTxn(
                compares: [compare],
                success: [.put(KVPut(key: k, value: value())), .range(KVRangeRequest(range: .all, limit: 3))],
                failure: [.deleteRange(KVDeleteRange(range: .single(key()))), .range(KVRangeRequest(range: .prefix([0x61]), isReversed: true))]))
        default:
            return .compact(Revision(rng.next() % (current + 1)))
        }
    }

    func digest(_ sm: KVStateMachine, _ backend: some KVBackend) throws -> [UInt8] {
        var h = SHA256()
        try sm.digestStream(on: backend) { h.update(bufferPointer: $0) }
        return Array(h.finalize())
    }

    struct Failure: Error, Equatable { let text: String }

    func outcome<T>(_ body: () throws -> T) -> Result<T, Failure> where T: Equatable {
        do { return .success(try body()) } catch { return .failure(Failure(text: "\(error)")) }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func sameAnswersAsTheReference(seed: UInt64) throws {
        try compare(seed: seed, entries: 300, groupSizes: 1...8)
    }

    /// Groups longer than `Options.applyChunkEntries` (here 64) are applied in chunks, the next computed
    /// while the previous one is written: with 11 keys, nearly every chunk reads keys the chunk
    /// before it wrote, so the overlay of the chunk in flight must be right.
    @Test(arguments: [UInt64(5), 6])
    func pipelinedGroupsGiveTheSameAnswers(seed: UInt64) throws {
        let chunk: UInt64 = 64
        try compare(seed: seed, entries: 6 * chunk, groupSizes: chunk - 1...3 * chunk + 7, chunk: Int(chunk))
    }

    func compare(seed: UInt64, entries total: UInt64, groupSizes: ClosedRange<UInt64>, chunk: Int = 1024) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.applyChunkEntries = chunk
        options.historyPurgeStepDeletes = 2
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        let sm = store.kvStateMachine
        #expect(sm.purgesHistoryLater)
        let reference = KVStateMachine(sessionsMax: sm.sessionsMax)
        var memory = MemoryKVBackend()
        var rng = SplitMix(seed: seed)
        var index: UInt64 = 1
        while index <= total {
            let count = groupSizes.lowerBound + rng.next() % UInt64(groupSizes.count)
            var entries: [Entry] = []
            var expected: [KVApplyResult] = []
            for i in index..<index + count {
                let data = KVProposal(command: randomCommand(&rng, current: i - 1)).encoded()
                entries.append(Entry(term: Term(1), index: LogIndex(i), data: data))
                var batch = KVWriteBatch()
                expected.append(try reference.apply(entryData: data, at: Revision(i), on: memory, into: &batch))
                memory.commit(batch)
            }
            let applied = try store.applyLogged(entries)
            #expect(applied.map(\.result) == expected.map { Optional($0) }, "seed \(seed) at \(index)")
            index += count
            #expect(store.appliedIndex == LogIndex(index - 1) && store.treeHead.treeSize == index - 1)

            let backend = store.makeKVBackend()
            #expect(try digest(sm, backend) == digest(reference, memory), "seed \(seed) at \(index - 1)")
            for _ in 0..<4 {
                let revision = Revision(rng.next() % index)
                let request = KVRangeRequest(
                    range: rng.next() % 2 == 0 ? .all : .prefix([0x61]), limit: rng.next() % 3 == 0 ? 2 : nil,
                    revision: revision == .zero ? nil : revision, isReversed: rng.next() % 2 == 0,
                    isKeysOnly: rng.next() % 4 == 0)
                #expect(outcome { try sm.range(request, on: backend) } == outcome { try reference.range(request, on: memory) },
                        "seed \(seed) range \(request)")
                let key = Self.keys[Int(rng.next() % UInt64(Self.keys.count))]
                #expect(outcome { try sm.get(key, at: revision == .zero ? nil : revision, on: backend) }
                        == outcome { try reference.get(key, at: revision == .zero ? nil : revision, on: memory) })
            }
        }
    }
}

