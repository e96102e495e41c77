import FaunaPipeline
import FaunaRPC
import FaunaRaft

/// Draws the faults of a run from the seed, one decision per virtual millisecond, and heals
/// them all when the chaos window ends.
struct Nemesis {
    let options: NodeSimOptions
    /// Nodes down and when they come back.
    var restarts: [NodeID: Int] = [:]
    var partitionEndsAt: Int?
    /// A membership change in progress: the node being removed and the one joining.
    var removing: NodeID?
    var joining: NodeID?
    var adminClient = 1_000_000

    init(options: NodeSimOptions) { self.options = options }

    func on(_ fault: NodeSimOptions.Fault) -> Bool { options.faults.contains(fault) }

    mutating func step(_ sim: Simulation) {
        let ms = sim.nowMs
        for id in restarts.keys.sorted() where restarts[id]! <= ms {
            restarts[id] = nil
            restart(id, sim)
        }
        if let end = partitionEndsAt, end <= ms {
            sim.network.cut = []
            partitionEndsAt = nil
        }
        if ms % 100 == 0 {
            sim.network.dropChance = on(.drop) && sim.rng.chance(0.3) ? 0.05 : 0
            sim.network.duplicateChance = on(.duplicate) && sim.rng.chance(0.3) ? 0.05 : 0
        }
        let members = sim.nodes.values.filter { $0.isMember }.map(\.id).sorted()
        let up = members.filter { sim.nodes[$0]!.isUp }
        // At most a minority down at once, so the cluster can make progress in between.
        let mayTakeDown = up.count > members.count / 2 + 1
        switch sim.rng.int(0..<1000) {
        case 0..<4 where on(.partition) && partitionEndsAt == nil:
            var shuffled = members
            shuffled.shuffle(using: &sim.rng)
            let side = Array(shuffled.prefix(sim.rng.int(1..<max(2, members.count / 2 + 1))))
            for a in side { for b in members where !side.contains(b) { sim.network.cut.insert(.init(a, b)) } }
            partitionEndsAt = ms + sim.rng.int(200..<1200)
            sim.report.partitions += 1
        case 4..<7 where on(.crash) && mayTakeDown:
            takeDown(sim.rng.pick(up)!, powerLoss: false, sim)
        case 7..<10 where on(.powerLoss) && mayTakeDown:
            takeDown(sim.rng.pick(up)!, powerLoss: true, sim)
        case 10..<12 where on(.diskError) && mayTakeDown:
            let node = sim.nodes[sim.rng.pick(up)!]!
            node.disk.failNextWrite(skipping: sim.rng.int(0..<4))
            sim.report.diskErrors += 1
        case 12..<16 where on(.slowDisk):
            let node = sim.nodes[sim.rng.pick(members)!]!
            node.slowDiskMicros = sim.rng.chance(0.5) ? UInt64(sim.rng.int(1_000..<30_000)) : 0
        case 16..<18 where on(.clockJump):
            let node = sim.nodes[sim.rng.pick(members)!]!
            node.clock.offset += .milliseconds(sim.rng.int(50..<2_000))
            sim.report.clockJumps += 1
        case 18..<22 where on(.applyLag):
            let node = sim.nodes[sim.rng.pick(members)!]!
            node.applyChance = sim.rng.chance(0.5) ? 0.05 : 1
        case 22..<24 where on(.transfer):
            if let leader = sim.leaderGuess(), let target = sim.rng.pick(up.filter { $0 != leader }) {
                admin(.leaderTransfer(target), to: leader, sim)
                sim.report.transfers += 1
            }
        case 24..<32 where on(.membership):
            changeMembership(sim, members: members, up: up)
        default:
            break
        }
        if ms % 50 == 0 { advanceMembership(sim) }
        // Disk errors: a node whose write failed stops (checked by the simulation); the
        // operator restarts it a little later, as after any fail-stop.
        for id in members where !sim.nodes[id]!.isUp && restarts[id] == nil && sim.nodes[id]!.stopReason?.hasPrefix("fail-stop") == true {
            restarts[id] = ms + sim.rng.int(50..<500)
        }
    }

