import FaunaKV
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore

/// Orderings of the production pipeline that random seeds reach too rarely to rely on,
/// scripted over the simulator's ports: each scenario drives one real `NodeCore`. Run by
/// `PipelineScenarioTests` and by `node-sim --scenarios` (which `tools/mutate --node` runs
/// against every mutant besides the seeds).
public enum PipelineScenarios {
    static let voters = [NodeID(1), NodeID(2), NodeID(3)]

    /// Every scenario: its name and nil if it held, else what went wrong.
    public static func runAll() -> [(name: String, failure: String?)] {
        [
            ("restart takes the membership of the applied index", run(restartTakesTheAppliedMembership)),
            ("no peer message is stepped between a snapshot restore and its install", run(noStepDuringSnapshotInstall)),
            ("a keep-alive is answered only once a quorum confirms the leader", run(keepAliveWaitsForAQuorum)),
        ]
    }

    static func run(_ scenario: () throws -> String?) -> String? {
        do { return try scenario() } catch { return "threw \(error)" }
    }

    /// A founded, started node of a simulation that never runs its schedule.
    static func startedNode(_ id: NodeID, in sim: Simulation, prepare: (SimStore) throws -> Void = { _ in }) throws -> SimNode {
        let disk = SimDisk(name: "\(id)")
        try SimStore.found(disk: disk, voters: voters)
        let store = try SimStore(disk: disk)
        try prepare(store)
        store.close()
        let node = SimNode(id: id, disk: disk, time: sim.time, rng: &sim.rng)
        sim.nodes[id] = node
        try node.start(in: sim)
        return node
    }

    /// The Raft messages `node` has sent so far.
    static func sent(by node: NodeID, in sim: Simulation) -> [Message] {
        sim.network.inFlight.flatMap { item -> [Message] in
            if case .raft(let from, _, let messages) = item.payload, from == node { return messages }
            return []
        }
    }

    /// A restarted node takes the membership of its applied index, not that of changes in its
    /// log it has not applied (they may never commit). A core acting on a membership ahead of
    /// its state counts votes and acknowledgements against a configuration the cluster may
    /// never adopt (ADR 0006).
    static func restartTakesTheAppliedMembership() throws -> String? {
        let sim = Simulation(options: NodeSimOptions())
        let node = try startedNode(NodeID(1), in: sim) { store in
            let founding = try store.log.entries(from: LogIndex(1), to: LogIndex(4), maxBytes: .max)
            _ = try store.apply(founding, confState: ConfState(voters: voters))
            // An uncommitted removal of n3 in the log, beyond the applied index.
            let removal = Entry(term: Term(1), index: LogIndex(4), type: .confChange, data: ConfChange(.remove, NodeID(3)).encoded)
            try store.log.persist(RaftLogUpdate(entries: [removal], hardState: HardState(term: Term(1), vote: nil, commit: LogIndex(3))))
        }
        guard node.store?.appliedIndex == LogIndex(3) else { return "applied \(String(describing: node.store?.appliedIndex)), want 3" }
        let conf = node.core?.configuration
        guard conf == ConfState(voters: voters) else { return "restarted with membership \(String(describing: conf)), want \(voters)" }
        return nil
    }

    /// Between stepping a snapshot and taking the Ready that installs it, no other peer
    /// message is stepped: an append stepped after the restore would be acknowledged in that
    /// Ready, though the install replaces the log it went into — the leader would count an
    /// entry this node does not hold.
    static func noStepDuringSnapshotInstall() throws -> String? {
        let sim = Simulation(options: NodeSimOptions())
        // The leader's state at index 10, term 2: the founding entries and seven no-ops.
        let leaderDisk = SimDisk(name: "leader")
        try SimStore.found(disk: leaderDisk, voters: voters)
        let leaderStore = try SimStore(disk: leaderDisk)
        let founding = try leaderStore.log.entries(from: LogIndex(1), to: LogIndex(4), maxBytes: .max)
        _ = try leaderStore.apply(founding, confState: ConfState(voters: voters))
        _ = try leaderStore.apply((4...10).map { Entry(term: Term(2), index: LogIndex(UInt64($0))) }, confState: nil)
        let checkpoint = leaderStore.makeSimCheckpoint()
        let meta = checkpoint.metadata

        let follower = try startedNode(NodeID(2), in: sim)
        guard follower.shipping?.receive(checkpoint, disk: follower.disk) == true else { return "the inbox refused the snapshot" }
        let snapshot = Message(type: .snapshot, from: NodeID(1), to: NodeID(2), term: Term(2), snapshot: Snapshot(metadata: meta))
        let append = Message(
            type: .append, from: NodeID(1), to: NodeID(2), term: Term(2), logTerm: meta.term, index: meta.index,
            entries: [Entry(term: Term(2), index: meta.index + 1)], commit: meta.index)
        follower.events?.offer(.raftMessages([snapshot, append]))
        for _ in 0..<3 {
            guard let core = follower.core, let events = follower.events else { break }
            _ = core.runRound(events.take(max: 100), now: follower.clock.now)
        }
        // The install happened (the scenario is the one intended) ...
        guard follower.store?.appliedIndex == meta.index else {
            return "the snapshot was not installed (applied \(String(describing: follower.store?.appliedIndex)))"
        }
        // ... and nothing acknowledged an entry beyond the snapshot.
        let acks = sent(by: NodeID(2), in: sim).filter { $0.type == .appendResponse && !$0.reject }
        guard !acks.isEmpty else { return "the follower did not acknowledge the snapshot" }
        guard acks.allSatisfy({ $0.index <= meta.index }) else {
            return "acknowledged \(acks.map(\.index)) beyond the snapshot at \(meta.index): entries the install discarded"
        }
        return nil
    }

