import FaunaRaft

/// A deterministic simulation of a Raft cluster: N nodes, a lossy reordering network with
/// partitions, crashes that lose unpersisted state, membership changes, leadership transfers
/// and snapshots — all driven by one seed — with the safety invariants checked after every
/// step and liveness checked after the faults heal.
public final class Simulator {
    let options: SimOptions
    var random: SimRandom
    var report: SimReport
    var nodes: [SimNode] = []
    var network: [InFlight] = []
    var blockedLinks: Set<[UInt64]> = []
    var now = 0  // subticks
    var tick = 0
    var messageSequence = 0
    var isFaulty = true
    var healedAt = 0
    var livenessMet = false
    var nextWriteID: UInt64 = 1
    var nextReadID: UInt64 = 1
    var checker = SimChecker()

    public init(seed: UInt64, options: SimOptions = SimOptions()) {
        self.options = options
        self.random = SimRandom(seed: seed)
        self.report = SimReport(seed: seed)
    }

    /// Runs the simulation; returns a report whose `failure` names the first broken property.
    public func run() -> SimReport {
        do {
            try setUp()
            let tickLimit = options.faultTicks + options.livenessTicks
            while tick < tickLimit && !livenessMet {
                try step()
            }
            if !livenessMet {
                throw SimFailure("liveness: no proposal committed within \(options.livenessTicks) ticks after faults healed; \(clusterState)")
            }
        } catch let failure as SimFailure {
            report.failure = "tick \(tick): \(failure.message)"
        } catch {
            report.failure = "tick \(tick): unexpected error \(error)"
        }
        report.ticks = tick
        return report
    }

    func setUp() throws {
        let voters = (1...options.nodeCount).map { NodeID(UInt64($0)) }
        for id in voters {
            let node = SimNode(id: id, storage: MemoryStorage(bootstrap: voters))
            nodes.append(node)
            try node.start(options: options, seed: random.next())
        }
    }

    func step() throws {
        if tick < options.faultTicks {
            injectFaults()
        } else if isFaulty {
            heal()
            try restartDownNodes()
        }
        try clientActions()
        for _ in 0..<options.subticksPerTick {
            now += 1
            try deliverDueMessages()
            try completeDuePersists()
            try resumeDueAppliers()
        }
        for node in nodes where node.isUp {
            node.raft?.tick()
            try processReady(node)
        }
        tick += 1
    }

    // MARK: Network

    func send(_ m: Message) {
        let link = [m.from.rawValue, m.to.rawValue]
        if blockedLinks.contains(link) { return }
        if isFaulty && random.chance(options.dropRate) { return }
        let copies = isFaulty && random.chance(options.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            messageSequence += 1
            let delay = 1 + random.int(0..<options.messageDelaySubticksMax)
            network.append(InFlight(deliverAt: now + delay, sequence: messageSequence, message: m))
        }
    }

    func deliverDueMessages() throws {
        var due: [InFlight] = []
        network.removeAll { item in
            if item.deliverAt <= now { due.append(item); return true }
            return false
        }
        due.sort { ($0.deliverAt, $0.sequence) < ($1.deliverAt, $1.sequence) }
        for item in due {
            let m = item.message
            guard !blockedLinks.contains([m.from.rawValue, m.to.rawValue]),
                  let node = node(m.to), let raft = node.raft else { continue }
            report.messagesDelivered += 1
            if m.type == .voteResponse && !m.reject { checker.voteGranted(by: m.from, to: m.to, term: m.term) }
            raft.step(m)
            try processReady(node)
        }
    }

    /// One line per node, for failure reports.
    var clusterState: String {
        nodes.map { node in
            guard let r = node.raft else { return "\(node.id): down" }
            return "\(node.id): \(r.role) term \(r.term) leader \(r.leader.map(String.init(describing:)) ?? "-") "
                + "commit \(r.commitIndex) applied \(r.appliedIndex) last \(r.lastIndex) voters \(r.conf.voters) learners \(r.conf.learners)"
        }.joined(separator: "; ")
    }

    func node(_ id: NodeID) -> SimNode? { nodes.first { $0.id == id } }

    // MARK: Ready handling: persist, send, apply, advance

    /// Takes the node's Ready if it has one and none is being persisted. Its early messages
    /// leave at once; persisting completes now or after a random delay, during which the node
    /// keeps receiving messages (as a real node keeps stepping while its fsync runs), and a
    /// crash loses it.
    func processReady(_ node: SimNode) throws {
        for _ in 0..<1_000 {
            guard let raft = node.raft, node.outstanding == nil, node.applyBusyUntil <= now, raft.hasReady else { return }
            let ready = raft.ready()
            if let soft = ready.softState, soft.role == .leader {
                report.leadersElected += 1
                try checker.leaderElected(node.id, term: raft.term, raft: raft)
            }
            for m in ready.earlyMessages { send(m) }
            if isFaulty && random.chance(options.slowPersistRate) {
                node.outstanding = (ready, now + 1 + random.int(0..<options.persistDelaySubticksMax))
                return
            }
            try complete(ready, on: node, raft: raft)
        }
        throw SimFailure("\(node.id) produced 1000 Readies in a row without settling")
    }

