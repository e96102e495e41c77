import Crypto
import FaunaAudit
import FaunaVerify
import Testing

@Suite struct TreeHeadSignerTests {
    /// RFC 8032 §7.1 TEST 1: swift-crypto signs deterministically here, which is what lets
    /// docs/AUDIT.md show a signature that any Ed25519 implementation reproduces.
    @Test func ed25519MatchesRFC8032Test1() throws {
        let key = try Curve25519.Signing.PrivateKey(
            rawRepresentation: hexBytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        #expect(hex(key.publicKey.rawRepresentation) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature = try key.signature(for: [UInt8]())
        #expect(hex(signature) == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    }

    @Test func signedHeadsFromAMajorityOfSignersVerify() throws {
        let signers = (1...3).map { TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: $0, count: 32))) }
        let clusterID = ClusterID(bytes: [UInt8](repeating: 0xc1, count: 16))!
        let tree = memoryTree(syntheticLeaves(1000))
        let head = TreeHead(clusterID: clusterID, treeSize: tree.treeSize, rootHash: tree.rootHash)
        let members = signers.map(\.publicKey)
        let two = SignedTreeHead(head: head, signatures: try signers.prefix(2).map { try $0.sign(head) })
        #expect(try two.verify(clusterID: clusterID, members: members) == 2)
        let one = SignedTreeHead(head: head, signatures: [try signers[2].sign(head)])
        #expect(throws: VerificationError.self) { try one.verify(clusterID: clusterID, members: members) }

        let entry = syntheticEntry(321)
        let proof = EntryProof(
            entry: entry, inclusion: try tree.inclusionProof(for: entry.leafIndex!, treeSize: tree.treeSize), signedHead: two)
        try proof.verify(clusterID: clusterID, members: members)
        var other = proof
        other.entry.term += 1
        #expect(throws: VerificationError.self) { try other.verify(clusterID: clusterID, members: members) }
        other = proof
        other.entry.index += 1  // claims the next leaf with this leaf's path
        #expect(throws: VerificationError.self) { try other.verify(clusterID: clusterID, members: members) }
    }
}
