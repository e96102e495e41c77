import FaunaKV
import FaunaPipeline
import FaunaRaft
import FaunaStore
import FaunaVerify

/// The clients' history, for the register model (`checkLinearizable`), plus serializable
/// reads, which may be stale but never invent a value.
struct HistoryRecorder {
    var ops: [HistoryOp] = []
    var serializableReads: [(key: [UInt8], value: [UInt8]?, invoke: UInt64, complete: UInt64)] = []

    mutating func append(client: Int, key: [UInt8], call: HistoryOp.Call, invoke: UInt64, complete: UInt64?, outcome: HistoryOp.Outcome) {
        ops.append(HistoryOp(id: ops.count, client: client, key: key, call: call, invoke: invoke, complete: complete, outcome: outcome))
    }

    mutating func serializable(key: [UInt8], value: [UInt8]?, invoke: UInt64, complete: UInt64) {
        serializableReads.append((key, value, invoke, complete))
    }

    /// After convergence, every key's value as every node holds it: a read that overlaps
    /// nothing, so the history must explain it (an acknowledged write lost shows here).
    mutating func finalReads(from store: SimStore, keys: [[UInt8]], at time: UInt64) {
        for key in keys {
            let value = try? store.range(KVRangeRequest(range: .single(key))).records.first?.record.value
            append(client: -1, key: key, call: .read, invoke: time + 1, complete: time + 2, outcome: .read(value ?? nil))
        }
    }

    /// A serializable read returns a value some write of that key wrote (or the key absent),
    /// never one nobody wrote, and never one whose write began after the read completed.
    func checkSerializableReads() -> String? {
        var writes: [[UInt8]: [(value: [UInt8]?, invoke: UInt64)]] = [:]
        for op in ops {
            switch op.call {
            case .write(let v): writes[op.key, default: []].append((v, op.invoke))
            case .cas(_, let new): writes[op.key, default: []].append((new, op.invoke))
            case .read: break
            }
        }
        for read in serializableReads {
            guard let value = read.value else { continue }
            guard writes[read.key, default: []].contains(where: { $0.value == value && $0.invoke <= read.complete }) else {
                return "serializable read of \(printable(read.key)) at \(read.complete / 1000) ms returned \(printable(value)), which no write wrote before"
            }
        }
        return nil
    }
}

/// The checks that run after every step (Raft and state-machine safety) and at the end.
struct SafetyChecker {
    /// The leader of each term, once one was seen: two would break election safety.
    var leaders: [Term: NodeID] = [:]
    /// The leaf hash of every applied index, as the first node to apply it computed it: every
    /// node must apply the same entry with the same effects at each index.
    var leaves: [UInt64: (hash: MerkleHash, node: NodeID)] = [:]
    /// How far each node's applied leaves were compared.
    var checked: [NodeID: UInt64] = [:]
    /// Every signed head seen by a client: one root per size.
    var heads: [UInt64: (root: MerkleHash, node: NodeID)] = [:]

    mutating func afterStep(_ sim: Simulation) {
        for id in sim.nodes.keys.sorted() {
            let node = sim.nodes[id]!
            guard let core = node.core, let store = node.store else {
                checked[id] = nil  // a restart may come back with less applied (power loss)
                continue
            }
            if core.isLeader {
                if let other = leaders[core.term], other != id {
                    sim.fail("two leaders in term \(core.term): \(other) and \(id)")
                }
                leaders[core.term] = id
            }
            if node.disk.counters.batchesWrittenWhileInstallPending > 0 {
                sim.fail("\(id) wrote to its store between finishing a snapshot install and reopening (lost at the swap)")
            }
            let applied = UInt64(store.appliedIndex.rawValue)
            if store.treeHead.treeSize != applied {
                sim.fail("\(id): tree size \(store.treeHead.treeSize) != applied index \(applied)")
            }
            var from = (checked[id] ?? 0) + 1
            if from > applied + 1 { from = applied + 1 }
            // Compare at most a bounded window per step: a node that just installed a snapshot
            // has no journal below it... it does: snapshots carry the journal. Check them all.
            while from <= applied {
                let record: JournalRecord?
                do { record = try store.journalRecord(at: LogIndex(from)) } catch {
                    sim.fail("\(id): journal record \(from): \(error)")
                    return
                }
                guard let record else {
                    sim.fail("\(id): journal record \(from) missing below applied index \(applied)")
                    return
                }
                let hash = record.leaf.leafHash
                if let first = leaves[from] {
                    if first.hash != hash {
                        sim.fail("\(id) applied entry \(from) differently from \(first.node): \(describe(record))")
                        return
                    }
                } else {
                    leaves[from] = (hash, id)
                }
                from += 1
            }
            checked[id] = applied
        }
    }

    private func describe(_ record: JournalRecord) -> String {
        let e = record.entry
        return "term \(e.term) type \(e.type) \(e.data.count) bytes, effects \(record.effects.map { "\($0.outcome)" } ?? "none")"
    }

    mutating func recordHead(_ head: TreeHead, by node: NodeID, sim: Simulation) {
        if let seen = heads[head.treeSize], seen.root != head.rootHash {
            sim.fail("\(node) and \(seen.node) signed different roots for tree size \(head.treeSize)")
        }
        heads[head.treeSize] = (head.rootHash, node)
        // Each head must also match the tree the simulator saw applied (a head is at most
        // the signer's applied size, and every applied leaf is checked above).
    }

    /// After convergence: every live member holds the same state, digest and tree; every
    /// signed head is a prefix of that tree; every acknowledged write's entry is in it.
    mutating func finalChecks(_ sim: Simulation, state: (store: SimStore, node: SimNode)) {
        afterStep(sim)
        let reference = state.store
        let size = UInt64(reference.appliedIndex.rawValue)
        let digest: StateDigest
        do { digest = try reference.stateDigest() } catch { return sim.fail("state digest: \(error)") }
        for node in sim.nodes.values where node.isMember {
            guard let store = node.store else { continue }
            do {
                let other = try store.stateDigest()
                if other != digest { sim.fail("\(node.id) state digest \(other) != \(state.node.id)'s \(digest)") }
            } catch { sim.fail("\(node.id) state digest: \(error)") }
        }
        for (headSize, seen) in heads where headSize <= size {
            guard let root = try? reference.rootHash(atSize: headSize) else { return sim.fail("root at \(headSize) unavailable") }
            if root != seen.root { sim.fail("\(seen.node) signed a root for size \(headSize) that the final tree does not have") }
        }
        if let largest = heads.keys.max(), largest > size {
            sim.fail("a head of size \(largest) was signed, beyond the final applied index \(size)")
        }
    }
}
