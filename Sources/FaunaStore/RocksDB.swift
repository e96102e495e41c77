import CRocksDB
import CRocksDBFlush
import FaunaKV

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A column family of an open `RocksDB`, or one key space inside it: with a `keyPrefix`, every
/// key read or written through this value is stored behind that prefix, and keys read back
/// (iterators) come without it. A Raft group's share of a family is such a key space
/// (docs/STORAGE.md "Groups"). Only valid with the database that returned it.
public struct RocksDBColumnFamily: Hashable, Sendable, CustomStringConvertible {
    /// Position in the database's handle table.
    let slot: Int
    public let name: String
    /// Stored in front of every key (empty: the whole family).
    public private(set) var keyPrefix: [UInt8] = []
    /// With a keyring, values are sealed on the way in and opened on the way out (encryption at
    /// rest, `Keyring`); not part of the family's identity.
    public private(set) var sealer: Keyring?
    public var description: String { name }

    public static func == (a: Self, b: Self) -> Bool { a.slot == b.slot && a.name == b.name && a.keyPrefix == b.keyPrefix }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(slot)
        hasher.combine(keyPrefix)
    }

    init(slot: Int, name: String) {
        self.slot = slot
        self.name = name
    }

    /// The key space of this family whose stored keys start with `prefix`.
    public func prefixed(by prefix: [UInt8]) -> RocksDBColumnFamily {
        var cf = self
        cf.keyPrefix = keyPrefix + prefix
        return cf
    }

    /// This key space with its values sealed by `keyring` (nil: stored as they are).
    public func sealed(by keyring: Keyring?) -> RocksDBColumnFamily {
        var cf = self
        cf.sealer = keyring
        return cf
    }

    /// `value` as stored at `key`.
    @inline(__always) func storedValue(_ value: [UInt8], key: [UInt8]) -> [UInt8] {
        guard let sealer else { return value }
        return sealer.seal(value, family: name, storedKey: storedKey(key))
    }

    /// The value read from disk at the stored key `stored`, opened.
    @inline(__always) func openedValue(_ value: [UInt8], storedKey stored: [UInt8]) throws(RocksDBError) -> [UInt8] {
        guard let sealer else { return value }
        return try sealer.open(value, family: name, storedKey: stored)
    }

    /// `key` as stored.
    @inline(__always) func storedKey(_ key: [UInt8]) -> [UInt8] { keyPrefix.isEmpty ? key : keyPrefix + key }

    /// The first stored key after every key of this key space, or nil if there is none (no
    /// prefix, or a prefix of 0xFF bytes only).
    var prefixEnd: [UInt8]? { KeyRange.prefixEnd(keyPrefix) }
}

/// How one column family is configured when the database is opened.
public struct RocksDBColumnFamilyOptions: Sendable, Hashable {
    public enum Compression: Sendable, Hashable {
        case none, lz4, zstd
    }
    public var name: String
    public var compression: Compression
    /// A whole-key bloom filter in the memtable: speeds up point gets that miss, costs a
    /// filter insert per write. Only worth it on families read with `get` on a hot path.
    public var memtableBloom: Bool
    /// Memtable inserts start from where the previous insert into this family went
    /// (RocksDB's `memtable_insert_with_hint_prefix_extractor` with one empty prefix for all
    /// keys), climbing the skiplist only as far as the new key is away. Worth it where a
    /// batch puts many keys in ascending order that are scattered over the family: the
    /// default reuses the last position only for the very next key. Ignored by RocksDB for
    /// writes that share a write group with another thread's (those insert concurrently).
    public var insertHint: Bool
    /// A put of a key already in the active memtable overwrites the value there if the new
    /// one is no longer (RocksDB's `inplace_update_support`) instead of adding a version, so
    /// the memtable holds about one entry per key. The price: reads of this family through a
    /// snapshot or an iterator are not point-in-time (a later overwrite shows through, and an
    /// iterator may see a value while it is being overwritten), and the database gives up
    /// concurrent memtable inserts (RocksDB refuses both together). Only for a family read by
    /// point gets of the one thread that writes it, and by flushes and checkpoints (which
    /// read immutable memtables).
    public var inPlaceUpdates: Bool

    public init(
        name: String, compression: Compression = .lz4, memtableBloom: Bool = true, insertHint: Bool = false,
        inPlaceUpdates: Bool = false
    ) {
        self.name = name
        self.compression = compression
        self.memtableBloom = memtableBloom
        self.insertHint = insertHint
        self.inPlaceUpdates = inPlaceUpdates
    }
}