    /// Finishes a Ready: persist, send, apply, advance — or crash before persisting.
    func complete(_ ready: Ready, on node: SimNode, raft: RaftNode) throws {
        node.outstanding = nil
        if isFaulty && random.chance(options.crashInReadyRate) {
            crash(node)  // nothing of this Ready is durable
            return
        }
        try persist(ready, on: node)
        for m in ready.messages { send(m) }
        try apply(ready, on: node, raft: raft)
        raft.advance(ready)
        try checker.commitAdvanced(on: node, raft: raft)
        try maybeSnapshot(node)
        if isFaulty && node.isSlowApplier && !raft.isLeader && !ready.committedEntries.isEmpty { fillApplyQueue(of: node) }
    }

    /// A slow applier's batch keeps its apply queue full for a tick, sometimes for up to 30;
    /// it takes no Ready meanwhile. Handing out one entry per tick against about 0.8 commits
    /// per tick, it drains a backlog slowly and can campaign while it is behind on membership
    /// (the founding members' entries included). Leaders are spared: their lag only delays
    /// acknowledgements, and stalling them starved the workload (sweep seeds with under 15
    /// acknowledged writes).
    func fillApplyQueue(of node: SimNode) {
        if random.chance(options.slowApplyRate) {
            node.applyBusyUntil = now + 1 + random.int(0..<options.applyDelaySubticksMax)
            report.applyPauses += 1
        } else {
            node.applyBusyUntil = now + options.applyBatchSubticks
        }
    }

    /// Slow appliers whose apply queue has drained take their next Ready.
    func resumeDueAppliers() throws {
        for node in nodes where node.applyBusyUntil > 0 && node.applyBusyUntil <= now {
            node.applyBusyUntil = 0
            try processReady(node)
        }
    }

    func completeDuePersists() throws {
        for node in nodes {
            guard let (ready, at) = node.outstanding, at <= now, let raft = node.raft else { continue }
            try complete(ready, on: node, raft: raft)
            try processReady(node)
        }
    }

    func persist(_ ready: Ready, on node: SimNode) throws {
        if let snapshot = ready.snapshot {
            guard let state = SimStateMachine(decoding: snapshot.data) else {
                throw SimFailure("\(node.id) received an undecodable snapshot")
            }
            node.storage.applySnapshot(snapshot)
            checker.configurationApplied(snapshot.metadata.confState, at: snapshot.metadata.index)
            node.stateMachine = state
            report.snapshotsInstalled += 1
            try checker.applied(on: node.id, index: state.applied, historyHash: state.historyHash)
        }
        if !ready.entries.isEmpty {
            node.storage.append(ready.entries)
            try checker.appended(ready.entries, on: node)
        }
        if let hard = ready.hardState { node.storage.setHardState(hard) }
    }

    func apply(_ ready: Ready, on node: SimNode, raft: RaftNode) throws {
        for entry in ready.committedEntries {
            node.stateMachine.apply(entry)
            if entry.type == .confChange, let change = ConfChange(decoding: entry.data) {
                checker.configurationApplied(change, at: entry.index)
            }
            try checker.applied(on: node.id, index: entry.index, historyHash: node.stateMachine.historyHash)
            if entry.type == .confChange { report.confChangesApplied += 1 }
            if let proposal = node.proposals.removeValue(forKey: entry.index), proposal.term == entry.term,
               SimCommand(decoding: entry.data)?.writeID == proposal.writeID {
                report.acknowledgedWrites += 1
                checker.acknowledged(index: entry.index)
                if !isFaulty && proposal.tick >= healedAt { livenessMet = true }
            }
        }
        if let conf = ready.confState { node.storage.setConfState(conf) }
        for state in ready.readStates {
            guard let context = readU64(state.context, at: 0),
                  let required = node.reads.removeValue(forKey: context) else { continue }
            // Linearizability of ReadIndex: the read must see every write acknowledged
            // before it was asked.
            if state.index < required {
                throw SimFailure("stale read on \(node.id): read index \(state.index) < acknowledged write \(required)")
            }
            report.readsChecked += 1
        }
    }

    func maybeSnapshot(_ node: SimNode) throws {
        let applied = node.stateMachine.applied
        guard applied - node.storage.snapshotIndex >= UInt64(options.snapshotEntries) else { return }
        try node.storage.createSnapshot(at: applied, confState: node.storage.confState, data: node.stateMachine.encoded)
    }

    // MARK: Faults

    func injectFaults() {
        if random.chance(options.crashRate), let victim = random.pick(nodes.filter(\.isUp)) { crash(victim) }
        // Leader churn: leaders dying soon after election, with entries half replicated, is
        // what the paper's figure 8 is made of.
        if random.chance(options.leaderCrashRate), let leader = currentLeader { crash(leader) }
        for node in nodes where !node.isUp && random.chance(options.restartRate) {
            try? restart(node)
        }
        if random.chance(options.partitionRate) { partition() }
        if random.chance(options.healRate) { blockedLinks = [] }
    }

