import FaunaKV

/// What the record cache holds and how it did, as of the last applied chunk
/// (`Store.recordCacheStats`).
public struct RecordCacheStats: Sendable, Hashable {
    /// Reads of a current record the cache answered (a record, or a cached "absent").
    public var hits: UInt64 = 0
    /// Reads of a current record that went to RocksDB.
    public var misses: UInt64 = 0
    /// Keys cached now.
    public var entries: UInt64 = 0
    /// Bytes held now: every cached key and value allocation and the cache's own tables.
    public var bytes: UInt64 = 0
    /// The bound on `bytes` (`Store.Options.recordCacheBytes`; 0: the cache is off).
    public var budgetBytes: UInt64 = 0

    public init() {}

    /// hits / (hits + misses), or 0 before the first read.
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
}

/// A bounded cache of current KV records (key → `KVRecord`, or "absent") for the apply path:
/// the state machine reads the record of every key it writes, and a RocksDB get for that was a
/// fifth of the applying thread.
///
/// It mirrors the committed `kv` family for the keys it holds. The store fills it only on the
/// applying thread, under `applyLock`: with records read from RocksDB while nothing can write
/// them (`CachedKVBackend`), and with a chunk's record writes after its WriteBatch was written
/// (`Store.finish`). Nothing else reads it.
///
/// Memory: `bytes` counts what the cache keeps alive — each key's and value's heap allocation
/// (Swift's 32-byte array header plus the bytes, as glibc's malloc rounds it) and the node
/// and hash tables at their allocated capacity — and is at most `budgetBytes` after every
/// call: the tables grow only if the budget has room for them, each added entry evicts least
/// recently used ones as needed, and what does not fit even into an empty cache is not kept.
/// Eviction is LRU (a doubly linked list through the node table); lookups are open addressing
/// with linear probing over a power-of-two table of (node index, hash) buckets, at most half
/// full, so probing reads one sequential run and a node only when its hash matches.
///
/// LRU's known weak spot applies: keys rewritten in a cycle longer than the cache holds (every
/// key once, in the same order, more keys than fit) all miss, each evicted just before its
/// turn.
///
/// Not thread-safe: the owner serialises every call.
final class RecordCache {
    /// One cached key. Free nodes have an empty key, no record, and `next` links the free list.
    private struct Node {
        var key: [UInt8]
        /// nil: the key is absent (a cached delete).
        var record: KVRecord?
        /// The key's hash, truncated (the table is far smaller than 2^31 buckets).
        var hash: Int32
        /// Bytes of the key's and value's allocations (a value is at most 1 MiB).
        var charge: Int32
        /// Neighbours in recency order (-1: none); `next` is toward the least recently used.
        var prev: Int32
        var next: Int32
    }

    /// What a lookup found.
    enum Lookup: Equatable {
        /// Not cached: read RocksDB.
        case miss
        /// The current record (nil: the key does not exist).
        case hit(KVRecord?)
    }

    /// A hash table slot: a node index (-1: empty) and that node's hash.
    private struct Bucket {
        var node: Int32
        var hash: Int32
        static let empty = Bucket(node: -1, hash: 0)
    }

    // The owner serialises every call, so the runtime's exclusivity checks on these class
    // properties (an access-set insert per array access) only cost time.
    let budgetBytes: Int
    @exclusivity(unchecked) private var nodes: ContiguousArray<Node> = []
    /// A power of two long, at least twice `nodeLimit`.
    @exclusivity(unchecked) private var table: ContiguousArray<Bucket> = []
    @exclusivity(unchecked) private var head: Int32 = -1  // most recently used
    @exclusivity(unchecked) private var tail: Int32 = -1  // least recently used
    @exclusivity(unchecked) private var freeList: Int32 = -1
    /// Nodes the tables are sized for (`nodes` never grows beyond it).
    @exclusivity(unchecked) private var nodeLimit = 0
    @exclusivity(unchecked) private(set) var count = 0
    /// The sum of the entries' charges.
    @exclusivity(unchecked) private(set) var dataBytes = 0
    @exclusivity(unchecked) private(set) var hits: UInt64 = 0
    @exclusivity(unchecked) private(set) var misses: UInt64 = 0

    /// The smallest node table allocated (entries).
    static let initialCapacity = 16

    init(budgetBytes: Int) {
        precondition(budgetBytes > 0, "record cache budget \(budgetBytes)")
        self.budgetBytes = budgetBytes
    }

    /// Bytes held: the entries' allocations plus both tables.
    var bytes: Int { dataBytes + tableBytes }

    var stats: RecordCacheStats {
        var s = RecordCacheStats()
        s.hits = hits
        s.misses = misses
        s.entries = UInt64(count)
        s.bytes = UInt64(bytes)
        s.budgetBytes = UInt64(budgetBytes)
        return s
    }

