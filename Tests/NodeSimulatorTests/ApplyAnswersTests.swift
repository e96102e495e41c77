import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import Logging
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

// The apply stage answers the writes it applies (ProposalRegistry), without a round of the
// owner in between; timeouts, replaced entries and stops still answer each request once.

// MARK: Helpers

/// A client connection that keeps every send (one `send` per flushed batch).
final class RecordingReply: RPCReplyChannel, @unchecked Sendable {
    var sends: [[Frame]] = []
    func send(_ frames: [Frame]) { sends.append(frames) }
    var isWritable: Bool { true }
    var isOpen: Bool { true }

    /// Every answer, decoded, in the order sent.
    var messages: [RPCMessage] { sends.flatMap { $0 }.compactMap { try? RPCMessage($0) } }
    func context(_ id: UInt64) -> RPCRequestContext { RPCRequestContext(requestID: RequestID(id), reply: self) }
}

func putRequest(_ key: String, _ value: String, client: UInt64, sequence: UInt64 = 1) -> RPCMessage {
    let session = ClientSession(clientID: ClientID(client), sequence: SequenceNumber(sequence))
    return .write(WriteRequest(KVProposal(session: session, command: .put(KVPut(key: b(key), value: b(value))))))
}

/// Nodes of a simulation driven step by step by the test (not `Simulation.run`): each step
/// (a millisecond unless told) delivers the Raft messages due (unless cut), runs a round on
/// every node with events or a wake-up due, and steps the apply queues of the nodes
/// `applying` names.
final class SteppedCluster {
    let sim: Simulation
    let ids: [NodeID]

    init(voters: Int, options: NodeSimOptions = NodeSimOptions()) throws {
        sim = Simulation(options: options)
        ids = (1...voters).map { NodeID(UInt64($0)) }
        for id in ids {
            let disk = SimDisk(name: "\(id)")
            try SimStore.found(disk: disk, voters: ids)
            let node = SimNode(id: id, disk: disk, time: sim.time, rng: &sim.rng)
            sim.nodes[id] = node
            sim.members.record(Simulation.addresses(of: id), for: id)
        }
        for id in ids {
            let node = sim.nodes[id]!
            try node.start(in: sim)
            node.applyQueue?.runsEagerly = { false }  // the test decides when applies run
        }
    }

    func node(_ id: NodeID) -> SimNode { sim.nodes[id]! }
    var leader: NodeID? { ids.first { sim.nodes[$0]?.core?.isLeader == true } }

    func step(ms: Int = 1, micros: UInt64 = 1000, applying: Set<NodeID>? = nil, rounds: Set<NodeID>? = nil) {
        for _ in 0..<ms {
            sim.time.micros += micros
            for item in sim.network.due(now: sim.time.micros) {
                guard case .raft(let from, let to, let messages) = item.payload, !sim.network.isCut(from, to) else { continue }
                sim.nodes[to]?.events?.offer(.raftMessages(messages))
            }
            for id in ids {
                let n = self.node(id)
                guard let core = n.core, let events = n.events else { continue }
                if rounds?.contains(id) ?? true, !events.items.isEmpty || core.nextWake <= n.clock.now {
                    _ = core.runRound(events.take(max: 4096), now: n.clock.now)
                }
                if applying?.contains(id) ?? true { n.applyQueue?.step(max: 64) }
            }
        }
    }

    /// Steps until `condition` holds (at most `ms` milliseconds); whether it did.
    func step(until condition: () -> Bool, ms: Int = 5000, applying: Set<NodeID>? = nil) -> Bool {
        for _ in 0..<ms {
            if condition() { return true }
            step(applying: applying)
        }
        return condition()
    }

    /// Until a leader has applied the cluster ID (its first entries), everyone applied what it
    /// committed; returns the leader.
    func settle() throws -> NodeID {
        let ready = step(until: {
            guard let leader, let store = node(leader).store, (try? store.clusterID()) != nil else { return false }
            return ids.allSatisfy { node($0).store?.appliedIndex == store.appliedIndex }
        })
        try #require(ready, "no leader with a cluster ID: \(sim.describeNodes())")
        return try #require(leader)
    }

    func cut(_ id: NodeID) {
        for other in ids where other != id { sim.network.cut.insert(SimNetwork.Pair(id, other)) }
    }

    func heal() { sim.network.cut = [] }
}

func errorCode(_ message: RPCMessage?) -> RPCErrorCode? {
    if case .error(let e)? = message { return e.code }
    return nil
}

// MARK: Tests

