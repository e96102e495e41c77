import Testing
@testable import FaunaRaft

@Suite struct MembershipTests {
    func clusterWithLeader() throws -> TestCluster {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c.tickAll(times: 1)
        return c
    }

    @Test func learnerCatchesUpButNeitherVotesNorCampaigns() throws {
        let c = try clusterWithLeader()
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        try c.addEmptyNode(4)
        try c[1].proposeConfChange(ConfChange(.addLearner, NodeID(4)))
        try c.stabilize()
        try c.tickAll(times: 3)
        #expect(c[1].conf.learners == [NodeID(4)])
        #expect(c[4].conf.learners == [NodeID(4)] && c[4].conf.voters == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(c.appliedData(4).count == 5)
        try c.tick(4, times: 50)
        #expect(c[4].role == .follower, "a learner never campaigns")
        // Commit still needs 2 of the 3 voters, not 3 of 4 members.
        c.isolate(2)
        try c[1].propose(bytes("y"))
        try c.stabilize()
        #expect(c[1].commitIndex == c[1].lastIndex)
    }

    @Test func promotionRequiresLearnerToHaveCaughtUp() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.learnerCatchUpEntriesMax = 3 }
        try c.elect(1)
        try c.addEmptyNode(4)
        try c[1].proposeConfChange(ConfChange(.addLearner, NodeID(4)))
        try c.stabilize()
        try c.tickAll(times: 1)
        c.isolate(4)
        for i in 0..<10 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        #expect { try c[1].proposeConfChange(ConfChange(.addVoter, NodeID(4))) } throws: {
            ($0 as? RaftError)?.code == .learnerNotCaughtUp
        }
        c.heal()
        try c.tickAll(times: 3)
        try c[1].proposeConfChange(ConfChange(.addVoter, NodeID(4)))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(c[1].conf.voters == [1, 2, 3, 4].map { NodeID($0) })
    }

    @Test func addingAVoterDirectlyIsRefused() throws {
        let c = try clusterWithLeader()
        #expect { try c[1].proposeConfChange(ConfChange(.addVoter, NodeID(7))) } throws: {
            ($0 as? RaftError)?.code == .invalidConfChange
        }
    }

    @Test func onlyOneChangeAtATime() throws {
        let c = try clusterWithLeader()
        try c.addEmptyNode(4)
        c.isolate(2)
        c.isolate(3)
        try c[1].proposeConfChange(ConfChange(.addLearner, NodeID(4)))
        #expect { try c[1].proposeConfChange(ConfChange(.remove, NodeID(2))) } throws: {
            ($0 as? RaftError)?.code == .confChangeInProgress
        }
    }

    @Test func removingAFollowerShrinksTheQuorum() throws {
        let c = try clusterWithLeader()
        try c[1].proposeConfChange(ConfChange(.remove, NodeID(3)))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(c[1].conf.voters == [NodeID(1), NodeID(2)])
        c.isolate(3)
        try c[1].propose(bytes("y"))
        try c.stabilize()
        #expect(c[1].commitIndex == c[1].lastIndex)
    }

    /// A removed follower stops only once it applies its own removal, so it must learn the
    /// commit index that covers it. Here the append that would carry it is held back by the
    /// follower's full in-flight window (one message) until the leader has applied the
    /// removal and dropped the follower's progress: the leader's last append to it, sent
    /// outside flow control, is all it gets.
    @Test func removedFollowerWithAFullWindowStillAppliesItsRemoval() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.inflightMessagesMax = 1 }
        try c.elect(1)
        try c.tickAll(times: 1)
        try c[1].propose(bytes("before"))
        try c.settle()
        // Node 3 acknowledges nothing from here on until the removal is applied: its window
        // stays full.
        let notThree = { (m: Message) in m.to != NodeID(3) && m.from != NodeID(3) }
        try c.deliver(where: notThree)
        try c[1].proposeConfChange(ConfChange(.remove, NodeID(3)))
        for _ in 0..<10 where c[1].conf.isMember(NodeID(3)) { try c.deliver(where: notThree) }
        #expect(!c[1].conf.isMember(NodeID(3)), "the leader applied the removal")
        try c.stabilize()
        #expect(!c[3].conf.isMember(NodeID(3)), "node 3 applied its own removal")
        #expect(c.applied[NodeID(3)]?.last?.type == .confChange)
    }

    @Test func removedLeaderStepsDownAndTheRestElect() throws {
        let c = try clusterWithLeader()
        try c[1].proposeConfChange(ConfChange(.remove, NodeID(1)))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(!c[1].isLeader)
        #expect(c[2].conf.voters == [NodeID(2), NodeID(3)])
        try c.tickAll(times: 40)
        #expect(c.leaders.count == 1 && c.leaders[0] != NodeID(1))
        let leader = c.leaders[0].rawValue
        try c[leader].propose(bytes("after"))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(c.appliedData(2).last == bytes("after"))
    }

    @Test func removingTheLastVoterIsRefused() throws {
        let c = try TestCluster(voters: [1])
        try c.elect(1)
        try c.tickAll(times: 1)
        #expect(throws: RaftError.self) { try c[1].proposeConfChange(ConfChange(.remove, NodeID(1))) }
    }

    @Test func confChangeCodecRoundTripsAndRejectsGarbage() {
        let change = ConfChange(.addLearner, NodeID(42), context: [1, 2, 3])
        #expect(ConfChange(decoding: change.encoded) == change)
        #expect(ConfChange(decoding: []) == nil)
        #expect(ConfChange(decoding: [9, 0, 0, 0, 0, 0, 0, 0, 1]) == nil, "unknown kind")
        #expect(ConfChange(decoding: [0, 0, 0, 0, 0, 0, 0, 0, 0]) == nil, "node id 0")
    }
}

