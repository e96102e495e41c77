import FaunaAudit
import FaunaVerify
import Testing

/// Every size up to `smallSizeMax` is checked exhaustively; random sizes go up to `largeSizeMax`.
let smallSizeMax = 300
let largeSizeMax = 100_000
let smallLeaves = syntheticLeaves(smallSizeMax)
let smallTree = memoryTree(smallLeaves)
let largeLeaves = syntheticLeaves(largeSizeMax)
let largeTree = memoryTree(largeLeaves)

@Suite struct PropertyTests {
    @Test func frontierRootAfterEveryAppendMatchesTheRFCDefinition() {
        let naive = NaiveMerkle(leaves: smallLeaves)
        var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
        #expect(tree.rootHash == MerkleHasher.emptyRoot)
        for (i, leaf) in smallLeaves.enumerated() {
            tree.append(leaf)
            #expect(tree.rootHash == naive.mth(0, i + 1), "size \(i + 1)")
        }
    }

    @Test func rootAtEverySmallSize() throws {
        let naive = NaiveMerkle(leaves: smallLeaves)
        for size in 0...smallSizeMax {
            #expect(try smallTree.rootHash(atSize: UInt64(size)) == naive.mth(0, size), "size \(size)")
        }
    }

    /// Every leaf of every size up to `smallSizeMax`: the path equals the RFC's PATH and verifies.
    @Test(arguments: Array(stride(from: 1, through: smallSizeMax, by: 20)))
    func everyInclusionProofOfSmallSizes(_ firstSize: Int) throws {
        let naive = NaiveMerkle(leaves: smallLeaves)
        for size in firstSize..<min(firstSize + 20, smallSizeMax + 1) {
            let root = naive.mth(0, size)
            for leaf in 0..<size {
                let proof = try smallTree.inclusionProof(for: LeafIndex(UInt64(leaf)), treeSize: UInt64(size))
                #expect(proof.path == naive.path(leaf, 0, size), "leaf \(leaf) of \(size)")
                try proof.verify(leafHash: smallLeaves[leaf], rootHash: root)
            }
        }
    }

    /// Every pair of sizes up to `smallSizeMax`: the path equals the RFC's PROOF and verifies.
    @Test(arguments: Array(stride(from: 0, through: smallSizeMax, by: 20)))
    func everyConsistencyProofOfSmallSizes(_ firstNewSize: Int) throws {
        let naive = NaiveMerkle(leaves: smallLeaves)
        for newSize in firstNewSize..<min(firstNewSize + 20, smallSizeMax + 1) {
            let newRoot = naive.mth(0, newSize)
            for oldSize in 0...newSize {
                let proof = try smallTree.consistencyProof(from: UInt64(oldSize), to: UInt64(newSize))
                #expect(proof.path == naive.consistency(oldSize, newSize), "\(oldSize) to \(newSize)")
                try proof.verify(oldRoot: naive.mth(0, oldSize), newRoot: newRoot)
            }
        }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomLargeSizes(_ seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let naive = NaiveMerkle(leaves: largeLeaves)
        for _ in 0..<40 {
            let size = Int.random(in: 1...largeSizeMax, using: &rng)
            let oldSize = Int.random(in: 0...size, using: &rng)
            let leaf = Int.random(in: 0..<size, using: &rng)
            let context = "seed \(seed): size \(size), old size \(oldSize), leaf \(leaf)"
            let root = try largeTree.rootHash(atSize: UInt64(size))
            #expect(root == naive.mth(0, size), "\(context)")
            let inclusion = try largeTree.inclusionProof(for: LeafIndex(UInt64(leaf)), treeSize: UInt64(size))
            #expect(inclusion.path == naive.path(leaf, 0, size), "\(context)")
            try inclusion.verify(leafHash: largeLeaves[leaf], rootHash: root)
            let consistency = try largeTree.consistencyProof(from: UInt64(oldSize), to: UInt64(size))
            #expect(consistency.path == naive.consistency(oldSize, size), "\(context)")
            try consistency.verify(oldRoot: naive.mth(0, oldSize), newRoot: root)
        }
    }

    @Test func edgesOfTheLargeTree() throws {
        let naive = NaiveMerkle(leaves: largeLeaves)
        let n = largeSizeMax
        for (leaf, size) in [(0, n), (n - 1, n), (65535, 65536), (65536, 65537), (n / 2, n)] {
            let proof = try largeTree.inclusionProof(for: LeafIndex(UInt64(leaf)), treeSize: UInt64(size))
            #expect(proof.path == naive.path(leaf, 0, size), "leaf \(leaf) of \(size)")
        }
        for (oldSize, size) in [(1, n), (n - 1, n), (65536, n), (65535, 65537), (n, n)] {
            let proof = try largeTree.consistencyProof(from: UInt64(oldSize), to: UInt64(size))
            #expect(proof.path == naive.consistency(oldSize, size), "\(oldSize) to \(size)")
        }
    }
}
