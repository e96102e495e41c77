import FaunaVerify
import Testing

@Suite struct ConsistencyProofTests {
    @Test(arguments: ctConsistencyVectors)
    func referenceVectorVerifies(_ v: ConsistencyVector) throws {
        try v.proof.verify(oldRoot: v.oldRoot, newRoot: v.newRoot)
    }

    @Test(arguments: [
        (1, 1, 0), (1, 8, 3), (6, 8, 3), (2, 5, 2), (6, 7, 3), (3, 4, 3), (4, 5, 1), (4, 8, 1), (0, 0, 0),
        (0, 9, 0), (9, 9, 0), (9, 8, -1), (1, 0, -1),
    ] as [(UInt64, UInt64, Int)])
    func pathLength(_ oldSize: UInt64, _ newSize: UInt64, _ want: Int) {
        #expect(ConsistencyProof.pathLength(oldSize: oldSize, newSize: newSize) == (want < 0 ? nil : want))
    }

    @Test func pathLengthDoesNotTrapAtTheLimits() {
        #expect(ConsistencyProof.pathLength(oldSize: 1, newSize: .max) == 64)
        #expect(ConsistencyProof.pathLength(oldSize: .max - 1, newSize: .max) != nil)
        #expect(ConsistencyProof.pathLength(oldSize: .max, newSize: .max) == 0)
    }

    @Test(arguments: ctConsistencyVectors)
    func everyBitFlipOfThePathIsRejected(_ v: ConsistencyVector) {
        for (i, hash) in v.path.enumerated() {
            for bit in 0..<256 {
                var proof = v.proof
                proof.path[i] = flipped(hash, bit: bit)
                let error = verificationError { try proof.verify(oldRoot: v.oldRoot, newRoot: v.newRoot) }
                #expect(error?.code == .oldRootMismatch || error?.code == .rootMismatch, "\(v) path[\(i)] bit \(bit)")
            }
        }
    }

    @Test(arguments: ctConsistencyVectors)
    func everyBitFlipOfEitherRootIsRejected(_ v: ConsistencyVector) {
        for bit in 0..<256 {
            let badOld = verificationError { try v.proof.verify(oldRoot: flipped(v.oldRoot, bit: bit), newRoot: v.newRoot) }
            let badNew = verificationError { try v.proof.verify(oldRoot: v.oldRoot, newRoot: flipped(v.newRoot, bit: bit)) }
            // With equal sizes the two roots are simply compared; an old tree whose size is a power
            // of 2 is the first node of the path (RFC 9162 §2.1.4.2 step 2), so it shows in the new root.
            let oldRootIsSeed = v.oldSize == v.newSize || v.oldSize.nonzeroBitCount == 1
            #expect(badOld?.code == (oldRootIsSeed ? .rootMismatch : .oldRootMismatch), "\(v) old bit \(bit)")
            #expect(badNew?.code == .rootMismatch, "\(v) new bit \(bit)")
        }
    }

    @Test(arguments: ctConsistencyVectors)
    func swappedRootsAreRejected(_ v: ConsistencyVector) {
        guard v.oldRoot != v.newRoot else { return }
        #expect(verificationError { try v.proof.verify(oldRoot: v.newRoot, newRoot: v.oldRoot) } != nil)
    }

    @Test(arguments: ctConsistencyVectors)
    func pathOneHashShortOrLongIsRejected(_ v: ConsistencyVector) {
        var long = v.proof
        long.path.append(v.newRoot)
        var prefixed = v.proof
        prefixed.path.insert(v.oldRoot, at: 0)
        var cases = [long, prefixed]
        if !v.path.isEmpty {
            var short = v.proof
            short.path.removeLast()
            var headless = v.proof
            headless.path.removeFirst()
            cases += [short, headless]
        }
        for proof in cases {
            let error = verificationError { try proof.verify(oldRoot: v.oldRoot, newRoot: v.newRoot) }
            #expect(error?.code == .pathLengthMismatch, "\(v) with \(proof.path.count) hashes")
        }
    }

    @Test(arguments: ctConsistencyVectors)
    func wrongSizesAreRejected(_ v: ConsistencyVector) {
        for (oldSize, newSize) in [
            (v.oldSize + 1, v.newSize), (v.oldSize - 1, v.newSize), (v.oldSize, v.newSize + 1),
            (v.oldSize, v.newSize - 1), (v.oldSize ^ 2, v.newSize), (v.oldSize, v.newSize * 2),
        ] where (oldSize, newSize) != (v.oldSize, v.newSize) && oldSize >= 1 && oldSize <= 8 && newSize <= 8 && newSize >= 1 {
            var proof = v.proof
            proof.oldSize = oldSize
            proof.newSize = newSize
            let error = verificationError { try proof.verify(oldRoot: ctRoots[Int(oldSize)], newRoot: ctRoots[Int(newSize)]) }
            #expect(error != nil, "\(v) as \(oldSize) to \(newSize)")
        }
    }

    @Test(arguments: ctConsistencyVectors)
    func largerToSmallerIsRejected(_ v: ConsistencyVector) {
        guard v.oldSize != v.newSize else { return }
        let backwards = ConsistencyProof(oldSize: v.newSize, newSize: v.oldSize, path: v.path)
        let error = verificationError { try backwards.verify(oldRoot: v.newRoot, newRoot: v.oldRoot) }
        #expect(error?.code == .sizeOrder)
        #expect(error?.reason == "got old size \(v.newSize) > new size \(v.oldSize), want old ≤ new")
    }

    @Test(arguments: 0...8)
    func everyTreeExtendsTheEmptyTree(_ size: Int) throws {
        let proof = ConsistencyProof(oldSize: 0, newSize: UInt64(size), path: [])
        try proof.verify(oldRoot: MerkleHasher.emptyRoot, newRoot: ctRoots[size])
        let notEmpty = verificationError { try proof.verify(oldRoot: ctRoots[1], newRoot: ctRoots[size]) }
        #expect(notEmpty?.code == .oldRootMismatch)
        var padded = proof
        padded.path = [ctRoots[size]]
        #expect(verificationError { try padded.verify(oldRoot: MerkleHasher.emptyRoot, newRoot: ctRoots[size]) }?.code == .pathLengthMismatch)
    }

    @Test func emptyToEmptyNeedsTheEmptyRoot() {
        let proof = ConsistencyProof(oldSize: 0, newSize: 0, path: [])
        #expect(verificationError { try proof.verify(oldRoot: MerkleHasher.emptyRoot, newRoot: ctRoots[1]) }?.code == .rootMismatch)
    }

    @Test func equalSizesNeedEqualRootsAndAnEmptyPath() throws {
        let proof = ConsistencyProof(oldSize: 5, newSize: 5, path: [])
        try proof.verify(oldRoot: ctRoots[5], newRoot: ctRoots[5])
        #expect(verificationError { try proof.verify(oldRoot: ctRoots[5], newRoot: ctRoots[4]) }?.code == .rootMismatch)
        let padded = ConsistencyProof(oldSize: 5, newSize: 5, path: [ctRoots[5]])
        #expect(verificationError { try padded.verify(oldRoot: ctRoots[5], newRoot: ctRoots[5]) }?.code == .pathLengthMismatch)
    }
}
