import FaunaAudit
import FaunaVerify
import Foundation
import Testing

@testable import FaunaStore

/// The store's SHA-256 (`SHA256Parts.libcrypto`) is the same function as FaunaVerify's own
/// (swift-crypto): every hash the store writes into the audit chain is checked by clients
/// with the other one.
@Suite("SHA256Parts")
struct SHA256PartsTests {
    func hex(_ h: MerkleHash) -> String { h.description }

    func hash(_ sha: SHA256Parts, _ parts: [[UInt8]]) -> MerkleHash {
        precondition(parts.count == 3)
        return parts[0].withUnsafeBytes { a in
            parts[1].withUnsafeBytes { b in parts[2].withUnsafeBytes { c in sha.hash(a, b, c) } }
        }
    }

    @Test func knownDigests() {
        // FIPS 180-2 examples: the empty message, "abc", and the two-block message.
        let cases: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (message, digest) in cases {
            let m = Array(message.utf8)
            for sha in [SHA256Parts.libcrypto, .swiftCrypto] {
                #expect(hex(hash(sha, [m, [], []])) == digest)
                // Split in three anywhere: the parts are one message.
                let i = m.count / 3, j = 2 * m.count / 3
                #expect(hex(hash(sha, [Array(m[..<i]), Array(m[i..<j]), Array(m[j...])])) == digest)
            }
        }
    }

    @Test func agreesWithSwiftCryptoOnEveryLengthAndSplit() {
        var rng = SystemRandomNumberGenerator()
        // Lengths across the 55/56/64-byte padding edges and several blocks.
        for length in 0...200 {
            let m = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let i = Int.random(in: 0...length, using: &rng), j = Int.random(in: i...length, using: &rng)
            let parts = [Array(m[..<i]), Array(m[i..<j]), Array(m[j...])]
            let expected = hash(.swiftCrypto, [m, [], []])
            #expect(hash(.libcrypto, parts) == expected, "length \(length), split \(i), \(j)")
            #expect(hash(.libcrypto, [m, [], []]) == expected, "length \(length)")
        }
    }

    @Test func theAuditChainHashesAgree() {
        let left = MerkleHasher.leafHash([1, 2, 3]), right = MerkleHasher.leafHash([4])
        #expect(MerkleHasher.nodeHash(left, right, using: .libcrypto) == MerkleHasher.nodeHash(left, right))
        let put = Effect.put(key: Array("k".utf8), value: Array("v".utf8))
        #expect(Effect.valueHash(Array("v".utf8), using: .libcrypto) == put.valueHash)
        let delete = Effect(key: Array("gone".utf8), valueHash: nil)
        for effect in [put, delete] { #expect(effect.leafHash(using: .libcrypto) == effect.leafHash) }
        let summary = EffectsTree.summary(outcome: .success, branch: .none, effects: [delete, put])
        #expect(EffectsTree.summary(outcome: .success, branch: .none, effects: [delete, put], using: .libcrypto) == summary)
        for effects in [nil, summary] {
            let entry = JournalEntry(index: 7, term: 2, type: 0, payload: Array(repeating: 0x5A, count: 130), effects: effects)
            #expect(entry.leafHash(using: .libcrypto) == entry.leafHash)
        }
        // A frontier appended with either builds the same tree.
        var a = MerkleFrontier(), b = MerkleFrontier()
        var na = RecordingWriter(), nb = RecordingWriter()
        for i in 0..<37 {
            let leaf = MerkleHasher.leafHash([UInt8(i)])
            a.append(leaf, to: &na, using: .libcrypto)
            b.append(leaf, to: &nb)
        }
        #expect(a.rootHash == b.rootHash)
        #expect(na.nodes == nb.nodes)
    }

    struct RecordingWriter: MerkleNodeWriter {
        var nodes: [NodeAddress: MerkleHash] = [:]
        mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress) { nodes[address] = hash }
    }
}
