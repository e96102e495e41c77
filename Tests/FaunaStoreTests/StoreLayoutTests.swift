import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify
import Foundation
import Testing

@testable import FaunaStore

@Suite("Store layout")
struct StoreLayoutTests {
    @Test func sevenColumnFamiliesGroupPrefixesAndCompression() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(workload(1...20), sync: true)
        }
        let families = try RocksDB.listColumnFamilies(path: dir.sub("n1/db"))
        #expect(Set(families) == ["default", "log", "kv", "history", "effects", "merkle", "meta", "sessions"])
        // The newest OPTIONS file records each family's compression.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("n1/db"))
        let options = try #require(files.filter { $0.hasPrefix("OPTIONS-") }.max { Int($0.dropFirst(8))! < Int($1.dropFirst(8))! })
        let text = try String(contentsOfFile: dir.sub("n1/db/\(options)"), encoding: .utf8)
        var compression: [String: String] = [:]
        var family = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[CFOptions \"") { family = String(line.dropFirst(12).dropLast(2)) }
            if line.hasPrefix("  compression=") { compression[family] = String(line.dropFirst(14)) }
        }
        #expect(compression["log"] == "kZSTD")
        #expect(compression["effects"] == "kZSTD")
        #expect(compression["history"] == "kZSTD")
        #expect(compression["kv"] == "kLZ4Compression")
        #expect(text.contains("atomic_flush=true"))
        // Insert hints (set through RocksDB's options-string parser) where they were asked for.
        var hinted: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[CFOptions \"") { family = String(line.dropFirst(12).dropLast(2)) }
            if line.hasPrefix("  memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.0") { hinted.insert(family) }
        }
        #expect(hinted == ["kv", "history"])
        // In-place memtable updates only for sessions, which needs no concurrent inserts.
        var inPlace: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[CFOptions \"") { family = String(line.dropFirst(12).dropLast(2)) }
            if line.hasPrefix("  inplace_update_support=true") { inPlace.insert(family) }
        }
        #expect(inPlace == ["sessions"])
        #expect(text.contains("allow_concurrent_memtable_write=false"))

        // Every stored key starts with its group: 1 for the data, 0 for the schema version.
        let db = try RocksDB(path: dir.sub("n1/db"), columnFamilies: StoreColumnFamily.allCases.map(\.options))
        for name in ["log", "kv", "history", "effects", "merkle", "meta", "sessions"] {
            let it = db.makeIterator(try #require(db.columnFamily(name)))
            it.seekToFirst()
            var keys = 0
            while it.isValid {
                let group = Array(it.key.prefix(8))
                let isSchema = name == "meta" && it.key == [0, 0, 0, 0, 0, 0, 0, 0] + Array("schema".utf8)
                #expect(group == [0, 0, 0, 0, 0, 0, 0, 1] || isSchema, "\(name) key \(it.key)")
                keys += 1
                it.next()
            }
            // This workload overwrites nothing (history), has no leaf v2 boundary (effects) and
            // no client sessions.
            if !["history", "effects", "sessions"].contains(name) { #expect(keys > 0, "\(name) holds records") }
        }

        // Debian's rocksdb-tools sees the same seven families (when installed: tools/setup).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/ldb") {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/ldb")
            p.arguments = ["--db=\(dir.sub("n1/db"))", "list_column_families"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(text.contains("{default, log, kv, history, effects, merkle, meta, sessions}"), "ldb printed: \(text)")
        }
    }

    /// A schema this code does not know (a newer Fauna's) is refused with one line saying so.
    @Test func aNewerSchemaIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(workload(1...5), sync: true)
            #expect(try store.db.get(store.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
            try store.db.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 9], sync: true)
        }
        #expect {
            _ = try Store(path: dir.sub("n1"))
        } throws: { error in
            "\(error)".contains("got 9, want 8") && "\(error)".contains("newer Fauna")
        }
    }

    /// Turns `store`'s directory into what schema 7 stored: each entry's effects in a version
    /// 1 record under its own index instead of group records, and schema version 7. Call it
    /// just before closing the store. Returns how many group records it split.
    @discardableResult
    static func makeSchemaSeven(_ store: Store) throws -> Int {
        let batch = store.db.makeWriteBatch()
        let it = store.db.makeIterator(store.cfs.effects)
        it.seekToFirst()
        var groups = 0
        while it.isValid {
            let first = try #require(uint64(bigEndian: it.key[...]))
            let effects = try RaftLogCodec.decodeEffectsGroup(try it.value)
            if effects.count > 1 { groups += 1 }
            batch.delete(store.cfs.effects, it.key)
            for (offset, e) in effects.enumerated() {
                batch.put(store.cfs.effects, bigEndianBytes(first + UInt64(offset)), RaftLogCodec.encode(effects: e))
            }
            it.next()
        }
        try it.checkError()
        batch.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 7])
        try store.db.write(batch, sync: true)
        return groups
    }

    /// Turns `store`'s directory into what schema 6 stored: schema 7's (`makeSchemaSeven`)
    /// with the client sessions in `meta` instead of `sessions`, and schema version 6. Call it
    /// just before closing the store.
    static func makeSchemaSix(_ store: Store) throws {
        try makeSchemaSeven(store)
        let batch = store.db.makeWriteBatch()
        for key in try keys(store, store.cfs.sessions) {
            batch.put(store.cfs.meta, key, try #require(try store.db.get(store.cfs.sessions, key)))
            batch.delete(store.cfs.sessions, key)
        }
        batch.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 6])
        try store.db.write(batch, sync: true)
    }

    /// Turns `store`'s directory into what schema 5 stored: schema 6's (`makeSchemaSix`) with
    /// every Merkle node under its own post-order key (`NodeAddress.storageKey`) instead of in
    /// tiles, and schema version 5. Call it just before closing the store.
    static func makeSchemaFive(_ store: Store) throws {
        try makeSchemaSix(store)
        let batch = store.db.makeWriteBatch()
        let it = store.db.makeIterator(store.cfs.merkle)
        it.seekToFirst()
        while it.isValid {
            let tile = try #require(MerkleTile.tile(ofKey: it.key))
            let bytes = try it.value
            for slot in 0..<bytes.count / 32 {
                batch.put(store.cfs.merkle, bigEndianBytes(tile * 32 + UInt64(slot)), Array(bytes[slot * 32..<slot * 32 + 32]))
            }
            batch.delete(store.cfs.merkle, it.key)
            it.next()
        }
        try it.checkError()
        batch.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 5])
        try store.db.write(batch, sync: true)
    }

    /// Turns `store`'s directory into what schema 4 stored: every Merkle node under its
    /// level-first key (`NodeAddress.legacyStorageKey`), the hard state and compaction point as
    /// `H` and `S` in `log`, and schema version 4. Call it just before closing the store.
    static func makeSchemaFour(_ store: Store) throws {
        try makeSchemaFive(store)
        let batch = store.db.makeWriteBatch()
        let it = store.db.makeIterator(store.cfs.merkle)
        it.seekToFirst()
        while it.isValid {
            let address = try NodeAddress(storageKey: it.key)
            batch.put(store.cfs.merkle, address.legacyStorageKey, try it.value)
            batch.delete(store.cfs.merkle, it.key)
            it.next()
        }
        try it.checkError()
        for (new, old) in [(MetaKey.raftHardState, RaftKey.legacyHardState), (MetaKey.raftSnapshot, RaftKey.legacySnapshot)] {
            guard let value = try store.db.get(store.cfs.meta, new) else { continue }
            batch.put(store.cfs.log, old, value)
            batch.delete(store.cfs.meta, new)
        }
        batch.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 4])
        try store.db.write(batch, sync: true)
    }

    /// The keys of `family` (one group's view), in order.
    static func keys(_ store: Store, _ family: RocksDBColumnFamily) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        let it = store.db.makeIterator(family)
        it.seekToFirst()
        while it.isValid {
            out.append(it.key)
            it.next()
        }
        try it.checkError()
        return out
    }

    /// Turns `store` into what schema 3 stored: schema 4's layout (`makeSchemaFour`) and,
    /// beside each session, an empty record keyed by its place in the eviction order
    /// (`kv/session-lru/ ‖ u64 lastUsed ‖ u64 clientID`), and schema version 3.
    static func makeSchemaThree(_ store: Store) throws {
        // Read while the sessions are where this schema's store reads them.
        var index: [[UInt8]] = []
        try KVSessionRecency.scanStored(on: store.makeKVBackend()) { lastUsed, client in
            var key = KVSessionRecency.legacyIndexPrefix
            for v in [lastUsed.rawValue, client.rawValue] { key += (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
            index.append(key)
            return true
        }
        try makeSchemaFour(store)
        let batch = store.db.makeWriteBatch()
        for key in index { batch.put(store.cfs.meta, key, []) }
        batch.put(store.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 3])
        try store.db.write(batch, sync: true)
    }

    /// Keys under the schema 3 sessions' order index (`kv/session-lru/`).
    static func legacyOrderKeys(_ store: Store) throws -> Int {
        var n = 0
        try store.makeKVBackend().scanMeta(in: .prefix(KVSessionRecency.legacyIndexPrefix)) { _, _ in
            n += 1
            return true
        }
        return n
    }

    /// A schema 3 directory (its sessions with the order index schema 3 wrote beside them) is
    /// upgraded in place on open: the index goes, schema 4 is recorded, the state is the same,
    /// and the store then evicts exactly as one that never had the index.
    @Test func aSchemaThreeDirectoryLosesTheSessionOrderIndex() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.sessionsMax = 4
        var rng = SplitMix(seed: 9)
        var clients = StoreSessionOrderTests.Clients()
        let (first, senders) = clients.entries(1..<80, &rng)
        let fresh = try Store(path: dir.sub("fresh"), options: options)
        defer { fresh.close() }
        clients.renew(senders, try fresh.applyLogged(first).map(\.result))
        let then = clients.entries(80..<160, &rng).entries
        let digest: StateDigest
        do {
            let old = try Store(path: dir.sub("old"), options: options)
            defer { old.close() }
            try old.applyLogged(first, sync: true)
            try Self.makeSchemaThree(old)
            #expect(try Self.legacyOrderKeys(old) == 4)
            digest = try old.stateDigest()
        }
        let upgraded = try Store(path: dir.sub("old"), options: options)
        defer { upgraded.close() }
        #expect(try upgraded.db.get(upgraded.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(upgraded.treeHead == fresh.treeHead)
        #expect(try Self.legacyOrderKeys(upgraded) == 0)
        #expect(try upgraded.stateDigest() == digest)
        let got = try upgraded.applyLogged(then).map(\.result)
        #expect(got == (try fresh.applyLogged(then).map(\.result)))
        #expect(try StoreSessionOrderTests.sessions(upgraded.makeKVBackend()) == StoreSessionOrderTests.sessions(fresh.makeKVBackend()))
    }

    /// A schema 4 directory gets schema 5's append-only keys on open, then schema 6's tiles:
    /// every Merkle node in the tile of its post-order position, the hard state and compaction
    /// point in `meta`, nothing but entries in `log`. The state, tree, proofs and Raft log read as before, and later applies match a
    /// store that never had schema 4. An upgrade a crash interrupted (some nodes under their
    /// new key, schema still 4) is finished by the next open.
    @Test(arguments: [false, true])
    func aSchemaFourDirectoryGetsAppendOnlyKeys(interrupted: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let conf = ConfState(voters: [NodeID(1)])
        let hard = HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(300))
        let fresh = try Store(path: dir.sub("fresh"))
        defer { fresh.close() }
        try fresh.applyLogged(workload(1...300))
        let proof = try fresh.makeMerkleProver().inclusionProof(for: LeafIndex(137), treeSize: 300)
        let digest: StateDigest
        do {
            let old = try Store(path: dir.sub("old"))
            defer { old.close() }
            try old.applyLogged(workload(1...300), sync: true)
            try old.raftLog.persist(RaftLogUpdate(entries: workload(301...310), hardState: hard))
            try old.raftLog.compact(through: LogIndex(200), confState: conf)
            digest = try old.stateDigest()
            try Self.makeSchemaFour(old)
            #expect(try Self.keys(old, old.cfs.merkle).allSatisfy { $0.count == 9 })
            #expect(try old.db.get(old.cfs.log, RaftKey.legacyHardState) != nil)
            if interrupted {
                // What a crash between two of the upgrade's batches leaves: part moved.
                let batch = old.db.makeWriteBatch()
                for key in try Self.keys(old, old.cfs.merkle).enumerated().filter({ $0.offset % 3 == 0 }).map(\.element) {
                    batch.put(old.cfs.merkle, try NodeAddress(legacyStorageKey: key).storageKey, try #require(try old.db.get(old.cfs.merkle, key)))
                    batch.delete(old.cfs.merkle, key)
                }
                try old.db.write(batch, sync: true)
            }
        }
        let upgraded = try Store(path: dir.sub("old"))
        defer { upgraded.close() }
        #expect(try upgraded.db.get(upgraded.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(try Self.keys(upgraded, upgraded.cfs.merkle) == Self.tileKeys(treeSize: 300))
        #expect(try Self.keys(upgraded, upgraded.cfs.log) == (1...310).map { RaftKey.entry(LogIndex(UInt64($0))) })
        #expect(try upgraded.stateDigest() == digest)
        #expect(upgraded.treeHead == fresh.treeHead)
        #expect(try upgraded.makeMerkleProver().inclusionProof(for: LeafIndex(137), treeSize: 300) == proof)
        #expect(try upgraded.raftLog.initialState().0 == hard)
        #expect(try upgraded.raftLog.firstIndex() == LogIndex(201))
        #expect(try upgraded.raftLog.lastIndex() == LogIndex(310))
        #expect(try upgraded.auditJournal().problem == nil)
        // Later applies land under the new keys and agree with the store that never had 4.
        try upgraded.applyLogged(workload(301...400))
        try fresh.applyLogged(workload(301...400))
        #expect(upgraded.treeHead == fresh.treeHead)
        #expect(try upgraded.stateDigest() == fresh.stateDigest())
        #expect(try upgraded.makeMerkleProver().consistencyProof(from: 137, to: 400) == fresh.makeMerkleProver().consistencyProof(from: 137, to: 400))
    }

    /// A schema 6 directory gets the `sessions` family on open: every client session moves out
    /// of `meta`, over more than one of the upgrade's batches. The state and the sessions read
    /// as before, retries are still answered from them, and later applies match a store that
    /// never had schema 6. An upgrade a crash interrupted (one batch of sessions moved, schema
    /// still 6) is finished by the next open.
    @Test(arguments: [false, true])
    func aSchemaSixDirectoryGetsTheSessionsFamily(interrupted: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func put(_ index: UInt64, _ key: String, client: UInt64, sequence: UInt64) -> Entry {
            let session = ClientSession(clientID: ClientID(client), sequence: SequenceNumber(sequence))
            let put = KVPut(key: Array(key.utf8), value: Array("v\(index)".utf8))
            return Entry(term: Term(1), index: LogIndex(index), data: KVProposal(session: session, command: .put(put)).encoded())
        }
        // One session per entry: more sessions than one upgrade batch moves.
        let count = UInt64(StoreUpgrade.batchRecords + 300)
        let first = (1...count).map { put($0, "k\($0 % 50)", client: $0, sequence: 1) }
        // Then the next sequence of even clients, and a retry of their first by odd ones (a
        // retry is answered from the session and writes nothing).
        let then = (count + 1...count + 200).map { i in
            put(i, "t\(i)", client: i - count, sequence: (i - count) % 2 == 0 ? 2 : 1)
        }
        let fresh = try Store(path: dir.sub("fresh"))
        defer { fresh.close() }
        try fresh.applyLogged(first)
        let digest: StateDigest
        do {
            let old = try Store(path: dir.sub("old"))
            defer { old.close() }
            try old.applyLogged(first, sync: true)
            digest = try old.stateDigest()
            try Self.makeSchemaSix(old)
            #expect(try Self.keys(old, old.cfs.sessions).isEmpty)
            #expect(try Self.keys(old, old.cfs.meta).filter(KVSessionRecency.isSessionKey).count == Int(count))
            if interrupted {
                // What a crash after the upgrade's first batch leaves: those sessions moved.
                let batch = old.db.makeWriteBatch()
                for key in try Self.keys(old, old.cfs.meta).filter(KVSessionRecency.isSessionKey).prefix(StoreUpgrade.batchRecords) {
                    batch.put(old.cfs.sessions, key, try #require(try old.db.get(old.cfs.meta, key)))
                    batch.delete(old.cfs.meta, key)
                }
                try old.db.write(batch, sync: true)
            }
        }
        let upgraded = try Store(path: dir.sub("old"))
        defer { upgraded.close() }
        #expect(try upgraded.db.get(upgraded.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(try Self.keys(upgraded, upgraded.cfs.meta).filter(KVSessionRecency.isSessionKey).isEmpty)
        #expect(try Self.keys(upgraded, upgraded.cfs.sessions).count == Int(count))
        #expect(try Self.keys(upgraded, upgraded.cfs.sessions) == Self.keys(fresh, fresh.cfs.sessions))
        #expect(try upgraded.stateDigest() == digest)
        #expect(try StoreSessionOrderTests.sessions(upgraded.makeKVBackend()) == StoreSessionOrderTests.sessions(fresh.makeKVBackend()))
        let got = try upgraded.applyLogged(then)
        #expect(got.map(\.result) == (try fresh.applyLogged(then).map(\.result)))
        #expect(got.filter { $0.result?.isReplay == true }.count == 100)
        let backend = upgraded.makeKVBackend()
        for (i, entry) in then.enumerated() {
            let record = try backend.record(forKey: Array("t\(entry.index.rawValue)".utf8))
            #expect((record != nil) == (i % 2 == 1), "entry \(entry.index)")
        }
        #expect(try upgraded.stateDigest() == fresh.stateDigest())
        #expect(try StoreSessionOrderTests.sessions(upgraded.makeKVBackend()) == StoreSessionOrderTests.sessions(fresh.makeKVBackend()))
    }

    /// A schema 7 directory (a record of effects per entry) opens as schema 8: its records read
    /// as groups of one, new applies write groups after them, and the journal, its audit and
    /// the tree agree with a store that always had groups.
    @Test func aSchemaSevenDirectoryKeepsItsEffects() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.applyChunkEntries = 64
        let first = [LeafV2Tests.upgradeEntry(1)] + (2...300).map { putEntry(UInt64($0), key: "k\($0 % 40)", value: "v\($0)") }
        let then = (301...500).map { putEntry(UInt64($0), key: "k\($0 % 40)", value: "w\($0)") }
        let fresh = try Store(path: dir.sub("fresh"), options: options)
        defer { fresh.close() }
        try fresh.applyLogged(first)
        do {
            let old = try Store(path: dir.sub("old"), options: options)
            defer { old.close() }
            try old.applyLogged(first, sync: true)
            #expect(try Self.makeSchemaSeven(old) > 1, "chunks of 64 entries made groups to split")
            #expect(try Self.keys(old, old.cfs.effects).count == 300)
        }
        let upgraded = try Store(path: dir.sub("old"), options: options)
        defer { upgraded.close() }
        #expect(try upgraded.db.get(upgraded.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(try upgraded.journalRecords(from: LogIndex(1), to: LogIndex(301), maxBytes: .max)
            == fresh.journalRecords(from: LogIndex(1), to: LogIndex(301), maxBytes: .max))
        try upgraded.applyLogged(then)
        try fresh.applyLogged(then)
        // 300 records of one, then the new entries in groups.
        #expect(try Self.keys(upgraded, upgraded.cfs.effects).count < 300 + then.count)
        // Ranges that start inside a group and cross from single records into groups.
        for (low, high) in [(1, 501), (150, 420), (299, 302), (333, 334), (301, 501)] {
            #expect(try upgraded.journalRecords(from: LogIndex(UInt64(low)), to: LogIndex(UInt64(high)), maxBytes: .max)
                == fresh.journalRecords(from: LogIndex(UInt64(low)), to: LogIndex(UInt64(high)), maxBytes: .max), "[\(low), \(high))")
        }
        for i in [1, 2, 299, 300, 301, 302, 365, 366, 500] as [UInt64] {
            #expect(try upgraded.journalRecord(at: LogIndex(i)) == fresh.journalRecord(at: LogIndex(i)), "record \(i)")
        }
        #expect(upgraded.treeHead == fresh.treeHead)
        #expect(try upgraded.auditJournal().problem == nil)
        #expect(try upgraded.stateDigest() == fresh.stateDigest())
    }

    /// Meta keys live in two families (the sessions in `sessions`, the rest in `meta`) and read
    /// back as one key space: a scan across the sessions' interval meets them in key order
    /// between the keys below and above it, and stops where its body says.
    @Test func metaScansSpanTheSessionsFamily() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let names = ["kv/a", "kv/session-count", "kv/session/\u{1}", "kv/session/\u{2}", "kv/session0", "kv/sessions", "kv/z"]
        let keys = names.map { Array($0.utf8) }
        var writes = KVWriteBatch()
        for k in keys { writes.setMeta(k + [0xFF], forKey: k) }
        let backend = store.makeKVBackend()
        let batch = store.db.makeWriteBatch()
        backend.add(writes, to: batch)
        try store.db.write(batch, sync: true)
        #expect(try Self.keys(store, store.cfs.sessions) == keys.filter(KVSessionRecency.isSessionKey))
        #expect(try Self.keys(store, store.cfs.meta).filter { $0.starts(with: Array("kv/".utf8)) } == keys.filter { !KVSessionRecency.isSessionKey($0) })
        func scan(_ range: KeyRange, stopAfter: Int = .max) throws -> [String] {
            var seen: [String] = []
            try backend.scanMeta(in: range) { key, value in
                #expect(value == key + [0xFF])
                seen.append(String(decoding: key, as: UTF8.self))
                return seen.count < stopAfter
            }
            return seen
        }
        #expect(try scan(.prefix(Array("kv/".utf8))) == names)
        #expect(try scan(KeyRange(start: Array("kv/session".utf8), end: Array("kv/sessions".utf8))) == Array(names[1...4]))
        #expect(try scan(KVSessionRecency.keyRange) == Array(names[2...3]))
        #expect(try scan(KeyRange(start: Array("kv/session/\u{2}".utf8), end: nil)).prefix(3) == ["kv/session/\u{2}", "kv/session0", "kv/sessions"])
        #expect(try scan(.prefix(Array("kv/".utf8)), stopAfter: 3) == Array(names[0...2]))
        #expect(try backend.metaValue(forKey: keys[2]) == keys[2] + [0xFF])
        #expect(try backend.metaValue(forKey: keys[4]) == keys[4] + [0xFF])
    }

    /// The tile keys of a tree of `treeSize` leaves, in order.
    static func tileKeys(treeSize: UInt64) -> [[UInt8]] {
        let nodes = NodeAddress.nodeCount(leaves: treeSize)
        return (0..<(nodes + 31) / 32).map { MerkleTile.key($0) }
    }

    /// A schema 5 directory gets schema 6's tiles on open: its nodes move from a key each into
    /// tiles of 32, over more than one of the upgrade's batches, the last tile partial. The
    /// tree, its proofs and the state read as before, and later applies match a store that
    /// never had schema 5. An upgrade a crash interrupted (its first tiles written and their
    /// old keys gone, schema still 5) is finished by the next open.
    @Test(arguments: [false, true])
    func aSchemaFiveDirectoryGetsMerkleTiles(interrupted: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // 2,500 leaves: 4,995 nodes, more than one upgrade batch of 4,096; the last tile holds 3.
        let size: UInt64 = 2500
        #expect(NodeAddress.nodeCount(leaves: size) > UInt64(StoreUpgrade.batchRecords))
        #expect(NodeAddress.nodeCount(leaves: size) % 32 == 3)
        let fresh = try Store(path: dir.sub("fresh"))
        defer { fresh.close() }
        try fresh.applyLogged(workload(1...size))
        #expect(try Self.keys(fresh, fresh.cfs.merkle) == Self.tileKeys(treeSize: size))
        let prover = fresh.makeMerkleProver()
        let proof = try prover.inclusionProof(for: LeafIndex(1_337), treeSize: size)
        let consistency = try prover.consistencyProof(from: 999, to: size)
        let digest: StateDigest
        do {
            let old = try Store(path: dir.sub("old"))
            defer { old.close() }
            try old.applyLogged(workload(1...size), sync: true)
            digest = try old.stateDigest()
            try Self.makeSchemaFive(old)
            let oldKeys = try Self.keys(old, old.cfs.merkle)
            #expect(oldKeys.count == Int(NodeAddress.nodeCount(leaves: size)) && oldKeys.allSatisfy { $0.count == 8 })
            if interrupted {
                // What a crash after the upgrade's first batch leaves: 128 whole tiles moved.
                let moved = try Self.keys(old, old.cfs.merkle).prefix(4096)
                let batch = old.db.makeWriteBatch()
                for tile in 0..<UInt64(128) {
                    var bytes: [UInt8] = []
                    for key in moved[Int(tile) * 32..<Int(tile + 1) * 32] { bytes += try #require(try old.db.get(old.cfs.merkle, Array(key))) }
                    batch.put(old.cfs.merkle, MerkleTile.key(tile), bytes)
                }
                batch.deleteRange(old.cfs.merkle, from: bigEndianBytes(0), to: bigEndianBytes(4096))
                try old.db.write(batch, sync: true)
            }
        }
        let upgraded = try Store(path: dir.sub("old"))
        defer { upgraded.close() }
        #expect(try upgraded.db.get(upgraded.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(try Self.keys(upgraded, upgraded.cfs.merkle) == Self.tileKeys(treeSize: size))
        #expect(try upgraded.stateDigest() == digest)
        #expect(upgraded.treeHead == fresh.treeHead)
        let upgradedProver = upgraded.makeMerkleProver()
        #expect(try upgradedProver.inclusionProof(for: LeafIndex(1_337), treeSize: size) == proof)
        #expect(try upgradedProver.consistencyProof(from: 999, to: size) == consistency)
        #expect(try upgraded.auditJournal().problem == nil)
        // Later applies fill the partial tile and agree with the store that never had 5.
        try upgraded.applyLogged(workload(size + 1...size + 100))
        try fresh.applyLogged(workload(size + 1...size + 100))
        #expect(upgraded.treeHead == fresh.treeHead)
        #expect(try Self.keys(upgraded, upgraded.cfs.merkle) == Self.tileKeys(treeSize: size + 100))
        #expect(try upgraded.makeMerkleProver().consistencyProof(from: 2_345, to: size + 100)
            == fresh.makeMerkleProver().consistencyProof(from: 2_345, to: size + 100))
    }

    /// A tree's last tile must hold exactly the nodes of the applied tree: one hash more (a
    /// damaged or foreign directory) stops the open with a message naming the tile. (One
    /// fewer fails the frontier's load first: the last node is on the tree's right edge.)
    @Test func aLastTileOfTheWrongLengthIsRefusedOnOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(workload(1...20), sync: true)
            // 20 leaves: 38 nodes, so the second tile holds 6 hashes; give it a seventh.
            let last = try #require(try store.db.get(store.cfs.merkle, MerkleTile.key(1)))
            #expect(last.count == 6 * 32)
            try store.db.put(store.cfs.merkle, MerkleTile.key(1), last + [UInt8](repeating: 7, count: 32), sync: true)
        }
        #expect {
            _ = try Store(path: dir.sub("n1"))
        } throws: { error in
            "\(error)".contains("last tile of a tree of 20 leaves: got 224 bytes, want 192")
        }
    }
}

