import Crypto
import FaunaAudit
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import Logging

/// One simulated node: its disk outlives crashes; everything else (core, apply stage, queues)
/// is one incarnation, dropped by a crash and rebuilt from the disk by a restart — the same
/// way `faunad` opens its data directory (FaunaNode.start).
final class SimNode {
    let id: NodeID
    var disk: SimDisk
    let signer: TreeHeadSigner
    let clock: SimNodeClock
    var core: NodeCore?
    var events: SimEventQueue?
    var applyQueue: SimApplyQueue?
    var shipping: SimShipping?
    /// The store the pipeline uses now (an installed snapshot replaces the one it opened).
    var store: SimStore? { core?.stateStore as? SimStore }
    /// The node's disk is slow: each round that wrote keeps it busy this long.
    var slowDiskMicros: UInt64 = 0
    /// The node takes no round before this time (a slow fsync in progress).
    var busyUntil: UInt64 = 0
    /// The apply stage runs a job batch only with this probability per millisecond.
    var applyChance = 1.0
    /// Why the last incarnation stopped by itself (fail-stop, removal), if it did.
    var stopReason: String?
    /// A disk write failed in this incarnation: the node must stop.
    var writeFailedAt: UInt64?
    /// The disk's failed-write count when this incarnation started.
    var failedWritesAtStart = 0
    var roundsSinceWriteFailed = 0
    /// Whether this node is in the simulation's idea of the membership (removed nodes are not).
    var isMember = true
    var incarnation = 0

    init(id: NodeID, disk: SimDisk, time: SimTime, rng: inout SimRandom) {
        self.id = id
        self.disk = disk
        var seed: [UInt8] = []
        for _ in 0..<32 { seed.append(UInt8.random(in: 0...255, using: &rng)) }
        // A fixed key per node and seed: signatures are checked against it.
        self.signer = TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        self.clock = SimNodeClock(time: time)
    }

    var isUp: Bool { core != nil }

    /// Opens the disk and starts a new incarnation of the pipeline.
    func start(in sim: Simulation) throws {
        precondition(core == nil, "start of a running node")
        incarnation += 1
        stopReason = nil
        writeFailedAt = nil
        failedWritesAtStart = disk.counters.failedWrites
        roundsSinceWriteFailed = 0
        let store = try SimStore(disk: disk)
        var settings = PipelineSettings(
            nodeID: id, tickMs: sim.options.tickMs, electionTicks: sim.options.electionTicks, heartbeatTicks: 1,
            snapshotEntries: sim.options.snapshotEntries, randomSeed: sim.rng.next() | 1)
        settings.pendingProposalsMax = 1024
        settings.pendingReadsMax = 1024
        settings.applyQueueMax = 32
        settings.proposalBatchBytesMax = 64 << 10
        settings.requestTimeout = .seconds(2)
        settings.readTimeout = .seconds(1)
        settings.followerApplyHold = sim.options.followerApplyHold
        let idSeed = sim.rng.next()
        settings.clusterIDBytes = { count in
            var rng = SimRandom(seed: idSeed)
            return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        let storage = RaftStorageMonitor(store.entryLog)
        let raft = try NodeCore.makeRaftNode(settings: settings, applied: store.appliedIndex, storage: storage)
        let hasClusterID = try store.isFounded()
        let events = SimEventQueue(capacity: 4096)
        let applyQueue = SimApplyQueue(capacity: 2048)
        let shipping = SimShipping(node: id, sim: sim)
        var logger = Logger(label: "\(id)") { _ in SwiftLogNoOpLogHandler() }
        if sim.options.verbose { logger = Logger(label: "\(id)") { label in SimLogHandler(label: label, time: sim.time) } }
        logger.logLevel = sim.options.verbose ? .debug : .critical
        let core = NodeCore(
            settings: settings, store: store, raft: raft, raftStorage: storage, events: events, members: sim.members,
            transport: SimPeerSender(from: id, sim: sim), snapshots: shipping, clock: clock, decorator: nil,
            hasClusterID: hasClusterID, logger: logger)
        applyQueue.stage = ApplyStage(
            store: store, nodeID: id, compactEntries: sim.options.snapshotEntries, members: sim.members,
            audit: AuditService(nodeID: id, signer: signer), proposals: core.proposals, auth: core.auth, decorator: nil,
            background: InlineBackground(), logger: logger,
            failStop: { error, doing in events.post(.storeFailed(error, doing)) }
        ) { report in events.post(.applied(report)) }
        core.applier = applyQueue
        applyQueue.runsEagerly = { [unowned sim, unowned self] in self.applyChance == 1 && sim.rng.chance(0.2) }
        self.core = core
        self.events = events
        self.applyQueue = applyQueue
        self.shipping = shipping
    }

    /// The process dies: nothing more is answered; with `powerLoss`, unsynced writes are lost.
    func crash(powerLoss: Bool, rng: inout SimRandom) {
        core = nil
        events = nil
        applyQueue = nil
        shipping = nil
        busyUntil = 0
        if powerLoss {
            disk.powerLoss(using: &rng)
        } else {
            disk.processCrash()
        }
    }

    /// After `runRound` returned false: the pipeline stops (answers what waits, closes).
    func finishStopping() {
        guard let core else { return }
        if let failure = core.failure {
            stopReason = "fail-stop: \(failure)"
        } else {
            stopReason = "stopped (removed from the cluster)"
        }
        core.finishStopping()
        self.core = nil
        events = nil
        applyQueue = nil
        shipping = nil
    }
}

/// The network side of one node's Raft traffic.
final class SimPeerSender: PeerSender, @unchecked Sendable {
    let from: NodeID
    unowned let sim: Simulation
    init(from: NodeID, sim: Simulation) {
        self.from = from
        self.sim = sim
    }

