import FaunaVerify
import Testing

/// The reference tree's head at `size`, signed by members 0 and 1.
func ctHead(_ size: Int, root: MerkleHash? = nil) -> SignedTreeHead {
    signed(TreeHead(clusterID: testClusterID, treeSize: UInt64(size), rootHash: root ?? ctRoots[size]), by: [memberKeys[0], memberKeys[1]])
}

/// A consistency vector's proof by sizes.
func ctConsistency(_ oldSize: UInt64, _ newSize: UInt64) -> ConsistencyProof {
    if oldSize == 0 || oldSize == newSize { return ConsistencyProof(oldSize: oldSize, newSize: newSize, path: []) }
    return ctConsistencyVectors.first { $0.oldSize == oldSize && $0.newSize == newSize }!.proof
}

@Suite struct TrustedStateTests {
    /// A state that trusts the reference tree at size 6.
    func trustingSix() throws -> TrustedState {
        var state = TrustedState(clusterID: testClusterID, members: members)
        #expect(try state.advance(to: ctHead(6), consistency: ctConsistency(0, 6)) == .advanced(fromSize: 0))
        return state
    }

    @Test func startsAtTheEmptyTree() {
        let state = TrustedState(clusterID: testClusterID, members: members)
        #expect(state.head.treeSize == 0)
        #expect(state.head.rootHash == MerkleHasher.emptyRoot)
    }

    @Test func advancesOnlyWithAConsistencyProof() throws {
        var state = try trustingSix()
        #expect(try state.advance(to: ctHead(8), consistency: ctConsistency(6, 8)) == .advanced(fromSize: 6))
        #expect(state.head == ctHead(8).head)
    }

    @Test func olderAndEqualHeadsAreCheckedTheOtherWayAndChangeNothing() throws {
        var state = try trustingSix()
        try state.advance(to: ctHead(8), consistency: ctConsistency(6, 8))
        #expect(try state.advance(to: ctHead(6), consistency: ctConsistency(6, 8)) == .unchanged)
        #expect(try state.advance(to: ctHead(1), consistency: ctConsistency(1, 8)) == .unchanged)
        #expect(try state.advance(to: ctHead(8), consistency: ctConsistency(8, 8)) == .unchanged)
        #expect(state.head == ctHead(8).head)
    }

    @Test func sameSizeOtherRootIsAFork() throws {
        var state = try trustingSix()
        let error = verificationError { try state.advance(to: ctHead(6, root: ctRoots[5]), consistency: ctConsistency(6, 6)) }
        #expect(error?.code == .forkedHistory)
        #expect(state.head == ctHead(6).head)
    }

    @Test func newerHeadThatDoesNotExtendTheTrustedOneIsRejected() throws {
        var state = try trustingSix()
        let forged = ctHead(8, root: ctRoots[7])
        let error = verificationError { try state.advance(to: forged, consistency: ctConsistency(6, 8)) }
        #expect(error?.code == .inconsistentHistory)
        #expect(error?.cause == .rootMismatch)
        #expect(state.head == ctHead(6).head)
    }

    @Test func olderHeadThatIsNotAPrefixIsRejected() throws {
        var state = try trustingSix()
        try state.advance(to: ctHead(8), consistency: ctConsistency(6, 8))
        let rewritten = ctHead(6, root: ctRoots[5])
        let error = verificationError { try state.advance(to: rewritten, consistency: ctConsistency(6, 8)) }
        #expect(error?.code == .inconsistentHistory)
        #expect(error?.cause == .oldRootMismatch)
    }

    @Test func tamperedProofIsRejected() throws {
        var state = try trustingSix()
        var proof = ctConsistency(6, 8)
        proof.path[1] = flipped(proof.path[1], bit: 100)
        let error = verificationError { try state.advance(to: ctHead(8), consistency: proof) }
        #expect(error?.code == .inconsistentHistory)
        proof.path.removeLast()
        #expect(verificationError { try state.advance(to: ctHead(8), consistency: proof) }?.cause == .pathLengthMismatch)
    }

    @Test func proofBetweenOtherSizesIsRejected() throws {
        var state = try trustingSix()
        let error = verificationError { try state.advance(to: ctHead(8), consistency: ctConsistency(1, 8)) }
        #expect(error?.code == .proofSizesMismatch)
        #expect(error?.reason == "got consistency proof from 1 to 8, want from 6 to 8")
    }

    @Test func minoritySignedOrForeignHeadIsRejected() throws {
        var state = try trustingSix()
        let minority = signed(ctHead(8).head, by: [memberKeys[2], testKey(42)])
        #expect(verificationError { try state.advance(to: minority, consistency: ctConsistency(6, 8)) }?.code == .noQuorum)
        let foreign = signed(TreeHead(clusterID: ClusterID(bytes: [UInt8](repeating: 1, count: 16))!, treeSize: 8, rootHash: ctRoots[8]), by: memberKeys)
        #expect(verificationError { try state.advance(to: foreign, consistency: ctConsistency(6, 8)) }?.code == .clusterMismatch)
        #expect(state.head == ctHead(6).head)
    }

    @Test func resumesFromASavedHead() throws {
        var state = TrustedState(members: members, trusting: ctHead(6).head)
        #expect(try state.advance(to: ctHead(7), consistency: ctConsistency(6, 7)) == .advanced(fromSize: 6))
    }
}
