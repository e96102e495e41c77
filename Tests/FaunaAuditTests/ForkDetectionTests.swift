import Crypto
import FaunaAudit
import FaunaVerify
import Testing

/// End to end: two replicas whose histories diverge, heads signed by a quorum of each, and a
/// client that trusts one of them. Proofs come from FaunaAudit, checks from FaunaVerify.
@Suite struct ForkDetectionTests {
    static let signers = (1...3).map { seed in
        TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: seed, count: 32)))
    }
    static let clusterID = ClusterID(bytes: [UInt8](repeating: 0x42, count: 16))!

    /// Entries 1...count, where entries after `forkAfter` get another payload.
    static func history(_ count: Int, forkAfter: Int = .max) -> MerkleTree<InMemoryMerkleNodeStore> {
        memoryTree((1...count).map { i in
            var entry = syntheticEntry(UInt64(i))
            if i > forkAfter { entry.payload = Array("rewritten".utf8) }
            return entry.leafHash
        })
    }

    static func head(_ tree: MerkleTree<InMemoryMerkleNodeStore>, _ size: UInt64) throws -> SignedTreeHead {
        let head = TreeHead(clusterID: clusterID, treeSize: size, rootHash: try tree.rootHash(atSize: size))
        return SignedTreeHead(head: head, signatures: try signers.prefix(2).map { try $0.sign(head) })
    }

    @Test func clientFollowsAnHonestHistory() throws {
        let honest = Self.history(500)
        var state = TrustedState(clusterID: Self.clusterID, members: Self.signers.map(\.publicKey))
        var trusted: UInt64 = 0
        for size in [1, 2, 3, 64, 65, 200, 499, 500] as [UInt64] {
            let outcome = try state.advance(to: try Self.head(honest, size), consistency: try honest.consistencyProof(from: trusted, to: size))
            #expect(outcome == .advanced(fromSize: trusted))
            trusted = size
        }
        // A stale replica shows an older head: consistent, so nothing changes.
        #expect(try state.advance(to: try Self.head(honest, 100), consistency: try honest.consistencyProof(from: 100, to: 500)) == .unchanged)
    }

    @Test(arguments: [(100, 150, 300), (100, 300, 150), (149, 150, 151), (0, 1, 2)] as [(Int, UInt64, UInt64)])
    func forkIsDetected(_ forkAfter: Int, _ trustedSize: UInt64, _ shownSize: UInt64) throws {
        let honest = Self.history(400)
        let forked = Self.history(400, forkAfter: forkAfter)
        var state = TrustedState(clusterID: Self.clusterID, members: Self.signers.map(\.publicKey))
        try state.advance(to: try Self.head(honest, trustedSize), consistency: try honest.consistencyProof(from: 0, to: trustedSize))
        // The forked replica proves what it can: consistency within its own history.
        let proof = try forked.consistencyProof(from: min(trustedSize, shownSize), to: max(trustedSize, shownSize))
        let error = verificationError { try state.advance(to: try Self.head(forked, shownSize), consistency: proof) }
        #expect(error?.code == .inconsistentHistory, "fork after \(forkAfter), trusted \(trustedSize), shown \(shownSize)")
        #expect(state.head.treeSize == trustedSize)
    }

    @Test func sameSizeDifferentRootIsAFork() throws {
        let honest = Self.history(300)
        let forked = Self.history(300, forkAfter: 10)
        var state = TrustedState(clusterID: Self.clusterID, members: Self.signers.map(\.publicKey))
        try state.advance(to: try Self.head(honest, 300), consistency: try honest.consistencyProof(from: 0, to: 300))
        let error = verificationError { try state.advance(to: try Self.head(forked, 300), consistency: try forked.consistencyProof(from: 300, to: 300)) }
        #expect(error?.code == .forkedHistory)
    }
}

/// The `VerificationError` that `body` throws; records an issue for any other error.
func verificationError(_ body: () throws -> Void) -> VerificationError? {
    do {
        try body()
        return nil
    } catch let error as VerificationError {
        return error
    } catch {
        Issue.record("got \(error), want a VerificationError")
        return nil
    }
}
