// audit-bench: throughput and latency of the audit chain in memory (release builds only).
// Usage: swift run -c release --scratch-path .build-release-audit audit-bench [leaves]
// Prints a Markdown table for docs/PERFORMANCE.md. Single thread.
import Crypto
import FaunaAudit
import FaunaVerify

let leafCount = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 10_000_000
let clock = ContinuousClock()
var sink: UInt8 = 0  // folds results in so the optimizer cannot drop the measured work

/// Runs `body` `count` times and returns the seconds taken.
func measure(_ count: Int, _ body: (Int) throws -> Void) rethrows -> Double {
    let start = clock.now
    for i in 0..<count { try body(i) }
    let elapsed = clock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}

func row(_ what: String, _ count: Int, _ seconds: Double) {
    let perSecond = Double(count) / seconds
    let micros = seconds / Double(count) * 1e6
    print("| \(what) | \(Int(perSecond.rounded()).formatted) /s | \(String(format2: micros)) µs |")
}

extension Int {
    var formatted: String {
        let digits = Array(String(self))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }
}

extension String {
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

var rng = SystemRandomNumberGenerator()
print("audit-bench: \(leafCount.formatted) leaves, single thread\n")
print("| what | rate | per op |")
print("|---|---|---|")

// Baseline: SHA-256 of one 64-byte message through the fast path the hasher uses.
let block = [UInt8](repeating: 0xab, count: 64)
let shaCount = 2_000_000
let shaSeconds = block.withUnsafeBytes { raw in
    measure(shaCount) { _ in
        var sha = SHA256()
        sha.update(bufferPointer: raw)
        sha.finalize().withUnsafeBytes { sink ^= $0[0] }
    }
}
row("SHA-256, 64 B message (baseline)", shaCount, shaSeconds)

let nodeSeconds = measure(shaCount) { i in
    sink ^= MerkleHasher.nodeHash(MerkleHasher.emptyRoot, MerkleHasher.emptyRoot).bytes[i & 31]
}
row("node hash (65 B)", shaCount, nodeSeconds)

// Distinct leaf hashes, cycled: the cost of an append does not depend on the leaf's value.
let distinct = (0..<(1 << 16)).map { i in MerkleHasher.leafHash([UInt8(i & 0xff), UInt8(i >> 8)]) }

var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
let appendSeconds = measure(leafCount) { i in tree.append(distinct[i & 0xffff]) }
row("append leaf hash (in-memory store)", leafCount, appendSeconds)

var frontier = MerkleFrontier()
let batchCount = 2_000_000
let batchSeconds = measure(batchCount / 1000) { _ in
    var writes = NodeWrites()
    for j in 0..<1000 { frontier.append(distinct[j], to: &writes) }
    sink ^= UInt8(truncatingIfNeeded: writes.writes.count)
}
row("append leaf hash, 1000 per collected batch", batchCount, batchSeconds)

let entry = JournalEntry(index: 1, term: 1, type: 0, payload: [UInt8](repeating: 7, count: 100))
let leafSeconds = measure(shaCount) { i in
    var e = entry
    e.index = UInt64(i + 1)
    sink ^= e.leafHash.bytes[0]
}
row("leaf hash of an entry, 100 B payload", shaCount, leafSeconds)

// What the apply path hashes for a one-put entry under leaf v2 (docs/AUDIT.md §1): the value,
// the effect's leaf, the effects root (that leaf), and the entry's v2 leaf.
let putKey = [UInt8](repeating: 0x6b, count: 16)
let putValue = [UInt8](repeating: 0x5a, count: 100)
let v2Seconds = measure(shaCount) { i in
    let effect = Effect.put(key: putKey, value: putValue)
    let summary = EffectsTree.summary(outcome: .success, branch: .none, effects: [effect])
    var e = entry
    e.index = UInt64(i + 1)
    e.effects = summary
    sink ^= e.leafHash.bytes[0]
}
row("leaf v2 of a one-put entry (value, effect leaf, effects root, leaf)", shaCount, v2Seconds)

let n = tree.treeSize
let root = tree.rootHash
let proofCount = 100_000
let leaves = (0..<proofCount).map { _ in UInt64.random(in: 0..<n, using: &rng) }
let oldSizes = (0..<proofCount).map { _ in UInt64.random(in: 1..<n, using: &rng) }

var inclusionProofs: [InclusionProof] = []
inclusionProofs.reserveCapacity(proofCount)
let inclusionSeconds = try measure(proofCount) { i in
    inclusionProofs.append(try tree.inclusionProof(for: LeafIndex(leaves[i]), treeSize: n))
}
row("inclusion proof, generate (size \(Int(n).formatted))", proofCount, inclusionSeconds)

let inclusionVerifySeconds = try measure(proofCount) { i in
    try inclusionProofs[i].verify(leafHash: distinct[Int(leaves[i] & 0xffff)], rootHash: root)
}
row("inclusion proof, verify", proofCount, inclusionVerifySeconds)

var consistencyProofs: [ConsistencyProof] = []
consistencyProofs.reserveCapacity(proofCount)
let consistencySeconds = try measure(proofCount) { i in
    consistencyProofs.append(try tree.consistencyProof(from: oldSizes[i], to: n))
}
row("consistency proof, generate (to size \(Int(n).formatted))", proofCount, consistencySeconds)

let oldRoots = try oldSizes.prefix(10_000).map { try tree.rootHash(atSize: $0) }
let rootSeconds = try measure(10_000) { i in sink ^= try tree.rootHash(atSize: oldSizes[i]).bytes[0] }
row("root at a random size", 10_000, rootSeconds)

let consistencyVerifySeconds = try measure(10_000) { i in
    try consistencyProofs[i].verify(oldRoot: oldRoots[i], newRoot: root)
}
row("consistency proof, verify", 10_000, consistencyVerifySeconds)

// Tree heads: three members, each signs; a client checks a 2-of-3 quorum.
let signers = (1...3).map { TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: $0, count: 32))) }
let clusterID = ClusterID(bytes: [UInt8](repeating: 1, count: 16))!
let head = TreeHead(clusterID: clusterID, treeSize: n, rootHash: root)
let signCount = 20_000
var signatures: [TreeHeadSignature] = []
let signSeconds = try measure(signCount) { i in signatures.append(try signers[i % 3].sign(head)) }
row("tree head, sign (one member)", signCount, signSeconds)
let signed = SignedTreeHead(head: head, signatures: Array(signatures.prefix(2)))
let members = signers.map(\.publicKey)
let quorumCount = 5_000
let quorumSeconds = try measure(quorumCount) { _ in sink ^= UInt8(try signed.verify(clusterID: clusterID, members: members)) }
row("tree head, verify 2-of-3 quorum", quorumCount, quorumSeconds)

print("\nnodes stored: \(tree.store.nodeCount.formatted); appends per SHA-256: \(String(format2: shaSeconds / Double(shaCount) / (appendSeconds / Double(leafCount)))); sink \(sink)")