    func send(_ messages: [Message]) {
        var byPeer: [NodeID: [Message]] = [:]
        for m in messages { byPeer[m.to, default: []].append(m) }
        for peer in byPeer.keys.sorted() { sim.network.sendRaft(byPeer[peer]!, from: from, to: peer, sim: sim) }
    }

    func reconcile(with conf: ConfState, me: NodeID) {}
}

/// Snapshot transfer between simulated nodes: the checkpoint travels as a value, arrives after
/// a delay unless the network drops it, and is installed by the receiver's pipeline exactly as
/// `faunad`'s (reserve, restore, finish, reopen).
final class SimShipping: SnapshotShipping, @unchecked Sendable {
    let node: NodeID
    unowned let sim: Simulation
    var claimed: Set<NodeID> = []
    var inbox: SimIncomingSnapshot?
    var isInstalling = false

    init(node: NodeID, sim: Simulation) {
        self.node = node
        self.sim = sim
    }

    func claim(_ peer: NodeID) -> Bool { claimed.insert(peer).inserted }
    func release(_ peer: NodeID) { claimed.remove(peer) }

    func send(_ checkpoint: any StateCheckpoint, to peer: NodeID, done: @escaping @Sendable (SnapshotMetadata?) -> Void) {
        guard let checkpoint = checkpoint as? SimCheckpoint else { preconditionFailure("not a simulated checkpoint") }
        sim.network.sendSnapshot(checkpoint, from: node, to: peer, sim: sim) { [weak self] ok in
            self?.release(peer)
            done(ok ? checkpoint.metadata : nil)
        }
    }

    /// The receiving side: a complete snapshot arrived (replaces any earlier one not being
    /// installed). Returns false if it was refused.
    func receive(_ checkpoint: SimCheckpoint, disk: SimDisk) -> Bool {
        guard !isInstalling else { return false }
        inbox = SimIncomingSnapshot(checkpoint: checkpoint, disk: disk)
        return true
    }

    func take(at index: LogIndex) -> (any IncomingSnapshot)? {
        guard !isInstalling, let incoming = inbox, incoming.metadata.index == index else { return nil }
        inbox = nil
        isInstalling = true
        return incoming
    }

    func installFinished() { isInstalling = false }

    func stream(_ checkpoint: any StateCheckpoint, to context: RPCRequestContext, slot: ClientJobSlot) {
        slot.release()
        context.respond(.error(RPCErrorResponse(.unsupported, "snapshot saves are not simulated")))
    }
}

/// Log lines with virtual time (`--verbose`).
struct SimLogHandler: LogHandler {
    let label: String
    let time: SimTime
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        print("[\(Double(time.micros) / 1000) ms] \(label) \(event.level): \(event.message) \(fields)")
    }
}
