import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// Sessions are evicted in the order of their last use, which schema 4 keeps in memory
/// (`SessionRecencyIndex`) instead of in an index record per session. The store must evict
/// exactly as the state machine does over the reference backend, which reads that order from
/// the sessions themselves.
@Suite("Store session order")
struct StoreSessionOrderTests {
    static let sessionsMax = 6

    static func options(chunk: Int, cacheBytes: Int) -> Store.Options {
        var o = Store.Options()
        o.sessionsMax = sessionsMax
        o.applyChunkEntries = chunk
        o.recordCacheBytes = cacheBytes
        return o
    }

    /// 15 clients, each with its session's next sequence. A client told its session expired
    /// (evicted) starts a new one under a new ID, as FaunaClient does, so evictions go on.
    struct Clients {
        var ids = (1...15).map { UInt64($0) }
        var sequences = [UInt64](repeating: 0, count: 15)
        var nextID: UInt64 = 16

        /// Proposals for `range`, most with the client's next sequence, some retrying the
        /// last one (a replay); and which client sent each.
        mutating func entries(_ range: Range<UInt64>, _ rng: inout SplitMix) -> (entries: [Entry], clients: [Int]) {
            var clients: [Int] = []
            let entries = range.map { index in
                let c = Int(rng.next() % UInt64(ids.count))
                clients.append(c)
                if rng.next() % 8 != 0 || sequences[c] == 0 { sequences[c] += 1 }
                let session = ClientSession(clientID: ClientID(ids[c]), sequence: SequenceNumber(sequences[c]))
                let put = KVPut(key: Array("k\(rng.next() % 9)".utf8), value: Array("v\(index)".utf8))
                return Entry(term: Term(1), index: LogIndex(index), data: KVProposal(session: session, command: .put(put)).encoded())
            }
            return (entries, clients)
        }

        /// Starts a new session for each client whose proposal in `results` expired.
        mutating func renew(_ clients: [Int], _ results: [KVApplyResult?]) {
            for (c, result) in zip(clients, results) {
                guard case .sessionExpired? = result?.outcome, sequences[c] > 0 else { continue }
                ids[c] = nextID
                nextID += 1
                sequences[c] = 0
            }
        }
    }

    static func sessions(_ backend: some KVBackend) throws -> [String] {
        var out: [String] = []
        try KVSessionRecency.scanStored(on: backend) { lastUsed, client in
            out.append("\(client)@\(lastUsed)")
            return true
        }
        return out
    }

    /// Random groups (some longer than a chunk, so the next chunk reads the one in flight),
    /// with reopens that rebuild the order from disk, against the reference backend.
    @Test(arguments: [(UInt64(21), 16, 0), (22, 16, 1 << 20), (23, 5, 1 << 20)])
    func evictsAsTheReference(seed: UInt64, chunk: Int, cacheBytes: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var store: Store! = try Store(path: dir.sub("n1"), options: Self.options(chunk: chunk, cacheBytes: cacheBytes))
        defer { store?.close() }
        var reference = MemoryKVBackend()
        let machine = KVStateMachine(sessionsMax: Self.sessionsMax)
        var rng = SplitMix(seed: seed)
        var clients = Clients()
        var index: UInt64 = 1
        var expired = 0
        while index <= 600 {
            let (group, senders) = clients.entries(index..<index + 1 + rng.next() % 40, &rng)
            let applied = try store.applyLogged(group)
            clients.renew(senders, applied.map(\.result))
            for (entry, got) in zip(group, applied) {
                var batch = KVWriteBatch()
                let want = try machine.apply(entryData: entry.data, at: Revision(entry.index.rawValue), on: reference, into: &batch)
                reference.commit(batch)
                #expect(got.result == want, "seed \(seed) at \(entry.index)")
                if case .sessionExpired = want.outcome { expired += 1 }
            }
            index += UInt64(group.count)
            #expect(try Self.sessions(store.makeKVBackend()) == Self.sessions(reference), "seed \(seed) at \(index - 1)")
            // Once built (by an eviction, or before a pipelined apply), it holds every session.
            let stored = try Self.sessions(store.makeKVBackend()).count
            #expect(!store.sessionIndex.isBuilt || store.sessionIndex.count == stored, "seed \(seed) at \(index - 1)")
            if rng.next() % 6 == 0 {
                // The old object is let go first: until then it holds the directory's lock.
                store.close()
                store = nil
                store = try Store(path: dir.sub("n1"), options: Self.options(chunk: chunk, cacheBytes: cacheBytes))
                #expect(!store.sessionIndex.isBuilt)
            }
        }
        // Evictions happened (15 clients, 6 sessions) and were used: retries of evicted
        // sessions expired, and the order came from memory.
        #expect(expired > 0)
        #expect(store.sessionIndex.isBuilt)
        // Nothing but the sessions is stored for the order.
        var legacy = 0
        try store.makeKVBackend().scanMeta(in: .prefix(KVSessionRecency.legacyIndexPrefix)) { _, _ in
            legacy += 1
            return true
        }
        #expect(legacy == 0)
    }

