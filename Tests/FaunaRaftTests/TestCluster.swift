@testable import FaunaRaft

/// A hand-driven cluster for transcript-style tests: nothing happens unless the test says so
/// (tick, deliver, stabilize), messages can be filtered, nodes crashed and restarted.
final class TestCluster {
    var storages: [NodeID: MemoryStorage] = [:]
    var nodes: [NodeID: RaftNode] = [:]
    var configs: [NodeID: RaftConfig] = [:]
    var mailbox: [Message] = []
    /// Every message ever sent, in order (for assertions on what went over the wire).
    var sent: [Message] = []
    var applied: [NodeID: [Entry]] = [:]
    var readStates: [NodeID: [ReadState]] = [:]
    /// Links (from, to) whose messages are dropped.
    var cut: Set<[NodeID]> = []
    /// Nodes whose driver takes at most one Ready per `settle()`: a slow apply queue, so a node
    /// with a small `committedBytesPerReadyMax` hands its committed entries out one batch at a
    /// time while the rest of the cluster moves on.
    var slowApply: Set<NodeID> = []

    init(voters: [UInt64], configure: (inout RaftConfig) -> Void = { _ in }) throws {
        let ids = voters.map { NodeID($0) }
        for id in ids {
            var config = RaftConfig(id: id, randomSeed: id.rawValue)
            configure(&config)
            configs[id] = config
            storages[id] = MemoryStorage(bootstrap: ids)
            nodes[id] = try RaftNode(config: config, storage: storages[id]!)
        }
        try settle()
    }

    subscript(_ id: UInt64) -> RaftNode { nodes[NodeID(id)]! }

    /// Adds a node with empty storage that knows nothing (to be added as a learner).
    func addEmptyNode(_ raw: UInt64) throws {
        let id = NodeID(raw)
        var config = RaftConfig(id: id, randomSeed: raw)
        config.electionTicks = configs.values.first!.electionTicks
        configs[id] = config
        storages[id] = MemoryStorage()
        nodes[id] = try RaftNode(config: config, storage: storages[id]!)
    }

    /// Processes every pending Ready (persist, send, apply, advance) without delivering.
    func settle() throws {
        for round in 0..<100 {
            var any = false
            for id in nodes.keys.sorted() {
                if round > 0 && slowApply.contains(id) { continue }
                guard let node = nodes[id], node.hasReady else { continue }
                any = true
                let ready = node.ready()
                let storage = storages[id]!
                if let snapshot = ready.snapshot {
                    storage.applySnapshot(snapshot)
                    applied[id] = []  // state replaced by the snapshot
                }
                storage.append(ready.entries)
                if let hard = ready.hardState { storage.setHardState(hard) }
                for m in ready.earlyMessages + ready.messages { post(m) }
                applied[id, default: []].append(contentsOf: ready.committedEntries)
                if let conf = ready.confState { storage.setConfState(conf) }
                readStates[id, default: []].append(contentsOf: ready.readStates)
                node.advance(ready)
            }
            if !any { return }
        }
        fatalError("cluster did not settle")
    }

    func post(_ m: Message) {
        sent.append(m)
        if !cut.contains([m.from, m.to]) { mailbox.append(m) }
    }

    /// Delivers the pending messages that `filter` accepts (the rest stay queued), then settles.
    func deliver(where filter: (Message) -> Bool = { _ in true }) throws {
        let now = mailbox
        mailbox = []
        for m in now {
            guard filter(m), let node = nodes[m.to] else {
                if !filter(m) { mailbox.append(m) }
                continue
            }
            node.step(m)
        }
        try settle()
    }

    /// Delivers every pending message after passing it through `transform` (nil drops it).
    func deliver(mapping transform: (Message) -> Message?) throws {
        let now = mailbox
        mailbox = []
        for m in now {
            guard let m = transform(m), let node = nodes[m.to] else { continue }
            node.step(m)
        }
        try settle()
    }

    /// Delivers messages until none are left (bounded).
    func stabilize() throws {
        try settle()
        for _ in 0..<1_000 {
            if mailbox.isEmpty { return }
            try deliver()
        }
        fatalError("cluster did not stabilize")
    }

    func dropAll() { mailbox = [] }

    func tick(_ id: UInt64, times: Int = 1) throws {
        for _ in 0..<times { self[id].tick() }
        try settle()
    }

    func tickAll(times: Int) throws {
        for _ in 0..<times {
            for id in nodes.keys.sorted() { nodes[id]!.tick() }
            try settle()
            try stabilize()
        }
    }

    /// Starts an election on `id` now (pre-vote first if enabled) and runs it to the end.
    func elect(_ id: UInt64) throws {
        let node = self[id]
        node.campaign(node.config.preVote ? .preElection : .election)
        try stabilize()
    }

    func isolate(_ id: UInt64) {
        for other in nodes.keys where other != NodeID(id) {
            cut.insert([NodeID(id), other])
            cut.insert([other, NodeID(id)])
        }
    }

    /// Cuts every link between `a` and `b` in both directions.
    func partition(_ a: [UInt64], _ b: [UInt64]) {
        for x in a {
            for y in b {
                cut.insert([NodeID(x), NodeID(y)])
                cut.insert([NodeID(y), NodeID(x)])
            }
        }
    }

    func heal() { cut = [] }

    func crash(_ id: UInt64) {
        nodes[NodeID(id)] = nil
        mailbox.removeAll { $0.to == NodeID(id) }
    }

    /// Restarts `id` on its storage; `wrap` may put a layer between the core and it (the
    /// driver keeps writing to the `MemoryStorage` underneath).
    func restart(_ id: UInt64, over wrap: (MemoryStorage) -> any RaftStorage = { $0 }) throws {
        var config = configs[NodeID(id)]!
        config.applied = LogIndex(UInt64(applied[NodeID(id)]?.last?.index.rawValue ?? 0))
        let storage = storages[NodeID(id)]!
        config.applied = max(config.applied, storage.snapshotIndex)
        nodes[NodeID(id)] = try RaftNode(config: config, storage: wrap(storage))
        try settle()
    }

    func appliedData(_ id: UInt64) -> [[UInt8]] {
        applied[NodeID(id), default: []].filter { $0.type == .normal && !$0.data.isEmpty }.map(\.data)
    }

    var leaders: [NodeID] { nodes.keys.sorted().filter { nodes[$0]!.isLeader } }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
