import FaunaKV
import FaunaRPC
import FaunaRaft
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

/// A follower keeps newly committed entries back for up to `followerApplyHold` and hands them
/// to the apply stage together (`NodeCore.holdsApply`); a leader never does, and a read on the
/// follower never waits for the hold. The simulator's sweeps run every scenario with the
/// default hold; these check the rule itself.
@Suite struct FollowerApplyHoldTests {
    /// 40 puts, each answered by the leader before the next is sent (a few milliseconds each in
    /// 1 ms steps): the groups each node posted to its apply stage, and whether the follower
    /// caught up.
    static func groupsPosted(hold: Duration) throws -> (leader: Int, follower: Int, caughtUp: Bool) {
        var options = NodeSimOptions()
        options.followerApplyHold = hold
        let cluster = try SteppedCluster(voters: 3, options: options)
        cluster.sim.network.delayMin = 100
        cluster.sim.network.delayMax = 200
        let leader = try cluster.settle()
        let follower = try #require(cluster.ids.first { $0 != leader })
        let leaderCore = try #require(cluster.node(leader).core)
        let followerCore = try #require(cluster.node(follower).core)
        let before = (leaderCore.counters.applyGroupsPosted, followerCore.counters.applyGroupsPosted)
        let reply = RecordingReply()
        for i in 1...40 {
            cluster.node(leader).events!.offer(.request(putRequest("k\(i)", "v\(i)", client: 9, sequence: UInt64(i)), reply.context(UInt64(i))))
            try #require(cluster.step(until: { reply.sends.count == i }, ms: 100), "put \(i) not answered")
        }
        for message in reply.messages {
            guard case .writeResponse = message else {
                Issue.record("answered \(message)")
                break
            }
        }
        let leaderApplied = try #require(cluster.node(leader).store).appliedIndex
        // The last commit reaches the follower with the next heartbeat (a tick, 10 ms), then
        // the hold runs out.
        let caughtUp = cluster.step(until: { cluster.node(follower).store?.appliedIndex == leaderApplied }, ms: 10 + 20 + 10)
        return (
            leaderCore.counters.applyGroupsPosted - before.0, followerCore.counters.applyGroupsPosted - before.1, caughtUp
        )
    }

    @Test func aFollowerAppliesInGroupsAndCatchesUpWithinTheHold() throws {
        let held = try Self.groupsPosted(hold: .milliseconds(20))
        #expect(held.caughtUp, "the follower did not apply the last put within the tick and the hold")
        #expect(held.leader >= 40, "the leader posted \(held.leader) groups for 40 puts answered one by one: it must not hold")
        #expect(held.follower <= 15, "the follower posted \(held.follower) groups for 40 puts with a 20 ms hold")
        let unheld = try Self.groupsPosted(hold: .zero)
        #expect(unheld.caughtUp)
        #expect(unheld.follower >= 30, "without a hold the follower posted only \(unheld.follower) groups for 40 puts")
    }

    /// A linearizable read on a follower whose entries are held (a 200 ms hold here) is
    /// answered after its read round, not after the hold, and sees the write.
    @Test func aReadOnTheFollowerDoesNotWaitForTheHold() throws {
        var options = NodeSimOptions()
        options.followerApplyHold = .milliseconds(200)
        let cluster = try SteppedCluster(voters: 3, options: options)
        cluster.sim.network.delayMin = 100
        cluster.sim.network.delayMax = 200
        let leader = try cluster.settle()
        let follower = try #require(cluster.ids.first { $0 != leader })
        let writer = RecordingReply()
        cluster.node(leader).events!.offer(.request(putRequest("k", "v", client: 9), writer.context(1)))
        try #require(cluster.step(until: { !writer.sends.isEmpty }, ms: 100))
        let reader = RecordingReply()
        cluster.node(follower).events!.offer(
            .request(.read(ReadRequest(KVRangeRequest(range: .single(b("k"))))), reader.context(2)))
        try #require(cluster.step(until: { !reader.sends.isEmpty }, ms: 30), "the read waited for the hold")
        guard case .readResponse(let result) = reader.messages.first, result.records.first?.record.value == b("v") else {
            Issue.record("answered \(reader.messages)")
            return
        }
    }
}
