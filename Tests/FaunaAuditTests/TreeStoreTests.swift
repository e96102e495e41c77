import FaunaAudit
import FaunaVerify
import Testing

/// Counts reads and can fail or lose nodes, to check the O(log n) read bound and error paths.
struct ProbeReader: MerkleNodeReader {
    let base: InMemoryMerkleNodeStore
    var missing: Set<NodeAddress> = []
    var failing = false
    final class Counter: @unchecked Sendable {  // test-only, single-threaded use
        var calls = 0
        var addresses = 0
    }
    let counter = Counter()

    struct DiskError: Error {}

    func hashes(at addresses: [NodeAddress]) throws -> [MerkleHash?] {
        counter.calls += 1
        counter.addresses += addresses.count
        if failing { throw DiskError() }
        return addresses.map { missing.contains($0) ? nil : base.hash(at: $0) }
    }
}

@Suite struct TreeStoreTests {
    @Test(arguments: [1, 2, 3, 7, 8, 100, 1023, 1024, 1025])
    func appendsRecordEveryCompleteSubtreeExactlyOnce(_ count: Int) {
        var frontier = MerkleFrontier()
        var writes = NodeWrites()
        frontier.append(contentsOf: syntheticLeaves(count), to: &writes)
        let addresses = writes.writes.map(\.address)
        #expect(Set(addresses).count == addresses.count)
        let want = (0..<64).reduce(0) { $0 + (count >> $1) }  // ⌊n/2^l⌋ subtrees at level l
        #expect(addresses.count == want)
        #expect(frontier.treeSize == UInt64(count))
    }

    @Test func recordedWritesRebuildTheSameStore() throws {
        let leaves = syntheticLeaves(777)
        var frontier = MerkleFrontier()
        var writes = NodeWrites()
        frontier.append(contentsOf: leaves, to: &writes)
        var store = InMemoryMerkleNodeStore()
        for write in writes.writes { store.recordHash(write.hash, at: write.address) }
        let tree = try MerkleTree(store: store, treeSize: 777)
        #expect(tree.rootHash == memoryTree(leaves).rootHash)
        #expect(tree.frontier == frontier)
    }

    @Test(arguments: [0, 1, 5, 64, 300])
    func frontierLoadsFromTheStore(_ size: Int) throws {
        let tree = memoryTree(Array(smallLeaves.prefix(size)))
        let probe = ProbeReader(base: tree.store)
        let loaded = try MerkleFrontier.load(treeSize: UInt64(size), from: probe)
        #expect(loaded == tree.frontier)
        #expect(probe.counter.addresses == size.nonzeroBitCount)
        var resumed = try MerkleTree(store: tree.store, treeSize: UInt64(size))
        resumed.append(syntheticEntry(UInt64(size) + 1).leafHash)
        #expect(resumed.rootHash == memoryTree(syntheticLeaves(size + 1)).rootHash)
    }

