import FaunaVerify
import Testing

@Suite struct InclusionProofTests {
    @Test(arguments: ctInclusionVectors)
    func referenceVectorVerifies(_ v: InclusionVector) throws {
        try v.proof.verify(leafHash: v.leafHash, rootHash: v.root)
    }

    @Test(arguments: [
        (0, 1, 0), (0, 2, 1), (1, 2, 1), (0, 3, 2), (2, 3, 1), (4, 5, 1), (0, 5, 3), (5, 8, 3),
        (6, 7, 2), (0, 1 << 20, 20), (3, 0, -1), (5, 5, -1), (0, 0, -1),
    ] as [(UInt64, UInt64, Int)])
    func pathLength(_ index: UInt64, _ size: UInt64, _ want: Int) {
        #expect(InclusionProof.pathLength(leafIndex: LeafIndex(index), treeSize: size) == (want < 0 ? nil : want))
    }

    @Test func pathLengthDoesNotTrapAtTheLimits() {
        #expect(InclusionProof.pathLength(leafIndex: LeafIndex(.max - 1), treeSize: .max) == 63)  // the last leaf: 63 left siblings
        #expect(InclusionProof.pathLength(leafIndex: LeafIndex(0), treeSize: .max) == 64)
        #expect(InclusionProof.pathLength(leafIndex: LeafIndex(.max), treeSize: .max) == nil)
    }

    @Test(arguments: ctInclusionVectors)
    func everyBitFlipOfThePathIsRejected(_ v: InclusionVector) {
        for (i, hash) in v.path.enumerated() {
            for bit in 0..<256 {
                var proof = v.proof
                proof.path[i] = flipped(hash, bit: bit)
                let error = verificationError { try proof.verify(leafHash: v.leafHash, rootHash: v.root) }
                #expect(error?.code == .rootMismatch, "\(v) path[\(i)] bit \(bit)")
            }
        }
    }

    @Test(arguments: ctInclusionVectors)
    func everyBitFlipOfTheLeafOrRootIsRejected(_ v: InclusionVector) {
        for bit in 0..<256 {
            let badLeaf = verificationError { try v.proof.verify(leafHash: flipped(v.leafHash, bit: bit), rootHash: v.root) }
            let badRoot = verificationError { try v.proof.verify(leafHash: v.leafHash, rootHash: flipped(v.root, bit: bit)) }
            #expect(badLeaf?.code == .rootMismatch, "\(v) leaf bit \(bit)")
            #expect(badRoot?.code == .rootMismatch, "\(v) root bit \(bit)")
        }
    }

    @Test(arguments: ctInclusionVectors)
    func pathOneHashShortOrLongIsRejected(_ v: InclusionVector) {
        var long = v.proof
        long.path.append(v.root)
        var prefixed = v.proof
        prefixed.path.insert(v.leafHash, at: 0)
        var cases = [long, prefixed]
        if !v.path.isEmpty {
            var short = v.proof
            short.path.removeLast()
            var headless = v.proof
            headless.path.removeFirst()
            cases += [short, headless]
        }
        for proof in cases {
            let error = verificationError { try proof.verify(leafHash: v.leafHash, rootHash: v.root) }
            #expect(error?.code == .pathLengthMismatch, "\(v) with \(proof.path.count) hashes")
        }
    }

    @Test(arguments: ctInclusionVectors)
    func wrongIndexIsRejected(_ v: InclusionVector) {
        for index in 0..<v.treeSize where index != v.leafIndex {
            var proof = v.proof
            proof.leafIndex = LeafIndex(index)
            let error = verificationError { try proof.verify(leafHash: v.leafHash, rootHash: v.root) }
            #expect(error?.code == .rootMismatch || error?.code == .pathLengthMismatch, "\(v) as index \(index)")
        }
    }

    /// The path of one size checked against the root of another: the root always comes with
    /// its size in a signed head, so this is the "wrong size" an attacker can present.
    @Test(arguments: ctInclusionVectors)
    func wrongSizeIsRejected(_ v: InclusionVector) {
        for size in [v.treeSize - 1, v.treeSize + 1, v.treeSize * 2, v.treeSize / 2, 0, 16, .max] where size != v.treeSize {
            var proof = v.proof
            proof.treeSize = size
            let root = size <= 8 ? ctRoots[Int(size)] : v.root
            let error = verificationError { try proof.verify(leafHash: v.leafHash, rootHash: root) }
            #expect(error != nil, "\(v) as size \(size)")
            if size <= v.leafIndex {
                #expect(error?.code == .leafIndexOutOfRange, "\(v) as size \(size)")
            }
        }
    }

    @Test func proofForAnotherSizeThanTheHeadIsRejected() throws {
        let v = ctInclusionVectors[2]  // leaf 5 of 8: its path also fits size 7
        let clusterID = ClusterID(bytes: [UInt8](repeating: 7, count: 16))!
        var proof = v.proof
        try proof.verify(leafHash: v.leafHash, treeHead: TreeHead(clusterID: clusterID, treeSize: 8, rootHash: v.root))
        proof.treeSize = 7
        let error = verificationError {
            try proof.verify(leafHash: v.leafHash, treeHead: TreeHead(clusterID: clusterID, treeSize: 8, rootHash: v.root))
        }
        #expect(error?.code == .proofSizesMismatch)
    }

    @Test(arguments: [(0, 0), (1, 1), (8, 8), (9, 8), (.max, 8), (.max, .max)] as [(UInt64, UInt64)])
    func indexAtOrBeyondSizeIsRejected(_ index: UInt64, _ size: UInt64) {
        let proof = InclusionProof(leafIndex: LeafIndex(index), treeSize: size, path: [])
        let error = verificationError { try proof.verify(leafHash: ctLeafHashes[0], rootHash: ctRoots[0]) }
        #expect(error?.code == .leafIndexOutOfRange)
        #expect(error?.reason == "got leaf index \(index), want < tree size \(size)")
    }

    @Test func sizeOneNeedsAnEmptyPathAndTheLeafAsRoot() throws {
        let proof = InclusionProof(leafIndex: LeafIndex(0), treeSize: 1, path: [])
        try proof.verify(leafHash: ctLeafHashes[0], rootHash: ctLeafHashes[0])
        #expect(verificationError { try proof.verify(leafHash: ctLeafHashes[1], rootHash: ctLeafHashes[0]) }?.code == .rootMismatch)
    }
}