    /// A leader answers a keep-alive only after a heartbeat quorum shows that it still led
    /// after the receipt. A deposed leader that has not yet heard of its successor must not
    /// promise a TTL that the new leader does not know of: the new leader would revoke the
    /// lease while its owner believes it alive (etcd checks leadership in LeaseRenew likewise).
    static func keepAliveWaitsForAQuorum() throws -> String? {
        let sim = Simulation(options: NodeSimOptions())
        let lease: UInt64 = 9
        let node = try startedNode(NodeID(1), in: sim) { store in
            let founding = try store.log.entries(from: LogIndex(1), to: LogIndex(4), maxBytes: .max)
            _ = try store.apply(founding, confState: ConfState(voters: voters))
            let grant = Entry(term: Term(1), index: LogIndex(4), data: KVProposal(command: .leaseGrant(KVLeaseGrant(id: lease, ttlSeconds: 60))).encoded())
            try store.log.persist(RaftLogUpdate(entries: [grant], hardState: HardState(term: Term(1), vote: nil, commit: LogIndex(4))))
            _ = try store.apply([grant], confState: nil)
        }
        guard let events = node.events else { return "no event queue" }
        func round(_ extra: [NodeEvent] = []) {
            for e in extra { events.offer(e) }
            guard let core = node.core else { return }
            sim.time.micros += 1_000
            _ = core.runRound(events.take(max: 100), now: node.clock.now)
            node.applyQueue?.step(max: 100)
        }
        func lastSent(_ type: MessageType) -> Message? { sent(by: NodeID(1), in: sim).last { $0.type == type } }
        var answers: [RPCMessage] = []
        func keepAlive() -> NodeEvent {
            .request(.leaseKeepAlive(lease), RPCRequestContext(requestID: RequestID(UInt64(answers.count + 1)), reply: SimReply { frames in
                for f in frames { if let m = try? RPCMessage(f) { answers.append(m) } }
            }))
        }
        // n1 leads term 2 (n2 votes for it) and commits its first entry there (n2 has it).
        round([.raftMessages([Message(type: .timeoutNow, from: NodeID(2), to: NodeID(1), term: Term(1))])])
        guard let vote = lastSent(.vote) else { return "n1 did not campaign on timeoutNow" }
        round([.raftMessages([Message(type: .voteResponse, from: NodeID(2), to: NodeID(1), term: vote.term)])])
        guard node.core?.role == .leader, let append = lastSent(.append), let last = append.entries.last else {
            return "n1 did not become leader with one vote"
        }
        round([.raftMessages([Message(type: .appendResponse, from: NodeID(2), to: NodeID(1), term: vote.term, index: last.index)])])
        for _ in 0..<3 { round() }

        // A keep-alive waits for the heartbeat round, and is answered once n2 acknowledges it.
        round([keepAlive()])
        guard answers.isEmpty else { return "keep-alive answered \(answers) before any quorum confirmed the leader" }
        guard let beat = sent(by: NodeID(1), in: sim).last(where: { $0.type == .heartbeat && !$0.context.isEmpty }) else {
            return "no heartbeat round started for the keep-alive"
        }
        round([.raftMessages([Message(type: .heartbeatResponse, from: NodeID(2), to: NodeID(1), term: vote.term, context: beat.context)])])
        guard answers.count == 1, case .leaseKeepAliveResponse(let renewed) = answers[0], renewed.id == lease else {
            return "after n2 confirmed the round, the keep-alive got \(answers), want a renewal of lease \(lease)"
        }

        // Deposed before any quorum confirmed it: the keep-alive is refused, never renewed.
        round([keepAlive()])
        guard answers.count == 1 else { return "the second keep-alive was answered \(answers[1...]) without a quorum" }
        round([.raftMessages([Message(type: .heartbeat, from: NodeID(3), to: NodeID(1), term: Term(vote.term.rawValue + 1))])])
        guard answers.count == 2 else { return "a deposed leader left the keep-alive unanswered (\(answers.count - 1) answers)" }
        if case .leaseKeepAliveResponse = answers[1] { return "a deposed leader renewed a lease: \(answers[1])" }
        return nil
    }
}
