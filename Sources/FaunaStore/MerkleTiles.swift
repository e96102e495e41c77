import FaunaAudit
import FaunaVerify

/// The `merkle` column family's layout (schema 6, docs/STORAGE.md "Merkle tiles"): the hashes
/// of the tree's nodes in post-order (`NodeAddress.postOrderPosition`), `nodesPerTile` to a
/// record. Tile `t` holds positions `t·32 ..< t·32 + k` as `k` hashes of 32 bytes one after
/// the other, under key `T ‖ u64BE(t)`; every tile is full but the last, which grows as leaves
/// are appended and is rewritten by each apply that adds to it.
///
/// A tree of `n` leaves has `2n − popcount(n)` nodes, so an appended entry adds two on
/// average. Schema 5 stored each under its own key: two memtable inserts, two keys and two
/// heap arrays per put, for records of 32 bytes. With tiles an apply chunk writes one record
/// per 32 nodes plus the last, partial one (docs/PERFORMANCE.md "Merkle nodes in tiles").
enum MerkleTile {
    /// Nodes per tile.
    static let nodesPerTile: UInt64 = 32
    /// The first byte of a tile key: above every level of schema 4's keys (< 64) and below no
    /// schema 5 key's first byte (positions below 2^56 start with 0), so the upgrade can tell
    /// them apart in one family.
    static let keyPrefix = UInt8(ascii: "T")
    static let keySizeBytes = 9

    /// `T ‖ u64BE(tile)`.
    static func key(_ tile: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: keySizeBytes)
        w.u8(keyPrefix)
        w.u64(tile)
        return w.bytes
    }

    /// The tile in a tile key, or nil if `key` is not one.
    static func tile(ofKey key: [UInt8]) -> UInt64? {
        guard key.count == keySizeBytes, key[0] == keyPrefix else { return nil }
        return uint64(bigEndian: key[1...])
    }
}

/// The tiles an apply writes: a `MerkleNodeWriter` for `MerkleFrontier.append`, which records
/// every node as it completes, in post-order. It keeps the last tile's hashes (fewer than
/// `nodesPerTile`) between applies, so that each apply can write that tile whole.
struct MerkleTileWriter: MerkleNodeWriter {
    /// The post-order position of the next node.
    private(set) var nextPosition: UInt64
    /// The hashes of the last tile so far: positions `nextPosition − tail.count/32 ..< nextPosition`.
    private(set) var tail: [UInt8]
    /// Tiles completed since the last `write`, (tile, its 32 hashes).
    private var completed: [(tile: UInt64, bytes: [UInt8])] = []
    /// Whether the tail gained a hash since the last `write`.
    private var tailChanged = false

    /// A writer for a tree of `treeSize` leaves whose last tile holds `tail`.
    /// - Precondition: `tail` holds exactly the hashes the last tile has at that size.
    init(treeSize: UInt64, tail: [UInt8]) {
        nextPosition = NodeAddress.nodeCount(leaves: treeSize)
        precondition(
            UInt64(tail.count) == (nextPosition % MerkleTile.nodesPerTile) * UInt64(MerkleHash.sizeBytes),
            "merkle tail of \(tail.count) bytes for \(nextPosition) nodes")
        self.tail = tail
        self.tail.reserveCapacity(Int(MerkleTile.nodesPerTile) * MerkleHash.sizeBytes)
    }

    mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress) {
        precondition(address.postOrderPosition == nextPosition, "merkle node \(address) out of post-order")
        hash.withUnsafeBytes { tail.append(contentsOf: $0) }
        nextPosition += 1
        tailChanged = true
        if nextPosition % MerkleTile.nodesPerTile == 0 {
            completed.append((nextPosition / MerkleTile.nodesPerTile - 1, tail))
            tail.removeAll(keepingCapacity: true)
            tailChanged = false
        }
    }

    /// Puts the tiles completed since the last call, and the last tile if it changed, into
    /// `batch`, in ascending key order.
    mutating func write(to batch: RocksDBWriteBatch, _ cf: RocksDBColumnFamily) {
        for (tile, bytes) in completed { batch.put(cf, MerkleTile.key(tile), bytes) }
        completed.removeAll()
        if tailChanged { batch.put(cf, MerkleTile.key(nextPosition / MerkleTile.nodesPerTile), tail) }
        tailChanged = false
    }

    /// Reads the last tile of a tree of `treeSize` leaves (for an open).
    /// - Throws: `.corruptRecord` if it is missing or has another number of hashes.
    static func load(treeSize: UInt64, db: RocksDB, cf: RocksDBColumnFamily) throws(StoreError) -> MerkleTileWriter {
        let count = NodeAddress.nodeCount(leaves: treeSize)
        let want = Int(count % MerkleTile.nodesPerTile) * MerkleHash.sizeBytes
        guard want > 0 else { return MerkleTileWriter(treeSize: treeSize, tail: []) }
        let key = MerkleTile.key(count / MerkleTile.nodesPerTile)
        let tail = try rocks { () throws(RocksDBError) in try db.get(cf, key) } ?? []
        guard tail.count == want else {
            throw StoreError.corrupt(
                cf, key: key, "the last tile of a tree of \(treeSize) leaves: got \(tail.count) bytes, want \(want)")
        }
        return MerkleTileWriter(treeSize: treeSize, tail: tail)
    }
}
