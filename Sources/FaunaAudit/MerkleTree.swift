import FaunaVerify

/// An append-only RFC 9162 Merkle tree over a node store: the frontier for appends, a
/// `MerkleProver` for roots and proofs. For a store that commits appends in its own write
/// batches, use `MerkleFrontier` and `MerkleProver` directly (see Sources/FaunaAudit/README.md).
public struct MerkleTree<Store: MerkleNodeStore> {
    /// The node store; every complete subtree of the tree is in it.
    public private(set) var store: Store
    /// The append state; `frontier.treeSize` is the tree size.
    public private(set) var frontier: MerkleFrontier

    /// An empty tree over an empty store.
    public init(emptyStore store: Store) {
        self.store = store
        self.frontier = MerkleFrontier()
    }

    /// A tree of `treeSize` leaves already in `store`.
    /// - Throws: `AuditError.missingNode` if the store lacks a right-edge node, or what the store throws.
    public init(store: Store, treeSize: UInt64) throws {
        self.store = store
        self.frontier = try MerkleFrontier.load(treeSize: treeSize, from: store)
    }

    /// The number of leaves.
    public var treeSize: UInt64 { frontier.treeSize }

    /// The root of the whole tree, from the frontier (no reads).
    public var rootHash: MerkleHash { frontier.rootHash }

    /// Appends a leaf hash (e.g. `JournalEntry.leafHash`).
    public mutating func append(_ leafHash: MerkleHash) {
        frontier.append(leafHash, to: &store)
    }

    /// Appends leaf hashes in order.
    public mutating func append(contentsOf leafHashes: some Sequence<MerkleHash>) {
        frontier.append(contentsOf: leafHashes, to: &store)
    }

    private var prover: MerkleProver<Store> { MerkleProver(reader: store, treeSize: treeSize) }

    /// The root of the first `size` leaves. See `MerkleProver.rootHash(atSize:)`.
    public func rootHash(atSize size: UInt64) throws -> MerkleHash {
        try prover.rootHash(atSize: size)
    }

    /// The inclusion proof of a leaf at a size. See `MerkleProver.inclusionProof(for:treeSize:)`.
    public func inclusionProof(for leafIndex: LeafIndex, treeSize size: UInt64) throws -> InclusionProof {
        try prover.inclusionProof(for: leafIndex, treeSize: size)
    }

    /// The consistency proof between two sizes. See `MerkleProver.consistencyProof(from:to:)`.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof {
        try prover.consistencyProof(from: oldSize, to: newSize)
    }
}

extension MerkleTree: Sendable where Store: Sendable {}
