import FaunaRaft
import Foundation

/// Encryption at rest in the store (docs/STORAGE.md "Encryption at rest", ADR 0013).
///
/// Sealed: the values of the data groups' `log` (entries), `kv` (current records), `history`,
/// `effects` and `meta` (the state machine's bookkeeping: sessions, leases, the applied index).
/// Not sealed: keys; `merkle` (hashes, public in proofs); group 0 (the schema version and the
/// keyring itself). The keyring is group 0's `meta` record `keyring`; its presence is what makes
/// a directory encrypted.
extension StoreColumnFamily {
    /// Values of this family's data groups are sealed in an encrypted directory.
    var isSealed: Bool { self != .merkle }
}

extension MetaKey {
    /// In group 0: the data keys, wrapped by the master key (`Keyring.encoded`).
    static let keyring = Array("keyring".utf8)
}

enum StoreEncryption {
    /// The staging directory and marker are the schema upgrade's (`StoreUpgrade`): the same
    /// swap completes either after a crash.
    static var staging: String { StoreUpgrade.staging }

    /// The keyring stored in `db`'s group 0, opened with `master`; nil if the directory is not
    /// encrypted.
    ///
    /// - Throws: `.encryptionKey` if it is encrypted and `master` is nil or another key.
    static func loadKeyring(db: RocksDB, nodeMeta: RocksDBColumnFamily, master: MasterKey?) throws(StoreError) -> Keyring? {
        let record = try rocks { () throws(RocksDBError) in try db.get(nodeMeta, MetaKey.keyring) }
        guard let record else { return nil }
        guard let master else {
            let fingerprint = Keyring.masterFingerprint(ofRecord: record).map(Keyring.hex) ?? "?"
            throw StoreError(
                .encryptionKey,
                "\(db.path) is encrypted (master key fingerprint \(fingerprint)) and no master key was named: "
                    + "add [encryption] master_key to cluster.toml (docs/SECURITY.md)")
        }
        return try Keyring.decode(record, master: master, source: db.path)
    }

    /// Writes `keyring` to `db`'s group 0, synced: it reaches disk before any value it seals.
    static func storeKeyring(_ keyring: Keyring, db: RocksDB, nodeMeta: RocksDBColumnFamily) throws(StoreError) {
        try rocks { () throws(RocksDBError) in try db.put(nodeMeta, MetaKey.keyring, keyring.encoded, sync: true) }
    }

    /// Whether the open directory `db` holds data that is not encrypted (a schema version but no
    /// keyring): a store with a master key seals such a directory (`seal`) before using it.
    static func holdsDataInClear(_ db: RocksDB) throws(StoreError) -> Bool {
        let nodeMeta = try Store.columnFamilies(of: db, keyring: nil).nodeMeta
        let schema = try rocks { () throws(RocksDBError) in try db.get(nodeMeta, MetaKey.schema) }
        let keyring = try rocks { () throws(RocksDBError) in try db.get(nodeMeta, MetaKey.keyring) }
        return schema != nil && keyring == nil
    }

    /// Rewrites the directory at `<root>/db` (closed) sealed under a new keyring wrapped by
    /// `master`: a copy in the staging directory, then the upgrade's swap.
    static func seal(root: String, master: MasterKey, options: Store.Options) throws(StoreError) {
        let dbPath = "\(root)/db"
        let diskGuard = DiskSpaceGuard(path: root, freeBytesMin: options.diskFreeBytesMin)
        try diskGuard.check(adding: StoreUpgrade.directoryBytes(dbPath), operation: "encryption (copies the data directory once)")
        let target = "\(root)/\(staging)"
        try FileIO.removeTree(target)
        try copySealed(from: dbPath, to: target, keyring: try Keyring.new(master: master), memtableBytesMax: options.memtableBytesMax)
        try FileIO.fsyncDirectory(target)
        try FileIO.writeFile("\(target)/\(StoreUpgrade.readyMarker)", [])
        try FileIO.fsyncDirectory(target)
        try FileIO.fsyncDirectory(root)
        try Store.completeSwap(root: root, incoming: target, marker: StoreUpgrade.readyMarker)
    }

    /// Copies every record of the plaintext instance at `source` into a new one at `target`,
    /// sealing the values of the data groups' sealed families with `keyring`, and stores the
    /// keyring. Memory stays bounded by one batch.
    private static func copySealed(from source: String, to target: String, keyring: Keyring, memtableBytesMax: Int) throws(StoreError) {
        let options = StoreColumnFamily.allCases.map(\.options)
        let old = try rocks { () throws(RocksDBError) in try RocksDB(path: source, columnFamilies: options, createIfMissing: false) }
        let new = try rocks { () throws(RocksDBError) in try RocksDB(path: target, columnFamilies: options, memtableBytesMax: memtableBytesMax) }
        let nodePrefix = StoreGroup.prefix(StoreGroup.node)
        var batch = new.makeWriteBatch()
        for family in StoreColumnFamily.allCases {
            guard let from = old.columnFamily(family.rawValue), let plainTo = new.columnFamily(family.rawValue) else {
                throw StoreError(.corruptRecord, "encrypting \(source): no column family \(family.rawValue)")
            }
            // Whole families: the stored key (group prefix included) is what a sealed value is
            // bound to, as when written through a group's key space.
            let sealedTo = plainTo.sealed(by: family.isSealed ? keyring : nil)
            let it = old.makeIterator(from)
            it.seekToFirst()
            while it.isValid {
                let key = it.key
                let value = try it.storeValue
                batch.put(key.starts(with: nodePrefix) ? plainTo : sealedTo, key, value)
                if batch.count >= StoreUpgrade.batchRecords || batch.dataBytes >= 64 << 20 {
                    try rocks { () throws(RocksDBError) in try new.write(batch, sync: false, logged: false) }
                    batch = new.makeWriteBatch()
                }
                it.next()
            }
            try rocks { () throws(RocksDBError) in try it.checkError() }
        }
        guard let meta = new.columnFamily(StoreColumnFamily.meta.rawValue) else { return }
        batch.put(meta.prefixed(by: nodePrefix), MetaKey.keyring, keyring.encoded)
        try rocks { () throws(RocksDBError) in
            try new.write(batch, sync: false, logged: false)
            try new.flush()
        }
    }
}
