import FaunaVerify

/// Roots and proofs for any size up to `treeSize`, from stored complete-subtree hashes.
///
/// Every answer is planned first as a list of hash ranges, each the fold of at most 64 stored
/// complete subtrees; then all their nodes are read in one call, and only the partial
/// right-edge ranges are hashed. Cost: O(log n) reads and hashes, never a rehash of leaves.
public struct MerkleProver<Reader: MerkleNodeReader> {
    /// Where the complete-subtree hashes are read from.
    public let reader: Reader
    /// The number of leaves in the store; larger sizes are refused.
    public let treeSize: UInt64

    public init(reader: Reader, treeSize: UInt64) {
        self.reader = reader
        self.treeSize = treeSize
    }

    /// The root hash of the first `size` leaves (RFC 9162 §2.1.1); the empty root for 0.
    /// - Throws: `AuditError.sizeOutOfRange`, `.missingNode`, or what the reader throws.
    public func rootHash(atSize size: UInt64) throws -> MerkleHash {
        try checkSize(size)
        guard size > 0 else { return MerkleHasher.emptyRoot }
        return try resolve([Self.subtrees(from: 0, to: size)], size: size)[0]
    }

    /// The inclusion proof of `leafIndex` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1).
    /// - Throws: `AuditError.sizeOutOfRange`, `.leafIndexOutOfRange`, `.missingNode`, or what the reader throws.
    public func inclusionProof(for leafIndex: LeafIndex, treeSize size: UInt64) throws -> InclusionProof {
        try checkSize(size)
        guard leafIndex.rawValue < size else {
            throw AuditError(.leafIndexOutOfRange, "got leaf index \(leafIndex), want < tree size \(size)")
        }
        let plan = Self.pathPlan(for: leafIndex.rawValue, fromLevel: 0, treeSize: size)
        return InclusionProof(leafIndex: leafIndex, treeSize: size, path: try resolve(plan, size: size))
    }

    /// The consistency proof from the first `oldSize` leaves to the first `newSize` (RFC 9162
    /// §2.1.4.1); empty when `oldSize` is 0 or equal to `newSize`.
    /// - Throws: `AuditError.sizeOrder`, `.sizeOutOfRange`, `.missingNode`, or what the reader throws.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof {
        guard oldSize <= newSize else {
            throw AuditError(.sizeOrder, "got old size \(oldSize) > new size \(newSize), want old ≤ new")
        }
        try checkSize(newSize)
        guard oldSize != 0 && oldSize != newSize else {
            return ConsistencyProof(oldSize: oldSize, newSize: newSize, path: [])
        }
        // Prove the old tree's last complete subtree (the "seed") in the new tree; a client
        // holding the old root knows the seed already when it is the whole old tree.
        let shift = oldSize.trailingZeroBitCount
        let last = oldSize - 1
        var plan: [[NodeAddress]] = []
        if oldSize.nonzeroBitCount != 1 {
            plan.append([NodeAddress(level: UInt8(shift), index: last >> UInt64(shift))])
        }
        plan += Self.pathPlan(for: last, fromLevel: shift, treeSize: newSize)
        return ConsistencyProof(oldSize: oldSize, newSize: newSize, path: try resolve(plan, size: newSize))
    }

    private func checkSize(_ size: UInt64) throws {
        guard size <= treeSize else {
            throw AuditError(.sizeOutOfRange, "got tree size \(size), want ≤ stored size \(treeSize)")
        }
    }

    /// The siblings on the path from leaf `leaf`'s ancestor at `fromLevel` to the root of a
    /// tree of `size`, lowest first. Below the level where the paths of `leaf` and of the last
    /// leaf meet, a right sibling may reach past the tree's end: it is then the partial range
    /// up to `size`. Above it, only left siblings exist (the right border), all complete.
    static func pathPlan(for leaf: UInt64, fromLevel: Int, treeSize size: UInt64) -> [[NodeAddress]] {
        let inner = UInt64.bitWidth - (leaf ^ (size - 1)).leadingZeroBitCount
        var plan: [[NodeAddress]] = []
        for level in fromLevel..<max(fromLevel, inner) {
            let sibling = (leaf >> UInt64(level)) ^ 1
            let start = sibling << UInt64(level)
            let width: UInt64 = 1 << UInt64(level)
            plan.append(subtrees(from: start, to: size - start < width ? size : start + width))  // no overflow near 2^64
        }
        for level in inner..<64 where (leaf >> UInt64(level)) & 1 == 1 {
            plan.append([NodeAddress(level: UInt8(level), index: (leaf >> UInt64(level)) - 1)])
        }
        return plan
    }

    /// The complete subtrees that tile leaves `[start, end)`, left to right, each as large as
    /// the alignment of its start allows.
    static func subtrees(from start: UInt64, to end: UInt64) -> [NodeAddress] {
        precondition(start < end, "empty leaf range [\(start), \(end))")
        var nodes: [NodeAddress] = []
        var position = start
        while position < end {
            let fits = UInt64.bitWidth - 1 - (end - position).leadingZeroBitCount
            let level = min(position == 0 ? 63 : position.trailingZeroBitCount, fits)
            nodes.append(NodeAddress(level: UInt8(level), index: position >> UInt64(level)))
            position += 1 << UInt64(level)
        }
        return nodes
    }

    /// Reads every node of `plan` in one call, then folds each range from the right into one
    /// hash (the RFC's split at the largest power of 2 is the leftmost subtree).
    private func resolve(_ plan: [[NodeAddress]], size: UInt64) throws -> [MerkleHash] {
        let hashes = try readAll(plan.flatMap { $0 }, from: reader, treeSize: size)
        var result: [MerkleHash] = []
        result.reserveCapacity(plan.count)
        var offset = 0
        for range in plan {
            let end = offset + range.count
            var hash = hashes[end - 1]
            for i in stride(from: end - 2, through: offset, by: -1) { hash = MerkleHasher.nodeHash(hashes[i], hash) }
            result.append(hash)
            offset = end
        }
        return result
    }
}

extension MerkleProver: Sendable where Reader: Sendable {}
