import Testing

@testable import FaunaKV

/// Users, roles and permissions in the state machine (docs/SECURITY.md "Users and roles"):
/// changes are records of the system key space written by their entry, every client write is
/// checked at its own index, and client ranges never reach the system key space.
@Suite struct AuthTests {
    let root = b("root")
    let alice = b("alice")
    let hash = KVPasswordHash(logN: 15, r: 8, p: 1, salt: [UInt8](repeating: 7, count: 16), hash: [UInt8](repeating: 9, count: 32))

    func code(_ result: KVApplyResult) -> KVCommandError.Code? {
        if case .invalid(let e) = result.outcome { return e.code }
        return nil
    }

    /// root (certificate only) and alice (readwrite on app/), auth enabled; all as root.
    func secured() throws -> Harness {
        var h = Harness()
        try h.succeed(.auth(.userAdd(name: root, password: nil)), as: [])
        try h.succeed(.auth(.userGrantRole(user: root, role: root)), as: [])
        try h.succeed(.auth(.userAdd(name: alice, password: hash)), as: [])
        try h.succeed(.auth(.roleAdd(name: b("app-rw"))), as: [])
        try h.succeed(.auth(.roleGrant(role: b("app-rw"), permission: KVPermission(.readwrite, .prefix(b("app/"))))), as: [])
        try h.succeed(.auth(.userGrantRole(user: alice, role: b("app-rw"))), as: [])
        try h.succeed(.auth(.enable), as: root)
        return h
    }