    /// The heap bytes of an array with `capacity` elements of one byte: nothing for an empty
    /// array (Swift shares one empty storage), else a 32-byte header plus the bytes in a glibc
    /// malloc chunk (8 bytes of its own, 16-byte granules, 32 at least).
    static func allocationBytes(capacity: Int) -> Int {
        guard capacity > 0 else { return 0 }
        return max(32, (32 + capacity + 8 + 15) & ~15)
    }

    @inline(__always) private static func hash(_ key: [UInt8]) -> Int32 {
        var hasher = Hasher()
        hashBytes(key, into: &hasher)
        return Int32(truncatingIfNeeded: hasher.finalize())
    }

    @inline(__always) private static func bucket(_ hash: Int32, _ mask: Int) -> Int { Int(UInt32(bitPattern: hash)) & mask }

    // MARK: Reads and writes

    /// The cached state of `key`, counted as a hit or a miss; a hit becomes the most recently
    /// used entry.
    func lookup(_ key: [UInt8]) -> Lookup {
        guard count > 0, let node = find(key, hash: Self.hash(key)) else {
            misses += 1
            return .miss
        }
        hits += 1
        moveToFront(node)
        return .hit(nodes[Int(node)].record)
    }

    /// Whether `key` is cached, without counting a hit or a miss or changing its recency (a
    /// look ahead: the read that follows is counted).
    func contains(_ key: [UInt8]) -> Bool {
        count > 0 && find(key, hash: Self.hash(key)) != nil
    }

    /// Counts `n` reads that went to RocksDB without asking the cache (`RecordPrefetch` asked
    /// `contains` first).
    func countMisses(_ n: Int) { misses += UInt64(n) }

    /// Caches `record` as the current state of `key` (nil: absent), replacing what was cached,
    /// as the most recently used entry, evicting the least recently used ones to stay within
    /// the budget. If it cannot fit even alone, the key is not cached at all (an older entry
    /// of it is removed: the cache must never answer with a stale record).
    func set(_ key: [UInt8], _ record: KVRecord?) {
        let hash = Self.hash(key)
        let existing = count > 0 ? find(key, hash: hash) : nil
        // Replacing an entry keeps its key (the same bytes).
        let keyBytes = Self.allocationBytes(capacity: existing.map { nodes[Int($0)].key.capacity } ?? key.capacity)
        let charge = keyBytes + Self.allocationBytes(capacity: record?.value.capacity ?? 0)
        guard charge + tableBytes <= budgetBytes else {
            if let existing { remove(existing) }
            return
        }
        let node: Int32
        if let existing {
            node = existing
            dataBytes += charge - Int(nodes[Int(node)].charge)
            nodes[Int(node)].record = record
            nodes[Int(node)].charge = Int32(charge)
            moveToFront(node)
        } else {
            guard let free = freeNode(for: charge) else { return }
            node = free
            nodes[Int(node)] = Node(key: key, record: record, hash: hash, charge: Int32(charge), prev: -1, next: -1)
            dataBytes += charge
            count += 1
            insertIntoTable(node)
            linkAtFront(node)
        }
        // Least recently used first; `node` is the most recent, so it goes last (if the tables
        // came out larger than estimated), and the tables with it if even they do not fit.
        while bytes > budgetBytes && count > 0 { remove(tail) }
        if bytes > budgetBytes { removeAll() }
    }

    /// Forgets every entry and frees the tables (the counters stay).
    func removeAll() {
        nodes = []
        table = []
        nodeLimit = 0
        head = -1
        tail = -1
        freeList = -1
        count = 0
        dataBytes = 0
    }

    // MARK: Room

    /// Bytes of the two tables as allocated.
    private var tableBytes: Int {
        nodes.capacity * MemoryLayout<Node>.stride + table.capacity * MemoryLayout<Bucket>.stride
    }

    /// What the tables may take for `nodeLimit` nodes: their elements, plus what the allocator
    /// may add to each (glibc maps blocks of 128 KiB and more in whole pages, and Swift counts
    /// the rest as capacity; smaller ones it rounds to 16 bytes).
    private static func tableBytesMax(nodeLimit: Int) -> Int {
        func allocated(_ bytes: Int) -> Int { bytes + (bytes >= 128 << 10 ? 4096 : 16) }
        return allocated(nodeLimit * MemoryLayout<Node>.stride) + allocated(buckets(for: nodeLimit) * MemoryLayout<Bucket>.stride)
    }

