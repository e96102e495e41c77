import FaunaPipeline
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
}
