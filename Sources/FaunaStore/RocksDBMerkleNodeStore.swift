import FaunaAudit
import FaunaVerify

/// FaunaAudit's `MerkleNodeReader` over the `merkle` column family (schema 6: tiles of 32
/// hashes in post-order, `MerkleTile`), optionally through a consistent snapshot. Writes are
/// not made here: `Store.apply` puts its `MerkleTileWriter`'s tiles into the apply WriteBatch.
public struct RocksDBMerkleNodeReader: MerkleNodeReader {
    let db: RocksDB
    let cf: RocksDBColumnFamily
    let snapshot: RocksDBReadSnapshot?

    /// One read per tile, however many of the addresses it holds; nil for a node past the
    /// stored end of its tile (not in the tree yet).
    public func hashes(at addresses: [NodeAddress]) throws -> [MerkleHash?] {
        var tiles: [UInt64: [UInt8]] = [:]
        return try addresses.map { address in
            let position = address.postOrderPosition
            let tile = position / MerkleTile.nodesPerTile
            let bytes: [UInt8]
            if let read = tiles[tile] {
                bytes = read
            } else {
                let key = MerkleTile.key(tile)
                bytes = try db.get(cf, key, snapshot: snapshot) ?? []
                guard bytes.count % MerkleHash.sizeBytes == 0, bytes.count <= Int(MerkleTile.nodesPerTile) * MerkleHash.sizeBytes else {
                    throw StoreError.corrupt(cf, key: key, "tile of \(bytes.count) bytes, want a multiple of 32 up to 1024")
                }
                tiles[tile] = bytes
            }
            let start = Int(position % MerkleTile.nodesPerTile) * MerkleHash.sizeBytes
            guard start + MerkleHash.sizeBytes <= bytes.count else { return nil }
            return MerkleHash(bytes: bytes[start..<start + MerkleHash.sizeBytes])
        }
    }
}