@Suite struct SnapshotTests {
    @Test func followerBehindCompactedLogReceivesSnapshot() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.isolate(3)
        for i in 0..<10 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        try c.tickAll(times: 1)
        let storage = c.storages[NodeID(1)]!
        let applied = c[1].appliedIndex
        try storage.createSnapshot(at: applied, confState: c[1].conf, data: [0xAB])
        #expect(c[1].firstIndex == applied + 1)
        c.heal()
        c.sent = []
        try c.tickAll(times: 3)
        #expect(c.sent.contains { $0.type == .snapshot && $0.to == NodeID(3) })
        #expect(c.storages[NodeID(3)]!.snapshotIndex == applied)
        #expect(c[3].commitIndex == c[1].commitIndex)
        #expect(c[3].conf == c[1].conf)
        // Replication continues normally after the snapshot.
        try c[1].propose(bytes("after"))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(c.appliedData(3) == [bytes("after")])
    }

    @Test func lostSnapshotIsResent() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.isolate(3)
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        try c.tickAll(times: 1)
        try c.storages[NodeID(1)]!.createSnapshot(at: c[1].appliedIndex, confState: c[1].conf, data: [])
        c.heal()
        try c.tick(1, times: 2)
        c.mailbox.removeAll { $0.type == .snapshot }
        try c.tickAll(times: 25)
        #expect(c.storages[NodeID(3)]!.snapshotIndex == c.storages[NodeID(1)]!.snapshotIndex)
    }

    /// A follower that already holds the snapshot's last entry only moves its commit index
    /// forward, and acknowledges that commit index, not its last index: entries after the
    /// snapshot may be an old leader's that the sender's log does not hold, and counting them
    /// as matched could commit them (etcd-io/raft replies with `raftLog.committed`).
    @Test func snapshotAlreadyInTheLogIsAcknowledgedAtTheCommitIndex() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.settle()
        try c.deliver(where: { $0.type == .append })  // n3 stores the entries, not their commit
        c.isolate(3)
        try c.stabilize()
        let snapshotIndex = c[3].commitIndex + 2
        #expect(c[3].lastIndex == snapshotIndex + 3)
        c.sent = []
        let meta = SnapshotMetadata(index: snapshotIndex, term: c[1].term, confState: c[1].conf)
        c[3].step(Message(type: .snapshot, from: NodeID(1), to: NodeID(3), term: c[1].term, snapshot: Snapshot(metadata: meta)))
        try c.settle()
        #expect(c[3].commitIndex == snapshotIndex)
        let reply = c.sent.first { $0.type == .appendResponse && $0.from == NodeID(3) }
        #expect(reply?.index == snapshotIndex, "acknowledged \(String(describing: reply?.index)), last index \(c[3].lastIndex)")
    }

    @Test func restartedNodeRecoversFromPersistedState() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        try c.tickAll(times: 1)
        let before = c[2].hardState
        c.crash(2)
        try c.restart(2)
        #expect(c[2].hardState.term == before.term && c[2].lastIndex == c[1].lastIndex)
        try c[1].propose(bytes("y"))
        try c.stabilize()
        try c.tickAll(times: 1)
        #expect(c.appliedData(2).last == bytes("y"))
    }
}
