import Testing

@testable import FaunaKV

/// Random workloads over a tiny key space, with a naive reference model of every revision.
struct Workload {
    var rng: SeededGenerator
    let keys: [[UInt8]] = [[0x61], [0x61, 0x00], [0x61, 0x62], [0x62], [0x62, 0xFF], [0x63]]

    mutating func command(current: UInt64, compacted: UInt64) -> KVCommand {
        let key = keys.randomElement(using: &rng)!
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<5: return .put(KVPut(key: key, value: [UInt8(truncatingIfNeeded: rng.next())], ifAbsent: Int.random(in: 0..<4, using: &rng) == 0))
        case 5, 6: return .delete(key)
        case 7: return .deletePrefix([key[0]])
        case 8 where current > compacted + 1:
            return .compact(Revision(UInt64.random(in: (compacted + 1)...current, using: &rng)))
        default:
            return .txn(
                KVTxn(
                    compares: [KVCompare(key: key, .version(UInt64.random(in: 0...2, using: &rng)), .greater)],
                    success: [.put(KVPut(key: key, value: [1])), .range(KVRangeRequest(range: .all))],
                    failure: [.deleteRange(KVDeleteRange(range: .prefix([key[0]])))]))
        }
    }
}

@Suite("Determinism and reference model")
struct DeterminismTests {
    /// The reference: the whole state after every revision, computed naively.
    static func model(_ state: [[UInt8]: KVRecord], _ command: KVCommand, _ revision: Revision) -> [[UInt8]: KVRecord] {
        var next = state
        func put(_ p: KVPut) {
            let old = next[p.key]
            next[p.key] = KVRecord(value: p.value, createRevision: old?.createRevision ?? revision, modRevision: revision, version: (old?.version ?? 0) + 1)
        }
        switch command {
        case .put(let p):
            if p.ifAbsent, next[p.key] != nil { return state }
            put(p)
        case .deleteRange(let d): next = next.filter { !d.range.contains($0.key) }
        case .txn(let t):
            guard case .version(let v) = t.compares[0].target, case .put(let p) = t.success[0],
                case .deleteRange(let d) = t.failure[0]
            else { preconditionFailure("workload txn shape") }
            if (next[p.key]?.version ?? 0) > v { put(p) } else { next = next.filter { !d.range.contains($0.key) } }
        case .compact, .initCluster, .upgradeLeaves, .upgradeState, .leaseGrant, .leaseRevoke, .leaseCheckpoint, .auth: break
        }
        return next
    }

    /// Checks every read at `r` against the model's state then: range forward, reverse and
    /// with a limit, and a point get of every key.
    static func expectReads(
        _ h: Harness, _ keys: [[UInt8]], at r: UInt64, want state: [[UInt8]: KVRecord], _ context: String
    ) throws {
        let want = state.map { KVKeyValue(key: $0.key, record: $0.value) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        let forward = try h.range(KVRangeRequest(range: .all, revision: Revision(r)))
        #expect(forward.records == want, "\(context) revision \(r)")
        #expect(try h.range(KVRangeRequest(range: .all, revision: Revision(r), isReversed: true)).records == want.reversed(), "\(context) revision \(r) reversed")
        let limited = try h.range(KVRangeRequest(range: .all, limit: 2, revision: Revision(r)))
        #expect(limited.records == Array(want.prefix(2)) && limited.count == want.count, "\(context) revision \(r) limit 2")
        let ab = KeyRange(start: [0x61, 0x00], end: [0x62, 0xFF])
        #expect(try h.range(KVRangeRequest(range: ab, revision: Revision(r))).records == want.filter { ab.contains($0.key) }, "\(context) revision \(r) [a\\0, b\\xFF)")
        for key in keys {
            #expect(try h.machine.get(key, at: Revision(r), on: h.backend) == state[key], "\(context) revision \(r) key \(key)")
        }
    }

    /// Reads at past revisions merge current records with history step by step; steps of one
    /// and two keys cross a step boundary at nearly every key.
    @Test("the state machine matches the reference at every revision", arguments: [UInt64(21), 22, 23], [1, 2, 256])
    func referenceModel(seed: UInt64, step: Int) throws {
        var h = Harness()
        h.machine.historyScanStep = step
        var workload = Workload(rng: SeededGenerator(seed: seed))
        var states: [UInt64: [[UInt8]: KVRecord]] = [0: [:]]
        var state: [[UInt8]: KVRecord] = [:]
        var compacted: UInt64 = 0
        let context = "seed \(seed) step \(step)"
        for _ in 0..<120 {
            let gap = UInt64.random(in: 1...3, using: &workload.rng)
            let command = workload.command(current: h.revision, compacted: compacted)
            let result = try h.apply(command, gap: gap)
            if case .compact(let target) = command, case .success = result.outcome { compacted = target.rawValue }
            let before = state
            state = Self.model(state, command, Revision(h.revision))
            // Leaf v2: the effects are exactly the keys whose record the entry changed.
            let changed = Set(before.keys).union(state.keys).filter { before[$0] != state[$0] }
            let want = changed.sorted { $0.lexicographicallyPrecedes($1) }.map { KVEntryEffects.Write(key: $0, record: state[$0]) }
            #expect(h.lastEffects.writes == want, "\(context) revision \(h.revision) effects")
            #expect(want.isEmpty || h.lastEffects.outcome == .success, "\(context) revision \(h.revision) outcome")
            for r in (h.revision - gap + 1)...h.revision { states[r] = r == h.revision ? state : states[h.revision - gap] }
            // As it goes (before later compactions): a few revisions still readable.
            for _ in 0..<3 {
                let r = UInt64.random(in: max(compacted, 1)...h.revision, using: &workload.rng)
                try Self.expectReads(h, workload.keys, at: r, want: states[r] ?? [:], context)
            }
        }
        #expect(compacted > 0, "\(context): the workload should compact at least once")
        for r in 0...h.revision {
            if r != 0 && r < compacted {
                let request = KVRangeRequest(range: .all, revision: Revision(r))
                #expect(throws: KVReadError.compacted(requested: Revision(r), compacted: Revision(compacted))) { try h.range(request) }
                continue
            }
            try Self.expectReads(h, workload.keys, at: r, want: states[r == 0 ? h.revision : r] ?? [:], context)
        }
    }

    @Test("entries applied into one shared batch give the same results and state as one batch each", arguments: [UInt64(31), 32])
    func groupedBatches(seed: UInt64) throws {
        var single = Harness()
        var grouped = Harness()
        var workload = Workload(rng: SeededGenerator(seed: seed))
        var compacted: UInt64 = 0
        var batch = KVWriteBatch()
        for i in 0..<150 {
            let command = workload.command(current: single.revision, compacted: compacted)
            let session = ClientSession(clientID: ClientID(UInt64(i % 3)), sequence: SequenceNumber(UInt64(i / 3 + 1)))
            let want = try single.apply(command, session: session, gap: 2)
            if case .compact(let target) = command, case .success = want.outcome { compacted = target.rawValue }
            grouped.revision += 2
            let data = KVProposal(session: session, command: command).encoded()
            let got = try grouped.machine.apply(entryData: data, at: Revision(grouped.revision), on: grouped.backend, into: &batch)
            #expect(got == want, "seed \(seed) entry \(i)")
            if i % 7 == 6 {
                grouped.backend.commit(batch)
                batch = KVWriteBatch()
            }
        }
        grouped.backend.commit(batch)
        #expect(try grouped.digest() == single.digest())
        #expect(grouped.backend.entryCounts == single.backend.entryCounts)
    }
}