    /// A failed apply drops the order; the store rebuilds it from disk after a reopen and goes
    /// on evicting as before.
    @Test func aFailedApplyResetsTheOrder() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix(seed: 5)
        var clients = Clients()
        var store: Store! = try Store(path: dir.sub("n1"), options: Self.options(chunk: 8, cacheBytes: 0))
        defer { store?.close() }
        let (first, senders) = clients.entries(1..<60, &rng)
        clients.renew(senders, try store.applyLogged(first).map(\.result))
        #expect(store.sessionIndex.isBuilt)
        // A damaged record under a key the next entry overwrites stops the apply.
        try store.db.put(store.cfs.kv, Array("k0".utf8), [0xFF], sync: true)
        let next = clients.entries(60..<61, &rng).entries
        var put = try KVProposal(decoding: next[0].data)
        put = KVProposal(session: put.session, command: .put(KVPut(key: Array("k0".utf8), value: [1])))
        let damaged = Entry(term: Term(1), index: LogIndex(60), data: put.encoded())
        #expect(throws: StoreError.self) { try store.applyLogged([damaged]) }
        #expect(!store.sessionIndex.isBuilt)
        store.close()
        store = nil
        store = try Store(path: dir.sub("n1"), options: Self.options(chunk: 8, cacheBytes: 0))
        let before = try Self.sessions(store.makeKVBackend())
        #expect(before.count == Self.sessionsMax)
        let batch = store.db.makeWriteBatch()
        batch.delete(store.cfs.kv, Array("k0".utf8))
        try store.db.write(batch, sync: true)
        try store.applyLogged([damaged] + clients.entries(61..<120, &rng).entries)
        #expect(store.sessionIndex.isBuilt && store.sessionIndex.count == Self.sessionsMax)
    }

    /// The in-memory order on its own, fed the session writes of FaunaKV's reference: it scans
    /// as the reference's sessions sort, and its array stays bounded with scans in between
    /// (each eviction scans from the front, passing stale elements).
    @Test func theOrderMatchesAndStaysBounded() throws {
        let machine = KVStateMachine(sessionsMax: 3)
        var reference = MemoryKVBackend()
        let index = SessionRecencyIndex()
        var rng = SplitMix(seed: 3)
        var clients = Clients()
        var largest = 0
        for start in stride(from: UInt64(1), to: 6_000, by: 20) {
            let (group, senders) = clients.entries(start..<start + 20, &rng)
            var results: [KVApplyResult?] = []
            for entry in group {
                var batch = KVWriteBatch()
                results.append(try machine.apply(entryData: entry.data, at: Revision(entry.index.rawValue), on: reference, into: &batch))
                reference.commit(batch)
                try index.take(batch.meta)
            }
            clients.renew(senders, results)
            var fromIndex: [String] = []
            try index.scan(building: reference) { lastUsed, client in
                fromIndex.append("\(client)@\(lastUsed)")
                return true
            }
            #expect(fromIndex == (try Self.sessions(reference)), "at \(start)")
            largest = max(largest, index.storedElements)
        }
        #expect(index.isBuilt && index.count == 3)
        #expect(largest <= 2 * 3 + 1024 + 20, "order grew to \(largest)")
    }
}