    /// A node for a new entry of `charge` bytes: a free one, or a new one if the tables may grow
    /// within the budget, or else the least recently used entry's. nil: the cache is empty and
    /// its tables cannot grow.
    private func freeNode(for charge: Int) -> Int32? {
        if freeList < 0 && nodes.count == nodeLimit {
            let limit = max(Self.initialCapacity, nodeLimit * 2)
            if dataBytes + charge + Self.tableBytesMax(nodeLimit: limit) <= budgetBytes {
                grow(to: limit)
            } else if count > 0 {
                remove(tail)
            } else {
                return nil
            }
        }
        if freeList >= 0 {
            let node = freeList
            freeList = nodes[Int(node)].next
            return node
        }
        nodes.append(Node(key: [], record: nil, hash: 0, charge: 0, prev: -1, next: -1))
        return Int32(nodes.count - 1)
    }

    /// Buckets for `nodeLimit` nodes: a power of two, at least twice it (at most half full).
    private static func buckets(for nodeLimit: Int) -> Int {
        var n = 1
        while n < 2 * nodeLimit { n <<= 1 }
        return n
    }

    private func grow(to limit: Int) {
        nodes.reserveCapacity(limit)
        nodeLimit = limit
        table = ContiguousArray(repeating: .empty, count: Self.buckets(for: limit))
        var node = head
        while node >= 0 {
            insertIntoTable(node)
            node = nodes[Int(node)].next
        }
    }

    private func remove(_ node: Int32) {
        let i = Int(node)
        removeFromTable(node)
        unlink(node)
        dataBytes -= Int(nodes[i].charge)
        count -= 1
        nodes[i] = Node(key: [], record: nil, hash: 0, charge: 0, prev: -1, next: freeList)
        freeList = node
    }

    // MARK: Hash table

    /// The node holding `key`, or nil.
    private func find(_ key: [UInt8], hash: Int32) -> Int32? {
        let mask = table.count - 1
        var b = Self.bucket(hash, mask)
        while true {
            let bucket = table[b]
            if bucket.node < 0 { return nil }
            if bucket.hash == hash {
                let n = Int(bucket.node)
                if nodes[n].key.count == key.count && compareBytes(nodes[n].key, key) == 0 { return bucket.node }
            }
            b = (b + 1) & mask
        }
    }

    private func insertIntoTable(_ node: Int32) {
        let mask = table.count - 1
        let hash = nodes[Int(node)].hash
        var b = Self.bucket(hash, mask)
        while table[b].node >= 0 { b = (b + 1) & mask }
        table[b] = Bucket(node: node, hash: hash)
    }

    /// Empties `node`'s bucket and shifts later entries of the same probe run back into the
    /// hole (deletion without tombstones in linear probing).
    private func removeFromTable(_ node: Int32) {
        let mask = table.count - 1
        var hole = Self.bucket(nodes[Int(node)].hash, mask)
        while table[hole].node != node { hole = (hole + 1) & mask }
        var b = (hole + 1) & mask
        while table[b].node >= 0 {
            let ideal = Self.bucket(table[b].hash, mask)
            // The entry at b may move to the hole if the hole lies on its probe path
            // (between its ideal bucket and b, cyclically).
            if (b &- ideal) & mask >= (b &- hole) & mask {
                table[hole] = table[b]
                hole = b
            }
            b = (b + 1) & mask
        }
        table[hole] = .empty
    }

    // MARK: Recency list

    private func unlink(_ node: Int32) {
        let (prev, next) = (nodes[Int(node)].prev, nodes[Int(node)].next)
        if prev >= 0 { nodes[Int(prev)].next = next } else { head = next }
        if next >= 0 { nodes[Int(next)].prev = prev } else { tail = prev }
        nodes[Int(node)].prev = -1
        nodes[Int(node)].next = -1
    }

    private func linkAtFront(_ node: Int32) {
        nodes[Int(node)].prev = -1
        nodes[Int(node)].next = head
        if head >= 0 { nodes[Int(head)].prev = node } else { tail = node }
        head = node
    }

    private func moveToFront(_ node: Int32) {
        guard head != node else { return }
        unlink(node)
        linkAtFront(node)
    }

    // MARK: Tests

    /// The keys from most to least recently used, and a check of the structure's invariants
    /// (tests only: walks everything).
    func checkedKeysByRecency() -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var node = head
        var prev: Int32 = -1
        var charges = 0
        while node >= 0 {
            let n = nodes[Int(node)]
            precondition(n.prev == prev, "record cache: broken recency list")
            precondition(find(n.key, hash: n.hash) == node, "record cache: \(n.key) not found by its hash")
            keys.append(n.key)
            charges += Int(n.charge)
            prev = node
            node = n.next
        }
        precondition(prev == tail && keys.count == count && charges == dataBytes, "record cache: counts disagree")
        precondition(table.filter { $0.node >= 0 }.count == count, "record cache: table entries and count disagree")
        precondition(table.allSatisfy { $0.node < 0 || nodes[Int($0.node)].hash == $0.hash }, "record cache: stale hash in the table")
        precondition(bytes <= budgetBytes, "record cache: \(bytes) bytes over the budget \(budgetBytes)")
        return keys
    }
}

