import FaunaKV
import FaunaRPC
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

/// How long the leader holds the next heartbeat round for reads (`NodeCore.readRoundHold`).
/// The simulator's sweeps run every linearizable read through the held rounds and check the
/// history; these check the rule itself.
@Suite struct ReadRoundPacingTests {
    @Test func theHoldGrowsWithTheReadsOfTheLastRound() {
        let spacing = Duration.microseconds(1000)
        #expect(NodeCore.readRoundHold(after: 0, spacing: spacing) == .zero)
        #expect(NodeCore.readRoundHold(after: 1, spacing: spacing) == .microseconds(125), "one client: an eighth")
        #expect(NodeCore.readRoundHold(after: 4, spacing: spacing) == .microseconds(500))
        #expect(NodeCore.readRoundHold(after: 8, spacing: spacing) == spacing)
        #expect(NodeCore.readRoundHold(after: 10_000, spacing: spacing) == spacing, "never more than the spacing")
    }

    @Test func zeroSpacingHoldsNothing() {
        #expect(NodeCore.readRoundHold(after: 64, spacing: .zero) == .zero)
    }

    @Test func theDefaultIsAMillisecond() {
        #expect(PipelineSettings.readRoundSpacingDefault == .milliseconds(1))
    }

    /// Reads arriving every 100 µs on a fast network: rounds are held, many reads share each,
    /// and every read is answered with the value.
    @Test func readsArrivingFastShareHeldRounds() throws {
        let cluster = try SteppedCluster(voters: 3)
        cluster.sim.network.delayMin = 100
        cluster.sim.network.delayMax = 200
        let leader = try cluster.settle()
        let node = cluster.node(leader)
        let writer = RecordingReply()
        node.events!.offer(.request(putRequest("k", "v", client: 9), writer.context(1)))
        try #require(cluster.step(until: { !writer.sends.isEmpty }, ms: 100))
        let core = try #require(node.core)
        let roundsBefore = core.raft.readRoundsStarted
        let reply = RecordingReply()
        var sent: UInt64 = 0
        for _ in 0..<100 {  // 10 ms, two reads per 100 µs
            for _ in 0..<2 {
                sent += 1
                node.events!.offer(.request(.read(ReadRequest(KVRangeRequest(range: .single(b("k"))))), reply.context(sent)))
            }
            cluster.step(micros: 100)
        }
        try #require(cluster.step(until: { reply.messages.count == Int(sent) }, ms: 100), "\(reply.messages.count) of \(sent) answered")
        for message in reply.messages {
            guard case .readResponse(let result) = message, result.records.first?.record.value == b("v") else {
                Issue.record("answered \(message)")
                return
            }
        }
        let rounds = core.raft.readRoundsStarted - roundsBefore
        #expect(core.counters.readRoundHolds > 0, "no round was held")
        #expect(rounds >= 5 && rounds <= 20, "\(rounds) rounds for \(sent) reads in 10 ms; want about one per millisecond")
    }
}
