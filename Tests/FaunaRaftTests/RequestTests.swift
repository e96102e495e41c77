import Testing
@testable import FaunaRaft

@Suite struct ReadIndexTests {
    @Test func leaderReadIsAnsweredAfterAQuorumConfirmsLeadership() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        c.isolate(1)
        try c[1].readIndex(context: [1])
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].isEmpty, "no quorum heard: no answer")
        c.heal()
        try c.tickAll(times: 2)
        let states = c.readStates[NodeID(1), default: []]
        #expect(states == [ReadState(index: c[1].commitIndex, context: [1])])
    }

    @Test func oneHeartbeatRoundServesAllWaitingReads() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.sent = []
        for i in 0..<100 { try c[1].readIndex(context: [UInt8(i)]) }
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].count == 100)
        let heartbeats = c.sent.filter { $0.type == .heartbeat }
        #expect(heartbeats.count == 2, "one round: one heartbeat per follower, got \(heartbeats.count)")
    }

    @Test func readsArrivingDuringARoundWaitForTheNextOne() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].readIndex(context: [1])
        try c.settle()  // round 1 heartbeats are queued, not delivered
        try c[1].readIndex(context: [2])
        try c.deliver()  // heartbeats of round 1 reach the followers
        try c.deliver()  // their answers confirm round 1: read 1 only
        #expect(c.readStates[NodeID(1), default: []].map(\.context) == [[1]])
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].map(\.context) == [[1], [2]])
    }

    @Test func heldReadRoundsStartOnceReleased() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.sent = []
        c[1].holdsReadRounds = true
        for i in 0..<5 { try c[1].readIndex(context: [UInt8(i)]) }
        try c.stabilize()
        #expect(c[1].hasReadsWaitingForRound)
        #expect(!c[1].hasReady, "held reads alone make no Ready")
        #expect(c.readStates[NodeID(1), default: []].isEmpty, "held: no round, no answer")
        #expect(!c.sent.contains { $0.type == .heartbeat }, "no heartbeat round while held")
        c[1].holdsReadRounds = false
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].count == 5)
        #expect(c[1].readRoundsStarted == 1 && c[1].readsInLastRound == 5)
        #expect(c.sent.filter { $0.type == .heartbeat }.count == 2, "one round for the five")
    }

    @Test func aRoundInFlightCompletesWhileRoundsAreHeld() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].readIndex(context: [1])
        try c.settle()  // round 1 started; its heartbeats are queued
        c[1].holdsReadRounds = true
        try c[1].readIndex(context: [2])
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].map(\.context) == [[1]], "round 1 confirmed, read 2 held")
        #expect(c[1].readRoundsStarted == 1)
        c[1].holdsReadRounds = false
        try c.stabilize()
        #expect(c.readStates[NodeID(1), default: []].map(\.context) == [[1], [2]])
        #expect(c[1].readRoundsStarted == 2 && c[1].readsInLastRound == 1)
    }

    @Test func followerReadIsForwardedToTheLeader() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        try c[2].readIndex(context: [9])
        try c.stabilize()
        #expect(c.readStates[NodeID(2), default: []] == [ReadState(index: c[1].commitIndex, context: [9])])
    }

    @Test func newLeaderDefersReadsUntilItCommitsInItsTerm() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false }
        c[1].campaign(.election)
        // Win the election, but keep the no-op from committing.
        for _ in 0..<3 { try c.deliver(where: { $0.type != .append }) }
        #expect(c[1].isLeader)
        try c[1].readIndex(context: [1])
        try c.deliver(where: { $0.type != .append && $0.type != .appendResponse })
        #expect(c.readStates[NodeID(1), default: []].isEmpty)
        try c.stabilize()
        let states = c.readStates[NodeID(1), default: []]
        #expect(states.count == 1 && states[0].index >= c[1].lastIndex, "read index covers the no-op")
    }

    @Test func readQueueIsBounded() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.readsPendingMax = 10 }
        try c.elect(1)
        c.isolate(1)
        for i in 0..<10 { try c[1].readIndex(context: [UInt8(i)]) }
        #expect { try c[1].readIndex(context: [99]) } throws: { ($0 as? RaftError)?.code == .readQueueFull }
    }

    @Test func followerWithoutLeaderRefusesReads() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        #expect { try c[2].readIndex(context: [1]) } throws: { ($0 as? RaftError)?.code == .notLeader }
    }
}

@Suite struct LeaderTransferTests {
    @Test func transferMakesTargetLeader() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        try c[1].transferLeadership(to: NodeID(3))
        try c.stabilize()
        #expect(c.leaders == [NodeID(3)])
        #expect(c.sent.contains { $0.type == .timeoutNow && $0.to == NodeID(3) })
    }

    @Test func transferWaitsForTargetToCatchUp() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.isolate(3)
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        c.heal()
        try c[1].transferLeadership(to: NodeID(3))
        #expect { try c[1].propose(bytes("y")) } throws: { ($0 as? RaftError)?.code == .transferInProgress }
        try c.stabilize()
        #expect(c.leaders == [NodeID(3)])
        #expect(c[3].term(at: LogIndex(9)) != nil, "n3 has every entry")
    }

    @Test func transferToUnreachableTargetIsAbandoned() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        c.isolate(3)
        try c[1].transferLeadership(to: NodeID(3))
        c.cut.remove([NodeID(1), NodeID(2)])
        c.cut.remove([NodeID(2), NodeID(1)])
        try c.tickAll(times: 11)
        #expect(c[1].isLeader && c[1].transferTarget == nil)
        #expect(throws: Never.self) { try c[1].propose(bytes("y")) }
    }

    @Test func transferToNonVoterIsRefused() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        #expect(throws: RaftError.self) { try c[1].transferLeadership(to: NodeID(9)) }
        #expect(throws: RaftError.self) { try c[2].transferLeadership(to: NodeID(3)) }
    }
}
