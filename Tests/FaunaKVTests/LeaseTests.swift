import Testing

@testable import FaunaKV

/// Leases in the state machine (docs/KV-COMMANDS.md "Leases"): grant, attach, detach, revoke
/// with its deletes in the effects, checkpoints, and the clear outcomes of unknown IDs.
@Suite struct LeaseTests {
    func lease(_ h: Harness, _ id: UInt64) throws -> (lease: KVLease, keys: [String])? {
        try h.machine.lease(id, keysMax: 100, on: h.backend).map { ($0.lease, $0.keys.map { String(decoding: $0, as: UTF8.self) }) }
    }

    func invalidCode(_ result: KVApplyResult) -> KVCommandError.Code? {
        if case .invalid(let e) = result.outcome { return e.code }
        return nil
    }

    @Test("grant picks the revision as ID; puts attach keys; revoke deletes exactly the keys still attached")
    func grantAttachRevoke() throws {
        var h = Harness()
        let granted = try h.apply(.leaseGrant(KVLeaseGrant(ttlSeconds: 10)))
        guard case .success(true, let results) = granted.outcome, case .lease(let id, 10)? = results.first else {
            Issue.record("\(granted.outcome)")
            return
        }
        #expect(id == granted.revision.rawValue)
        #expect(h.lastEffects.leaseChanges == [.granted(KVLease(id: id, ttlSeconds: 10, grantRevision: granted.revision))])
        try h.succeed(.put(KVPut(key: b("a"), value: b("1"), lease: id)))
        try h.succeed(.put(KVPut(key: b("b"), value: b("2"), lease: id)))
        try h.succeed(.put(KVPut(key: b("c"), value: b("3"), lease: id)))
        #expect(try h.get("a")?.lease == id)
        // b is put again without the lease: detached; c is deleted: detached.
        try h.succeed(.put(KVPut(key: b("b"), value: b("2b"))))
        try h.succeed(.delete(b("c")))
        #expect(try lease(h, id)?.keys == ["a"])
        let revoked = try h.apply(.leaseRevoke(id))
        #expect(revoked.outcome == .success(succeeded: true, results: [.deleteRange(deleted: 1, previous: [])]))
        #expect(try h.get("a") == nil)
        #expect(try h.value("b") == "2b")
        #expect(try h.value("a", at: revoked.revision.rawValue - 1) == "1")
        #expect(h.lastEffects.writes.map(\.key) == [b("a")])
        #expect(h.lastEffects.writes.allSatisfy { $0.record == nil })
        #expect(h.lastEffects.leaseChanges == [.revoked(id)])
        #expect(try lease(h, id) == nil)
        #expect(try h.machine.leases(on: h.backend).isEmpty)
    }

    @Test("unknown, duplicate and out-of-range leases are clear outcomes that write nothing")
    func refusals() throws {
        var h = Harness()
        try h.put("k", "v")
        let put = try h.apply(.put(KVPut(key: b("k"), value: b("w"), lease: 77)))
        #expect(invalidCode(put) == .leaseNotFound)
        #expect(try h.value("k") == "v")
        #expect(h.lastEffects.writes.isEmpty)
        #expect(invalidCode(try h.apply(.leaseRevoke(77))) == .leaseNotFound)
        try h.succeed(.leaseGrant(KVLeaseGrant(id: 5, ttlSeconds: 3)))
        #expect(invalidCode(try h.apply(.leaseGrant(KVLeaseGrant(id: 5, ttlSeconds: 3)))) == .leaseExists)
        // In a transaction, an unknown lease leaves nothing of the transaction.
        let txn = try h.apply(.txn(KVTxn(compares: [], success: [.put(KVPut(key: b("t1"), value: b("1"))), .put(KVPut(key: b("t2"), value: b("2"), lease: 99))])))
        #expect(invalidCode(txn) == .leaseNotFound)
        #expect(try h.get("t1") == nil)
        #expect(throws: KVCommandError.self) { try KVCommand.leaseGrant(KVLeaseGrant(ttlSeconds: 0)).validate() }
        #expect(throws: KVCommandError.self) { try KVCommand.leaseGrant(KVLeaseGrant(ttlSeconds: KVLimits.leaseTTLSecondsMax + 1)).validate() }
    }

    @Test("checkpoints record remaining TTLs, capped at the TTL; a revoked lease is skipped")
    func checkpoints() throws {
        var h = Harness()
        try h.succeed(.leaseGrant(KVLeaseGrant(id: 1, ttlSeconds: 10)))
        try h.succeed(.leaseGrant(KVLeaseGrant(id: 2, ttlSeconds: 10)))
        try h.succeed(.leaseRevoke(2))
        try h.succeed(.leaseCheckpoint([KVLeaseCheckpoint(id: 1, remainingMilliseconds: 4_200), KVLeaseCheckpoint(id: 2, remainingMilliseconds: 1)]))
        #expect(h.lastEffects.leaseChanges == [.checkpointed(id: 1, remainingMilliseconds: 4_200)])
        #expect(try lease(h, 1)?.lease.remainingMilliseconds == 4_200)
        try h.succeed(.leaseCheckpoint([KVLeaseCheckpoint(id: 1, remainingMilliseconds: 99_000)]))
        #expect(try lease(h, 1)?.lease.remainingMilliseconds == 10_000)
        #expect(try h.machine.leases(on: h.backend).map(\.id) == [1])
    }

    @Test("lease commands, leased records and lease results round-trip through their codecs")
    func codecs() throws {
        let commands: [KVCommand] = [
            .leaseGrant(KVLeaseGrant(id: 0, ttlSeconds: 60)), .leaseRevoke(9),
            .leaseCheckpoint([KVLeaseCheckpoint(id: 3, remainingMilliseconds: 1500)]),
            .put(KVPut(key: b("k"), value: b("v"), lease: 3)),
        ]
        for c in commands {
            let p = KVProposal(command: c)
            #expect(try KVProposal(decoding: p.encoded()) == p)
        }
        let leased = KVRecord(value: b("v"), createRevision: Revision(2), modRevision: Revision(4), version: 2, lease: 3)
        #expect(leased.encoded.first == 2)
        #expect(try KVRecord(decoding: leased.encoded) == leased)
        let plain = KVRecord(value: b("v"), createRevision: Revision(2), modRevision: Revision(4), version: 2)
        #expect(plain.encoded.first == 1)
        var zeroLease = leased.encoded
        for i in 25..<33 { zeroLease[i] = 0 }
        #expect(throws: KVDecodingError.self) { try KVRecord(decoding: zeroLease) }
        let result = KVApplyResult(revision: Revision(5), outcome: .success(succeeded: true, results: [.lease(id: 5, ttlSeconds: 60)]))
        #expect(try KVApplyResult(decoding: result.encoded()) == result)
        let refused = KVApplyResult(revision: Revision(6), outcome: .invalid(KVCommandError(.leaseNotFound, "x")))
        #expect(try KVApplyResult(decoding: refused.encoded()).outcome == refused.outcome)
    }
}