@Suite struct ApplyAnswersTests {
    /// The apply stage answers an applied write itself: the answer is out before the owner
    /// runs another round (once, it waited for the owner to take the apply report).
    @Test func aWriteIsAnsweredWithoutAnOwnerRound() throws {
        let cluster = try SteppedCluster(voters: 1)
        let n1 = NodeID(1)
        _ = try cluster.settle()
        let node = cluster.node(n1)
        let reply = RecordingReply()
        node.events!.offer(.request(putRequest("k", "v", client: 7), reply.context(1)))
        // Rounds only, until the entry is handed to the apply stage.
        let handedOut = cluster.step(until: { !(node.applyQueue?.jobs.isEmpty ?? true) }, ms: 100, applying: [])
        try #require(handedOut && reply.sends.isEmpty)
        let eventsBefore = node.events!.items.count
        node.applyQueue!.step(max: 64)
        // No round ran: the answer is the apply stage's.
        try #require(reply.sends.count == 1, "\(reply.messages)")
        guard case .writeResponse(let result) = reply.messages[0], case .success = result.outcome else {
            Issue.record("answered \(reply.messages[0])")
            return
        }
        #expect(result.revision.rawValue == node.store!.appliedIndex.rawValue)
        // The owner still gets its report (bookkeeping), after the answer went out.
        #expect(node.events!.items.count == eventsBefore + 1)
        guard case .applied(.success)? = node.events!.items.last else {
            Issue.record("no apply report queued for the owner: \(node.events!.items)")
            return
        }
        // Later rounds and timeouts answer nothing more.
        cluster.step(ms: 2500)
        #expect(reply.sends.count == 1)
        #expect(node.core!.proposals.count == 0)
    }

    /// A write that timed out is not answered again when its entry applies later.
    @Test func aWriteAnsweredByTimeoutIsNotAnsweredAgainWhenItApplies() throws {
        let cluster = try SteppedCluster(voters: 1)
        let n1 = NodeID(1)
        _ = try cluster.settle()
        let node = cluster.node(n1)
        let appliedBefore = node.store!.appliedIndex
        let reply = RecordingReply()
        node.events!.offer(.request(putRequest("k", "late", client: 7), reply.context(1)))
        // The apply stage is stalled past the request timeout (2 s in the simulator).
        cluster.step(ms: 2300, applying: [])
        try #require(reply.messages.count == 1, "\(reply.messages)")
        #expect(errorCode(reply.messages[0]) == .timeout)
        #expect(node.core!.proposals.count == 0)
        // Now it applies: the write took effect, and its request is not answered a second time.
        cluster.step(ms: 50)
        #expect(node.store!.appliedIndex > appliedBefore)
        let read = try node.store!.range(KVRangeRequest(range: .single(b("k"))))
        #expect(read.records.first?.record.value == b("late"))
        #expect(reply.sends.count == 1, "\(reply.messages)")
    }

    /// A leader proposes a write, is cut off before it commits, and another leader's entry
    /// takes its index. When the old leader applies that entry, its apply stage answers the
    /// write "replaced" (not timed out, not applied), once.
    @Test func aLeaderChangeBetweenProposeAndApplyAnswersReplaced() throws {
        let cluster = try SteppedCluster(voters: 3)
        let old = try cluster.settle()
        let oldNode = cluster.node(old)
        let term = oldNode.core!.term
        let index = oldNode.core!.commitIndex + 1
        cluster.cut(old)
        let reply = RecordingReply()
        oldNode.events!.offer(.request(putRequest("k", "lost", client: 7), reply.context(1)))
        let elected = cluster.step(until: {
            cluster.ids.contains { $0 != old && cluster.node($0).core?.isLeader == true && cluster.node($0).store!.appliedIndex >= index }
        }, ms: 1500)
        try #require(elected, "no new leader applied index \(index): \(cluster.sim.describeNodes())")
        #expect(reply.sends.isEmpty, "answered before the entry was settled: \(reply.messages)")
        cluster.heal()
        let answered = cluster.step(until: { !reply.sends.isEmpty }, ms: 1000)
        try #require(answered, "not answered: \(cluster.sim.describeNodes())")
        guard case .error(let e) = reply.messages[0] else {
            Issue.record("answered \(reply.messages[0])")
            return
        }
        #expect(e.code == .notLeader)
        #expect(e.message == "entry \(index) was replaced after a leader change; retry (same session: applied once)")
        #expect(e.leaderHint?.nodeID != nil && e.leaderHint?.nodeID != old)
        #expect(cluster.node(old).core!.term > term)
        // Nothing more for it, however long the node runs.
        cluster.step(ms: 2500)
        #expect(reply.sends.count == 1)
        let read = try oldNode.store!.range(KVRangeRequest(range: .single(b("k"))))
        #expect(read.records.isEmpty)
    }

