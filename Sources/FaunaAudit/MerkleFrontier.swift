import FaunaVerify

/// The append side of the tree: its size and the hashes of the complete subtrees along its
/// right edge (one per 1 bit of the size). Appending needs nothing else, so it never reads
/// the store; it only hands the new complete subtrees to a `MerkleNodeWriter`.
///
/// A value type: a store appends to a copy, commits the recorded writes, and only then
/// replaces its frontier, so memory never gets ahead of disk.
public struct MerkleFrontier: Hashable, Sendable {
    /// The number of leaves appended.
    public private(set) var treeSize: UInt64 = 0
    /// `rightEdge[l]` is the right-edge complete subtree of height `l`. Meaningful only where
    /// bit `l` of `treeSize` is 1; other entries are stale and never read.
    private var rightEdge: [MerkleHash] = Array(repeating: MerkleHasher.emptyRoot, count: 64)

    /// The frontier of the empty tree.
    public init() {}

    /// Appends one leaf hash and records every complete subtree it completes: the leaf itself
    /// at level 0, then one node per trailing 1 bit of the old size, hashed by `sha`.
    public mutating func append<Writer: MerkleNodeWriter>(
        _ leafHash: MerkleHash, to writer: inout Writer, using sha: SHA256Parts = .swiftCrypto
    ) {
        precondition(treeSize < UInt64.max, "tree size \(treeSize) cannot grow")
        var hash = leafHash
        var index = treeSize
        var level = 0
        writer.recordHash(hash, at: NodeAddress(level: 0, index: index))
        while index & 1 == 1 {
            hash = MerkleHasher.nodeHash(rightEdge[level], hash, using: sha)
            index >>= 1
            level += 1
            writer.recordHash(hash, at: NodeAddress(level: UInt8(level), index: index))
        }
        rightEdge[level] = hash
        treeSize += 1
    }

    /// Appends leaf hashes in order.
    public mutating func append<Writer: MerkleNodeWriter>(
        contentsOf leafHashes: some Sequence<MerkleHash>, to writer: inout Writer
    ) {
        for leafHash in leafHashes { append(leafHash, to: &writer) }
    }

    /// The root of the current tree: the right-edge subtrees folded from the right
    /// (RFC 9162 §2.1.1 splits at the largest power of 2, which is the highest 1 bit).
    public var rootHash: MerkleHash {
        var root: MerkleHash? = nil
        var rest = treeSize
        while rest != 0 {
            let level = rest.trailingZeroBitCount
            root = root.map { MerkleHasher.nodeHash(rightEdge[level], $0) } ?? rightEdge[level]
            rest &= rest - 1
        }
        return root ?? MerkleHasher.emptyRoot
    }

    /// The addresses of the right-edge subtrees of a tree of `treeSize`, highest level first.
    static func rightEdgeAddresses(treeSize: UInt64) -> [NodeAddress] {
        (0..<64).reversed().compactMap { level -> NodeAddress? in
            guard (treeSize >> UInt64(level)) & 1 == 1 else { return nil }
            return NodeAddress(level: UInt8(level), index: (treeSize >> UInt64(level)) - 1)
        }
    }

    /// Equal when the sizes and the meaningful right-edge hashes are equal (stale entries are ignored).
    public static func == (a: MerkleFrontier, b: MerkleFrontier) -> Bool {
        a.treeSize == b.treeSize && (0..<64).allSatisfy { (a.treeSize >> UInt64($0)) & 1 == 0 || a.rightEdge[$0] == b.rightEdge[$0] }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(treeSize)
        for level in 0..<64 where (treeSize >> UInt64(level)) & 1 == 1 { hasher.combine(rightEdge[level]) }
    }

    /// Rebuilds the frontier of a stored tree of `treeSize` leaves with popcount(treeSize) reads
    /// (at most 64), e.g. when a node restarts.
    /// - Throws: `AuditError.missingNode` if the store lacks a right-edge node, or what the reader throws.
    public static func load(treeSize: UInt64, from reader: some MerkleNodeReader) throws -> MerkleFrontier {
        let addresses = rightEdgeAddresses(treeSize: treeSize)
        let hashes = try readAll(addresses, from: reader, treeSize: treeSize)
        var frontier = MerkleFrontier()
        frontier.treeSize = treeSize
        for (address, hash) in zip(addresses, hashes) { frontier.rightEdge[Int(address.level)] = hash }
        return frontier
    }
}

/// Reads `addresses` and checks that the store returned each of them.
func readAll(_ addresses: [NodeAddress], from reader: some MerkleNodeReader, treeSize: UInt64) throws -> [MerkleHash] {
    let found = try reader.hashes(at: addresses)
    guard found.count == addresses.count else {
        throw AuditError(.storeContract, "got \(found.count) hashes from the store, want \(addresses.count)")
    }
    return try zip(addresses, found).map { address, hash in
        guard let hash else {
            throw AuditError(.missingNode, "got no hash at \(address), want one in a tree of size \(treeSize)")
        }
        return hash
    }
}
