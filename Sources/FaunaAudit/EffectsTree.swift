import FaunaVerify

/// The small in-memory RFC 9162 tree over one entry's effects (leaf v2, docs/AUDIT.md §1):
/// its root goes into the entry's leaf, a path from it proves that one key was written.
/// Effects are few per entry except for delete ranges, which are bounded by memory anyway;
/// building costs one hash per node, O(n).
public enum EffectsTree {
    /// The effects of one entry as the leaf commits to them: sorted by key, one per key.
    /// - Precondition: `effects` is sorted by key bytes with no key twice (the state machine's
    ///   final write per key).
    public static func summary(
        outcome: EntryOutcome, branch: TxnBranch, effects: [Effect], using sha: SHA256Parts = .swiftCrypto
    ) -> EffectsSummary {
        // One effect (a put or a delete) is the common case: its leaf is the root, no array.
        let top = effects.count == 1
            ? effects[0].leafHash(using: sha) : root(effects.map { $0.leafHash(using: sha) }[...], using: sha)
        return EffectsSummary(outcome: outcome, branch: branch, count: UInt64(effects.count), root: top)
    }

    /// RFC 9162 MTH over `leaves` (`MerkleHasher.emptyRoot` for none).
    public static func root(_ leaves: ArraySlice<MerkleHash>, using sha: SHA256Parts = .swiftCrypto) -> MerkleHash {
        switch leaves.count {
        case 0: return MerkleHasher.emptyRoot
        case 1: return leaves[leaves.startIndex]
        default:
            let k = leaves.startIndex + largestPowerOfTwo(below: leaves.count)
            return MerkleHasher.nodeHash(root(leaves[..<k], using: sha), root(leaves[k...], using: sha), using: sha)
        }
    }

    /// RFC 9162 PATH(index, leaves): the sibling hashes from leaf `index` up to the root.
    /// - Precondition: `index < leaves.count`.
    public static func path(_ index: Int, _ leaves: ArraySlice<MerkleHash>) -> [MerkleHash] {
        precondition(index >= 0 && index < leaves.count, "effect index \(index) of \(leaves.count)")
        guard leaves.count > 1 else { return [] }
        let k = largestPowerOfTwo(below: leaves.count)
        let split = leaves.startIndex + k
        if index < k { return path(index, leaves[..<split]) + [root(leaves[split...])] }
        return path(index - k, leaves[split...]) + [root(leaves[..<split])]
    }

    /// The largest power of two strictly below `n` (n ≥ 2).
    private static func largestPowerOfTwo(below n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}
