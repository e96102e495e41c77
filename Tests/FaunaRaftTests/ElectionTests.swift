import Testing
@testable import FaunaRaft

@Suite struct ElectionTests {
    @Test func singleNodeElectsItselfAfterTimeout() throws {
        let c = try TestCluster(voters: [1])
        try c.tick(1, times: 19)  // randomized timeout is in [10, 20)
        #expect(c[1].isLeader)
        #expect(c[1].term == Term(2))
    }

    @Test func threeNodesElectOneLeaderAndFollowersLearnIt() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        #expect(c.leaders == [NodeID(1)])
        #expect(c[2].leader == NodeID(1) && c[3].leader == NodeID(1))
        #expect(c[2].term == c[1].term)
    }

    @Test func newLeaderAppendsNoopOfItsTerm() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        let last = c[1].lastIndex
        #expect(last == LogIndex(4))  // 3 bootstrap entries + the no-op
        let noop = try c.storages[NodeID(1)]!.entries(from: last, to: last + 1, maxBytes: .max)[0]
        #expect(noop.term == c[1].term && noop.type == .normal && noop.data.isEmpty)
        #expect(c[2].commitIndex == last)
    }

    @Test func voteIsRefusedToCandidateWithStaleLog() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        try c.elect(1)
        c.isolate(3)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        c.heal()
        // n3 missed an entry: n1 and n2 must refuse it, and it must not win.
        try c.elect(3)
        #expect(!c[3].isLeader)
        #expect(c.sent.contains { $0.type == .voteResponse && $0.to == NodeID(3) && $0.reject })
    }

    @Test func aNodeVotesOncePerTerm() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        c[1].campaign(.election)
        c[2].campaign(.election)
        #expect(c[1].term == c[2].term)
        try c.settle()
        try c.deliver(where: { $0.type == .vote && $0.to == NodeID(3) })
        let grants = c.sent.filter { $0.type == .voteResponse && $0.from == NodeID(3) && !$0.reject }
        #expect(grants.count == 1, "n3 granted \(grants.count) votes in term \(c[1].term)")
    }

    @Test func preVoteKeepsPartitionedNodeFromInflatingTerm() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        let term = c[1].term
        c.isolate(3)
        for _ in 0..<10 { try c.elect(3) }
        #expect(c[3].term == term, "a pre-candidate must not bump its term")
        c.heal()
        try c.tickAll(times: 3)
        #expect(c[1].isLeader && c[1].term == term, "the rejoining node must not depose the leader")
    }

    @Test func withoutPreVotePartitionedNodeDisruptsOnReturn() throws {
        // The counterpart of the test above, showing what PreVote prevents.
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        try c.elect(1)
        let term = c[1].term
        c.isolate(3)
        for _ in 0..<3 { try c.elect(3) }
        #expect(c[3].term > term)
        c.heal()
        try c.tickAll(times: 25)  // n3 times out and campaigns with its inflated term
        #expect(c[1].term > term, "the leader learns the inflated term and steps down")
    }

    @Test func checkQuorumMakesIsolatedLeaderStepDown() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.isolate(1)
        try c.tick(1, times: 2 * 10)
        #expect(!c[1].isLeader)
        #expect(c[1].role == .follower && c[1].leader == nil)
    }

    @Test func leaseMakesFollowersIgnoreCampaignsWhileLeaderIsAlive() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false }
        try c.elect(1)
        let term = c[1].term
        try c.elect(2)  // n2 campaigns although the leader is fine
        #expect(c[3].term == term, "n3 heard from the leader within the election timeout")
    }

    @Test func candidateWithQuorumOfRejectionsStepsDown() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false }
        try c.elect(1)
        c.isolate(3)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        c.heal()
        c[1].becomeFollower(term: c[1].term, leader: nil)
        c[2].becomeFollower(term: c[2].term, leader: nil)
        try c.elect(3)
        #expect(c[3].role == .follower)
    }

    @Test func invalidConfigIsATypedError() throws {
        var config = RaftConfig(id: NodeID(1), randomSeed: 1)
        config.electionTicks = 1
        config.heartbeatTicks = 1
        #expect(throws: RaftError.self) { try RaftNode(config: config, storage: MemoryStorage()) }
        let zero = RaftConfig(id: NodeID(0), randomSeed: 1)
        #expect(throws: RaftError.self) { try RaftNode(config: zero, storage: MemoryStorage()) }
    }

    @Test func messagesForAnotherNodeOrStaleTermsAreIgnored() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        let before = c[2].hardState
        c[2].step(Message(type: .append, from: NodeID(1), to: NodeID(3), term: Term(99)))
        c[2].step(Message(type: .vote, from: NodeID(3), to: NodeID(2), term: Term(1), index: LogIndex(99)))
        #expect(c[2].hardState == before)
    }
}

@Suite struct MalformedInputTests {
    @Test func malformedAppendsAreDroppedNotApplied() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        let term = c[1].term
        let last = c[2].lastIndex
        let cases: [[Entry]] = [
            [Entry(term: term, index: last + 2)],  // gap
            [Entry(term: term, index: last + 1), Entry(term: Term(1), index: last + 2)],  // term decreases
            [Entry(term: term.next, index: last + 1)],  // term beyond the leader's
        ]
        for entries in cases {
            c[2].step(Message(type: .append, from: NodeID(1), to: NodeID(2), term: term,
                              logTerm: c[2].term(at: last)!, index: last, entries: entries))
            #expect(c[2].lastIndex == last)
        }
    }

    @Test func acknowledgementBeyondTheLogIsIgnored() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c[1].step(Message(type: .appendResponse, from: NodeID(2), to: NodeID(1), term: c[1].term, index: LogIndex(1_000)))
        #expect(c[1].matchIndexes[NodeID(2)]! <= c[1].lastIndex)
        #expect(c[1].commitIndex <= c[1].lastIndex)
    }
}
