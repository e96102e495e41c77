import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

// Audit requests and digests go from the request entry point straight to the apply queue
// (`NodeCore.routeToApplyStage`), with the bounds they had through the owner.

@Suite struct AuditRoutingTests {
    static let auditRequests: [RPCMessage] = [
        .signedTreeHead(TreeHeadRequest()),
        .inclusionProof(InclusionProofRequest(leafIndex: 0, treeSize: 1)),
        .consistencyProof(ConsistencyProofRequest(oldSize: 1, newSize: 2)),
        .journalEntry(LogIndex(1)),
        .entryProof(EntryProofRequest(index: LogIndex(1), key: [])),
        .membershipChanges(LogIndex(0)),
        .stateDigest(StateDigestRequest(revision: Revision(1))),
        .hashKV,
    ]

    /// Each is answered by the apply stage while the owner runs no round at all (as if it were
    /// blocked in an fsync): nothing reaches the owner's queue.
    @Test func auditRequestsAreAnsweredWithoutTheOwner() throws {
        let cluster = try SteppedCluster(voters: 1)
        _ = try cluster.settle()
        let node = cluster.node(NodeID(1))
        let core = node.core!
        let reply = RecordingReply()
        let events = node.events!.items.count
        for (i, message) in Self.auditRequests.enumerated() {
            #expect(core.routeToApplyStage(message, reply.context(UInt64(i + 1))), "\(message.kind)")
        }
        #expect(node.events!.items.count == events)
        #expect(reply.sends.isEmpty)
        node.applyQueue!.step(max: 64)
        let answers = reply.messages
        try #require(answers.count == Self.auditRequests.count, "\(answers)")
        for (request, answer) in zip(Self.auditRequests, answers) {
            if case .error(let e) = answer { Issue.record("\(request.kind) answered \(e.code): \(e.message)") }
        }
        guard case .signedTreeHeadResponse(let head) = answers[0] else {
            Issue.record("\(answers[0])")
            return
        }
        #expect(head.head.treeSize == UInt64(node.store!.appliedIndex.rawValue))
        #expect(core.clientJobs.held(.stateDigest) == 0)
        #expect(node.events!.items.count == events)
    }

    /// Everything else is the owner's: the router leaves it to the caller.
    @Test func otherRequestsAreLeftForTheOwner() throws {
        let cluster = try SteppedCluster(voters: 1)
        let core = cluster.node(NodeID(1)).core!
        let reply = RecordingReply()
        for message: RPCMessage in [
            putRequest("k", "v", client: 1), .read(ReadRequest(KVRangeRequest(range: .single(b("k"))))), .status(), .members,
            .snapshotSave, .leaderTransfer(NodeID(1)),
        ] {
            #expect(!core.routeToApplyStage(message, reply.context(1)), "\(message.kind)")
        }
        #expect(reply.sends.isEmpty)
        #expect(cluster.node(NodeID(1)).applyQueue!.jobs.isEmpty)
    }

    /// The bounds of the owner's path: a digest needs a free slot, other audit requests room in
    /// the apply queue's bound; else `overloaded` at once.
    @Test func theBoundsStay() throws {
        let cluster = try SteppedCluster(voters: 1)
        _ = try cluster.settle()
        let node = cluster.node(NodeID(1))
        let core = node.core!
        let reply = RecordingReply()
        let events = node.events!.items.count
        let slots = (0..<core.clientJobs.limit(of: .stateDigest)).compactMap { _ in core.clientJobs.claim(.stateDigest) }
        #expect(core.routeToApplyStage(.stateDigest(StateDigestRequest(revision: Revision(1))), reply.context(1)))
        #expect(core.routeToApplyStage(.hashKV, reply.context(2)))
        #expect(reply.messages.map(errorCode) == [.overloaded, .overloaded])
        for slot in slots { slot.release() }

        let queue = node.applyQueue!
        var id: UInt64 = 10
        while queue.jobs.count < queue.capacity {
            id += 1
            #expect(core.routeToApplyStage(.signedTreeHead(TreeHeadRequest()), reply.context(id)))
        }
        #expect(reply.sends.count == 2)
        #expect(core.routeToApplyStage(.signedTreeHead(TreeHeadRequest()), reply.context(id + 1)))
        #expect(reply.sends.count == 3 && errorCode(reply.messages.last) == .overloaded)
        #expect(node.events!.items.count == events)
    }

    /// Once the owner is stopping, requests are refused (`unavailable`) rather than queued to
    /// an apply stage about to stop, which would drop them unanswered.
    @Test func aStoppingNodeRefuses() throws {
        let cluster = try SteppedCluster(voters: 1)
        _ = try cluster.settle()
        let node = cluster.node(NodeID(1))
        let core = node.core!
        let reply = RecordingReply()
        node.events!.offer(.stop)
        #expect(!core.runRound(node.events!.take(max: 10), now: node.clock.now))
        #expect(core.routeToApplyStage(.signedTreeHead(TreeHeadRequest()), reply.context(1)))
        core.finishStopping()
        #expect(core.routeToApplyStage(.journalEntry(LogIndex(1)), reply.context(2)))
        let answers = reply.messages
        #expect(answers.map(errorCode) == [.unavailable, .unavailable], "\(answers)")
        if case .error(let e)? = answers.first { #expect(e.message == "node n1 is stopping") }
    }
}