    private mutating func takeDown(_ id: NodeID, powerLoss: Bool, _ sim: Simulation) {
        let node = sim.nodes[id]!
        if let core = node.core { sim.report.snapshotsInstalled += core.counters.snapshotsInstalled }
        node.crash(powerLoss: powerLoss, rng: &sim.rng)
        sim.report.crashes += 1
        if powerLoss { sim.report.powerLosses += 1 }
        restarts[id] = sim.nowMs + sim.rng.int(20..<800)
    }

    private func restart(_ id: NodeID, _ sim: Simulation) {
        guard let node = sim.nodes[id], node.isMember, !node.isUp else { return }
        node.disk.cancelFailure()
        do { try node.start(in: sim) } catch { sim.fail("restart of \(id) failed: \(error)") }
    }

    /// Replaces a follower: removes it, then adds a fresh node as a learner and promotes it.
    /// One change at a time; `advanceMembership` re-sends each step until the leader's
    /// configuration shows it.
    private mutating func changeMembership(_ sim: Simulation, members: [NodeID], up: [NodeID]) {
        guard removing == nil, joining == nil, let leader = sim.leaderGuess(), members.count == options.nodes,
            up.count == members.count, let victim = sim.rng.pick(members.filter { $0 != leader })
        else { return }
        sim.nodes[victim]!.isMember = false
        removing = victim
        let id = NodeID(sim.nextNodeID)
        sim.nextNodeID += 1
        let node = SimNode(id: id, disk: SimDisk(name: "\(id)"), time: sim.time, rng: &sim.rng)
        sim.nodes[id] = node
        sim.members.record(Simulation.addresses(of: id), for: id)
        do { try node.start(in: sim) } catch { sim.fail("start of joining \(id): \(error)") }
        joining = id
        sim.report.membershipChanges += 1
        advanceMembership(sim)
    }

    /// Sends the next membership request the replacement needs, if any.
    mutating func advanceMembership(_ sim: Simulation) {
        guard removing != nil || joining != nil, let leader = sim.leaderGuess(),
            let conf = sim.nodes[leader]?.core?.configuration
        else { return }
        if let victim = removing {
            if conf.isMember(victim) {
                return admin(.memberChange(.remove(victim)), to: leader, sim)
            }
            removing = nil
        }
        guard let new = joining else { return }
        if conf.isVoter(new) {
            joining = nil
        } else if conf.isLearner(new) {
            admin(.memberChange(.promote(new)), to: leader, sim)
        } else {
            let addresses = Simulation.addresses(of: new)
            admin(.memberChange(.addLearner(Member(
                nodeID: new, peerAddress: addresses.peer, clientAddress: addresses.client, isLearner: true))), to: leader, sim)
        }
    }

    /// Sends an admin request; its answer is ignored (the nemesis checks the outcome itself).
    private func admin(_ message: RPCMessage, to node: NodeID, _ sim: Simulation) {
        guard let events = sim.nodes[node]?.events else { return }
        let context = RPCRequestContext(requestID: RequestID(1), reply: SimReply { _ in })
        events.offer(.request(message, context))
    }

    /// The end of the chaos window: everything heals, every member comes back up.
    mutating func heal(_ sim: Simulation) {
        sim.network.cut = []
        sim.network.dropChance = 0
        sim.network.duplicateChance = 0
        partitionEndsAt = nil
        for node in sim.nodes.values {
            node.slowDiskMicros = 0
            node.applyChance = 1
            node.disk.cancelFailure()
        }
        for id in sim.nodes.keys.sorted() { restart(id, sim) }
        restarts = [:]
    }

    /// After healing: fail-stopped members restart, a half-done replacement finishes.
    mutating func healStep(_ sim: Simulation) {
        if sim.nowMs % 50 == 0 { advanceMembership(sim) }
        for id in sim.nodes.keys.sorted() {
            let node = sim.nodes[id]!
            if node.isMember && !node.isUp && node.stopReason?.hasPrefix("fail-stop") == true { restart(id, sim) }
        }
    }
}
