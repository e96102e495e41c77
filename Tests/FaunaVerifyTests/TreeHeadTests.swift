import Crypto
import FaunaVerify
import Testing

let testClusterID = ClusterID(bytes: (0..<16).map { UInt8($0) })!
let memberKeys = [testKey(1), testKey(2), testKey(3)]
let members = memberKeys.map(\.publicKey)

/// `head` signed by each of `keys`.
func signed(_ head: TreeHead, by keys: [Curve25519.Signing.PrivateKey]) -> SignedTreeHead {
    SignedTreeHead(head: head, signatures: keys.map { key in
        TreeHeadSignature(publicKey: Array(key.publicKey.rawRepresentation), signature: Array(try! key.signature(for: head.canonicalBytes)))
    })
}

@Suite struct TreeHeadTests {
    let head = TreeHead(clusterID: testClusterID, treeSize: 0x0102030405060708, rootHash: ctRoots[8])

    @Test func canonicalBytesLayout() throws {
        let want = hexBytes("6661756e6120747265652068656164" + "01")  // "fauna tree head", version 1
            + (0..<16).map { UInt8($0) } + hexBytes("0102030405060708") + ctRoots[8].bytes
        #expect(head.canonicalBytes == want)
        #expect(head.canonicalBytes.count == TreeHead.canonicalSizeBytes)
        #expect(try TreeHead(canonicalBytes: want) == head)
    }

    @Test func malformedCanonicalBytesAreRejected() {
        let good = head.canonicalBytes
        var badVersion = good
        badVersion[15] = 2
        var badPrefix = good
        badPrefix[0] ^= 0x20
        for bytes in [[], Array(good.dropLast()), good + [0], badVersion, badPrefix] {
            #expect(throws: VerificationError.self) { try TreeHead(canonicalBytes: bytes) }
            do { _ = try TreeHead(canonicalBytes: bytes) } catch { #expect(error.code == .malformed) }
        }
    }

    @Test(arguments: [[0, 1], [1, 2], [0, 2], [0, 1, 2], [2, 1, 0]])
    func majorityOfMembersIsAQuorum(_ signers: [Int]) throws {
        let count = try signed(head, by: signers.map { memberKeys[$0] }).verify(clusterID: testClusterID, members: members)
        #expect(count == signers.count)
    }

    @Test(arguments: [[], [0], [2]])
    func minorityIsRejected(_ signers: [Int]) {
        let sth = signed(head, by: signers.map { memberKeys[$0] })
        let error = verificationError { try sth.verify(clusterID: testClusterID, members: members) }
        #expect(error?.code == .noQuorum)
    }

    @Test func unknownKeysAndRepeatedSignersDoNotCount() {
        let sth = signed(head, by: [memberKeys[0], memberKeys[0], testKey(9), testKey(10), testKey(11)])
        let error = verificationError { try sth.verify(clusterID: testClusterID, members: members) }
        #expect(error?.code == .noQuorum)
        #expect(error?.reason == "got 1 valid signatures of 3 members, want ≥ 2 (ignored: 3 unknown key, 1 repeated signer, 0 invalid)")
    }

    @Test func onlyAMembersFirstSignatureIsChecked() throws {
        var sth = signed(head, by: [memberKeys[0], memberKeys[1]])
        let good = sth.signatures
        sth.signatures = [TreeHeadSignature(publicKey: good[0].publicKey, signature: [UInt8](repeating: 0, count: 64))] + good
        let error = verificationError { try sth.verify(clusterID: testClusterID, members: members) }
        #expect(error?.code == .noQuorum)
        #expect(error?.reason == "got 1 valid signatures of 3 members, want ≥ 2 (ignored: 0 unknown key, 1 repeated signer, 1 invalid)")
        sth.signatures = good + good + good
        #expect(try sth.verify(clusterID: testClusterID, members: members) == 2)
    }

    @Test func repeatedMemberKeysCountOnce() {
        let sth = signed(head, by: [memberKeys[0]])
        let error = verificationError { try sth.verify(clusterID: testClusterID, members: [members[0], members[0], members[1]]) }
        #expect(error?.code == .noQuorum)  // 2 distinct members: 1 is not a strict majority
    }

    @Test func evenMembershipNeedsMoreThanHalf() throws {
        let four = [testKey(1), testKey(2), testKey(3), testKey(4)]
        let error = verificationError { try signed(head, by: Array(four[0..<2])).verify(clusterID: testClusterID, members: four.map(\.publicKey)) }
        #expect(error?.code == .noQuorum)
        try signed(head, by: Array(four[0..<3])).verify(clusterID: testClusterID, members: four.map(\.publicKey))
    }

    @Test func noMembersIsNeverAQuorum() {
        #expect(verificationError { try signed(head, by: memberKeys).verify(clusterID: testClusterID, members: []) }?.code == .noQuorum)
    }

    @Test func signaturesOverAnotherHeadDoNotCount() {
        for other in [
            TreeHead(clusterID: testClusterID, treeSize: head.treeSize + 1, rootHash: head.rootHash),
            TreeHead(clusterID: testClusterID, treeSize: head.treeSize, rootHash: ctRoots[7]),
        ] {
            let mixed = SignedTreeHead(head: head, signatures: signed(other, by: [memberKeys[0], memberKeys[1]]).signatures)
            #expect(verificationError { try mixed.verify(clusterID: testClusterID, members: members) }?.code == .noQuorum)
        }
    }

    @Test func anotherClusterIsRejected() {
        let other = ClusterID(bytes: [UInt8](repeating: 0xee, count: 16))!
        let sth = signed(TreeHead(clusterID: other, treeSize: 1, rootHash: ctRoots[1]), by: memberKeys)
        #expect(verificationError { try sth.verify(clusterID: testClusterID, members: members) }?.code == .clusterMismatch)
    }

    @Test func everyBitFlipOfASignatureLosesTheQuorum() {
        let sth = signed(head, by: [memberKeys[0], memberKeys[1]])
        for bit in 0..<(64 * 8) {
            var bad = sth
            bad.signatures[1].signature[bit / 8] ^= 0x80 >> UInt8(bit % 8)
            #expect(verificationError { try bad.verify(clusterID: testClusterID, members: members) }?.code == .noQuorum, "bit \(bit)")
        }
    }

    @Test func everyBitFlipOfTheSignedHeadLosesTheQuorum() {
        let sth = signed(head, by: [memberKeys[0], memberKeys[1]])
        for bit in 0..<256 {
            var bad = sth
            bad.head.rootHash = flipped(head.rootHash, bit: bit)
            #expect(verificationError { try bad.verify(clusterID: testClusterID, members: members) }?.code == .noQuorum, "root bit \(bit)")
        }
        for bit in 0..<64 {
            var bad = sth
            bad.head.treeSize ^= 1 << UInt64(bit)
            #expect(verificationError { try bad.verify(clusterID: testClusterID, members: members) }?.code == .noQuorum, "size bit \(bit)")
        }
    }

    @Test func malformedSignaturesAndKeysDoNotCountAndDoNotTrap() {
        var sth = signed(head, by: [memberKeys[0], memberKeys[1]])
        sth.signatures[1].signature.removeLast()
        sth.signatures.append(TreeHeadSignature(publicKey: [], signature: []))
        sth.signatures.append(TreeHeadSignature(publicKey: Array(members[2].rawRepresentation) + [0], signature: sth.signatures[0].signature))
        #expect(verificationError { try sth.verify(clusterID: testClusterID, members: members) }?.code == .noQuorum)
    }
}