    @Test func everyAnswerIsOneBatchedReadOfLogarithmicSize() throws {
        let probe = ProbeReader(base: largeTree.store)
        let prover = MerkleProver(reader: probe, treeSize: largeTree.treeSize)
        let n = largeTree.treeSize
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let size = UInt64.random(in: 1...n, using: &rng)
            let before = (probe.counter.calls, probe.counter.addresses)
            _ = try prover.inclusionProof(for: LeafIndex(UInt64.random(in: 0..<size, using: &rng)), treeSize: size)
            _ = try prover.consistencyProof(from: UInt64.random(in: 1...size, using: &rng), to: size)
            _ = try prover.rootHash(atSize: size)
            #expect(probe.counter.calls - before.0 <= 3)
            // ≤ 2·log2(n) per proof plus popcount for a partial subtree; 17 levels here.
            #expect(probe.counter.addresses - before.1 <= 3 * 2 * 18, "size \(size)")
        }
    }

    @Test func requestsOutsideTheTreeAreTypedErrors() {
        let tree = memoryTree(syntheticLeaves(10))
        #expect(auditError { _ = try tree.rootHash(atSize: 11) }?.code == .sizeOutOfRange)
        #expect(auditError { _ = try tree.inclusionProof(for: LeafIndex(10), treeSize: 10) }?.code == .leafIndexOutOfRange)
        #expect(auditError { _ = try tree.inclusionProof(for: LeafIndex(0), treeSize: 0) }?.code == .leafIndexOutOfRange)
        #expect(auditError { _ = try tree.inclusionProof(for: LeafIndex(0), treeSize: 11) }?.code == .sizeOutOfRange)
        #expect(auditError { _ = try tree.consistencyProof(from: 5, to: 4) }?.code == .sizeOrder)
        #expect(auditError { _ = try tree.consistencyProof(from: 5, to: 11) }?.code == .sizeOutOfRange)
        #expect(auditError { _ = try tree.consistencyProof(from: 5, to: 4) }?.reason == "got old size 5 > new size 4, want old ≤ new")
    }

    @Test func aStoreThatLostANodeIsATypedError() {
        let tree = memoryTree(syntheticLeaves(10))
        var probe = ProbeReader(base: tree.store)
        probe.missing = [NodeAddress(level: 3, index: 0)]
        let prover = MerkleProver(reader: probe, treeSize: 10)
        let error = auditError { _ = try prover.rootHash(atSize: 10) }
        #expect(error?.code == .missingNode)
        #expect(error?.reason == "got no hash at (3, 0), want one in a tree of size 10")
        #expect(auditError { _ = try MerkleFrontier.load(treeSize: 10, from: probe) }?.code == .missingNode)
    }

    @Test func readFailuresPropagate() {
        var probe = ProbeReader(base: memoryTree(syntheticLeaves(10)).store)
        probe.failing = true
        #expect(throws: ProbeReader.DiskError.self) { _ = try MerkleProver(reader: probe, treeSize: 10).rootHash(atSize: 3) }
    }

    /// Nodes are stored under their post-order position: a growing tree's nodes come in
    /// exactly that order (0, 1, 2, ...), so the `merkle` family only ever appends.
    @Test func storageKeysAreAppendOnly() throws {
        var frontier = MerkleFrontier()
        var writes = NodeWrites()
        frontier.append(contentsOf: syntheticLeaves(1000), to: &writes)
        #expect(writes.writes.count == 2 * 1000 - 1000.nonzeroBitCount)
        for (position, write) in writes.writes.enumerated() {
            #expect(write.address.postOrderPosition == UInt64(position))
            #expect(NodeAddress(postOrderPosition: UInt64(position)) == write.address)
            #expect(try NodeAddress(storageKey: write.address.storageKey) == write.address)
            #expect(try NodeAddress(legacyStorageKey: write.address.legacyStorageKey) == write.address)
        }
        let keys = writes.writes.map(\.address.storageKey)
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0.lexicographicallyPrecedes($1) })
    }

    @Test(arguments: [
        (0, 0, 0), (0, 1, 1), (1, 0, 2), (2, 0, 6), (0, 4, 7), (63, 0, .max - 1), (0, 1 << 63, .max), (62, 1, .max - 2),
    ] as [(UInt8, UInt64, UInt64)])
    func storageKeyIsTheBigEndianPostOrderPosition(_ level: UInt8, _ index: UInt64, _ position: UInt64) throws {
        let address = NodeAddress(level: level, index: index)
        #expect(address.postOrderPosition == position)
        let key = (0..<8).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: position >> UInt64(56 - 8 * i)) }
        #expect(address.storageKey == key)
        #expect(try NodeAddress(storageKey: key) == address)
        let legacy: [UInt8] = [level] + (0..<8).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: index >> UInt64(56 - 8 * i)) }
        #expect(address.legacyStorageKey == legacy)
    }

    @Test func malformedStorageKeysAreRejected() {
        for key in [[], [0], [UInt8](repeating: 0, count: 7), [UInt8](repeating: 0, count: 9)] as [[UInt8]] {
            #expect(throws: AuditError.self) { _ = try NodeAddress(storageKey: key) }
        }
        for key in [[], [0], [UInt8](repeating: 0, count: 8), [UInt8](repeating: 0, count: 10), [64, 0, 0, 0, 0, 0, 0, 0, 0]] as [[UInt8]] {
            #expect(throws: AuditError.self) { _ = try NodeAddress(legacyStorageKey: key) }
        }
    }

    @Test func generatedProofsRejectEveryBitFlip() throws {
        let size: UInt64 = 300
        let root = smallTree.frontier.rootHash
        #expect(try smallTree.rootHash(atSize: size) == root)
        for leaf in [0, 1, 150, 255, 256, 299] as [UInt64] {
            let proof = try smallTree.inclusionProof(for: LeafIndex(leaf), treeSize: size)
            for i in proof.path.indices {
                for bit in 0..<256 {
                    var bad = proof
                    bad.path[i] = flipped(proof.path[i], bit: bit)
                    #expect(throws: VerificationError.self) { try bad.verify(leafHash: smallLeaves[Int(leaf)], rootHash: root) }
                }
            }
        }
        for oldSize in [1, 7, 128, 299] as [UInt64] {
            let proof = try smallTree.consistencyProof(from: oldSize, to: size)
            let oldRoot = try smallTree.rootHash(atSize: oldSize)
            for i in proof.path.indices {
                for bit in 0..<256 {
                    var bad = proof
                    bad.path[i] = flipped(proof.path[i], bit: bit)
                    #expect(throws: VerificationError.self) { try bad.verify(oldRoot: oldRoot, newRoot: root) }
                }
            }
        }
    }
}