    func crash(_ node: SimNode) {
        node.crash()
        report.crashes += 1
    }

    func restart(_ node: SimNode) throws {
        try node.start(options: options, seed: random.next())
    }

    func restartDownNodes() throws {
        for node in nodes where !node.isUp { try restart(node) }
    }

    func heal() {
        for node in nodes {
            if let (ready, _) = node.outstanding, let raft = node.raft { try? complete(ready, on: node, raft: raft) }
            node.applyBusyUntil = 0
        }
        isFaulty = false
        healedAt = tick
        blockedLinks = []
    }

    func partition() {
        let ids = nodes.map(\.id.rawValue)
        switch random.int(0..<4) {
        case 3:  // the leader keeps a link to one peer only: entries reach a minority
            guard let leader = currentLeader?.id.rawValue, let keep = random.pick(ids.filter({ $0 != leader })) else { return }
            for other in ids where other != leader && other != keep {
                blockedLinks.insert([leader, other])
                blockedLinks.insert([other, leader])
            }
        case 0:  // isolate one node (often the leader)
            let leader = nodes.first { $0.raft?.isLeader == true }?.id.rawValue
            guard let victim = random.chance(0.5) ? leader ?? random.pick(ids) : random.pick(ids) else { return }
            for other in ids where other != victim {
                blockedLinks.insert([victim, other])
                blockedLinks.insert([other, victim])
            }
        case 1:  // split into two random groups
            let side = ids.map { _ in random.chance(0.5) }
            for (i, a) in ids.enumerated() {
                for (j, b) in ids.enumerated() where side[i] != side[j] { blockedLinks.insert([a, b]) }
            }
        default:  // asymmetric: one direction of one link
            if let a = random.pick(ids), let b = random.pick(ids), a != b { blockedLinks.insert([a, b]) }
        }
    }

    // MARK: Clients

    var currentLeader: SimNode? {
        nodes.filter { $0.raft?.isLeader == true }.max { $0.raft!.term < $1.raft!.term }
    }

    func clientActions() throws {
        var proposals = options.proposalsPerTick
        while proposals > 0 {
            if random.chance(min(proposals, 1)) { try propose() }
            proposals -= 1
        }
        // Half the reads go to a node that believes it leads — during a partition that can be a
        // deposed leader, as a real client keeps talking to the leader it knew.
        let readers = random.chance(0.5) ? nodes.filter { $0.raft?.isLeader == true } : nodes.filter(\.isUp)
        if random.chance(options.readsPerTick), let node = random.pick(readers) {
            let context = nextReadID
            nextReadID += 1
            if (try? node.raft?.readIndex(context: u64Bytes(context))) != nil {
                node.reads[context] = checker.acknowledgedIndex
                try processReady(node)
            }
        }
        guard isFaulty, let leader = currentLeader, let raft = leader.raft else { return }
        if random.chance(options.confChangeRate) { try changeMembership(leader: leader, raft: raft) }
        if random.chance(options.transferRate), let target = random.pick(raft.conf.voters.filter({ $0 != leader.id })) {
            if (try? raft.transferLeadership(to: target)) != nil { report.transfers += 1 }
            try processReady(leader)
        }
    }

    func propose() throws {
        // Clients find the leader most of the time; sometimes they ask a random node.
        guard let node = random.chance(0.9) ? currentLeader : random.pick(nodes.filter(\.isUp)),
              let raft = node.raft else { return }
        let command = SimCommand(writeID: nextWriteID, key: UInt8(random.int(0..<8)))
        nextWriteID += 1
        guard let index = try? raft.propose(command.encoded) else { return }
        node.proposals[index] = (raft.term, command.writeID, tick)
        try processReady(node)
    }

    func changeMembership(leader: SimNode, raft: RaftNode) throws {
        let conf = raft.conf
        var change: ConfChange?
        switch random.int(0..<3) {
        case 0:  // add a learner: any node of the pool that is not a member (re-adding a
                 // removed node exercises a stale log rejoining)
            let pool = (1...UInt64(options.nodeCount + options.spareNodes)).map { NodeID($0) }
            if conf.learners.isEmpty, let id = random.pick(pool.filter { !conf.isMember($0) }) {
                change = ConfChange(.addLearner, id)
            }
        case 1:
            if let learner = conf.learners.first { change = ConfChange(.addVoter, learner) }
        default:
            if conf.voters.count > 3, let victim = random.pick(conf.voters) { change = ConfChange(.remove, victim) }
        }
        guard let change, (try? raft.proposeConfChange(change)) != nil else { return }
        if change.kind == .addLearner, node(change.nodeID) == nil {
            let newcomer = SimNode(id: change.nodeID, storage: MemoryStorage())
            nodes.append(newcomer)
            try newcomer.start(options: options, seed: random.next())
        }
        try processReady(leader)
    }
}

/// A violated property, with what was seen.
struct SimFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
