import FaunaAudit
import FaunaVerify

/// FaunaAudit's `MerkleNodeReader` over the `merkle` column family (key `u8 level ‖ u64 BE
/// index`, value the 32-byte hash), optionally through a consistent snapshot. Writes are not
/// made here: `Store.apply` puts `NodeWrites` into the apply WriteBatch.
public struct RocksDBMerkleNodeReader: MerkleNodeReader {
    let db: RocksDB
    let cf: RocksDBColumnFamily
    let snapshot: RocksDBReadSnapshot?

    public func hashes(at addresses: [NodeAddress]) throws -> [MerkleHash?] {
        try addresses.map { address in
            let key = address.storageKey
            guard let bytes = try db.get(cf, key, snapshot: snapshot) else { return nil }
            guard let hash = MerkleHash(bytes: bytes) else {
                throw StoreError.corrupt(cf, key: key, "hash: got \(bytes.count) bytes, want 32")
            }
            return hash
        }
    }
}
