import CAllocationCounter
import FaunaRaft

// raft-bench: committed entries per second of a 3-node in-process cluster — in-memory
// storage, an instant network, one thread doing the work of all three nodes — and heap
// allocations per committed entry. Measures the consensus core alone: it must never be the
// bottleneck. Usage: raft-bench [--entries N] [--batch B] [--bytes S]

func argument(_ name: String, default value: Int) -> Int {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]), v > 0 else { return value }
    return v
}

let entriesTotal = argument("--entries", default: 1_000_000)
let batchSize = argument("--batch", default: 64)
let entryBytes = argument("--bytes", default: 256)

final class Cluster {
    let ids = (1...3).map { NodeID(UInt64($0)) }
    var storages: [MemoryStorage] = []
    var nodes: [RaftNode] = []
    var queue: [Message] = []
    var queueHead = 0
    var appliedOnLeader = 0

    init() throws {
        for id in ids {
            let storage = MemoryStorage(bootstrap: ids)
            var config = RaftConfig(id: id, randomSeed: id.rawValue)
            config.inflightMessagesMax = 1_024
            config.uncommittedBytesMax = 256 << 20
            storages.append(storage)
            nodes.append(try RaftNode(config: config, storage: storage))
        }
    }

    func pump() {
        var progressed = true
        while progressed {
            progressed = false
            for i in nodes.indices where nodes[i].hasReady {
                progressed = true
                let node = nodes[i]
                let ready = node.ready()
                let storage = storages[i]
                if let snapshot = ready.snapshot { storage.applySnapshot(snapshot) }
                storage.append(ready.entries)
                if let hard = ready.hardState { storage.setHardState(hard) }
                queue.append(contentsOf: ready.earlyMessages)
                queue.append(contentsOf: ready.messages)
                if i == 0 { appliedOnLeader += ready.committedEntries.count }
                if let conf = ready.confState { storage.setConfState(conf) }
                node.advance(ready)
                // Bound memory: compact what every node has applied.
                if node.appliedIndex - storage.snapshotIndex > 50_000 {
                    try? storage.createSnapshot(at: node.appliedIndex - 10_000, confState: node.conf, data: [])
                }
            }
            while queueHead < queue.count {
                progressed = true
                let m = queue[queueHead]
                queueHead += 1
                nodes[Int(m.to.rawValue) - 1].step(m)
            }
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
    }
}

/// `value` with `digits` decimals (no Foundation in this target).
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    var fraction = String(abs(scaled) % Int(scale))
    while fraction.count < digits { fraction = "0" + fraction }
    return digits == 0 ? String(whole) : "\(whole).\(fraction)"
}

func run(_ cluster: Cluster, batch: [[UInt8]], entries: Int) throws -> (seconds: Double, allocations: UInt64, committed: Int) {
    let start = cluster.appliedOnLeader
    let allocationsBefore = fauna_allocation_count()
    let clock = ContinuousClock()
    let began = clock.now
    var proposed = 0
    while proposed < entries {
        try cluster.nodes[0].propose(batch: batch)
        proposed += batch.count
        cluster.pump()
    }
    let elapsed = clock.now - began
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (seconds, fauna_allocation_count() - allocationsBefore, cluster.appliedOnLeader - start)
}

func main() throws {
    let cluster = try Cluster()
    for _ in 0..<30 {
        cluster.nodes[0].tick()
        cluster.pump()
    }
    precondition(cluster.nodes[0].isLeader, "n1 did not become leader")
    let payload = [UInt8](repeating: 0xAB, count: entryBytes)
    let batch = [[UInt8]](repeating: payload, count: batchSize)
    _ = try run(cluster, batch: batch, entries: min(entriesTotal / 10, 100_000))  // warm-up
    let result = try run(cluster, batch: batch, entries: entriesTotal)
    let perSecond = Double(result.committed) / result.seconds
    let allocations = Double(result.allocations) / Double(result.committed)
    print("raft-bench: 3 nodes in one thread, \(entryBytes)-byte entries, batches of \(batchSize)")
    print("committed \(result.committed) entries in \(fixed(result.seconds, 3)) s: \(Int(perSecond)) entries/s")
    print("allocations: \(fixed(allocations, 2)) per committed entry (all three nodes together)")
}

try main()

#if canImport(Glibc)
import Glibc
#endif
