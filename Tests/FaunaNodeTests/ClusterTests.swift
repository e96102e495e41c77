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
