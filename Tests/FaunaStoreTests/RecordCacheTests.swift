import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// The record cache on its own: LRU order, the byte budget, and that a hit is always the last
/// record set for the key.
@Suite("RecordCache")
struct RecordCacheTests {
    func record(_ value: [UInt8], _ revision: UInt64) -> KVRecord {
        KVRecord(value: value, createRevision: Revision(1), modRevision: Revision(revision), version: revision)
    }

    @Test func evictsTheLeastRecentlyUsed() {
        let cache = RecordCache(budgetBytes: 32 << 10)
        func key(_ i: Int) -> [UInt8] { bytes("key-\(i)") }
        // Fill until the first eviction.
        var i = 0
        repeat {
            cache.set(key(i), record(bytes("value"), UInt64(i + 1)))
            i += 1
        } while cache.count == i
        #expect(i > 16)
        // What is left is the newest keys, newest first.
        var keys = cache.checkedKeysByRecency()
        #expect(keys == (i - keys.count..<i).reversed().map(key))
        // Touch the oldest: the next sets evict the ones after it instead.
        let oldest = keys.last!
        #expect(cache.lookup(oldest) != .miss)
        for j in i..<i + 5 { cache.set(key(j), record(bytes("value"), UInt64(j + 1))) }
        keys = cache.checkedKeysByRecency()
        #expect(keys.firstIndex(of: oldest) == 5)
        let others = keys.filter { $0 != oldest }
        #expect(others == (i + 5 - others.count..<i + 5).reversed().map(key))
        #expect(others.count < i + 5 - 1)  // some were evicted
        #expect(cache.bytes <= cache.budgetBytes)
    }

    @Test func countsHitsAndMisses() {
        let cache = RecordCache(budgetBytes: 1 << 20)
        #expect(cache.lookup(bytes("a")) == .miss)
        cache.set(bytes("a"), record(bytes("1"), 2))
        cache.set(bytes("gone"), nil)
        #expect(cache.lookup(bytes("a")) == .hit(record(bytes("1"), 2)))
        #expect(cache.lookup(bytes("gone")) == .hit(nil))
        #expect(cache.lookup(bytes("b")) == .miss)
        #expect(cache.stats.hits == 2 && cache.stats.misses == 2 && cache.stats.entries == 2)
        cache.removeAll()
        #expect(cache.stats.entries == 0 && cache.bytes == 0)
        #expect(cache.lookup(bytes("a")) == .miss)
        #expect(cache.stats.hits == 2 && cache.stats.misses == 3)
    }

    /// A record larger than the budget is not cached, and takes the key's older entry with it.
    @Test func aRecordThatDoesNotFitRemovesTheOldOne() {
        let cache = RecordCache(budgetBytes: 16 << 10)
        cache.set(bytes("k"), record(bytes("small"), 2))
        cache.set(bytes("other"), record(bytes("x"), 3))
        #expect(cache.lookup(bytes("k")) == .hit(record(bytes("small"), 2)))
        cache.set(bytes("k"), record([UInt8](repeating: 7, count: 20 << 10), 4))
        #expect(cache.lookup(bytes("k")) == .miss)
        #expect(cache.lookup(bytes("other")) == .hit(record(bytes("x"), 3)))
        _ = cache.checkedKeysByRecency()
    }

    /// Random sets, deletes and lookups against a dictionary: a hit always returns the last
    /// record set, the budget holds after every call, and the structure stays consistent.
    @Test(arguments: [8 << 10, 64 << 10, 1 << 20])
    func neverStaleNeverOverBudget(budget: Int) {
        let cache = RecordCache(budgetBytes: budget)
        var truth: [[UInt8]: KVRecord?] = [:]
        var rng = SplitMix(seed: UInt64(budget))
        var hits = 0
        for step in 0..<20_000 {
            let key = bytes("k\(rng.next() % 700)")
            switch rng.next() % 10 {
            case 0..<4:
                let size = rng.next() % 8 == 0 ? Int(rng.next() % 3000) : Int(rng.next() % 100)
                let r = record([UInt8](repeating: UInt8(step % 251), count: size), UInt64(step + 1))
                cache.set(key, r)
                truth[key] = .some(r)
            case 4:
                cache.set(key, nil)
                truth[key] = .some(nil)
            default:
                if case .hit(let cached) = cache.lookup(key) {
                    hits += 1
                    #expect(truth[key] != nil, "a hit for a key never set")
                    #expect(truth[key] == .some(cached), "step \(step): stale record for \(key)")
                }
            }
            #expect(cache.bytes <= budget)
            if step % 97 == 0 { _ = cache.checkedKeysByRecency() }
        }
        #expect(hits > 0)
        #expect(cache.count > 0)
        _ = cache.checkedKeysByRecency()
    }
}