/// An open RocksDB instance with column families: the only owner of the C `rocksdb_t`.
///
/// `@unchecked Sendable`: RocksDB documents `DB` as safe for concurrent use from many threads
/// without external synchronisation; the option objects held here are read-only after open,
/// and the handle table is immutable after `init`. Closed in `deinit` (handles first, then
/// the database, then the options: column family handles must be released before the
/// database closes, and the options it was opened with outlive it).
public final class RocksDB: @unchecked Sendable {
    public let path: String
    let db: OpaquePointer
    private let dbOptions: OpaquePointer
    private let cfOptions: [OpaquePointer]
    let cfHandles: [OpaquePointer]
    private let cfByName: [String: RocksDBColumnFamily]
    let readOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let asyncWriteOptions: OpaquePointer
    private let unloggedWriteOptions: OpaquePointer

    /// The column families the database has, in open order (always includes "default").
    public let columnFamilies: [RocksDBColumnFamily]

    /// Opens (creating if `createIfMissing`) the database at `path` with at least the column
    /// families in `columnFamilies`. Column families already on disk but not named are opened
    /// with default options (RocksDB refuses to open otherwise).
    ///
    /// - Throws: `RocksDBError` with code `.alreadyInUse` if another process holds the LOCK.
    /// - Parameter memtableBytesMax: a bound on the memtables of all column families together
    ///   (RocksDB's `db_write_buffer_size`): past it the largest is flushed. nil: only each
    ///   family's own bound (64 MiB, two of them).
    public init(
        path: String, columnFamilies wanted: [RocksDBColumnFamilyOptions], createIfMissing: Bool = true,
        memtableBytesMax: Int? = nil
    ) throws(RocksDBError) {
        self.path = path
        let dbOptions = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(dbOptions, createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(dbOptions, 1)
        rocksdb_options_set_paranoid_checks(dbOptions, 1)
        rocksdb_options_set_keep_log_file_num(dbOptions, 4)
        rocksdb_options_increase_parallelism(dbOptions, 2)
        if let memtableBytesMax { rocksdb_options_set_db_write_buffer_size(dbOptions, memtableBytesMax) }
        // Writes made without the WAL (`write(_:sync:logged: false)`: the state, whose WAL is
        // the entry log) reach disk only by flushes. Atomic flush switches and commits the
        // memtables of every family together, so after a crash all families stand at the same
        // write (docs/adr/0010-write-path-v2.md).
        rocksdb_options_set_atomic_flush(dbOptions, 1)
        // In-place updates need memtable inserts made one write group at a time. That costs
        // our writers nothing: RocksDB never groups a write through the WAL (`log`) with one
        // without (the state), and each kind comes from one thread.
        if wanted.contains(where: \.inPlaceUpdates) { rocksdb_options_set_allow_concurrent_memtable_write(dbOptions, 0) }
        // Point reads dominate applying (the state machine reads each key it writes, mostly
        // misses for new keys): full bloom filters in SSTs and a whole-key bloom filter in the
        // memtable turn most misses into one filter probe; one shared 64 MiB block cache.
        let table = rocksdb_block_based_options_create()!
        rocksdb_block_based_options_set_filter_policy(table, rocksdb_filterpolicy_create_bloom_full(10))
        let cache = rocksdb_cache_create_lru(64 << 20)!
        rocksdb_block_based_options_set_block_cache(table, cache)
        rocksdb_options_set_block_based_table_factory(dbOptions, table)
        rocksdb_block_based_options_destroy(table)  // the factory holds copies
        rocksdb_cache_destroy(cache)  // the table options hold a reference

        var names = ["default"]
        if let existing = try? RocksDB.listColumnFamilies(path: path) {
            for n in existing where !names.contains(n) { names.append(n) }
        }
        for w in wanted where !names.contains(w.name) { names.append(w.name) }

        var cfOptions: [OpaquePointer] = []
        // On a failure, the options made so far are destroyed with the database's.
        func destroyOptions() {
            cfOptions.forEach { rocksdb_options_destroy($0) }
            rocksdb_options_destroy(dbOptions)
        }
        for name in names {
            let w = wanted.first { $0.name == name } ?? RocksDBColumnFamilyOptions(name: name)
            var o = rocksdb_options_create_copy(dbOptions)!
            if w.insertHint {
                // Not in the C API's setters; its options-string parser knows the field.
                let hinted = rocksdb_options_create()!
                do {
                    try withRocksDBError("options for column family \(name)") { err in
                        rocksdb_get_options_from_string(
                            o, "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.0", hinted, err)
                    }
                } catch {
                    rocksdb_options_destroy(hinted)
                    rocksdb_options_destroy(o)
                    destroyOptions()
                    throw error
                }
                rocksdb_options_destroy(o)
                o = hinted
            }
            let compression = w.compression
            if w.inPlaceUpdates { rocksdb_options_set_inplace_update_support(o, 1) }
            if w.memtableBloom {
                rocksdb_options_set_memtable_whole_key_filtering(o, 1)
                rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.05)
            }
            switch compression {
            case .none: rocksdb_options_set_compression(o, Int32(rocksdb_no_compression))
            case .lz4: rocksdb_options_set_compression(o, Int32(rocksdb_lz4_compression))
            case .zstd:
                rocksdb_options_set_compression(o, Int32(rocksdb_zstd_compression))
                rocksdb_options_set_bottommost_compression(o, Int32(rocksdb_zstd_compression))
            }
            cfOptions.append(o)
        }
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let optionPointers: [OpaquePointer?] = cfOptions
        let constNames: [UnsafePointer<CChar>?] = cNames.map { UnsafePointer($0) }
        let opened: OpaquePointer?
        do {
            opened = try withRocksDBError("open \(path)") { err in
                rocksdb_open_column_families(
                    dbOptions, path, Int32(names.count), constNames, optionPointers, &handles, err)
            }
        } catch {
            destroyOptions()
            throw error
        }
        guard let opened, handles.allSatisfy({ $0 != nil }) else {
            destroyOptions()
            throw RocksDBError(code: .other, operation: "open \(path)", message: "open returned no handle")
        }
        self.db = opened
        self.dbOptions = dbOptions
        self.cfOptions = cfOptions
        self.cfHandles = handles.map { $0! }
        var byName: [String: RocksDBColumnFamily] = [:]
        var list: [RocksDBColumnFamily] = []
        for (i, n) in names.enumerated() {
            let cf = RocksDBColumnFamily(slot: i, name: n)
            byName[n] = cf
            list.append(cf)
        }
        self.cfByName = byName
        self.columnFamilies = list
        self.readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        self.syncWriteOptions = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(syncWriteOptions, 1)
        self.asyncWriteOptions = rocksdb_writeoptions_create()!
        self.unloggedWriteOptions = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_disable_WAL(unloggedWriteOptions, 1)
    }

