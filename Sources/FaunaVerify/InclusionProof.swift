/// Proof that a leaf is in a tree of a given size (RFC 9162 §2.1.3).
public struct InclusionProof: Hashable, Sendable {
    /// The leaf the proof is for; must be below `treeSize` to verify.
    public var leafIndex: LeafIndex
    /// The size of the tree whose root the proof leads to.
    public var treeSize: UInt64
    /// Sibling hashes from the leaf up to the root.
    public var path: [MerkleHash]

    public init(leafIndex: LeafIndex, treeSize: UInt64, path: [MerkleHash]) {
        self.leafIndex = leafIndex
        self.treeSize = treeSize
        self.path = path
    }

    /// How many hashes the path of a leaf has; nil when `leafIndex ≥ treeSize`.
    /// `inner` levels up to where the paths of the leaf and of the last leaf meet, then one
    /// left sibling for each 1 bit above them (the right border of the tree).
    public static func pathLength(leafIndex: LeafIndex, treeSize: UInt64) -> Int? {
        let index = leafIndex.rawValue
        guard index < treeSize else { return nil }
        let inner = UInt64.bitWidth - (index ^ (treeSize - 1)).leadingZeroBitCount
        return inner + (index >> UInt64(inner)).nonzeroBitCount
    }

    /// The root hash this proof leads to from `leafHash` (RFC 9162 §2.1.3.2).
    /// - Throws: `leafIndexOutOfRange`, `pathLengthMismatch`.
    public func rootHash(fromLeafHash leafHash: MerkleHash) throws(VerificationError) -> MerkleHash {
        guard let want = Self.pathLength(leafIndex: leafIndex, treeSize: treeSize) else {
            throw VerificationError(
                .leafIndexOutOfRange, "got leaf index \(leafIndex), want < tree size \(treeSize)")
        }
        guard path.count == want else {
            throw VerificationError(
                .pathLengthMismatch,
                "got \(path.count) hashes, want \(want) for leaf \(leafIndex) of tree size \(treeSize)")
        }
        var fn = leafIndex.rawValue
        var sn = treeSize - 1
        var r = leafHash
        for p in path {
            guard sn != 0 else {  // unreachable after the length check (RFC step 4a)
                throw VerificationError(.pathLengthMismatch, "got hashes past the root, want none")
            }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHasher.nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
            } else {
                r = MerkleHasher.nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        // Unreachable after the length check (RFC step 5), kept because this is untrusted input.
        guard sn == 0 else {
            throw VerificationError(.pathLengthMismatch, "got a path that ends below the root, want one that reaches it")
        }
        return r
    }

    /// Checks that `leafHash` is leaf `leafIndex` of the tree of `treeSize` with `rootHash`.
    /// - Throws: `leafIndexOutOfRange`, `pathLengthMismatch`, `rootMismatch`.
    public func verify(leafHash: MerkleHash, rootHash: MerkleHash) throws(VerificationError) {
        let got = try self.rootHash(fromLeafHash: leafHash)
        guard got == rootHash else {
            throw VerificationError(.rootMismatch, "got root \(got) from the proof, want \(rootHash)")
        }
    }

    /// Checks that `leafHash` is leaf `leafIndex` of the tree `treeHead` describes. Prefer this
    /// to `verify(leafHash:rootHash:)`: a root is only meaningful with its size, and a path can
    /// fit more than one size.
    /// - Throws: `proofSizesMismatch`, then as `verify(leafHash:rootHash:)`.
    public func verify(leafHash: MerkleHash, treeHead: TreeHead) throws(VerificationError) {
        guard treeSize == treeHead.treeSize else {
            throw VerificationError(
                .proofSizesMismatch, "got inclusion proof for tree size \(treeSize), want head size \(treeHead.treeSize)")
        }
        try verify(leafHash: leafHash, rootHash: treeHead.rootHash)
    }
}
