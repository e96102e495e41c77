import Testing

@testable import FaunaKV

/// `KVOverlayBackend` over a committed state plus a batch not yet committed must read exactly
/// like the state with that batch committed: it is what the next chunk of a pipelined apply
/// reads while the previous chunk is still being written.
@Suite("KVOverlayBackend")
struct OverlayBackendTests {
    struct Snapshot: Equatable {
        var records: [[UInt8]] = []
        var reversed: [[UInt8]] = []
        var history: [String] = []
        var historyReversed: [String] = []
        var meta: [[UInt8]] = []
        var points: [String] = []
    }

    /// Everything a backend answers over the workload's keys, as comparable values.
    func snapshot(_ backend: some KVBackend, keys: [[UInt8]], revision: UInt64) throws -> Snapshot {
        var s = Snapshot()
        try backend.scanRecords(in: .all, reverse: false) { key, record in s.records.append(key + record.encoded); return true }
        try backend.scanRecords(in: .prefix([0x61]), reverse: true) { key, _ in s.reversed.append(key); return true }
        try backend.scanHistory(in: .all, reverse: false) { key, v in s.history.append("\(key)@\(v.revision)=\(v.value.encoded)"); return true }
        try backend.scanHistory(in: .prefix([0x62]), reverse: true) { key, v in s.historyReversed.append("\(key)@\(v.revision)"); return true }
        try backend.scanMeta(in: .all) { key, value in s.meta.append(key + value); return true }
        for key in keys {
            s.points.append("\(key): \(String(describing: try backend.record(forKey: key)))")
            for r in stride(from: 0, through: revision, by: 3) {
                s.points.append("\(key)@\(r): \(String(describing: try backend.historyVersion(forKey: key, atOrBefore: Revision(r))))")
            }
            s.points.append("meta \(key): \(String(describing: try backend.metaValue(forKey: key)))")
        }
        return s
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func readsLikeTheCommittedBatch(seed: UInt64) throws {
        var workload = Workload(rng: SeededGenerator(seed: seed))
        let machine = KVStateMachine()
        var committed = MemoryKVBackend()
        var revision: UInt64 = 0
        var compacted: UInt64 = 0
        for round in 0..<12 {
            // A pending group of entries applied into one batch over the committed state…
            var pending = KVWriteBatch()
            for _ in 0..<(1 + round % 5) {
                revision += 1
                let command = workload.command(current: revision - 1, compacted: compacted)
                if case .compact(let to) = command { compacted = max(compacted, to.rawValue) }
                _ = try machine.apply(
                    entryData: KVProposal(command: command).encoded(), at: Revision(revision), on: committed, into: &pending)
            }
            // …reads through the overlay exactly as after committing it.
            let overlay = KVOverlayBackend(base: committed, pending: pending)
            var after = committed
            after.commit(pending)
            let keys = workload.keys + [[0x61, 0x61], Array("kv/revision".utf8)]
            #expect(try snapshot(overlay, keys: keys, revision: revision) == snapshot(after, keys: keys, revision: revision),
                    "seed \(seed) round \(round)")
            // A next entry applied over the overlay gives what it gives over the committed state.
            let next = KVProposal(command: workload.command(current: revision, compacted: compacted)).encoded()
            var viaOverlay = KVWriteBatch(), viaCommitted = KVWriteBatch()
            let a = try machine.apply(entryData: next, at: Revision(revision + 1), on: overlay, into: &viaOverlay)
            let b = try machine.apply(entryData: next, at: Revision(revision + 1), on: after, into: &viaCommitted)
            #expect(a == b, "seed \(seed) round \(round)")
            committed = after
        }
    }
}

@Suite("compareBytes")
struct CompareBytesTests {
    /// The word-at-a-time comparison must order exactly like the standard library, including
    /// keys that share long prefixes, differ only past byte 8, or are prefixes of each other.
    @Test func ordersLikeLexicographicallyPrecedes() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<20_000 {
            let prefix = (0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4) }
            let a = prefix + (0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4 * 85) }
            let b = prefix + (0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4 * 85) }
            let c = compareBytes(a, b)
            #expect((c < 0) == a.lexicographicallyPrecedes(b), "\(a) vs \(b)")
            #expect((c == 0) == (a == b), "\(a) vs \(b)")
            #expect((c > 0) == b.lexicographicallyPrecedes(a), "\(a) vs \(b)")
        }
    }
}

struct HashedKeyTests {
    /// `HashedBytes` and `HistoryKey` hash whole buffers: equality must still be exactly the
    /// byte arrays' (a key that is a prefix of another, or differs only in its last byte, is
    /// another key), and equal keys must land in the same dictionary slot.
    @Test func equalityAndHashingFollowTheBytes() {
        var rng = SeededGenerator(seed: 11)
        var byBytes: [[UInt8]: Int] = [:]
        var byHashed: [HashedBytes: Int] = [:]
        var byHistory: [HistoryKey: Int] = [:]
        for i in 0..<20_000 {
            let prefix = (0..<Int(rng.next() % 10)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }
            let a = prefix + (0..<Int(rng.next() % 3)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }
            let b = prefix + (0..<Int(rng.next() % 3)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }
            #expect((HashedBytes(a) == HashedBytes(b)) == (a == b), "\(a) vs \(b)")
            let ra = Revision(rng.next() % 3), rb = Revision(rng.next() % 3)
            #expect((HistoryKey(key: a, revision: ra) == HistoryKey(key: b, revision: rb)) == (a == b && ra == rb))
            byBytes[a] = i
            byHashed[HashedBytes(a)] = i
            byHistory[HistoryKey(key: a, revision: ra)] = i
        }
        #expect(byHashed.count == byBytes.count)
        for (key, value) in byBytes { #expect(byHashed[HashedBytes(key)] == value, "\(key)") }
        #expect(byHistory.count >= byBytes.count)
    }

    /// The history writes handed to a backend are ordered by their storage keys, which must be
    /// the (key, revision) order, escaped zero bytes included.
    @Test func encodedHistoryWritesFollowKeyThenRevision() {
        var rng = SeededGenerator(seed: 12)
        var batch = KVWriteBatch()
        var keys: [HistoryKey] = []
        for _ in 0..<2_000 {
            let key = (0..<Int(1 + rng.next() % 4)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }
            let hk = HistoryKey(key: key, revision: Revision(rng.next() % 1_000))
            keys.append(hk)
            batch.setHistory(nil, forKey: hk.key, at: hk.revision)
        }
        let expected = Set(keys).sorted(by: <).map(\.encoded)
        #expect(batch.encodedHistoryWrites.map(\.key) == expected)
    }
}