/// The store with the record cache must apply exactly as without it: the same results, digests
/// and reads, over random workloads with long pipelined groups, compactions, reopens and a
/// failed apply.
@Suite("Store record cache")
struct StoreRecordCacheTests {
    /// Keys: the differential test's 11 tricky ones (0x00, 0xFF, prefixes of each other) and
    /// `width` plain ones, so a small budget has to evict.
    static func randomCommand(_ rng: inout SplitMix, current: UInt64, width: UInt64) -> KVCommand {
        guard rng.next() % 2 == 0 else {
            return KVBackendDifferentialTests().randomCommand(&rng, current: current)
        }
        let key = Array("w\(rng.next() % width)".utf8)
        let value = [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: Int(rng.next() % 200))
        switch rng.next() % 8 {
        case 0: return .delete(key, returnsPrevious: true)
        case 1: return .put(KVPut(key: key, value: value, ifAbsent: true))
        case 2:
            return .txn(KVTxn(
                compares: [KVCompare(key: key, .version(rng.next() % 3), .equal)],
                success: [.put(KVPut(key: key, value: value, returnsPrevious: true))],
                failure: [.deleteRange(KVDeleteRange(range: .single(key), returnsPrevious: true))]))
        default: return .put(KVPut(key: key, value: value, returnsPrevious: rng.next() % 2 == 0))
        }
    }

    static func options(cacheBytes: Int, chunk: Int = 64, prefetch: Bool = true) -> Store.Options {
        var o = Store.Options()
        o.applyChunkEntries = chunk
        o.recordCacheBytes = cacheBytes
        // Every chunk reads ahead, however small, or none does.
        o.prefetchRecordsFrom = prefetch ? 1 : .max
        return o
    }

    /// Applies the same random groups (1 to 3.5 chunks long) to a store without the cache and
    /// to stores with a tiny and a large one, reopening all of them now and then; and to two
    /// that read each replaced record when the state machine reaches it (no prefetch), without
    /// a cache and with the large one.
    @Test(arguments: [UInt64(11), 12, 13])
    func sameResultsWithAndWithoutTheCache(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let configs: [(budget: Int, prefetch: Bool)] = [(0, true), (16 << 10, true), (64 << 20, true), (0, false), (64 << 20, false)]
        func open() throws -> [Store] {
            try configs.map { try Store(path: dir.sub("s\($0.budget)-\($0.prefetch)"), options: Self.options(cacheBytes: $0.budget, prefetch: $0.prefetch)) }
        }
        var stores = try open()
        defer { stores.forEach { $0.close() } }
        var rng = SplitMix(seed: seed)
        var index: UInt64 = 1
        let sm = stores[0].kvStateMachine
        var hits = [UInt64](repeating: 0, count: configs.count), misses = hits, entriesMax = hits
        // Client sessions (the meta cache's reads): most proposals carry one of 20 clients'
        // next sequence; some retry the last (a replay) or an older one (expired).
        var sequences = [UInt64](repeating: 0, count: 20)
        func session() -> ClientSession? {
            guard rng.next() % 10 < 7 else { return nil }
            let client = Int(rng.next() % 20)
            switch rng.next() % 20 {
            case 0 where sequences[client] > 0: break
            case 1 where sequences[client] > 2: return ClientSession(clientID: ClientID(UInt64(client) + 1), sequence: SequenceNumber(sequences[client] - 2))
            default: sequences[client] += 1
            }
            return ClientSession(clientID: ClientID(UInt64(client) + 1), sequence: SequenceNumber(max(1, sequences[client])))
        }
        while index <= 2_000 {
            let count = 1 + rng.next() % (rng.next() % 3 == 0 ? 230 : 8)
            let entries = (index..<index + count).map { i in
                Entry(term: Term(1), index: LogIndex(i), data: KVProposal(
                    session: session(), command: Self.randomCommand(&rng, current: i - 1, width: 150)).encoded())
            }
            let results = try stores.map { try $0.applyLogged(entries) }
            for i in 1..<configs.count {
                #expect(results[i] == results[0], "seed \(seed) at \(index), cache \(configs[i].budget) B, prefetch \(configs[i].prefetch)")
            }
            index += count
            let digests = try stores.map { try $0.stateDigest() }
            #expect(Set(digests).count == 1, "seed \(seed) at \(index - 1)")
            #expect(stores[1].recordCacheStats.bytes <= 16 << 10)
            let key = Array("w\(rng.next() % 150)".utf8)
            let reads = try stores.map { try sm.get(key, on: $0.makeKVBackend()) }
            #expect(reads.allSatisfy { $0 == reads[0] })
            for (i, store) in stores.enumerated() { entriesMax[i] = max(entriesMax[i], store.recordCacheStats.entries) }
            if rng.next() % 10 == 0 {
                for (i, store) in stores.enumerated() {
                    hits[i] += store.recordCacheStats.hits
                    misses[i] += store.recordCacheStats.misses
                }
                // A reopen starts with an empty cache.
                stores.forEach { $0.close() }
                stores = []
                stores = try open()
                #expect(stores[2].recordCacheStats.entries == 0)
            }
        }
        for (i, store) in stores.enumerated() {
            hits[i] += store.recordCacheStats.hits
            misses[i] += store.recordCacheStats.misses
        }
        // (About 45% hits with the large cache: deletes and reopens leave many reads to RocksDB.)
        #expect(hits[2] > 0 && misses[2] > 0)
        #expect(hits[1] > 0 && hits[1] < hits[2])
        #expect(entriesMax[1] > 0 && entriesMax[1] < entriesMax[2])
        #expect(hits[0] == 0 && misses[0] == 0 && entriesMax[0] == 0)
        #expect(stores[0].recordCacheStats == RecordCacheStats())
    }

