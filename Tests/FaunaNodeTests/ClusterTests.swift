import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// End to end: three (or four) real faunad processes on 127.0.0.1.
@Suite(.serialized) struct ClusterTests {
    static let names = ["n1", "n2", "n3"]

    @Test func writesReplicateAndReadsAreLinearizableOnEveryNode() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(7), sequence: .first)
        var lastRevision = Revision.zero
        for i in 0..<50 {
            let result = try await cluster.write(.put(KVPut(key: [UInt8]("k\(i)"), value: [UInt8]("v\(i)"))), session: &session, via: [leader])
            #expect(result.revision > lastRevision)
            lastRevision = result.revision
        }
        // Linearizable reads on every node (followers via ReadIndex at the leader) see the
        // last write at once; no waiting.
        for n in Self.names {
            let read = try #require(await cluster.read(n, key: [UInt8]("k49")))
            #expect(read.records.first?.record.value == [UInt8]("v49"), "node \(n)")
            #expect(read.revision >= lastRevision, "node \(n)")
        }
        let reports = try await cluster.waitConverged(Self.names)
        #expect(reports[leader]?.treeSize == reports[leader]?.appliedIndex.rawValue)
        #expect(reports[leader]?.treeRoot.count == 32)
        // A follower refuses writes with a hint naming the leader.
        let follower = Self.names.first { $0 != leader }!
        let answer = await cluster.call(follower, .write(WriteRequest(KVProposal(command: .delete([UInt8]("k1"))))))
        guard case .error(let e)? = answer else {
            Issue.record("follower answered \(String(describing: answer)) to a write")
            return
        }
        #expect(e.code == .notLeader)
        #expect(e.leaderHint?.nodeID == cluster.nodes[leader]?.id)
        #expect(e.leaderHint?.clientAddress?.port == UInt16(cluster.nodes[leader]!.client))
    }
}

