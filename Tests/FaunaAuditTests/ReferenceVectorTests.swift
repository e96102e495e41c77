import FaunaAudit
import FaunaVerify
import Testing

/// Certificate Transparency's reference tree (transparency-dev/merkle testonly/constants.go).
enum CT {
    static let leafInputs: [[UInt8]] = [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
    ].map(hexBytes)

    /// Every complete subtree, by level (testonly.NodeHashes).
    static let nodeHashes: [[MerkleHash]] = [
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        [
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ].map { $0.map(h) }

    /// Roots for sizes 0...8 (testonly.RootHashes).
    static let roots: [MerkleHash] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ].map(h)

    static var tree: MerkleTree<InMemoryMerkleNodeStore> { memoryTree(leafInputs.map(MerkleHasher.leafHash)) }

    /// The node at (level, index), shorthand for the vectors below.
    static func n(_ level: Int, _ index: Int) -> MerkleHash { nodeHashes[level][index] }
}

@Suite struct ReferenceVectorTests {
    @Test func storesEveryCompleteSubtreeOnce() {
        let tree = CT.tree
        #expect(tree.store.nodeCount == 15)
        for (level, hashes) in CT.nodeHashes.enumerated() {
            for (index, hash) in hashes.enumerated() {
                #expect(tree.store.hash(at: NodeAddress(level: UInt8(level), index: UInt64(index))) == hash)
            }
        }
    }

    @Test(arguments: 0...8)
    func rootAtEverySize(_ size: Int) throws {
        #expect(try CT.tree.rootHash(atSize: UInt64(size)) == CT.roots[size])
        #expect(memoryTree(Array(CT.leafInputs.prefix(size)).map(MerkleHasher.leafHash)).rootHash == CT.roots[size])
    }

    // transparency-dev/merkle testdata/inclusion/N/happy-path.json.
    @Test(arguments: [
        (0, 1, []), (0, 8, [CT.n(0, 1), CT.n(1, 1), CT.n(2, 1)]), (5, 8, [CT.n(0, 4), CT.n(1, 3), CT.n(2, 0)]),
        (2, 3, [CT.n(1, 0)]), (1, 5, [CT.n(0, 0), CT.n(1, 1), CT.n(0, 4)]),
    ] as [(UInt64, UInt64, [MerkleHash])])
    func inclusionProof(_ leaf: UInt64, _ size: UInt64, _ want: [MerkleHash]) throws {
        let proof = try CT.tree.inclusionProof(for: LeafIndex(leaf), treeSize: size)
        #expect(proof.path == want)
        try proof.verify(leafHash: CT.n(0, Int(leaf)), rootHash: CT.roots[Int(size)])
    }

    // transparency-dev/merkle testdata/consistency/N/happy-path.json.
    @Test(arguments: [
        (1, 1, []), (1, 8, [CT.n(0, 1), CT.n(1, 1), CT.n(2, 1)]), (6, 8, [CT.n(1, 2), CT.n(1, 3), CT.n(2, 0)]),
        (2, 5, [CT.n(1, 1), CT.n(0, 4)]), (6, 7, [CT.n(1, 2), CT.n(0, 6), CT.n(2, 0)]),
    ] as [(UInt64, UInt64, [MerkleHash])])
    func consistencyProof(_ oldSize: UInt64, _ newSize: UInt64, _ want: [MerkleHash]) throws {
        let proof = try CT.tree.consistencyProof(from: oldSize, to: newSize)
        #expect(proof.path == want)
        try proof.verify(oldRoot: CT.roots[Int(oldSize)], newRoot: CT.roots[Int(newSize)])
    }
}
