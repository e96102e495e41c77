/// Proof that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves
/// (RFC 9162 §2.1.4): the log only appended, never rewrote.
public struct ConsistencyProof: Hashable, Sendable {
    /// The size of the older tree; at most `newSize`.
    public var oldSize: UInt64
    /// The size of the newer tree.
    public var newSize: UInt64
    /// The RFC 9162 consistency path.
    public var path: [MerkleHash]

    public init(oldSize: UInt64, newSize: UInt64, path: [MerkleHash]) {
        self.oldSize = oldSize
        self.newSize = newSize
        self.path = path
    }

    /// How many hashes the path between two sizes has; nil when `oldSize > newSize`.
    /// Empty when the sizes are equal or `oldSize` is 0 (every tree extends the empty tree).
    /// Otherwise it is the inclusion path of the old tree's last complete subtree in the new
    /// tree, plus that subtree itself unless it is the whole old tree (old size a power of 2).
    public static func pathLength(oldSize: UInt64, newSize: UInt64) -> Int? {
        guard oldSize <= newSize else { return nil }
        guard oldSize != 0 && oldSize != newSize else { return 0 }
        let shift = oldSize.trailingZeroBitCount
        let last = oldSize - 1
        let inner = UInt64.bitWidth - (last ^ (newSize - 1)).leadingZeroBitCount
        let seed = oldSize.nonzeroBitCount == 1 ? 0 : 1
        return seed + inner - shift + (last >> UInt64(inner)).nonzeroBitCount
    }

    /// Checks that the tree of `oldSize` with `oldRoot` is a prefix of the tree of `newSize`
    /// with `newRoot` (RFC 9162 §2.1.4.2, with the path length checked before hashing).
    /// - Throws: `sizeOrder`, `pathLengthMismatch`, `oldRootMismatch`, `rootMismatch`.
    public func verify(oldRoot: MerkleHash, newRoot: MerkleHash) throws(VerificationError) {
        guard let want = Self.pathLength(oldSize: oldSize, newSize: newSize) else {
            throw VerificationError(.sizeOrder, "got old size \(oldSize) > new size \(newSize), want old ≤ new")
        }
        guard path.count == want else {
            throw VerificationError(
                .pathLengthMismatch, "got \(path.count) hashes, want \(want) from size \(oldSize) to \(newSize)")
        }
        if oldSize == 0 {
            try expect(oldRoot, MerkleHasher.emptyRoot, .oldRootMismatch, "old root of the empty tree")
            if newSize == 0 { try expect(newRoot, MerkleHasher.emptyRoot, .rootMismatch, "new root of the empty tree") }
            return
        }
        if oldSize == newSize { return try expect(newRoot, oldRoot, .rootMismatch, "root of the same size") }
        let (fr, sr) = try roots(oldRoot: oldRoot)
        try expect(fr, oldRoot, .oldRootMismatch, "old root from the proof")
        try expect(sr, newRoot, .rootMismatch, "new root from the proof")
    }

    /// The old and new roots the path leads to, for 0 < oldSize < newSize and a checked length.
    private func roots(oldRoot: MerkleHash) throws(VerificationError) -> (MerkleHash, MerkleHash) {
        // RFC step 2: a power-of-2 old tree is itself the first node of the path.
        let nodes = oldSize.nonzeroBitCount == 1 ? [oldRoot] + path : path
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        guard let first = nodes.first else {  // unreachable: 0 < oldSize < newSize needs ≥ 1 node
            throw VerificationError(.pathLengthMismatch, "got no hashes, want at least 1")
        }
        var fr = first
        var sr = first
        for c in nodes.dropFirst() {
            guard sn != 0 else {  // unreachable after the length check (RFC step 6a)
                throw VerificationError(.pathLengthMismatch, "got hashes past the root, want none")
            }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHasher.nodeHash(c, fr)
                sr = MerkleHasher.nodeHash(c, sr)
                while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
            } else {
                sr = MerkleHasher.nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else {  // unreachable after the length check (RFC step 7)
            throw VerificationError(.pathLengthMismatch, "got a path that ends below the root, want one that reaches it")
        }
        return (fr, sr)
    }

    private func expect(
        _ got: MerkleHash, _ want: MerkleHash, _ code: VerificationError.Code, _ what: String
    ) throws(VerificationError) {
        guard got == want else { throw VerificationError(code, "got \(what) \(got), want \(want)") }
    }
}
