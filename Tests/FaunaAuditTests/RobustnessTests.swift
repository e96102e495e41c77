import FaunaAudit
import FaunaVerify
import Testing

/// Garbage in, typed error out: random proofs, sizes and bytes never trap and never verify.
/// (A deterministic stand-in for a fuzzer: every case replays from its seed.)
@Suite struct RobustnessTests {
    static func randomSize(_ rng: inout SplitMix64) -> UInt64 {
        switch rng.next() % 4 {
        case 0: return rng.next() % 20
        case 1: return rng.next() % 100_000
        case 2: return UInt64.max - rng.next() % 4
        default: return rng.next()
        }
    }

    @Test(arguments: [11, 12, 13] as [UInt64])
    func randomProofsAreRejectedWithoutTrapping(_ seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let hashes = syntheticLeaves(70)
        for round in 0..<3000 {
            let size = Self.randomSize(&rng)
            let path = (0..<Int(rng.next() % 70)).map { _ in hashes[Int(rng.next() % 70)] }
            let inclusion = InclusionProof(leafIndex: LeafIndex(Self.randomSize(&rng)), treeSize: size, path: path)
            #expect(throws: VerificationError.self, "seed \(seed) round \(round)") {
                try inclusion.verify(leafHash: hashes[0], rootHash: hashes[1])
            }
            let oldSize = Self.randomSize(&rng)
            let consistency = ConsistencyProof(oldSize: oldSize, newSize: size, path: path)
            // Only 0 → n with an empty path and the empty root proves anything without hashes.
            if !(oldSize == 0 && path.isEmpty) {
                #expect(throws: VerificationError.self, "seed \(seed) round \(round)") {
                    try consistency.verify(oldRoot: hashes[2], newRoot: hashes[3])
                }
            }
        }
    }

    @Test(arguments: [21, 22] as [UInt64])
    func randomBytesDoNotDecode(_ seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<5000 {
            let count = Int(rng.next() % 80)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if count == 72 && rng.next() % 2 == 0 { bytes.replaceSubrange(0..<16, with: TreeHead.domainPrefix) }
            let head = try? TreeHead(canonicalBytes: bytes)
            if let head { #expect(head.canonicalBytes == bytes) } else { #expect(count != 72 || !bytes.starts(with: TreeHead.domainPrefix)) }
            let address = try? NodeAddress(storageKey: bytes)
            if let address { #expect(address.storageKey == bytes) }
        }
    }

    @Test func proverRefusesWhatTheStoreCannotHave() {
        let tree = memoryTree(syntheticLeaves(5))
        for size in [6, 1 << 40, .max] as [UInt64] {
            #expect(throws: AuditError.self) { _ = try tree.rootHash(atSize: size) }
            #expect(throws: AuditError.self) { _ = try tree.inclusionProof(for: LeafIndex(0), treeSize: size) }
            #expect(throws: AuditError.self) { _ = try tree.consistencyProof(from: 1, to: size) }
        }
        // A prover told its store is larger than it is reports the missing nodes.
        let lying = MerkleProver(reader: tree.store, treeSize: .max)
        #expect(throws: AuditError.self) { _ = try lying.inclusionProof(for: LeafIndex(.max - 1), treeSize: .max) }
        #expect(throws: AuditError.self) { _ = try lying.consistencyProof(from: 3, to: .max) }
        #expect(throws: AuditError.self) { _ = try lying.rootHash(atSize: .max) }
    }
}