    /// The answers of one applied group go out as one batch per connection, matched by index
    /// and term: a write of the entry's term gets its result, one of another term "replaced".
    @Test func oneGroupIsAnsweredInOneBatchPerConnection() throws {
        let n1 = NodeID(1)
        let disk = SimDisk(name: "n1")
        try SimStore.found(disk: disk, voters: [n1])
        let store = try SimStore(disk: disk)
        _ = try store.apply(try store.log.entries(from: LogIndex(1), to: LogIndex(2), maxBytes: .max), confState: ConfState(voters: [n1]))
        var rng = SimRandom(seed: 1)
        let signer = SimNode(id: n1, disk: SimDisk(name: "keys"), time: SimTime(), rng: &rng).signer
        let members = SimMemberBook()
        members.record(Simulation.addresses(of: NodeID(2)), for: NodeID(2))
        let proposals = ProposalRegistry()
        proposals.leader = NodeID(2)
        let reports = Reports()
        let stage = ApplyStage(
            store: store, nodeID: n1, compactEntries: 1000, members: members, audit: AuditService(nodeID: n1, signer: signer),
            proposals: proposals, auth: AuthGate(), decorator: nil, background: InlineBackground(), logger: Logger(label: "test"),
            failStop: { _, _ in }, report: { reports.append($0) })

        let (a, other) = (RecordingReply(), RecordingReply())
        let deadline = NodeInstant(.seconds(100))
        _ = proposals.register(.init(kind: .write, term: Term(2), deadline: deadline, context: a.context(1)), at: LogIndex(2))
        _ = proposals.register(.init(kind: .write, term: Term(1), deadline: deadline, context: a.context(2)), at: LogIndex(3))
        _ = proposals.register(.init(kind: .write, term: Term(2), deadline: deadline, context: other.context(3)), at: LogIndex(4))
        _ = proposals.register(.init(kind: .memberChange, term: Term(2), deadline: deadline, context: a.context(4)), at: LogIndex(5))
        _ = proposals.register(.init(kind: .write, term: Term(2), deadline: deadline, context: a.context(5)), at: LogIndex(6))
        stage.run([.apply([
            putEntry(2, "a", "1"), putEntry(3, "b", "2"), putEntry(4, "c", "3"),
            confChangeEntry(5, ConfChange(.addLearner, NodeID(9))),
        ], ConfState(voters: [n1], learners: [NodeID(9)]))])

        // Connection a: the write at 2 and the replaced one at 3, in one send; the other
        // connection its own; the membership change is the owner's; index 6 not applied.
        #expect(a.sends.count == 1 && a.sends.first?.count == 2)
        #expect(other.sends.count == 1 && other.sends.first?.count == 1)
        let answers = a.messages
        guard answers.count == 2, case .writeResponse(let first) = answers[0], case .error(let replaced) = answers[1] else {
            Issue.record("answers \(answers)")
            return
        }
        #expect(first.revision == Revision(2))
        #expect(replaced.code == .notLeader)
        #expect(replaced.message == "entry 3 was replaced after a leader change; retry (same session: applied once)")
        #expect(replaced.leaderHint == LeaderHint(nodeID: NodeID(2), clientAddress: Simulation.addresses(of: NodeID(2)).client))
        guard case .writeResponse(let third)? = other.messages.first else {
            Issue.record("answers \(other.messages)")
            return
        }
        #expect(third.revision == Revision(4))
        // Left: the membership change (for the owner, which the report names) and index 6.
        #expect(proposals.count == 2)
        guard case .success(let report)? = reports.all.first else {
            Issue.record("reports \(reports.all)")
            return
        }
        #expect(report.memberChanges == [LogIndex(5)])
        #expect(proposals.takeMemberChanges(at: report.memberChanges).count == 1)
        // A timeout now takes index 6, and its apply answers nothing more.
        #expect(proposals.expire(before: NodeInstant(.seconds(101))).map(\.index) == [LogIndex(6)])
        stage.run([.apply([putEntry(6, "d", "4")], nil)])
        #expect(a.sends.count == 1)
        #expect(proposals.count == 0)
    }
}

final class Reports: @unchecked Sendable {
    var all: [Result<ApplyReport, StoreError>] = []
    func append(_ report: Result<ApplyReport, StoreError>) { all.append(report) }
}