    @Test("enable needs root; each change is a record of its entry and a line of the auth log")
    func enableAndLog() throws {
        var h = Harness()
        #expect(code(try h.apply(.auth(.enable), as: [])) == .authState)
        #expect(h.lastEffects.writes.isEmpty)
        h = try secured()
        #expect(try h.machine.access(of: [], on: h.backend).authEnabled)
        // The enabling entry wrote the flag and its log line: both in its effects (its leaf).
        let keys = h.lastEffects.writes.map(\.key)
        #expect(keys == [KVSystemKeys.authEnabled, KVSystemKeys.authLog(Revision(h.revision))].sorted(by: bytesPrecede))
        let log = try h.range(KVRangeRequest(range: .prefix(KVSystemKeys.authLogPrefix))).records.map { try KVAuthLogRecord(decoding: $0.record.value) }
        #expect(log.map(\.change) == [
            "user add root (no password)", "user grant-role root root", "user add alice (password)", "role add app-rw",
            "role grant app-rw readwrite [app/, app0)", "user grant-role alice app-rw", "auth enable",
        ])
        #expect(log.last?.principal == root && log.first?.principal == [])
        #expect(try h.machine.user(alice, on: h.backend)?.password == hash)
    }

    @Test("a user writes only where a role lets it; refusals write nothing")
    func writesChecked() throws {
        var h = try secured()
        try h.succeed(.put(KVPut(key: b("app/x"), value: b("1"))), as: alice)
        let denied = try h.apply(.put(KVPut(key: b("other/y"), value: b("2"))), as: alice)
        #expect(code(denied) == .permissionDenied)
        #expect(h.lastEffects.outcome == .invalid && h.lastEffects.writes.isEmpty)
        #expect(try h.get("other/y") == nil)
        // A transaction is checked on both branches, whichever runs.
        let txn = KVTxn(compares: [], success: [.put(KVPut(key: b("app/t"), value: b("1")))], failure: [.deleteRange(KVDeleteRange(range: .single(b("other/y"))))])
        #expect(code(try h.apply(.txn(txn), as: alice)) == .permissionDenied)
        #expect(try h.get("app/t") == nil)
        // A delete range must lie within the permission.
        #expect(code(try h.apply(.deletePrefix(b("app")), as: alice)) == .permissionDenied)
        try h.succeed(.deletePrefix(b("app/")), as: alice)
        // No user bound, an unknown user, admin commands: refused.
        #expect(code(try h.apply(.put(KVPut(key: b("app/x"), value: b("1"))), as: [])) == .authRequired)
        #expect(code(try h.apply(.put(KVPut(key: b("app/x"), value: b("1"))), as: b("mallory"))) == .permissionDenied)
        #expect(code(try h.apply(.compact(Revision(2)), as: alice)) == .permissionDenied)
        #expect(code(try h.apply(.auth(.roleGrant(role: b("app-rw"), permission: KVPermission(.readwrite, .all))), as: alice)) == .permissionDenied)
        // Root may do everything; a node's own entries (no principal) are not checked.
        try h.succeed(.put(KVPut(key: b("other/y"), value: b("3"))), as: root)
        try h.succeed(.put(KVPut(key: b("other/z"), value: b("4"))))
    }

    @Test("a revocation applies from the next entry on; deleting a role takes it from its users")
    func revocation() throws {
        var h = try secured()
        try h.succeed(.put(KVPut(key: b("app/1"), value: b("a"))), as: alice)
        try h.succeed(.auth(.roleRevoke(role: b("app-rw"), range: .prefix(b("app/")))), as: root)
        #expect(code(try h.apply(.put(KVPut(key: b("app/2"), value: b("b"))), as: alice)) == .permissionDenied)
        try h.succeed(.auth(.roleGrant(role: b("app-rw"), permission: KVPermission(.read, .prefix(b("app/"))))), as: root)
        #expect(code(try h.apply(.put(KVPut(key: b("app/2"), value: b("b"))), as: alice)) == .permissionDenied)
        #expect(try h.machine.access(of: alice, on: h.backend).check(.read, .single(b("app/1"))) == nil)
        try h.succeed(.auth(.roleDelete(name: b("app-rw"))), as: root)
        #expect(try h.machine.user(alice, on: h.backend)?.roles == [])
        #expect(code(try h.apply(.auth(.userDelete(name: root)), as: root)) == .authState)
        #expect(code(try h.apply(.auth(.userRevokeRole(user: root, role: root)), as: root)) == .authState)
    }

    @Test("clients cannot write the system key space; their ranges and deletes stop below it")
    func systemSpace() throws {
        var h = try secured()
        let reserved = try h.apply(.put(KVPut(key: KVSystemKeys.prefix + b("x"), value: b("1"))), as: root)
        #expect(code(reserved) == .reservedKey)
        try h.succeed(.put(KVPut(key: b("k"), value: b("v"))), as: root)
        try h.succeed(.deletePrefix([]), as: root)
        #expect(try h.get("k") == nil)
        #expect(try h.machine.access(of: [], on: h.backend).authEnabled, "del --prefix \"\" left the auth records")
        #expect(try h.range(KVRangeRequest(range: .all)).records.isEmpty)
        #expect(try h.range(KVRangeRequest(range: .prefix(KVSystemKeys.userPrefix))).count == 2)
        // Only root reads it.
        let limited = try h.machine.access(of: alice, on: h.backend)
        #expect(limited.check(.read, .prefix(KVSystemKeys.userPrefix))?.code == .permissionDenied)
        #expect(try h.machine.access(of: root, on: h.backend).check(.read, .prefix(KVSystemKeys.userPrefix)) == nil)
    }

    @Test("no grant reaches the system key space; write-only users read no previous values; a revoke needs every key")
    func escapes() throws {
        var h = try secured()
        // A role granted everything still cannot read or delete users, roles or the flag.
        try h.succeed(.auth(.roleAdd(name: b("all"))), as: root)
        try h.succeed(.auth(.roleGrant(role: b("all"), permission: KVPermission(.readwrite, .all))), as: root)
        try h.succeed(.auth(.userAdd(name: b("bob"), password: hash)), as: root)
        try h.succeed(.auth(.userGrantRole(user: b("bob"), role: b("all"))), as: root)
        let bob = try h.machine.access(of: b("bob"), on: h.backend)
        #expect(bob.check(.read, .prefix(KVSystemKeys.userPrefix))?.code == .permissionDenied)
        #expect(bob.check(.read, KeyRange(start: [], end: nil))?.code == .permissionDenied)
        #expect(bob.check(.read, KVSystemKeys.clipped(.all)) == nil)
        #expect(code(try h.apply(.deleteRange(KVDeleteRange(range: .single(KVSystemKeys.authEnabled))), as: b("bob"))) == .reservedKey)
        // Root too: auth records change only through auth commands.
        #expect(code(try h.apply(.deleteRange(KVDeleteRange(range: .prefix(KVSystemKeys.prefix))), as: root)) == .reservedKey)
        #expect(try h.machine.access(of: [], on: h.backend).authEnabled)
        // Write without read: no previous record returned.
        try h.succeed(.auth(.roleAdd(name: b("w"))), as: root)
        try h.succeed(.auth(.roleGrant(role: b("w"), permission: KVPermission(.write, .prefix(b("w/"))))), as: root)
        try h.succeed(.auth(.userGrantRole(user: alice, role: b("w"))), as: root)
        try h.succeed(.put(KVPut(key: b("w/1"), value: b("secret"))), as: alice)
        #expect(code(try h.apply(.put(KVPut(key: b("w/1"), value: b("x"), returnsPrevious: true)), as: alice)) == .permissionDenied)
        #expect(code(try h.apply(.deleteRange(KVDeleteRange(range: .single(b("w/1")), returnsPrevious: true)), as: alice)) == .permissionDenied)
        // A lease with a key alice may not write: she may not revoke it.
        try h.succeed(.leaseGrant(KVLeaseGrant(id: 9, ttlSeconds: 60)), as: root)
        try h.succeed(.put(KVPut(key: b("other/k"), value: b("v"), lease: 9)), as: root)
        #expect(code(try h.apply(.leaseRevoke(9), as: alice)) == .permissionDenied)
        #expect(try h.get("other/k") != nil)
        try h.succeed(.leaseRevoke(9), as: root)
    }

    @Test("permission ranges cover a request together, not only one by one")
    func coverage() {
        let ranges = [KeyRange(start: b("a"), end: b("c")), KeyRange(start: b("b"), end: b("e")), .single(b("x"))]
        #expect(KVAccess.covers(ranges, KeyRange(start: b("a"), end: b("e"))))
        #expect(KVAccess.covers(ranges, KeyRange(start: b("b1"), end: b("d"))))
        #expect(!KVAccess.covers(ranges, KeyRange(start: b("a"), end: b("e0"))))
        #expect(!KVAccess.covers(ranges, KeyRange(start: b("0"), end: b("b"))))
        #expect(KVAccess.covers(ranges, .single(b("x"))))
        #expect(!KVAccess.covers(ranges, .prefix(b("x"))))
        #expect(!KVAccess.covers(ranges, .all))
        #expect(KVAccess.covers([.all], .all))
    }

    @Test("an entry is shown to a user only if it may read every key the entry names")
    func entries() throws {
        let h = try secured()
        let access = try h.machine.access(of: alice, on: h.backend)
        func payload(_ c: KVCommand) -> [UInt8] { KVProposal(command: c).encoded() }
        #expect(access.checkEntry(isNormal: true, payload: payload(.put(KVPut(key: b("app/x"), value: b("1"))))) == nil)
        #expect(access.checkEntry(isNormal: true, payload: payload(.put(KVPut(key: b("other/y"), value: b("1"))))) != nil)
        let txn = KVTxn(compares: [KVCompare(key: b("other/y"), .version(0), .equal)], success: [.put(KVPut(key: b("app/x"), value: b("1")))])
        #expect(access.checkEntry(isNormal: true, payload: payload(.txn(txn))) != nil)
        #expect(access.checkEntry(isNormal: true, payload: payload(.auth(.userAdd(name: b("bob"), password: hash)))) != nil)
        #expect(access.checkEntry(isNormal: true, payload: []) == nil)
        #expect(access.checkEntry(isNormal: false, payload: [1, 2, 3]) == nil)
        #expect(try h.machine.access(of: [], on: h.backend).checkEntry(isNormal: false, payload: [])?.code == .authRequired)
    }

    @Test("the leader adds the principal to a client's proposal bytes; a client cannot")
    func principalBytes() throws {
        for session in [nil, ClientSession(clientID: ClientID(5), sequence: SequenceNumber(3))] {
            let proposal = KVProposal(session: session, command: .put(KVPut(key: b("k"), value: b("v"))))
            let added = try #require(KVProposal.adding(principal: alice, to: proposal.encoded()))
            #expect(try KVProposal(decoding: added) == KVProposal(session: session, command: proposal.command, principal: alice))
            #expect(KVProposal.adding(principal: root, to: added) == nil)
        }
        // Bad scrypt parameters are refused before they reach the state.
        let weak = KVPasswordHash(logN: 4, r: 8, p: 1, salt: hash.salt, hash: hash.hash)
        #expect(throws: KVCommandError.self) { try KVProposal(command: .auth(.userAdd(name: alice, password: weak))).validate() }
        #expect(throws: KVCommandError.self) { try KVProposal(command: .auth(.userAdd(name: b("bad name"), password: nil))).validate() }
    }
}
