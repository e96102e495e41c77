import CRocksDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cursor over one column family, optionally bounded to `[lowerBound, upperBound)` and read
/// through a snapshot. Keys and values are copied out (RocksDB's pointers are borrowed only
/// until the next move). Over a key space (`RocksDBColumnFamily.keyPrefix`), bounds and seeks
/// take keys without the prefix and `key` returns them without it. Not thread-safe.
///
/// After a loop ends (`isValid == false`) call `checkError()`: an invalid iterator can mean an
/// IO error or corruption rather than the end (RocksDB's `Iterator::status()`).
public final class RocksDBIterator {
    let db: RocksDB
    private let snapshot: RocksDBReadSnapshot?
    private let cf: RocksDBColumnFamily
    private let iterator: OpaquePointer
    private let readOptions: OpaquePointer
    /// Bound buffers must outlive the iterator: RocksDB keeps pointers to them.
    private let lower: UnsafeMutableBufferPointer<CChar>?
    private let upper: UnsafeMutableBufferPointer<CChar>?
    /// Bytes of `cf.keyPrefix`, dropped from every key read.
    private let prefixCount: Int

    init(db: RocksDB, cf: RocksDBColumnFamily, lowerBound: [UInt8]?, upperBound: [UInt8]?,
         snapshot: RocksDBReadSnapshot?) {
        self.db = db
        self.cf = cf
        self.snapshot = snapshot
        let ro = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(ro, 1)
        if let snapshot {
            precondition(snapshot.db === db, "snapshot from another database")
            rocksdb_readoptions_set_snapshot(ro, snapshot.snapshot)
        }
        func copy(_ bytes: [UInt8]?) -> UnsafeMutableBufferPointer<CChar>? {
            guard let bytes else { return nil }
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(bytes.count, 1))
            for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
            return UnsafeMutableBufferPointer(rebasing: buffer[0..<bytes.count])
        }
        prefixCount = cf.keyPrefix.count
        if cf.keyPrefix.isEmpty {
            lower = copy(lowerBound)
            upper = copy(upperBound)
        } else {
            lower = copy(cf.storedKey(lowerBound ?? []))
            upper = copy(upperBound.map(cf.storedKey) ?? cf.prefixEnd)
        }
        if let lower { rocksdb_readoptions_set_iterate_lower_bound(ro, lower.baseAddress, lower.count) }
        if let upper { rocksdb_readoptions_set_iterate_upper_bound(ro, upper.baseAddress, upper.count) }
        readOptions = ro
        iterator = rocksdb_create_iterator_cf(db.db, ro, db.handle(cf))
    }

    deinit {
        rocksdb_iter_destroy(iterator)
        rocksdb_readoptions_destroy(readOptions)
        // A zero-length bound still owns a one-byte allocation at the same base address.
        lower?.baseAddress?.deallocate()
        upper?.baseAddress?.deallocate()
    }

    public var isValid: Bool { rocksdb_iter_valid(iterator) != 0 }

    public func seekToFirst() { rocksdb_iter_seek_to_first(iterator) }
    public func seekToLast() { rocksdb_iter_seek_to_last(iterator) }
    /// Positions at the first key ≥ `key`.
    public func seek(_ key: [UInt8]) {
        let key = cf.storedKey(key)
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(iterator, $0.baseAddress, $0.count) }
        }
    }
    /// Positions at the last key ≤ `key`.
    public func seekForPrev(_ key: [UInt8]) {
        let key = cf.storedKey(key)
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek_for_prev(iterator, $0.baseAddress, $0.count) }
        }
    }
    public func next() { rocksdb_iter_next(iterator) }
    public func previous() { rocksdb_iter_prev(iterator) }

    /// A copy of the current key. Precondition: `isValid`.
    public var key: [UInt8] {
        precondition(isValid, "key of an invalid iterator")
        var length = 0
        let p = rocksdb_iter_key(iterator, &length)
        // Bounds keep the iterator inside the key space, so every key has the prefix.
        precondition(length >= prefixCount, "key shorter than its key space's prefix")
        return Self.copy(p.map { $0 + prefixCount }, length - prefixCount)
    }

    /// A copy of the current value, opened if the family is sealed (which throws if it does not
    /// open: `Keyring.open`). Precondition: `isValid`.
    public var value: [UInt8] {
        get throws(RocksDBError) {
            precondition(isValid, "value of an invalid iterator")
            var length = 0
            let p = rocksdb_iter_value(iterator, &length)
            let stored = Self.copy(p, length)
            guard cf.sealer != nil else { return stored }
            var keyLength = 0
            let k = rocksdb_iter_key(iterator, &keyLength)
            return try cf.openedValue(stored, storedKey: Self.copy(k, keyLength))
        }
    }

    /// The current value's length as stored (sealed, if the family is) without copying it.
    /// Precondition: `isValid`.
    public var valueCount: Int {
        precondition(isValid, "value of an invalid iterator")
        var length = 0
        _ = rocksdb_iter_value(iterator, &length)
        return length
    }

    /// Throws if the iterator stopped because of an error rather than the end of the range.
    public func checkError() throws(RocksDBError) {
        try withRocksDBError("iterate", columnFamily: cf.name) { err in rocksdb_iter_get_error(iterator, err) }
    }

    private static func copy(_ p: UnsafePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let p, length > 0 else { return [] }
        return p.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }
}