/// Opening a data directory written by the previous schema (Fixtures/README.md).
@Suite("Store upgrade")
struct StoreUpgradeTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schema2-node.tar.gz").path

    /// Unpacks the schema 2 node directory into `<dir>/n1/db`.
    static func unpack(into dir: TemporaryDirectory) throws {
        try FileManager.default.createDirectory(atPath: dir.sub("n1/db"), withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = ["-xzf", fixture, "-C", dir.sub("n1/db")]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "tar -xzf \(fixture)")
    }

    static func hex(_ b: some Sequence<UInt8>) -> String { b.map { String(format: "%02x", $0) }.joined() }

    @Test func aSchemaTwoDirectoryIsUpgradedOnOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try Self.unpack(into: dir)
        #expect(Set(try RocksDB.listColumnFamilies(path: dir.sub("n1/db"))).isSuperset(of: ["raft", "journal"]))
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            // The figures `fctl hashkv --json` printed for the cluster before it stopped.
            #expect(store.appliedIndex == LogIndex(69))
            #expect(Self.hex(try store.stateDigest().sha256) == "31cc9d589aa1c31809641a70376955c2f5c8f25c75ea13519246d40f25596d73")
            #expect(Self.hex(store.treeHead.rootHash.bytes) == "5e019f470e6f8b4c694cf6edd384fe5caf5b1a4f4c52736db810154b456afb52")
            // Every leaf re-hashes from the journal (v1 and v2 records, effects included).
            let audit = try store.auditJournal()
            #expect(audit.problem == nil && audit.entries == 69, "\(String(describing: audit.problem))")
            #expect(store.leafV2From != nil)
            // Copied into schema 3, then upgraded in place to 4 (no sessions' order index), 5
            // (append-only keys: entries only in `log`, post-order keys in `merkle`), 6
            // (those nodes in tiles of 32), 7 (sessions in their own family) and 8 (effects in
            // groups: nothing rewritten).
            #expect(try store.db.get(store.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
            #expect(try StoreLayoutTests.legacyOrderKeys(store) == 0)
            #expect(try StoreLayoutTests.keys(store, store.cfs.log).allSatisfy { RaftKey.index(ofEntryKey: $0) != nil })
            #expect(try StoreLayoutTests.keys(store, store.cfs.merkle) == StoreLayoutTests.tileKeys(treeSize: 69))
            // The Raft log keeps its hard state and compaction point; entries below are the journal.
            let (hard, _) = try store.raftLog.initialState()
            #expect(hard.commit >= LogIndex(69) && hard.term > Term.zero)
            #expect(try store.raftLog.firstIndex() > LogIndex(1))
            #expect(try store.raftLog.lastIndex() >= LogIndex(69))
            #expect(try store.journalEntries(from: LogIndex(1), to: LogIndex(70), maxBytes: .max).count == 69)
            // History survived: the value of a1 at an earlier revision.
            let old = try store.kvStateMachine.range(
                KVRangeRequest(range: .single(Array("a1".utf8)), revision: Revision(60)), on: store.makeKVBackend())
            #expect(old.records.first.map { String(decoding: $0.record.value, as: UTF8.self) }?.hasPrefix("w") == true)
        }
        let families = Set(try RocksDB.listColumnFamilies(path: dir.sub("n1/db")))
        #expect(families == ["default", "log", "kv", "history", "effects", "merkle", "meta", "sessions"])
        #expect(!FileManager.default.fileExists(atPath: dir.sub("n1/db.upgrade")))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("n1/db.old")))
        // A second open finds schema 5 and changes nothing.
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(Self.hex(store.treeHead.rootHash.bytes) == "5e019f470e6f8b4c694cf6edd384fe5caf5b1a4f4c52736db810154b456afb52")
    }

    /// An upgrade interrupted before its copy was marked ready leaves the old directory, which
    /// the next open upgrades again.
    @Test func anInterruptedUpgradeStartsOver() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try Self.unpack(into: dir)
        try FileManager.default.createDirectory(atPath: dir.sub("n1/db.upgrade"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.sub("n1/db.upgrade/000001.sst"), contents: Data([1, 2, 3]))
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(store.appliedIndex == LogIndex(69))
        #expect(Self.hex(store.treeHead.rootHash.bytes) == "5e019f470e6f8b4c694cf6edd384fe5caf5b1a4f4c52736db810154b456afb52")
    }
}
