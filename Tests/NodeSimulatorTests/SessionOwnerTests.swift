import FaunaKV
import FaunaRPC
import FaunaRaft
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

/// Client sessions on a cluster of simulated nodes: a new cluster's leader takes the state to
/// the current level, so a session belongs to the user whose write opened it.
@Suite struct SessionOwnerTests {
    func write(
        _ cluster: SteppedCluster, _ leader: NodeID, as user: String, client: UInt64, sequence: UInt64, value: String
    ) throws -> KVApplyResult {
        let reply = RecordingReply()
        let context = RPCRequestContext(requestID: RequestID(sequence), identity: ConnectionIdentity(user: b(user)), reply: reply)
        cluster.node(leader).events!.offer(.request(putRequest("k", value, client: client, sequence: sequence), context))
        try #require(cluster.step(until: { !reply.sends.isEmpty }), "no answer: \(cluster.sim.describeNodes())")
        guard case .writeResponse(let result) = reply.messages.first else {
            Issue.record("answered \(reply.messages)")
            return KVApplyResult(revision: .zero, outcome: .success(succeeded: false, results: []))
        }
        return result
    }

    @Test func aNewClusterRefusesAnotherUsersWriteUnderASession() throws {
        let cluster = try SteppedCluster(voters: 3)
        let leader = try cluster.settle()
        for id in cluster.ids {
            #expect(try cluster.node(id).store!.stateLevel() == KVStateLevel.current, "node \(id)")
        }
        let first = try write(cluster, leader, as: "alice", client: 7, sequence: 1, value: "a1")
        guard case .success = first.outcome else { Issue.record("alice's first write: \(first)"); return }

        let hijack = try write(cluster, leader, as: "mallory", client: 7, sequence: 2, value: "m")
        guard case .invalid(let e) = hijack.outcome else { Issue.record("mallory's write: \(hijack)"); return }
        #expect(e.code == .permissionDenied)

        let next = try write(cluster, leader, as: "alice", client: 7, sequence: 2, value: "a2")
        guard case .success = next.outcome else { Issue.record("alice's second write: \(next)"); return }
        #expect(!next.isReplay, "applied, not answered as a replay of mallory's write")
        let read = try cluster.node(leader).store!.range(KVRangeRequest(range: .single(b("k"))))
        #expect(read.records.first?.record.value == b("a2"))
        #expect(read.records.first?.record.version == 2, "alice's two puts, none of mallory's")
    }
}