    deinit {
        cfHandles.forEach { rocksdb_column_family_handle_destroy($0) }
        rocksdb_close(db)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWriteOptions)
        rocksdb_writeoptions_destroy(asyncWriteOptions)
        rocksdb_writeoptions_destroy(unloggedWriteOptions)
        cfOptions.forEach { rocksdb_options_destroy($0) }
        rocksdb_options_destroy(dbOptions)
    }

    /// Turns off RocksDB's per-thread perf counters (`PerfLevel::kEnableCount` by default) on
    /// the calling thread: with them on, every memtable key comparison updates a thread-local
    /// `perf_context` through `__tls_get_addr` (~8 % of apply time in a profile). The level is
    /// thread-local, so this is called at each read/write entry point (a TLS store).
    static func disablePerfCounters() { rocksdb_set_perf_level(Int32(rocksdb_disable)) }

    /// The column families stored at `path`. Throws if there is no database there.
    public static func listColumnFamilies(path: String) throws(RocksDBError) -> [String] {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        var count = 0
        let list = try withRocksDBError("list column families \(path)") { err in
            rocksdb_list_column_families(options, path, &count, err)
        }
        guard let list else { return [] }
        defer { rocksdb_list_column_families_destroy(list, count) }
        return (0..<count).compactMap { list[$0].map { String(cString: $0) } }
    }

    /// The column family called `name`, if the database has one.
    public func columnFamily(_ name: String) -> RocksDBColumnFamily? { cfByName[name] }

    func handle(_ cf: RocksDBColumnFamily) -> OpaquePointer {
        precondition(cf.slot < cfHandles.count && columnFamilies[cf.slot].name == cf.name,
                     "column family \(cf.name) is not from database \(path)")
        return cfHandles[cf.slot]
    }

    /// The value at `key`, or nil if absent. Reads through `snapshot` when given.
    public func get(
        _ cf: RocksDBColumnFamily, _ key: [UInt8], snapshot: RocksDBReadSnapshot? = nil
    ) throws(RocksDBError) -> [UInt8]? {
        let h = handle(cf)
        RocksDB.disablePerfCounters()
        guard cf.keyPrefix.isEmpty else {
            // The stored key assembled on the stack: point reads are the hot path of applying.
            let count = cf.keyPrefix.count + key.count
            return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { (stored) throws(RocksDBError) -> [UInt8]? in
                _ = stored.initialize(fromContentsOf: cf.keyPrefix)
                _ = UnsafeMutableBufferPointer(rebasing: stored[cf.keyPrefix.count...]).initialize(fromContentsOf: key)
                let value = try get(h, cf.name, UnsafeBufferPointer(stored), snapshot: snapshot)
                guard let value, cf.sealer != nil else { return value }
                return try cf.openedValue(value, storedKey: Array(stored))
            }
        }
        let value = try key.withUnsafeBufferPointer { (k) throws(RocksDBError) -> [UInt8]? in
            try get(h, cf.name, k, snapshot: snapshot)
        }
        guard let value, cf.sealer != nil else { return value }
        return try cf.openedValue(value, storedKey: key)
    }

    /// The values at `keys` (nil: absent), in their order, read in one batch: RocksDB's
    /// batched MultiGet takes one view of the memtables and files for all of them and probes
    /// their filters and blocks together, which is cheaper per key than `get` for a batch of
    /// point reads (the records an apply's puts replace, `RecordPrefetch`). Reads the latest state.
    public func multiGet(_ cf: RocksDBColumnFamily, _ keys: [[UInt8]]) throws(RocksDBError) -> [[UInt8]?] {
        guard !keys.isEmpty else { return [] }
        let h = handle(cf)
        RocksDB.disablePerfCounters()
        var values = [OpaquePointer?](repeating: nil, count: keys.count)
        var errors = [UnsafeMutablePointer<CChar>?](repeating: nil, count: keys.count)
        defer {
            values.forEach { if let v = $0 { rocksdb_pinnableslice_destroy(v) } }
            errors.forEach { if let e = $0 { rocksdb_free(e) } }
        }
        // All stored keys (prefix and key) in one buffer, so that every pointer handed to
        // RocksDB is valid for the call.
        var flat: [UInt8] = []
        flat.reserveCapacity(keys.reduce(0) { $0 + cf.keyPrefix.count + $1.count })
        var sizes: [Int] = []
        sizes.reserveCapacity(keys.count)
        for key in keys {
            flat.append(contentsOf: cf.keyPrefix)
            flat.append(contentsOf: key)
            sizes.append(cf.keyPrefix.count + key.count)
        }
        flat.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(sizes.count)
            var offset = 0
            for size in sizes {
                pointers.append(base + offset)
                offset += size
            }
            rocksdb_batched_multi_get_cf(db, readOptions, h, keys.count, pointers, sizes, &values, &errors, false)
        }
        var out: [[UInt8]?] = []
        out.reserveCapacity(keys.count)
        for i in keys.indices {
            if let e = errors[i] {
                let message = String(cString: e)
                throw RocksDBError(code: RocksDBError.classify(message), operation: "multiGet", columnFamily: cf.name, message: message)
            }
            guard let v = values[i] else {
                out.append(nil)
                continue
            }
            var length = 0
            guard let data = rocksdb_pinnableslice_value(v, &length) else {
                out.append([])
                continue
            }
            let value = data.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
            out.append(cf.sealer == nil ? value : try cf.openedValue(value, storedKey: cf.storedKey(keys[i])))
        }
        return out
    }

    private func get(
        _ h: OpaquePointer, _ name: String, _ key: UnsafeBufferPointer<UInt8>, snapshot: RocksDBReadSnapshot?
    ) throws(RocksDBError) -> [UInt8]? {
        var length = 0
        if let snapshot { precondition(snapshot.db === self, "snapshot from another database") }
        let options = snapshot?.readOptions ?? readOptions
        let value = try withRocksDBError("get", columnFamily: name) { err in
            key.withMemoryRebound(to: CChar.self) { k in
                rocksdb_get_cf(db, options, h, k.baseAddress, k.count, &length, err)
            }
        }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return value.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// Applies `batch` atomically. With `sync`, returns only after the WAL is fsynced. Without
    /// `logged`, the batch skips the WAL (`sync` must then be false): it reaches disk with the
    /// next flush of its families, and a crash before that loses it, whole.
    public func write(_ batch: RocksDBWriteBatch, sync: Bool, logged: Bool = true) throws(RocksDBError) {
        precondition(batch.db === self, "write batch from another database")
        precondition(logged || !sync, "a write without the WAL cannot be synced")
        RocksDB.disablePerfCounters()
        let options = !logged ? unloggedWriteOptions : sync ? syncWriteOptions : asyncWriteOptions
        do {
            try withRocksDBError(sync ? "write(sync)" : logged ? "write" : "write(no WAL)") { err in
                rocksdb_write(db, options, batch.batch, err)
            }
        } catch {
            // RocksDB names the file only for some failures ("While fsync: a directory"):
            // name the database (built only on failure, never on the write path).
            throw RocksDBError(code: error.code, operation: "\(error.operation) to \(path)", columnFamily: error.columnFamily, message: error.message)
        }
    }

    /// A new, empty write batch for this database.
    public func makeWriteBatch() -> RocksDBWriteBatch { RocksDBWriteBatch(db: self) }

    /// Writes a single key (convenience over a one-entry batch).
    public func put(_ cf: RocksDBColumnFamily, _ key: [UInt8], _ value: [UInt8], sync: Bool) throws(RocksDBError) {
        let b = makeWriteBatch()
        b.put(cf, key, value)
        try write(b, sync: sync)
    }

    /// An iterator over `cf` restricted to `[lowerBound, upperBound)`.
    public func makeIterator(
        _ cf: RocksDBColumnFamily, lowerBound: [UInt8]? = nil, upperBound: [UInt8]? = nil,
        snapshot: RocksDBReadSnapshot? = nil
    ) -> RocksDBIterator {
        RocksDBIterator(db: self, cf: cf, lowerBound: lowerBound, upperBound: upperBound, snapshot: snapshot)
    }

    /// A consistent read view of the whole database as of now.
    public func makeSnapshot() -> RocksDBReadSnapshot { RocksDBReadSnapshot(db: self) }

    /// Flushes the memtables of `cfs` (all column families if nil) to SST files as ONE atomic
    /// flush (see `atomic_flush` in `init`) and waits: after a crash, either every family keeps
    /// everything written before this call, or the flush never happened for any of them.
    public func flush(_ cfs: [RocksDBColumnFamily]? = nil) throws(RocksDBError) {
        var handles: [OpaquePointer?] = []
        for cf in cfs ?? columnFamilies where !handles.contains(handle(cf)) { handles.append(handle(cf)) }
        // Named by the database, as a failed write is: RocksDB's message may name no file.
        try withRocksDBError("flush of \(path)") { err in
            handles.withUnsafeBufferPointer { h in
                fauna_rocksdb_flush_families(db, h.baseAddress, Int32(h.count), err)
            }
        }
    }

    /// A RocksDB property (e.g. "rocksdb.estimate-num-keys"), or nil if unknown.
    public func property(_ name: String, of cf: RocksDBColumnFamily) -> String? {
        guard let value = rocksdb_property_value_cf(db, handle(cf), name) else { return nil }
        defer { rocksdb_free(value) }
        return String(cString: value)
    }

    /// Creates a checkpoint (hard links of the SST files plus copies of the rest) in `directory`,
    /// which must not exist yet. Flushes memtables first so the checkpoint needs no WAL replay.
    public func createCheckpoint(at directory: String) throws(RocksDBError) {
        let cp = try withRocksDBError("checkpoint \(directory)") { err in rocksdb_checkpoint_object_create(db, err) }
        guard let cp else {
            throw RocksDBError(code: .other, operation: "checkpoint \(directory)", message: "no checkpoint object")
        }
        defer { rocksdb_checkpoint_object_destroy(cp) }
        try withRocksDBError("checkpoint \(directory)") { err in rocksdb_checkpoint_create(cp, directory, 0, err) }
    }
}

/// A consistent read view (RocksDB snapshot). Released in `deinit`.
public final class RocksDBReadSnapshot {
    let db: RocksDB
    let snapshot: OpaquePointer
    let readOptions: OpaquePointer

    init(db: RocksDB) {
        self.db = db
        self.snapshot = rocksdb_create_snapshot(db.db)
        self.readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        rocksdb_readoptions_set_snapshot(readOptions, snapshot)
    }

    deinit {
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_release_snapshot(db.db, snapshot)
    }
}
