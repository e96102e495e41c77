import FaunaVerify

/// Reads the hashes of complete subtrees. Reads may fail (a disk store); every proof or root
/// asks for all the nodes it needs in one call, so a store can serve it with one batched read
/// (RocksDB MultiGet) against one consistent snapshot.
public protocol MerkleNodeReader {
    /// The hashes stored at `addresses`, in the same order; nil where none is stored.
    func hashes(at addresses: [NodeAddress]) throws -> [MerkleHash?]
}

/// Receives the hashes of new complete subtrees as leaves are appended. Each address is
/// recorded exactly once and never changes afterwards, so a store can buffer the writes of a
/// whole batch of appends in its own WriteBatch and commit them with the entries they hash.
public protocol MerkleNodeWriter {
    /// Records the hash of the complete subtree at `address`.
    mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress)
}

/// A store that can both be appended to and read.
public typealias MerkleNodeStore = MerkleNodeReader & MerkleNodeWriter

/// The writes of some appends, in order: what a store puts into its WriteBatch.
public struct NodeWrites: MerkleNodeWriter, Sendable {
    /// Every (address, hash) recorded, in append order.
    public private(set) var writes: [(address: NodeAddress, hash: MerkleHash)] = []

    public init() {}

    public mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress) {
        writes.append((address, hash))
    }
}

/// Complete-subtree hashes in memory: one array per level, appended in order.
/// About 2 × 32 bytes per leaf.
public struct InMemoryMerkleNodeStore: MerkleNodeStore, Sendable {
    /// `levels[l][i]` is the hash at `NodeAddress(level: l, index: i)`.
    /// Invariant: `levels[l].count == treeSize >> l` for the size the frontier appended to.
    private var levels: [[MerkleHash]] = []

    public init() {}

    /// The number of hashes stored.
    public var nodeCount: Int { levels.reduce(0) { $0 + $1.count } }

    public func hashes(at addresses: [NodeAddress]) -> [MerkleHash?] {
        addresses.map { hash(at: $0) }
    }

    /// The hash at `address`, if stored.
    public func hash(at address: NodeAddress) -> MerkleHash? {
        let level = Int(address.level)
        guard level < levels.count, address.index < UInt64(levels[level].count) else { return nil }
        return levels[level][Int(address.index)]
    }

    public mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress) {
        let level = Int(address.level)
        while levels.count <= level { levels.append([]) }
        precondition(
            address.index == UInt64(levels[level].count),
            "append-only store: got node \(address), want index \(levels[level].count) at level \(level)")
        levels[level].append(hash)
    }
}
