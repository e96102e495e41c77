import Testing
@testable import FaunaRaft

/// Membership takes effect when applied, so a node that has committed changes it has not yet
/// handed to the application counts votes and acknowledgements against an old configuration.
/// It must not campaign until it has applied them (etcd-io/raft `hup`, which refuses while
/// `hasUnappliedConfChanges`).
@Suite struct UnappliedConfChangeTests {
    /// n3 leads {1,2,3}; n2 is cut off while the cluster takes 20 writes and grows to {1..5}.
    /// Then n2 receives the whole log and its commit index, but its apply queue is slow: it
    /// hands out one entry per Ready, so it still has {1,2,3} as its configuration.
    /// - Returns: the cluster and the commit index that covers the growth to five voters.
    func clusterWhereNode2CommittedGrowthButNotApplied() throws -> (TestCluster, LogIndex) {
        let c = try TestCluster(voters: [1, 2, 3]) {
            if $0.id == NodeID(2) { $0.committedBytesPerReadyMax = 1 }  // one entry per Ready
        }
        try c.elect(3)
        try c.addEmptyNode(4)
        try c.addEmptyNode(5)
        c.isolate(2)
        for i in 0..<20 { try c[3].propose(bytes("x\(i)")) }
        try c.stabilize()
        for change in [ConfChange(.addLearner, NodeID(4)), ConfChange(.addVoter, NodeID(4)),
                       ConfChange(.addLearner, NodeID(5)), ConfChange(.addVoter, NodeID(5))] {
            try c[3].proposeConfChange(change)
            try c.stabilize()
            try c.tickAll(times: 1)
        }
        #expect(c[3].conf.voters == (1...5).map { NodeID($0) })
        let grown = c[3].commitIndex
        c.slowApply = [NodeID(2)]
        c.heal()
        try c.tick(3)  // a heartbeat: n2 answers and n3 sends it the entries it missed
        try c.stabilize()
        #expect(c[2].commitIndex == grown, "n2 must have committed the growth")
        #expect(c[2].conf.voters == [1, 2, 3].map { NodeID($0) }, "n2 must not have applied it yet")
        return (c, grown)
    }

    /// The split brain: with {1,2} cut from {3,4,5}, n2 would win with n1's vote (2 of its
    /// stale 3 voters) and commit its no-op with n1's acknowledgement, while n3 still leads
    /// {3,4,5}, a quorum of the real five voters, and commits at the same index.
    @Test func nodeWithUnappliedGrowthDoesNotCampaignOnTheOldQuorum() throws {
        let (c, grown) = try clusterWhereNode2CommittedGrowthButNotApplied()
        let term = c[2].term
        c.partition([1, 2], [3, 4, 5])
        try c.tick(1, times: 10)  // n1 leaves n3's lease: it would grant n2 a vote
        try c.tick(2, times: 19)  // n2's election timeout is in [10, 20)
        try c.stabilize()
        try c[3].propose(bytes("majority"))
        try c.stabilize()
        let next = grown + 1
        let terms = (c[2].term(at: next), c[3].term(at: next))
        let isSplit = c[2].commitIndex >= next && c[3].commitIndex >= next && terms.0 != terms.1
        #expect(!isSplit, "index \(next) committed in term \(terms.0!) by n2 and in term \(terms.1!) by n3")
        #expect(c[2].role == .follower && c[2].term == term, "n2 campaigned: \(c[2].role) in term \(c[2].term)")
        #expect(!c.sent.contains { $0.from == NodeID(2) && ($0.type == .preVote || $0.type == .vote) })
        // Once the changes are applied, n2 campaigns again (among five voters).
        c.slowApply = []
        try c.settle()
        #expect(c[2].conf.voters == (1...5).map { NodeID($0) })
        try c.tick(2, times: 19)
        #expect(c.sent.contains { $0.from == NodeID(2) && $0.type == .preVote })
    }

    /// Leadership transfer to a node with unapplied membership changes: it ignores TimeoutNow
    /// (the leader abandons the transfer after an election timeout).
    @Test func transferTargetWithUnappliedConfChangesIgnoresTimeoutNow() throws {
        let (c, _) = try clusterWhereNode2CommittedGrowthButNotApplied()
        let term = c[2].term
        try c[3].transferLeadership(to: NodeID(2))
        try c.stabilize()
        #expect(c.sent.contains { $0.type == .timeoutNow && $0.to == NodeID(2) })
        #expect(c[2].role == .follower && c[2].term == term, "n2 campaigned: \(c[2].role) in term \(c[2].term)")
        #expect(c.leaders == [NodeID(3)])
    }
}