    /// A failed apply (fail-stop) drops the cache; after a reopen and a repair both stores go on
    /// in step. The failure is in the third chunk of a pipelined group, after two were written.
    @Test func aFailedApplyDropsTheCache() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let chunk: UInt64 = 64
        let budgets = [0, 1 << 20]
        func open() throws -> [Store] {
            try budgets.map { try Store(path: dir.sub("s\($0)"), options: Self.options(cacheBytes: $0, chunk: Int(chunk))) }
        }
        var stores = try open()
        defer { stores.forEach { $0.close() } }
        try stores.forEach { try $0.applyLogged(workload(1...100)) }
        #expect(stores[1].recordCacheStats.entries > 0)
        for store in stores { try store.db.put(store.cfs.kv, bytes("victim"), [0xFF, 0x00], sync: true) }
        var group = workload(101...(100 + 4 * chunk))
        group[Int(2 * chunk) + 5] = putEntry(100 + 2 * chunk + 6, key: "victim", value: "v")
        for store in stores {
            let error = #expect(throws: StoreError.self) { try store.applyLogged(group) }
            #expect(error?.code == .corruptRecord)
            #expect(store.appliedIndex == LogIndex(100 + 2 * chunk))
        }
        let dropped = stores[1].recordCacheStats
        #expect(dropped.entries == 0 && dropped.bytes == 0 && dropped.hits > 0)
        // Reopen, remove the damaged record, and re-apply the rest of the group.
        stores.forEach { $0.close() }
        stores = []
        stores = try open()
        for store in stores {
            let batch = store.db.makeWriteBatch()
            batch.delete(store.cfs.kv, bytes("victim"))
            try store.db.write(batch, sync: true)
        }
        let results = try stores.map { try $0.applyLogged(group) }
        #expect(results[0].count == Int(2 * chunk) && results[1] == results[0])
        #expect(try stores[1].stateDigest() == stores[0].stateDigest())
        #expect(stores[1].treeHead.rootHash == stores[0].treeHead.rootHash)
    }

    /// What each read does to the counters: a record found in RocksDB is cached, and so is a
    /// key found absent; writes and deletes go into the cache.
    @Test func hitsAndMissesMoveAsExpected() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"), options: Self.options(cacheBytes: 1 << 20))
        defer { store.close() }
        func stats() -> (UInt64, UInt64, UInt64) {
            let s = store.recordCacheStats
            return (s.hits, s.misses, s.entries)
        }
        try store.applyLogged([putEntry(1, key: "a", value: "1")])
        #expect(stats() == (0, 1, 1))  // a read of "a" (absent), then its write
        try store.applyLogged([putEntry(2, key: "a", value: "2"), putEntry(3, key: "b", value: "1")])
        #expect(stats() == (1, 2, 2))
        let delete = Entry(term: Term(1), index: LogIndex(4), data: KVProposal(command: .delete(bytes("a"))).encoded())
        try store.applyLogged([delete])
        #expect(stats() == (2, 2, 2))  // "a" is now cached as absent
        try store.applyLogged([putEntry(5, key: "a", value: "3")])
        #expect(stats() == (3, 2, 2))
        // Within one batch the batch answers: the second put of "c" reads no backend.
        try store.applyLogged([putEntry(6, key: "c", value: "1"), putEntry(7, key: "c", value: "2")])
        #expect(stats() == (3, 3, 3))
        // Reads outside the apply path do not touch the cache.
        _ = try store.kvStateMachine.get(bytes("a"), on: store.makeKVBackend())
        _ = try store.stateDigest()
        #expect(stats() == (3, 3, 3))
        // A write with a principal reads the auth switch, absent while auth is off: the first
        // read misses and caches "absent", the next one hits.
        func putAs(_ index: UInt64, key: String) -> Entry {
            let put = KVProposal(command: .put(KVPut(key: bytes(key), value: bytes("v"))), principal: [])
            return Entry(term: Term(1), index: LogIndex(index), data: put.encoded())
        }
        try store.applyLogged([putAs(8, key: "d")])
        #expect(stats() == (3, 5, 5))  // the switch and "d": two misses, both now cached
        try store.applyLogged([putAs(9, key: "d")])
        #expect(stats() == (5, 5, 5))
        // The puts' misses were read ahead of the state machine, in one batch per chunk ("a",
        // "b", "c" and "d"); the switch, a system key, and the delete were read by it.
        #expect(store.applyLock.withLock { store.prefetchedReads } == 4)
    }

    /// A chunk's puts read the records they replace in one batch: the keys the cache does not
    /// hold, each once, none the chunk in flight writes. Without prefetching, none is read
    /// ahead, and the results are the same.
    @Test func prefetchReadsEachMissingKeyOnce() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let chunk = 64
        var stores: [Store] = []
        defer { stores.forEach { $0.close() } }
        for prefetch in [true, false] {
            stores.append(try Store(path: dir.sub("p\(prefetch)"), options: Self.options(cacheBytes: 1 << 20, chunk: chunk, prefetch: prefetch)))
        }
        func reads(_ store: Store) -> UInt64 { store.applyLock.withLock { store.prefetchedReads } }
        // 40 keys written once each, then 200 puts over 50 keys (10 new) in 4 chunks of 64
        // and one of 8, pipelined: each chunk reads only keys that neither the cache (every
        // written key fits) nor the chunk in flight before it answers.
        let first = (1...40).map { putEntry(UInt64($0), key: "k\($0)", value: "a") }
        let second = (41...240).map { putEntry(UInt64($0), key: "k\(1 + ($0 * 7) % 50)", value: "b\($0)") }
        var results: [[[AppliedEntry]]] = [[], []]
        for (i, store) in stores.enumerated() {
            results[i].append(try store.applyLogged(first))
            #expect(reads(store) == (i == 0 ? 40 : 0))
            results[i].append(try store.applyLogged(second))
        }
        #expect(results[0] == results[1])
        #expect(try stores[0].stateDigest() == stores[1].stateDigest())
        // Keys 41...50 are new in the second group; the cache answers the 40 others.
        #expect(reads(stores[0]) == 50)
        #expect(reads(stores[1]) == 0)
        #expect(stores[0].recordCacheStats.hits == stores[1].recordCacheStats.hits)
        #expect(stores[0].recordCacheStats.misses == stores[1].recordCacheStats.misses)
    }

    /// With the default options, a chunk smaller than `prefetchRecordsFrom` reads as it goes and
    /// a chunk of that size reads ahead.
    @Test func onlyLargeChunksReadAhead() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let from = Store.Options().prefetchRecordsFrom
        #expect(from > 1 && from <= Store.Options().applyChunkEntries)
        try store.applyLogged((1...UInt64(from - 1)).map { putEntry($0, key: "k\($0)", value: "v") })
        #expect(store.applyLock.withLock { store.prefetchedReads } == 0)
        try store.applyLogged((UInt64(from)...UInt64(2 * from - 1)).map { putEntry($0, key: "k\($0)", value: "v") })
        #expect(store.applyLock.withLock { store.prefetchedReads } == UInt64(from))
    }

    /// Many keys through a tiny budget: it holds after every apply and entries are evicted.
    @Test func aTinyBudgetHoldsWithManyKeys() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let budget = 24 << 10
        let store = try Store(path: dir.sub("n1"), options: Self.options(cacheBytes: budget))
        defer { store.close() }
        var index: UInt64 = 1
        for round in 0..<20 {
            let entries = (index..<index + 150).map { putEntry($0, key: "key-\(($0 * 7919) % 1000)", value: String(repeating: "v", count: Int($0 % 300))) }
            try store.applyLogged(entries)
            index += 150
            let s = store.recordCacheStats
            #expect(s.bytes <= UInt64(budget), "round \(round)")
            #expect(s.entries > 0 && s.entries < 1000)
        }
        store.applyLock.withLock { _ = store.recordCache?.checkedKeysByRecency() }
    }
}
