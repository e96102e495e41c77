import CRocksDB

/// An atomic group of writes across column families, applied by `RocksDB.write(_:sync:)`.
/// Operations apply in the order they were added. Not thread-safe.
public final class RocksDBWriteBatch {
    let db: RocksDB
    let batch: OpaquePointer

    init(db: RocksDB) {
        self.db = db
        self.batch = rocksdb_writebatch_create()!
    }

    deinit { rocksdb_writebatch_destroy(batch) }

    /// The number of operations in the batch.
    public var count: Int { Int(rocksdb_writebatch_count(batch)) }

    /// The size of the batch's serialized representation (about what it adds to the WAL).
    public var dataBytes: Int {
        var size = 0
        _ = rocksdb_writebatch_data(batch, &size)
        return size
    }

    /// Removes every operation, keeping the allocation for reuse.
    public func clear() { rocksdb_writebatch_clear(batch) }

    public func put(_ cf: RocksDBColumnFamily, _ key: [UInt8], _ value: [UInt8]) {
        let h = db.handle(cf)
        let value = cf.storedValue(value, key: key)
        guard !cf.keyPrefix.isEmpty else {
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    k.withMemoryRebound(to: CChar.self) { k in
                        v.withMemoryRebound(to: CChar.self) { v in
                            rocksdb_writebatch_put_cf(batch, h, k.baseAddress, k.count, v.baseAddress, v.count)
                        }
                    }
                }
            }
            return
        }
        // The prefix and the key as two parts: RocksDB joins them in the batch, no copy here.
        withKeyParts(cf.keyPrefix, key) { parts, sizes in
            value.withUnsafeBufferPointer { v in
                v.withMemoryRebound(to: CChar.self) { v in
                    var valuePointer = v.baseAddress
                    var valueSize = v.count
                    rocksdb_writebatch_putv_cf(batch, h, 2, parts, sizes, 1, &valuePointer, &valueSize)
                }
            }
        }
    }

    public func delete(_ cf: RocksDBColumnFamily, _ key: [UInt8]) {
        let h = db.handle(cf)
        guard !cf.keyPrefix.isEmpty else {
            key.withUnsafeBufferPointer { k in
                k.withMemoryRebound(to: CChar.self) { k in
                    rocksdb_writebatch_delete_cf(batch, h, k.baseAddress, k.count)
                }
            }
            return
        }
        withKeyParts(cf.keyPrefix, key) { parts, sizes in rocksdb_writebatch_deletev_cf(batch, h, 2, parts, sizes) }
    }

    /// Calls `body` with the two parts `prefix` and `key` as the C API's key lists.
    private func withKeyParts(
        _ prefix: [UInt8], _ key: [UInt8],
        _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Void
    ) {
        prefix.withUnsafeBufferPointer { p in
            key.withUnsafeBufferPointer { k in
                p.withMemoryRebound(to: CChar.self) { p in
                    k.withMemoryRebound(to: CChar.self) { k in
                        withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: 2) { parts in
                            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2) { sizes in
                                parts[0] = p.baseAddress
                                parts[1] = k.baseAddress ?? p.baseAddress  // an empty key: any valid pointer
                                sizes[0] = p.count
                                sizes[1] = k.count
                                body(UnsafePointer(parts.baseAddress!), UnsafePointer(sizes.baseAddress!))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Deletes every key in `[start, end)` (of `cf`'s key space).
    public func deleteRange(_ cf: RocksDBColumnFamily, from start: [UInt8], to end: [UInt8]) {
        let h = db.handle(cf)
        let (start, end) = (cf.storedKey(start), cf.storedKey(end))
        start.withUnsafeBufferPointer { s in
            end.withUnsafeBufferPointer { e in
                s.withMemoryRebound(to: CChar.self) { s in
                    e.withMemoryRebound(to: CChar.self) { e in
                        rocksdb_writebatch_delete_range_cf(batch, h, s.baseAddress, s.count, e.baseAddress, e.count)
                    }
                }
            }
        }
    }
}
