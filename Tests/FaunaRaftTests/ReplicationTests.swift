import Testing
@testable import FaunaRaft

@Suite struct ReplicationTests {
    @Test func proposalsCommitAndApplyInOrderEverywhere() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        for i in 0..<20 { try c[1].propose(bytes("v\(i)")) }
        try c.stabilize()
        try c.tickAll(times: 2)  // heartbeats carry the final commit index
        let want = (0..<20).map { bytes("v\($0)") }
        for id: UInt64 in [1, 2, 3] { #expect(c.appliedData(id) == want) }
    }

    @Test func deferredCommitRidesTheNextAppendOrTick() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.deferCommitBroadcast = true }
        try c.elect(1)
        try c.tickAll(times: 1)
        c.sent = []
        let a = try c[1].propose(bytes("a"))
        try c.stabilize()
        #expect(c[1].commitIndex == a)
        #expect(c[2].commitIndex < a && c[3].commitIndex < a, "no append only for the new commit index")
        #expect(!c.sent.contains { $0.type == .append && $0.entries.isEmpty })
        // The next proposal's append carries it.
        let b = try c[1].propose(bytes("b"))
        try c.stabilize()
        #expect(c[2].commitIndex == a && c[3].commitIndex == a)
        #expect(c.appliedData(2) == [bytes("a")])
        // With no proposal, the leader's next tick does.
        try c.tick(1)
        try c.stabilize()
        #expect(c[2].commitIndex == b && c[3].commitIndex == b)
        #expect(c.appliedData(3) == [bytes("a"), bytes("b")])
        // A committed membership change goes out at once.
        try c.addEmptyNode(4)
        let change = try c[1].proposeConfChange(ConfChange(.addLearner, NodeID(4)))
        try c.stabilize()
        #expect(c[1].commitIndex == change)
        #expect(c[2].commitIndex == change && c[3].commitIndex == change)
    }

    @Test func withoutDeferralEveryCommitIsSentAtOnce() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c.tickAll(times: 1)
        c.sent = []
        let a = try c[1].propose(bytes("a"))
        try c.stabilize()
        #expect(c[2].commitIndex == a && c[3].commitIndex == a)
        #expect(c.sent.contains { $0.type == .append && $0.entries.isEmpty && $0.commit == a })
    }

    @Test func followerRejectsProposalWithLeaderHint() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        #expect {
            try c[2].propose(bytes("x"))
        } throws: { error in
            (error as? RaftError)?.code == .notLeader && (error as? RaftError)?.leaderHint == NodeID(1)
        }
    }

    @Test func appendsAreBatchedUpToTheByteLimit() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.entriesPerMessageBytesMax = 300 }
        try c.elect(1)
        c.sent = []
        c.isolate(2)
        try c[1].propose(batch: (0..<20).map { _ in [UInt8](repeating: 7, count: 100) })
        try c.stabilize()
        let appends = c.sent.filter { $0.type == .append && $0.to == NodeID(2) && !$0.entries.isEmpty }
        #expect(!appends.isEmpty)
        for m in appends { #expect(m.entries.count <= 2, "300-byte limit allows two 124-byte entries") }
        #expect(appends.contains { $0.entries.count == 2 }, "entries are batched up to the limit")
    }

    @Test func inflightWindowBoundsUnacknowledgedAppends() throws {
        let c = try TestCluster(voters: [1, 2]) { $0.inflightMessagesMax = 3 }
        try c.elect(1)
        c.sent = []
        // Deliver nothing back from n2: the leader may have at most 3 appends in flight.
        for i in 0..<10 {
            try c[1].propose(bytes("p\(i)"))
            try c.settle()
        }
        let appends = c.sent.filter { $0.type == .append && $0.to == NodeID(2) }
        #expect(appends.count == 3)
        try c.stabilize()
        try c.tickAll(times: 2)
        #expect(c.appliedData(2).count == 10, "the window reopens as acknowledgements arrive")
    }

    @Test func lostAppendsWithFullWindowAreRecoveredByHeartbeat() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.inflightMessagesMax = 2 }
        try c.elect(1)
        for i in 0..<6 { try c[1].propose(bytes("p\(i)")) }
        try c.settle()
        c.dropAll()  // every append lost
        try c.tickAll(times: 10)
        #expect(c.appliedData(2).count == 6)
    }

    @Test func fastBackoffSkipsAConflictingTermInFewRoundTrips() throws {
        // n3 accumulates 100 entries of a term that never commits while n1 leads on with 50
        // others: repairing n3 must not take one round trip per entry.
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        try c.elect(3)
        c.isolate(3)
        for i in 0..<100 { try c[3].propose(bytes("lost\(i)")) }
        try c.settle()
        c.heal()
        c.isolate(3)
        try c.elect(1)
        for i in 0..<50 { try c[1].propose(bytes("kept\(i)")) }
        try c.stabilize()
        try c.elect(1)  // re-elected: its view of n3 restarts from its own last index
        c.heal()
        c.sent = []
        try c.tickAll(times: 3)
        let rejections = c.sent.filter { $0.type == .appendResponse && $0.from == NodeID(3) && $0.reject }
        #expect(rejections.count >= 1 && rejections.count <= 3, "got \(rejections.count) rejections")
        #expect(c.appliedData(3) == (0..<50).map { bytes("kept\($0)") })
    }

    @Test func leaderSendsAppendsBeforePersistingButCountsItselfOnlyAfter() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].propose(bytes("x"))
        let ready = c[1].ready()
        #expect(ready.earlyMessages.contains { $0.type == .append }, "appends may leave before the fsync")
        #expect(ready.messages.isEmpty)
        // Both followers acknowledge before the leader's own write is durable: 2 of 3 is a
        // quorum, so it commits — through the followers, not the leader's unpersisted copy.
        let storage = c.storages[NodeID(1)]!
        storage.append(ready.entries)
        c[1].advance(ready)
        #expect(c[1].matchIndexes[NodeID(1)] == ready.entries.last!.index)
    }

    @Test func votesAndAcknowledgementsWaitForPersistence() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false }
        c[1].campaign(.election)
        c[1].step(Message(type: .vote, from: NodeID(1), to: NodeID(2), term: c[1].term, logTerm: Term(1), index: LogIndex(3)))
        let _ = c[1].ready()
        c[2].step(Message(type: .vote, from: NodeID(1), to: NodeID(2), term: c[1].term, logTerm: Term(1), index: LogIndex(3)))
        let ready = c[2].ready()
        #expect(ready.earlyMessages.isEmpty)
        #expect(ready.messages.contains { $0.type == .voteResponse && !$0.reject })
        #expect(ready.mustSync && ready.hardState?.vote == NodeID(1), "the vote is in the Ready to persist first")
    }

    @Test func uncommittedBytesLimitRejectsProposals() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.uncommittedBytesMax = 1_000 }
        try c.elect(1)
        c.isolate(1)
        var rejected: RaftError?
        for _ in 0..<100 {
            do { try c[1].propose([UInt8](repeating: 1, count: 100)) } catch { rejected = error; break }
        }
        #expect(rejected?.code == .overloaded)
        c.heal()
        try c.tickAll(times: 3)
        #expect(throws: Never.self) { try c[1].propose([1]) }
    }

    @Test func oversizedProposalIsRejected() throws {
        let c = try TestCluster(voters: [1]) { $0.proposalBytesMax = 100 }
        try c.elect(1)
        #expect(throws: RaftError.self) { try c[1].propose([UInt8](repeating: 0, count: 200)) }
    }

    /// Raft paper figure 8: an entry from an earlier term, replicated on a majority, must not
    /// be committed by counting replicas — a later leader may still overwrite it.
    @Test func figure8PreviousTermEntryIsNotCommittedByCounting() throws {
        let c = try TestCluster(voters: [1, 2, 3, 4, 5]) {
            $0.preVote = false
            $0.checkQuorum = false
            $0.entriesPerMessageBytesMax = 1  // one entry per append
        }
        // (a) n1 leads and replicates X only to n2.
        try c.elect(1)
        let base = c[1].lastIndex
        try c.tickAll(times: 1)
        for a: UInt64 in [1, 2, 3, 4, 5] { for b: UInt64 in [1, 2, 3, 4, 5] where (a, b) != (1, 2) && (a, b) != (2, 1) {
            c.cut.insert([NodeID(a), NodeID(b)])
        } }
        try c[1].propose(bytes("X"))
        try c.stabilize()
        #expect(c[2].lastIndex == base + 1)
        // (b) n1 crashes; n5 wins with n3 and n4, and its entries stay on n5 alone.
        c.crash(1)
        c.heal()
        c.isolate(2)
        c[5].campaign(.election)
        for _ in 0..<4 { try c.deliver(where: { $0.type != .append }) }
        #expect(c[5].isLeader)
        c.isolate(5)
        try c[5].propose(bytes("Y"))
        try c.settle()
        c.dropAll()
        // (c) n5 crashes; n1 restarts and wins with n2, n3; X reaches n3 but nothing of term 4.
        c.crash(5)
        try c.restart(1)
        c.heal()
        c.isolate(4)
        // Deliver everything except entries of n1's new term: X reaches n3, the no-op never does.
        for _ in 0..<3 where !c[1].isLeader {
            c[1].campaign(.election)
            let t = c[1].term
            for _ in 0..<20 {
                try c.deliver(mapping: { m in
                    var m = m
                    m.entries.removeAll { $0.term == t }
                    return m
                })
            }
        }
        #expect(c[1].isLeader)
        #expect(c[3].term(at: base + 1) == c[1].term(at: base + 1), "X is now on n1, n2, n3")
        #expect(c[1].commitIndex < base + 1, "X is on a majority but from an earlier term: not committed")
        // (d) n1 crashes; n5 returns and wins with n2, n3, n4, overwriting X. Safe, since X
        // was never committed.
        c.crash(1)
        c.heal()
        try c.restart(5)
        c.isolate(1)
        for _ in 0..<3 where !c[5].isLeader { try c.elect(5) }
        #expect(c[5].isLeader)
        try c.tickAll(times: 2)
        #expect(c[2].term(at: base + 1) == c[5].term(at: base + 1))
        #expect(!c.appliedData(2).contains(bytes("X")))
    }
}
