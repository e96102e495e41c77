import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// docs/RELIABILITY.md: a corrupt record is fail-stop. A record edited at rest so that it no
/// longer decodes must stop the node that meets it — with a log line naming the column family
/// and key, a non-zero exit, and an error (never the corrupt bytes) for the client — while the
/// rest of the cluster keeps serving.
@Suite(.serialized) struct CorruptionTests {
    static let names = ["n1", "n2", "n3"]

    @Test(arguments: [ReadConsistency.serializable, .linearizable])
    func corruptValueStopsTheFollowerThatReadsIt(consistency: ReadConsistency) async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(11), sequence: .first)
        for i in 0..<5 {
            let put = KVPut(key: Array("key\(i)".utf8), value: Array("value\(i)".utf8))
            _ = try await cluster.write(.put(put), session: &session, via: [leader])
        }
        _ = try await cluster.waitConverged(Self.names)

        // On a stopped follower, key3's value becomes bytes that do not decode (format version
        // 0xFF; KVRecord wants 1).
        let victim = try #require(Self.names.first { $0 != leader })
        let others = Self.names.filter { $0 != victim }
        let key = Array("key3".utf8)
        await cluster.kill(victim, signal: SIGTERM)
        _ = try await AuditTests.ldb([
            "--db=\(cluster.dataDirectory(of: victim))/db", "--column_family=kv", "--hex", "put", "0x\(AuditTests.dataGroup)\(AuditTests.hex(key))",
            "0xFF00",
        ])
        try cluster.start(victim)
        let deadline = Date().addingTimeInterval(30)
        // Back, and following a leader (a linearizable read needs one for its read index).
        while await cluster.status(victim)?.leader == nil, Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        try #require(await cluster.status(victim)?.leader != nil, "\(victim) did not come back: \(cluster.log(of: victim).suffix(2000))")

        // The read meets the corrupt record: an error for the client, and the node stops.
        let request = ReadRequest(KVRangeRequest(range: .single(key)), consistency: consistency)
        // A linearizable read may time out while the restarted node is still catching up (its
        // read index not yet applied, on a loaded machine): retried as a client would.
        var answer = await cluster.call(victim, .read(request), timeout: .seconds(10))
        while case .error(let e)? = answer, e.code == .timeout, Date() < deadline {
            answer = await cluster.call(victim, .read(request), timeout: .seconds(10))
        }
        switch answer {
        case .error(let e)?:
            // `unavailable`: the node is stopping; the client retries on another node.
            #expect(e.code == .unavailable, "\(e)")
        case .readResponse(let r)?:
            Issue.record("\(victim) answered the read with data: \(r.records.map(\.record.value))")
        case let other:
            Issue.record("\(victim) answered \(String(describing: other)), want an error")
        }
        let exit = await cluster.waitForExit(victim, seconds: 20)
        let log = cluster.log(of: victim)
        #expect(exit != nil, "\(victim) is still running after reading a corrupt record; log tail: \(log.suffix(1500))")
        if let exit {
            #expect(exit.reason == .exit && exit.status != 0, "\(victim) ended with \(exit)")
        }
        // The key as stored: the data group's prefix (u64 BE 1), then the user key.
        let hexKey = AuditTests.dataGroup.lowercased() + key.map { String(format: "%02x", $0) }.joined()
        #expect(log.contains("corrupt record in column family kv, key \(hexKey)"), "log tail: \(log.suffix(1500))")

        // The other two keep serving: a new write, and reads of it and of key3 on both.
        let put = KVPut(key: Array("after".utf8), value: Array("ok".utf8))
        _ = try await cluster.write(.put(put), session: &session, via: others)
        for n in others {
            let after = try #require(await cluster.read(n, key: Array("after".utf8)), "\(n)")
            #expect(after.records.first?.record.value == Array("ok".utf8), "\(n)")
            let old = try #require(await cluster.read(n, key: key), "\(n)")
            #expect(old.records.first?.record.value == Array("value3".utf8), "\(n)")
        }
        await cluster.shutdown()  // here, not only in the deferred task, which may not run before exit
    }

    /// A Raft log entry that no longer decodes, on a node that must read it to bring a lagging
    /// follower up to date as leader: it stops (exit 1, naming the `log` column family) rather
    /// than keep leading while never replicating, and the other two take over.
    @Test func corruptRaftLogEntryStopsTheLeaderThatReadsIt() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let victim = try #require(Self.names.first { $0 != leader })
        let lagging = try #require(Self.names.first { $0 != leader && $0 != victim })
        var session = ClientSession(clientID: ClientID(12), sequence: .first)
        _ = try await cluster.write(.put(KVPut(key: Array("first".utf8), value: Array("1".utf8))), session: &session, via: [leader])
        _ = try await cluster.waitConverged(Self.names)

        // The lagging follower misses five writes; the victim's copy of the third is damaged.
        await cluster.kill(lagging, signal: SIGTERM)
        var revisions: [Revision] = []
        for i in 0..<5 {
            let put = KVPut(key: Array("missed\(i)".utf8), value: Array("v\(i)".utf8))
            revisions.append(try await cluster.write(.put(put), session: &session, via: [leader]).revision)
        }
        _ = try await cluster.waitConverged([leader, victim])
        await cluster.kill(victim, signal: SIGTERM)
        // group 1 ‖ `E` ‖ u64 BE index (docs/STORAGE.md)
        let entryKey = AuditTests.dataGroup + "45" + String(format: "%016llX", revisions[2].rawValue)
        _ = try await AuditTests.ldb([
            "--db=\(cluster.dataDirectory(of: victim))/db", "--column_family=log", "--hex", "put", "0x\(entryKey)", "0xFF00",
        ])
        try cluster.start(victim)

        // The victim leads (unless it already stopped on the entry), then the lagging node
        // returns and needs the damaged entry from it.
        let victimID = try #require(cluster.nodes[victim]?.id)
        let deadline = Date().addingTimeInterval(30)
        while cluster.isRunning(victim), Date() < deadline, await cluster.status(victim)?.role != .leader {
            _ = await cluster.call(leader, .leaderTransfer(victimID), timeout: .seconds(3))
            try await Task.sleep(for: .milliseconds(200))
        }
        try cluster.start(lagging)
        let exit = await cluster.waitForExit(victim, seconds: 30)
        let log = cluster.log(of: victim)
        #expect(exit != nil, "\(victim) still running with a damaged Raft log; log tail: \(log.suffix(1500))")
        if let exit {
            #expect(exit.reason == .exit && exit.status != 0, "\(victim) ended with \(exit)")
        }
        #expect(log.contains("corrupt record in column family log, key \(entryKey.lowercased())"), "log tail: \(log.suffix(1500))")

        // The other two elect a leader, the lagging node catches up, and both serve.
        let others = [leader, lagging]
        _ = try await cluster.write(.put(KVPut(key: Array("after".utf8), value: Array("ok".utf8))), session: &session, via: others)
        for n in others {
            let read = try #require(await cluster.read(n, key: Array("missed2".utf8)), "\(n)")
            #expect(read.records.first?.record.value == Array("v2".utf8), "\(n)")
        }
        await cluster.shutdown()
    }
}
