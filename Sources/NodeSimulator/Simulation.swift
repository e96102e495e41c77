import FaunaKV
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify

/// What `tools/sim --node` runs: the faults to draw from and the shape of one run.
public struct NodeSimOptions: Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        case drop, duplicate, partition, crash, powerLoss = "power-loss", diskError = "disk-error", slowDisk = "slow-disk"
        case clockJump = "clock-jump", membership, transfer, applyLag = "apply-lag"
    }

    public var seed: UInt64 = 1
    public var nodes = 3
    public var tickMs = 10
    public var electionTicks = 10
    /// Small, so logs compact and lagging nodes catch up by snapshot.
    public var snapshotEntries = 32
    /// Faults are drawn during this window, then healed.
    public var chaosMillis = 3000
    /// After healing: clients keep going for half of it, then the cluster must converge.
    public var healMillis = 3000
    public var clients = 6
    public var keys = 3
    public var faults = Set(Fault.allCases)
    /// `PipelineSettings.followerApplyHold` of every node.
    public var followerApplyHold = PipelineSettings.followerApplyHoldDefault
    public var verbose = false
    public init() {}
}

/// A failed check: what broke, at what virtual time.
public struct SimFailure: Error, CustomStringConvertible {
    public var atMicros: UInt64
    public var message: String
    public var description: String { "at \(Double(atMicros) / 1000) ms: \(message)" }
}

/// What a run did (the report of a seed).
public struct NodeSimReport: Sendable, CustomStringConvertible {
    public var operations = 0, acknowledgedWrites = 0, unknownWrites = 0, reads = 0, verifiedReads = 0, audits = 0
    public var crashes = 0, powerLosses = 0, diskErrors = 0, partitions = 0, clockJumps = 0, transfers = 0
    public var membershipChanges = 0, snapshotsInstalled = 0, appliedIndex: LogIndex = .zero
    public var messagesDropped = 0, messagesDuplicated = 0, unsyncedBatchesLost = 0
    public var description: String {
        "ops \(operations) (writes acked \(acknowledgedWrites), unknown \(unknownWrites), reads \(reads), verified \(verifiedReads), "
            + "audits \(audits)); crashes \(crashes) (power loss \(powerLosses), unsynced batches lost \(unsyncedBatchesLost)), "
            + "disk errors \(diskErrors), partitions \(partitions), clock jumps \(clockJumps), transfers \(transfers), "
            + "membership changes \(membershipChanges), snapshots installed \(snapshotsInstalled), "
            + "messages dropped \(messagesDropped) duplicated \(messagesDuplicated); applied index \(appliedIndex)"
    }
}

/// One seeded run of whole node pipelines (docs/TESTING.md "Node simulator").
public final class Simulation {
    let options: NodeSimOptions
    var rng: SimRandom
    let time = SimTime()
    let network = SimNetwork()
    let members = SimMemberBook()
    var nodes: [NodeID: SimNode] = [:]
    var clients: [SimClient] = []
    var history = HistoryRecorder()
    var report = NodeSimReport()
    var checker = SafetyChecker()
    var failure: SimFailure?
    var nextNodeID: UInt64

    public init(options: NodeSimOptions) {
        self.options = options
        self.rng = SimRandom(seed: options.seed)
        self.nextNodeID = UInt64(options.nodes) + 1
    }

    var nowMs: Int { Int(time.micros / 1000) }

    func fail(_ message: String) {
        if failure == nil { failure = SimFailure(atMicros: time.micros, message: message) }
    }

    /// Runs the whole schedule; returns the report, or throws the first failed check.
    public func run() throws(SimFailure) -> NodeSimReport {
        let voters = (1...options.nodes).map { NodeID(UInt64($0)) }
        for id in voters {
            let disk = SimDisk(name: "\(id)")
            do { try SimStore.found(disk: disk, voters: voters) } catch { throw SimFailure(atMicros: 0, message: "found: \(error)") }
            let node = SimNode(id: id, disk: disk, time: time, rng: &rng)
            nodes[id] = node
            members.record(Self.addresses(of: id), for: id)
        }
        for id in voters {
            do { try nodes[id]!.start(in: self) } catch { throw SimFailure(atMicros: 0, message: "start \(id): \(error)") }
        }
        for c in 0..<options.clients { clients.append(SimClient(id: c, sim: self)) }

        let endMs = options.chaosMillis + options.healMillis
        var nemesis = Nemesis(options: options)
        for ms in 0..<endMs {
            time.micros = UInt64(ms) * 1000
            deliver()
            if ms < options.chaosMillis {
                nemesis.step(self)
            } else if ms == options.chaosMillis {
                nemesis.heal(self)
            } else {
                nemesis.healStep(self)
            }
            stepNodes()
            if ms < options.chaosMillis + options.healMillis / 2 {
                for client in clients { client.step(issuing: true) }
            } else {
                for client in clients { client.step(issuing: false) }
            }
            checker.afterStep(self)
            if options.verbose {
                var probe = rng
                let kinds = network.inFlight.map { item -> String in
                    switch item.payload {
                    case .raft(let f, let t, let m): "r\(f.rawValue)>\(t.rawValue):\(m.map { "\($0.type)" }.joined(separator: ","))"
                    case .answer(let c, let a, _): "a\(c)/\(a)"
                    default: "s"
                    }
                }.sorted().joined(separator: " ")
                print("[\(ms).0 ms] step: rng \(probe.next() % 1_000_000), in flight \(kinds)")
            }
            if let failure { throw failure }
            if ms > options.chaosMillis + options.healMillis / 2, clients.allSatisfy({ $0.isIdle }), converged() != nil { break }
        }
        // Give what is still pending its timeout, then check the end state.
        for client in clients { client.abandon() }
        guard let state = converged() else {
            throw SimFailure(atMicros: time.micros, message: "the cluster did not converge after healing: \(describeNodes())")
        }
        checker.finalChecks(self, state: state)
        if let failure { throw failure }
        history.finalReads(from: state.store, keys: SimClient.keys(options.keys), at: time.micros)
        switch checkLinearizable(history.ops) {
        case .linearizable: break
        case .violation(let key, let explanation):
            throw SimFailure(atMicros: time.micros, message: "not linearizable (key \(printable(key))): \(explanation)")
        case .tooComplex(let key):
            throw SimFailure(atMicros: time.micros, message: "history of key \(printable(key)) too complex to check")
        }
        if let problem = history.checkSerializableReads() { throw SimFailure(atMicros: time.micros, message: problem) }
        report.appliedIndex = state.store.appliedIndex
        report.messagesDropped = network.dropped
        report.messagesDuplicated = network.duplicated
        for node in nodes.values {
            report.unsyncedBatchesLost += node.disk.counters.batchesLost
            report.snapshotsInstalled += node.core?.counters.snapshotsInstalled ?? 0
        }
        return report
    }