/// The state machine's meta values the apply path reads (`KVBackend.metaValue`), mirrored
/// like the records: filled by a read (a value, or "absent"), kept current by `Store.finish`
/// for the keys it holds, read by nothing else, under `applyLock`. A put with a client session
/// reads its session record twice (`KVStateMachine.sessionOutcome`, `recordSession`), and from
/// RocksDB's memtable that was 7% of a follower's CPU at 64 clients (docs/PERFORMANCE.md).
/// Sessions are few (10,000 by default), so the cache is a plain dictionary bounded by
/// `entriesMax` and `bytesMax` that starts over empty when full, and keeps no value over
/// `valueBytesMax`.
final class MetaCache {
    static let entriesMax = 16_384
    static let bytesMax = 4 << 20
    static let valueBytesMax = 1024
    /// A key's and its value's allocations and the dictionary slot, roughly.
    static func charge(_ key: [UInt8], _ value: [UInt8]?) -> Int { 96 + key.count + (value?.count ?? 0) }

    @exclusivity(unchecked) private var values: [HashedBytes: [UInt8]?] = [:]
    @exclusivity(unchecked) private(set) var bytes = 0

    var count: Int { values.count }

    /// The cached value: `.some(nil)` for a key known absent; nil if not cached.
    func lookup(_ key: HashedBytes) -> [UInt8]?? { values[key] }

    /// Caches what a read of the committed state returned for `key`.
    func fill(_ key: HashedBytes, _ value: [UInt8]?) {
        guard (value?.count ?? 0) <= Self.valueBytesMax else { return }
        let charge = Self.charge(key.bytes, value)
        if values[key] == nil && (values.count >= Self.entriesMax || bytes + charge > Self.bytesMax) { removeAll() }
        if let old = values.updateValue(value, forKey: key) { bytes -= Self.charge(key.bytes, old) }
        bytes += charge
    }

    /// A written chunk set `key` to `value` (nil: deleted): updates it if cached.
    func update(_ key: HashedBytes, _ value: [UInt8]?) {
        guard let old = values[key] else { return }
        bytes -= Self.charge(key.bytes, old)
        guard (value?.count ?? 0) <= Self.valueBytesMax else {
            values[key] = nil
            return
        }
        values[key] = .some(value)
        bytes += Self.charge(key.bytes, value)
    }

    func removeAll() {
        values.removeAll(keepingCapacity: true)
        bytes = 0
    }
}

/// The apply path's `KVBackend`: `base` (the committed state in RocksDB) with point reads of
/// current records answered by the chunk's `prefetched` records (`RecordPrefetch`), then by
/// `cache` where it can. A record the cache misses is read from RocksDB and cached, and so is
/// a key found absent: the auth switch, read by every write with a principal and absent while
/// auth is off, would otherwise be a RocksDB get per put. Meta values go through `meta` the
/// same way. Every other read goes to `base`. Without a cache (`recordCacheBytes` 0), reads
/// the prefetched records can not answer go to `base`.
///
/// Only for reads of the committed state while nothing else writes `kv`: the store makes one
/// per chunk it prepares, under `applyLock`. Never through a RocksDB snapshot.
struct CachedKVBackend: KVBackend {
    let base: RocksDBKVBackend
    let cache: RecordCache?
    let meta: MetaCache?
    var prefetched: [HashedBytes: KVRecord?] = [:]

    func record(forKey key: [UInt8]) throws -> KVRecord? {
        if !prefetched.isEmpty, let found = prefetched[HashedBytes(key)] { return found }
        guard let cache else { return try base.record(forKey: key) }
        if case .hit(let record) = cache.lookup(key) { return record }
        let record = try base.record(forKey: key)
        cache.set(key, record)
        return record
    }

    func scanRecords(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ record: KVRecord) throws -> Bool
    ) throws {
        try base.scanRecords(in: range, reverse: reverse, body)
    }

    func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion? {
        try base.historyVersion(forKey: key, atOrBefore: revision)
    }

    func scanHistory(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ version: KVHistoryVersion) throws -> Bool
    ) throws {
        try base.scanHistory(in: range, reverse: reverse, body)
    }

    func metaValue(forKey key: [UInt8]) throws -> [UInt8]? {
        guard let meta else { return try base.metaValue(forKey: key) }
        let hashed = HashedBytes(key)
        if let cached = meta.lookup(hashed) { return cached }
        let value = try base.metaValue(forKey: key)
        meta.fill(hashed, value)
        return value
    }

    func scanMeta(in range: KeyRange, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws {
        try base.scanMeta(in: range, body)
    }

    func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws {
        try base.scanSessionsByRecency(body)
    }
}