extension ClusterTests {
    @Test func leaderKilledNewLeaderTakesOverAndRestartedNodeCatchesUp() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let first = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(11), sequence: .first)
        for i in 0..<20 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("a\(i)"), value: [UInt8]("1"))), session: &session, via: Self.names)
        }
        await cluster.kill(first)  // SIGKILL
        let survivors = Self.names.filter { $0 != first }
        let second = try await cluster.waitForLeader(among: survivors)
        #expect(second != first)
        for i in 0..<30 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("b\(i)"), value: [UInt8]("2"))), session: &session, via: survivors)
        }
        #expect(await cluster.read(second, key: [UInt8]("a19"))?.records.first?.record.value == [UInt8]("1"))
        // The killed node restarts from its own disk and catches up by log.
        try cluster.start(first)
        let reports = try await cluster.waitConverged(Self.names)
        #expect(reports[first]?.appliedIndex == reports[second]?.appliedIndex)
        #expect(await cluster.read(first, key: [UInt8]("b29"))?.records.first?.record.value == [UInt8]("2"))
    }

    @Test func retriedWriteWithTheSameSessionAppliesOnce() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let session = ClientSession(clientID: ClientID(99), sequence: .first)
        let put = KVProposal(session: session, command: .put(KVPut(key: [UInt8]("once"), value: [UInt8]("x"))))
        guard case .writeResponse(let first)? = await cluster.call(leader, .write(WriteRequest(put))),
            case .writeResponse(let retry)? = await cluster.call(leader, .write(WriteRequest(put)))
        else {
            Issue.record("writes not answered")
            return
        }
        #expect(!first.isReplay)
        #expect(retry.isReplay)
        #expect(retry.revision == first.revision)
        let read = try #require(await cluster.read(leader, key: [UInt8]("once")))
        #expect(read.records.first?.record.version == 1)
    }

    @Test func nodeDownWhileLogIsCompactedCatchesUpBySnapshot() async throws {
        let cluster = try ProcessCluster(names: Self.names, settings: "snapshot_entries = 40")
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let lagging = Self.names.first { $0 != leader }!
        await cluster.kill(lagging, signal: SIGTERM)
        #expect(!cluster.isRunning(lagging))
        let up = Self.names.filter { $0 != lagging }
        var session = ClientSession(clientID: ClientID(5), sequence: .first)
        for i in 0..<200 {
            _ = try await cluster.write(
                .put(KVPut(key: [UInt8]("s\(i % 50)"), value: [UInt8](String(repeating: "v", count: 100)))), session: &session, via: up)
        }
        // The leader's log no longer starts where the lagging node stopped.
        #expect(cluster.log(of: leader).contains("compacted the Raft log"))
        try cluster.start(lagging)
        let reports = try await cluster.waitConverged(Self.names)
        #expect(cluster.log(of: lagging).contains("installed a snapshot"), "the lagging node should catch up by snapshot")
        #expect(cluster.log(of: leader).contains("snapshot sent"))
        #expect(reports[lagging]?.treeSize == reports[leader]?.treeSize)
        // It keeps up by log afterwards, and restarts from the installed state.
        _ = try await cluster.write(.put(KVPut(key: [UInt8]("after"), value: [UInt8]("x"))), session: &session, via: up)
        await cluster.kill(lagging)
        try cluster.start(lagging)
        _ = try await cluster.waitConverged(Self.names)
        #expect(await cluster.read(lagging, key: [UInt8]("after"))?.records.first?.record.value == [UInt8]("x"))
    }

    @Test func leadershipTransfersOnRequest() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let target = Self.names.first { $0 != leader }!
        let answer = await cluster.call(leader, .leaderTransfer(cluster.nodes[target]!.id), timeout: .seconds(10))
        guard case .leaderTransferResponse? = answer else {
            Issue.record("transfer answered \(String(describing: answer))")
            return
        }
        let now = try await cluster.waitForLeader(among: Self.names)
        #expect(now == target)
        var session = ClientSession(clientID: ClientID(3), sequence: .first)
        _ = try await cluster.write(.put(KVPut(key: [UInt8]("t"), value: [UInt8]("1"))), session: &session, via: [target])
    }

    @Test func learnerIsAddedPromotedAndAnotherMemberRemoved() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(21), sequence: .first)
        for i in 0..<20 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("m\(i)"), value: [UInt8]("1"))), session: &session, via: [leader])
        }
        try cluster.addNode("n4")
        try cluster.start("n4", config: "n4.toml", join: true)
        let n4 = cluster.nodes["n4"]!
        let learner = Member(
            nodeID: n4.id, peerAddress: Endpoint(host: "127.0.0.1", port: UInt16(n4.peer)),
            clientAddress: Endpoint(host: "127.0.0.1", port: UInt16(n4.client)), isLearner: true)
        guard let afterAdd = await cluster.changeMembership(.addLearner(learner), via: leader) else { return }
        #expect(afterAdd.first { $0.nodeID == n4.id }?.isLearner == true)
        let all = Self.names + ["n4"]
        _ = try await cluster.waitConverged(all)
        // Promote (retried while the learner is still catching up).
        let promoted = await cluster.changeMembership(.promote(n4.id), via: leader)
        #expect(promoted?.first { $0.nodeID == n4.id }?.isLearner == false)
        // Remove a follower that is not n4.
        let removed = Self.names.first { $0 != leader }!
        guard let afterRemove = await cluster.changeMembership(.remove(cluster.nodes[removed]!.id), via: leader) else { return }
        #expect(!afterRemove.contains { $0.nodeID == cluster.nodes[removed]!.id })
        #expect(afterRemove.count == 3)
        // The removed node stops by itself once it applies its removal.
        var stopped = false
        for _ in 0..<200 where !stopped {
            stopped = !cluster.isRunning(removed)
            if !stopped { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(stopped, "a removed member stops")
        #expect(cluster.log(of: removed).contains("removed from the cluster"))
        await cluster.kill(removed)
        let remaining = all.filter { $0 != removed }
        for i in 0..<10 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("r\(i)"), value: [UInt8]("2"))), session: &session, via: remaining)
        }
        let reports = try await cluster.waitConverged(remaining)
        #expect(Set(reports.values.map(\.treeRoot)).count == 1)
        #expect(await cluster.read("n4", key: [UInt8]("r9"))?.records.first?.record.value == [UInt8]("2"))
    }

    /// A member removed while it was down never receives its removal once started again (the
    /// leader sends it nothing): the members that applied the removal refuse its hellos by its
    /// key, also after their own restart (`<data>/members`), and it stops by itself.
    @Test func memberRemovedWhileDownStopsWhenStartedAgain() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(23), sequence: .first)
        for i in 0..<5 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("d\(i)"), value: [UInt8]("1"))), session: &session, via: [leader])
        }
        _ = try await cluster.waitConverged(Self.names)  // every node has dialled every other: keys known
        let removed = Self.names.first { $0 != leader }!
        let remaining = Self.names.filter { $0 != removed }
        await cluster.kill(removed)
        guard let after = await cluster.changeMembership(.remove(cluster.nodes[removed]!.id), via: leader) else { return }
        #expect(after.count == 2)
        // Both remaining members restart: only what they kept on disk can refuse the node now.
        for n in remaining { await cluster.kill(n, signal: SIGTERM) }
        for n in remaining { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: remaining)
        #expect(try String(contentsOfFile: cluster.dataDirectory(of: remaining[0]) + "/members", encoding: .utf8)
            .contains("removed \(cluster.nodes[removed]!.id.rawValue) "))
        try cluster.start(removed)
        let exit = await cluster.waitForExit(removed, seconds: 30)
        #expect(exit?.reason == .exit && exit?.status == 0, "a member removed while down stops when started again")
        #expect(cluster.log(of: removed).contains("has applied its removal"))
        _ = try await cluster.write(.put(KVPut(key: [UInt8]("d9"), value: [UInt8]("2"))), session: &session, via: remaining)
    }
}