    static func addresses(of id: NodeID) -> MemberAddresses {
        MemberAddresses(
            peer: Endpoint(host: "sim", port: UInt16(truncatingIfNeeded: 10_000 + id.rawValue)),
            client: Endpoint(host: "sim", port: UInt16(truncatingIfNeeded: 20_000 + id.rawValue)))
    }

    // MARK: Stepping

    private func deliver() {
        for item in network.due(now: time.micros) {
            switch item.payload {
            case .raft(let from, let to, let messages):
                guard !network.isCut(from, to), let events = nodes[to]?.events else { continue }
                events.offer(.raftMessages(messages))  // full: dropped, Raft retransmits
            case .snapshot(let from, let to, let checkpoint, let done):
                guard !network.isCut(from, to), let node = nodes[to], let shipping = node.shipping else {
                    network.ack(done, ok: false, sim: self)
                    continue
                }
                network.ack(done, ok: shipping.receive(checkpoint, disk: node.disk), sim: self)
            case .snapshotAck(let done, let ok):
                done(ok)
            case .answer(let client, let attempt, let frames):
                for frame in frames { clients[client].receive(frame, attempt: attempt) }
            }
        }
    }

    private func stepNodes() {
        var order = nodes.keys.sorted()
        order.shuffle(using: &rng)
        for id in order {
            guard let node = nodes[id], let core = node.core, let events = node.events else { continue }
            if time.micros >= node.busyUntil, !events.items.isEmpty || core.nextWake <= node.clock.now {
                if node.writeFailedAt != nil { node.roundsSinceWriteFailed += 1 }
                let writesBefore = node.disk.counters.batchesWritten
                let running = core.runRound(events.take(max: 4096), now: node.clock.now)
                if !running {
                    node.finishStopping()
                    report.snapshotsInstalled += core.counters.snapshotsInstalled
                    continue
                }
                if node.disk.counters.batchesWritten != writesBefore && node.slowDiskMicros > 0 {
                    node.busyUntil = time.micros + rng.delay(node.slowDiskMicros / 2, node.slowDiskMicros)
                }
            }
            if let queue = node.applyQueue, !queue.jobs.isEmpty, rng.chance(node.applyChance) {
                queue.step(max: 64)
            }
            if node.writeFailedAt == nil, node.disk.counters.failedWrites > node.failedWritesAtStart {
                node.writeFailedAt = time.micros
            }
            if let failedAt = node.writeFailedAt, node.isUp {
                // The write failed within this step's work; the owner must stop in its next
                // round (an apply failure reaches it as an event), however slow its disk.
                if node.roundsSinceWriteFailed >= 2 {
                    fail("\(id) kept running \((time.micros - failedAt) / 1000) ms and 2 rounds after a disk write failed")
                }
            }
        }
    }

    /// The applied state every live member agrees on, once they do.
    func converged() -> (store: SimStore, node: SimNode)? {
        // The members are the leader's configuration; each must be up and agree.
        guard let leader = leaderGuess(), let conf = nodes[leader]?.core?.configuration else { return nil }
        let live = conf.members.compactMap { nodes[$0] }
        guard live.count == conf.members.count, live.allSatisfy({ $0.isUp }), let first = live.first?.store else { return nil }
        for node in live {
            guard let store = node.store, store.appliedIndex == first.appliedIndex, store.treeHead == first.treeHead,
                node.applyQueue?.jobs.isEmpty == true
            else { return nil }
        }
        return (first, live[0])
    }

    func describeNodes() -> String {
        nodes.keys.sorted().map { id in
            let n = nodes[id]!
            guard let core = n.core, let store = n.store else {
                return "\(id): down\(n.isMember ? "" : " (removed)")\(n.stopReason.map { " — \($0)" } ?? "")"
            }
            return "\(id): \(core.role) term \(core.term) commit \(core.commitIndex) applied \(store.appliedIndex)"
        }.joined(separator: "; ")
    }

    /// The node clients should try first: the one that says it leads, if any.
    func leaderGuess() -> NodeID? {
        nodes.values.filter { $0.core?.isLeader == true }.map(\.id).sorted().last
    }
}

func printable(_ bytes: [UInt8]?) -> String {
    guard let bytes else { return "(absent)" }
    if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return "\"" + String(decoding: bytes, as: UTF8.self) + "\"" }
    return "0x" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
