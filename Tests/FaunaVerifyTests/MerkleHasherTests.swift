import Crypto
import Foundation
import FaunaVerify
import Testing

@Suite struct MerkleHasherTests {
    @Test func emptyRootIsSHA256OfTheEmptyString() {
        #expect(MerkleHasher.emptyRoot == ctRoots[0])
    }

    @Test(arguments: 0..<8)
    func leafHashMatchesTheCTReferenceTree(_ i: Int) {
        #expect(MerkleHasher.leafHash(ctLeafInputs[i]) == ctLeafHashes[i])
    }

    @Test(arguments: [
        (0, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        (1, "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        (2, "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        (3, "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ])
    func nodeHashMatchesTheCTReferenceTree(_ i: Int, _ want: String) {
        #expect(MerkleHasher.nodeHash(ctLeafHashes[2 * i], ctLeafHashes[2 * i + 1]) == h(want))
    }

    @Test func nodeHashIsNotCommutative() {
        #expect(MerkleHasher.nodeHash(ctLeafHashes[0], ctLeafHashes[1])
            != MerkleHasher.nodeHash(ctLeafHashes[1], ctLeafHashes[0]))
    }

    @Test func leafDataLayoutIsIndexTermTypePayload() {
        let entry = JournalEntry(index: 0x0102030405060708, term: 0x1112131415161718, type: 1, payload: [0xaa, 0xbb])
        #expect(entry.leafData == hexBytes("0102030405060708" + "1112131415161718" + "01" + "aabb"))
        #expect(entry.leafHash == MerkleHasher.leafHash(entry.leafData))
    }

    @Test(arguments: [0, 1, 55, 56, 63, 64, 1000] as [Int])
    func leafHashOfAnEntryEqualsLeafHashOfItsLeafData(_ payloadBytes: Int) {
        let entry = JournalEntry(index: 7, term: 3, type: 0, payload: (0..<payloadBytes).map { UInt8(truncatingIfNeeded: $0) })
        #expect(entry.leafHash == MerkleHasher.leafHash(entry.leafData))
    }

    /// The v2 leaf is hashed from its fields without building the leaf data: it must equal
    /// SHA-256 over the layout docs/AUDIT.md §1 gives, built here byte by byte.
    @Test(arguments: [0, 1, 55, 56, 64, 1000] as [Int])
    func leafV2HashEqualsSHA256OfItsDocumentedLayout(_ payloadBytes: Int) {
        let payload = (0..<payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let root = ctLeafHashes[5]
        let summary = EffectsSummary(outcome: .success, branch: .then, count: 0x0A0B0C0D0E0F1011, root: root)
        let entry = JournalEntry(index: 0x0102030405060708, term: 0x1112131415161718, type: 0, payload: payload, effects: summary)
        let layout = [0x02] + hexBytes("0102030405060708" + "1112131415161718" + "00")
            + [EntryOutcome.success.rawValue, TxnBranch.then.rawValue] + hexBytes("0a0b0c0d0e0f1011") + root.bytes + payload
        #expect(entry.leafHash == MerkleHash(SHA256.hash(data: layout)))
        #expect(entry.leafHash == MerkleHasher.leafHashV2(Array(layout.dropFirst())))
    }

    /// An effect's leaf is hashed without building its leaf data: SHA256(00 ‖ kind ‖ u32BE
    /// key length ‖ key ‖ value hash of a put).
    @Test(arguments: [0, 1, 16, 300] as [Int])
    func effectLeafHashEqualsSHA256OfItsLeafData(_ keyBytes: Int) {
        let key = (0..<keyBytes).map { UInt8(truncatingIfNeeded: $0 &+ 3) }
        let length = hexBytes(String(format: "%08x", keyBytes))
        let put = Effect.put(key: key, value: [1, 2, 3])
        let valueHash = MerkleHash(SHA256.hash(data: [1, 2, 3] as [UInt8]))
        #expect(put.valueHash == valueHash)
        #expect(put.leafHash == MerkleHash(SHA256.hash(data: [0x00, 0x01] + length + key + valueHash.bytes)))
        #expect(put.leafHash == MerkleHasher.leafHash(put.leafData))
        let delete = Effect(key: key, valueHash: nil)
        #expect(delete.leafHash == MerkleHash(SHA256.hash(data: [0x00, 0x02] + length + key)))
        #expect(delete.leafHash == MerkleHasher.leafHash(delete.leafData))
    }

    @Test func leafIndexIsEntryIndexMinusOne() {
        #expect(JournalEntry(index: 1, term: 1, type: 0, payload: []).leafIndex == LeafIndex(0))
        #expect(JournalEntry(index: 0, term: 1, type: 0, payload: []).leafIndex == nil)
    }

    @Test func merkleHashRoundTripsBytesAndRejectsOtherLengths() {
        let bytes = (0..<32).map { UInt8($0) }
        #expect(MerkleHash(bytes: bytes)?.bytes == bytes)
        #expect(MerkleHash(bytes: bytes)?.description == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        #expect(MerkleHash(bytes: bytes.dropLast()) == nil)
        #expect(MerkleHash(bytes: bytes + [0]) == nil)
        #expect(MerkleHash(bytes: []) == nil)
    }

    @Test func equalityNoticesEveryBit() {
        let hash = ctLeafHashes[3]
        for bit in 0..<256 {
            #expect(flipped(hash, bit: bit) != hash, "bit \(bit)")
        }
    }
}
