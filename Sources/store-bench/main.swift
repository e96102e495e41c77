// store-bench: FaunaStore throughput on this machine's disk (docs/PERFORMANCE.md "Storage").
//
//   flock /tmp/fauna-build.lock swift run -c release --scratch-path .build-release store-bench [OPTIONS]
//
// `store-bench --help` lists the options.
import ArgumentParser
import Crypto
import FaunaKV
import FaunaRaft
import FaunaStore
import Foundation

/// The parts `--only` picks.
enum Part: String, CaseIterable, ExpressibleByArgument {
    case fsync, log, apply, snapshot, seal
}

struct StoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-bench",
        abstract: "FaunaStore throughput on this machine's disk (docs/PERFORMANCE.md \"Storage\").",
        discussion: """
            Measures, in one run on one disk: the raw fsync rate (write 128 B + fdatasync); synced \
            Raft log appends with group commit under 1/16/256 concurrent appenders (log); the write \
            path of single-put entries (apply: the log append, synced per batch, then the unsynced \
            apply of kv, history, journal, effects, Merkle tree and applied index; fresh keys, then \
            the same keys overwritten, then without the audit chain), point gets and range scans; \
            snapshot create, stream and install time (snapshot). Without --only, all but seal run. \
            Build in release mode to measure.
            """)

    @Option(help: "Runs in DIR/store-bench-<pid> (removed at the end); DIR itself is left alone.")
    var dir: String = FileManager.default.temporaryDirectory.path

    @Option(help: "Seconds per timed measurement (fsync, log appends).")
    var seconds: Double = 3.0

    @Option(name: .customLong("snapshot-mib"), help: "MiB of values in the snapshot part's store.")
    var snapshotMiB: Int = 256

    @Option(help: "Run only this part (apply includes the reads; seal: what sealing and opening one value costs, encryption at rest).")
    var only: Part?

    @Option(name: .customLong("apply-batch"), help: "Entries per Store.apply call; above --apply-chunk they are applied in pipelined chunks.")
    var applyBatch: UInt64 = 4096

    @Option(name: .customLong("apply-chunk"), help: "The apply stores' entries per WriteBatch (Store.Options.applyChunkEntries).")
    var applyChunk: Int = Store.Options().applyChunkEntries

    @Option(name: .customLong("record-cache-mib"), help: "The apply stores' record cache, in MiB (0: off).")
    var recordCacheMiB: Int = Store.Options().recordCacheBytes >> 20

    @Flag(help: "The apply stores seal their values (a random master key).")
    var encrypt = false

    @Flag(name: .customLong("no-prefetch"), help: "The apply stores read each replaced record when the state machine reaches it, not in one batch per chunk.")
    var noPrefetch = false

    func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds \(seconds): want 0 < S <= 3600") }
        guard (1...65536).contains(snapshotMiB) else { throw ValidationError("--snapshot-mib \(snapshotMiB): want 1...65536") }
        guard (1...1_000_000).contains(applyBatch) else { throw ValidationError("--apply-batch \(applyBatch): want 1...1000000") }
        guard (1...65536).contains(applyChunk) else { throw ValidationError("--apply-chunk \(applyChunk): want 1...65536") }
        guard (0...65536).contains(recordCacheMiB) else { throw ValidationError("--record-cache-mib \(recordCacheMiB): want 0...65536") }
    }

    /// The run's own directory (made empty, removed at the end).
    var runDir: String { "\(dir)/store-bench-\(getpid())" }

    func run() throws {
        do {
            try runBench(self)
        } catch {
            print("store-bench failed: \(error)")
            throw ExitCode(1)
        }
    }
}

func now() -> Double { Date().timeIntervalSinceReferenceDate }

/// CPU seconds used by the calling thread: less sensitive than wall time to other processes
/// on a shared machine (still sensitive to their cache pressure).
func threadCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// CPU seconds of the whole process (every thread: applying, apply writer, RocksDB's flushes).
func processCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func fmt(_ x: Double) -> String { x >= 100 ? String(Int(x.rounded())) : String(format: "%.2f", x) }

/// write(128 B) + fdatasync in a loop on a file in `dir`: the disk's synced-write rate.
func rawFsyncRate(dir: String, seconds: Double) -> Double {
    let path = dir + "/fsync-probe"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "open \(path)")
    defer { close(fd); unlink(path) }
    let buf = [UInt8](repeating: 1, count: 128)
    var count = 0
    let start = now()
    while now() - start < seconds {
        _ = buf.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        precondition(fdatasync(fd) == 0, "fdatasync")
        count += 1
    }
    return Double(count) / (now() - start)
}

/// Synced log appends of one 128 B entry each from `appenders` threads for `seconds`.
func groupCommitRate(store: Store, appenders: Int, seconds: Double) throws -> (appends: Double, batches: Double) {
    let lock = NSLock()
    nonisolated(unsafe) var next = try store.raftLog.lastIndex() + 1  // guarded by `lock`
    let payload = [UInt8](repeating: 7, count: 128)
    let stopAt = now() + seconds
    let done = DispatchGroup()
    let counter = Counter()
    let before = store.raftLog.writerCounters
    let start = now()
    for _ in 0..<appenders {
        done.enter()
        let t = Thread {
            while now() < stopAt {
                let sem = DispatchSemaphore(value: 0)
                do {
                    try lock.withLock {
                        let e = Entry(term: Term(1), index: next, data: payload)
                        try store.raftLog.submit(RaftLogUpdate(entries: [e])) { _ in sem.signal() }
                        next = next + 1
                    }
                } catch {
                    fatalError("append: \(error)")
                }
                sem.wait()
                counter.add(1)
            }
            done.leave()
        }
        t.stackSize = 256 << 10
        t.start()
    }
    done.wait()
    let elapsed = now() - start
    let after = store.raftLog.writerCounters
    return (Double(counter.value) / elapsed, Double(after.batches - before.batches) / elapsed)
}

final class Counter: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
}

/// "key-" + 12 decimal digits (16 bytes), built without Foundation formatting.
func key(_ i: UInt64) -> [UInt8] {
    var out: [UInt8] = Array("key-".utf8) + [UInt8](repeating: UInt8(ascii: "0"), count: 12)
    var v = i
    for p in stride(from: 15, through: 4, by: -1) {
        out[p] = UInt8(ascii: "0") + UInt8(v % 10)
        v /= 10
    }
    return out
}

func putEntry(_ index: UInt64, key k: [UInt8], value: [UInt8]) -> Entry {
    Entry(term: Term(1), index: LogIndex(index), data: KVProposal(command: .put(KVPut(key: k, value: value))).encoded())
}

func runBench(_ c: StoreBench) throws {
    try? FileManager.default.removeItem(atPath: c.runDir)  // its own: DIR/store-bench-<pid>
    try FileManager.default.createDirectory(atPath: c.runDir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: c.runDir) }
    print("store-bench: dir \(c.runDir), \(c.seconds) s per measurement")

    func wants(_ part: Part) -> Bool { c.only == nil || c.only == part }
    let fsyncRate = rawFsyncRate(dir: c.runDir, seconds: c.seconds)
    print("raw fsync (write 128 B + fdatasync): \(fmt(fsyncRate))/s")

    if wants(.log) {
        let store = try Store(path: c.runDir + "/log")
        defer { store.close() }
        for appenders in [1, 16, 256] {
            let r = try groupCommitRate(store: store, appenders: appenders, seconds: c.seconds)
            print("log appends, synced, group commit, \(appenders) appenders: \(fmt(r.appends))/s "
                  + "(\(fmt(r.appends / fsyncRate))x raw fsync), \(fmt(r.batches)) batches/s, "
                  + "\(fmt(r.appends / max(r.batches, 1))) appends/batch")
        }
    }

    if c.only == .seal { try sealBench() }
    if wants(.apply) { try applyAndReadBench(c) }
    if wants(.snapshot) { try snapshotBench(c) }
}

/// What sealing and opening one value costs (encryption at rest): 120-byte values bound to a
/// 17-byte stored key, as a record of the apply bench.
func sealBench() throws {
    let keyring = try Keyring.new(master: MasterKey(bytes: (0..<32).map { _ in UInt8.random(in: 0 ... 255) }))
    let value = [UInt8](repeating: 0x5A, count: 120)
    let stored = [UInt8](repeating: 7, count: 17)
    let n = 1_000_000
    var sealed: [UInt8] = []
    var start = now()
    for _ in 0..<n { sealed = keyring.seal(value, family: "kv", storedKey: stored) }
    let sealNs = (now() - start) / Double(n) * 1e9
    start = now()
    var total = 0
    for _ in 0..<n { total &+= try keyring.open(sealed, family: "kv", storedKey: stored).count }
    let openNs = (now() - start) / Double(n) * 1e9
    print("seal: \(fmt(sealNs)) ns, open: \(fmt(openNs)) ns per 120-byte value (\(total / n) bytes each)")
    // The same with swift-crypto's one-shot API, which sets the key up on every call: why
    // values go through CAESGCM (ADR 0013).
    let key = SymmetricKey(size: .bits256)
    let nonce = AES.GCM.Nonce()
    let aad = [UInt8](repeating: 1, count: 20)
    start = now()
    for _ in 0..<n { total &+= try AES.GCM.seal(value, using: key, nonce: nonce, authenticating: aad).ciphertext.count }
    print("swift-crypto AES.GCM.seal of the same value: \(fmt((now() - start) / Double(n) * 1e9)) ns")
}

/// Same-run baseline for the apply figure (the machine is shared and noisy): unsynced
/// WriteBatches of `perBatch` plain RocksDB puts (16 B keys in the apply bench's random order,
/// 100 B values) into one column family, through the same wrapper and options family.
func rawRocksDBPutRate(dir: String, count: UInt64, perBatch: UInt64) throws -> Double {
    let db = try RocksDB(path: dir + "/raw-puts", columnFamilies: [RocksDBColumnFamilyOptions(name: "kv")])
    let cf = db.columnFamily("kv")!
    let value = [UInt8](repeating: 0x5A, count: 100)
    let keys = (0..<count).map { key(($0 &* 2_654_435_761) % count) }
    let batch = db.makeWriteBatch()
    let start = now()
    var i = 0
    while i < keys.count {
        batch.clear()
        for k in keys[i..<min(i + Int(perBatch), keys.count)] { batch.put(cf, k, value) }
        try db.write(batch, sync: false)
        i += Int(perBatch)
    }
    return Double(count) / (now() - start)
}

/// Single-put entries `after + 1 ... after + count` in batches of `perBatch`, keys
/// `0..<count` in a scattered order (a different order for each `after`).
func applyBatches(count: UInt64, after: UInt64 = 0, perBatch: UInt64, value: [UInt8]) -> [[Entry]] {
    var batches: [[Entry]] = []
    var index: UInt64 = after + 1
    while index <= after + count {
        let batch = (index..<min(index + perBatch, after + count + 1)).map { i in
            // Entry 1 takes the state to the current level, as in a cluster: every later leaf
            // commits to its effects (two more SHA-256 per put: the value's and the effect leaf's).
            i == 1 ? Entry(term: Term(1), index: LogIndex(1), type: .normal, data: KVProposal(command: .upgradeState(KVStateLevel.current)).encoded())
                : putEntry(i, key: key((i &* 2_654_435_761) % count), value: value)
        }
        batches.append(batch)
        index += UInt64(batch.count)
    }
    return batches
}

func applyAndReadBench(_ c: StoreBench) throws {
    let chunk = UInt64(min(Int(c.applyBatch), c.applyChunk))
    let rawRate = try rawRocksDBPutRate(dir: c.runDir, count: 300_000, perBatch: chunk)
    print("baseline: raw RocksDB puts, unsynced, \(chunk) per WriteBatch, 1 CF, 16 B random-order keys, "
          + "100 B values: \(fmt(rawRate))/s")
    var options = Store.Options()
    options.recordCacheBytes = c.recordCacheMiB << 20
    options.applyChunkEntries = c.applyChunk
    if c.noPrefetch { options.prefetchRecordsFrom = .max }
    if c.encrypt {
        options.masterKey = MasterKey(bytes: (0..<32).map { _ in UInt8.random(in: 0 ... 255) })
        print("encryption at rest: on (values of log, kv, history, effects and meta sealed with AES-256-GCM)")
    }
    let store = try Store(path: c.runDir + "/apply", options: options)
    defer { store.close() }
    let applyCount: UInt64 = 300_000, batchEntries = c.applyBatch
    let value = [UInt8](repeating: 0x5A, count: 100)
    // Entries arrive encoded (the client encoded them): build them before the clock starts.
    var batches = applyBatches(count: applyCount, perBatch: batchEntries, value: value)
    let cpuStart = threadCPU(), processStart = processCPU()
    var start = now()
    // What a node writes per entry: the entry into the log (synced once per batch, as a Ready
    // is), then the apply. The journal is whatever the store keeps of the entry beyond that.
    for batch in batches {
        try store.raftLog.persist(RaftLogUpdate(entries: batch))
        try store.apply(batch, sync: false)
    }
    var elapsed = now() - start
    let cpu = threadCPU() - cpuStart, processCPUUsed = processCPU() - processStart
    batches = []
    print("log + apply, unsynced apply, single-put entries (16 B key, 100 B value; log, kv, history, journal, effects, tree, applied), "
          + "\(batchEntries) per apply call, \(chunk) per WriteBatch"
          + (batchEntries > chunk ? " (pipelined)" : "") + ": \(fmt(Double(applyCount) / elapsed))/s (\(applyCount) entries, "
          + "\(fmt(Double(applyCount) / elapsed / rawRate))x raw puts; "
          + "\(fmt(Double(applyCount) / cpu)) per CPU-second of the applying thread, "
          + "\(fmt(Double(applyCount) / processCPUUsed)) per CPU-second of all threads)")
    printCacheStats(store, after: "fresh keys")

    // The same keys again: every put now replaces a record, which moves to history (ADR 0008).
    var overwrites = applyBatches(count: applyCount, after: applyCount, perBatch: batchEntries, value: value)
    let overwriteStart = now()
    for batch in overwrites {
        try store.raftLog.persist(RaftLogUpdate(entries: batch))
        try store.apply(batch, sync: false)
    }
    let overwriteElapsed = now() - overwriteStart
    overwrites = []
    print("log + apply, single-put entries that overwrite (the same \(applyCount) keys again, each "
          + "moving the old record to history): \(fmt(Double(applyCount) / overwriteElapsed))/s")
    printCacheStats(store, after: "overwrites")

    // The audit chain's cost: the same entries into a store without journal and tree.
    var plainOptions = options
    plainOptions.auditChain = false
    let plain = try Store(path: c.runDir + "/apply-no-audit", options: plainOptions)
    let plainBatches = applyBatches(count: applyCount, perBatch: batchEntries, value: value)
    let plainStart = now()
    for batch in plainBatches { try plain.apply(batch, sync: false) }
    let plainElapsed = now() - plainStart
    plain.close()
    print("apply without the audit chain (no journal, no tree; benchmark-only store option): "
          + "\(fmt(Double(applyCount) / plainElapsed))/s; the audit chain costs "
          + "\(fmt((1 - plainElapsed / elapsed) * 100))% of apply throughput (with/without = \(fmt(plainElapsed / elapsed)))")

    try overlappedBench(c, options: options, count: applyCount, value: value)

    let backend = store.makeKVBackend()
    let sm = store.kvStateMachine
    var rng = SystemRandomNumberGenerator()
    let gets = 200_000
    start = now()
    var found = 0
    for _ in 0..<gets {
        if try sm.get(key(UInt64.random(in: 0..<applyCount, using: &rng)), on: backend) != nil { found += 1 }
    }
    elapsed = now() - start
    print("point get (KVStateMachine.get, random existing-or-not keys, \(found) found): \(fmt(Double(gets) / elapsed))/s")

    // MVCC reads come from the history column family (its memtable included).
    let revGets = 2_000
    found = 0
    start = now()
    for _ in 0..<revGets {
        let k = key(UInt64.random(in: 0..<applyCount, using: &rng))
        if try sm.get(k, at: Revision(applyCount / 2), on: backend) != nil { found += 1 }
    }
    elapsed = now() - start
    print("point get at revision \(applyCount / 2) (history; \(found) found): \(fmt(Double(revGets) / elapsed))/s, "
          + "\(fmt(elapsed / Double(revGets) * 1e6)) µs each")

    let scans = 20_000
    var scanned = 0
    start = now()
    for _ in 0..<scans {
        // A bounded range of 100 keys: KVRangeResult.count counts the whole range (etcd-like).
        let first = UInt64.random(in: 0..<applyCount - 100, using: &rng)
        let request = KVRangeRequest(range: KeyRange(start: key(first), end: key(first + 100)), limit: 100)
        scanned += try sm.range(request, on: backend).records.count
    }
    elapsed = now() - start
    print("range scan, 100 keys: \(fmt(Double(scans) / elapsed)) scans/s, \(fmt(Double(scanned) / elapsed)) keys/s")
}

/// The record cache's counters so far (cumulative over the store's applies).
/// The fresh-key pass again, on a new store, with the log written as a node writes it: a node's
/// log writer thread persists the entries it receives while its apply thread applies those
/// already committed, so here a thread of its own persists batch k + 1 (at most two ahead)
/// while this one applies batch k. The same work as the serial pass; only the threads differ.
func overlappedBench(_ c: StoreBench, options: Store.Options, count: UInt64, value: [UInt8]) throws {
    let store = try Store(path: c.runDir + "/apply-overlapped", options: options)
    defer { store.close() }
    let batches = applyBatches(count: count, perBatch: c.applyBatch, value: value)
    let persisted = DispatchSemaphore(value: 0), room = DispatchSemaphore(value: 2)
    let cpuStart = threadCPU(), processStart = processCPU()
    let start = now()
    let logWriter = Thread {
        for batch in batches {
            room.wait()
            do {
                try store.raftLog.persist(RaftLogUpdate(entries: batch))
            } catch {
                print("store-bench failed: the overlapped pass's log write: \(error)")
                exit(1)
            }
            persisted.signal()
        }
    }
    logWriter.start()
    for batch in batches {
        persisted.wait()
        try store.apply(batch, sync: false)
        room.signal()
    }
    let elapsed = now() - start
    let cpu = threadCPU() - cpuStart, processCPUUsed = processCPU() - processStart
    print("log and apply overlapped, as in a node (a log writer thread persists the next batch, at most 2 ahead, "
          + "while this one applies), fresh keys, \(c.applyBatch) per apply call: \(fmt(Double(count) / elapsed))/s "
          + "(\(fmt(Double(count) / cpu)) per CPU-second of the applying thread, "
          + "\(fmt(Double(count) / processCPUUsed)) per CPU-second of all threads)")
}

func printCacheStats(_ store: Store, after what: String) {
    let s = store.recordCacheStats
    guard s.budgetBytes > 0 else { return print("record cache after \(what): off") }
    print("record cache after \(what): \(s.hits) hits, \(s.misses) misses (hit rate \(fmt(s.hitRate * 100))%), "
          + "\(s.entries) entries, \(fmt(Double(s.bytes) / 1048576)) of \(fmt(Double(s.budgetBytes) / 1048576)) MiB")
}

func snapshotBench(_ c: StoreBench) throws {
    let sender = try Store(path: c.runDir + "/snap-sender")
    defer { sender.close() }
    let valueBytes = 64 << 10
    let entriesCount = UInt64(c.snapshotMiB << 20 / valueBytes)
    var index: UInt64 = 1
    var rng = SystemRandomNumberGenerator()
    while index <= entriesCount {
        let batch = (index..<min(index + 16, entriesCount + 1)).map { i in
            // Random bytes: compression must not shrink the state below the stated size.
            putEntry(i, key: key(i), value: (0..<valueBytes / 8).flatMap { _ in withUnsafeBytes(of: rng.next()) { Array($0) } })
        }
        try sender.apply(batch, sync: false)
        index += UInt64(batch.count)
    }
    var start = now()
    let source = try sender.makeSnapshotSource()
    defer { source.close() }
    let create = now() - start
    let total = source.manifest.totalBytes
    var chunks = 0
    var transfer = 0.0
    do {
        // The receiver's old store must be dropped (RocksDB closed) before the swap on reopen.
        let receiver = try Store(path: c.runDir + "/snap-receiver")
        defer { receiver.close() }
        start = now()
        let install = try SnapshotReceiver(store: receiver, manifest: try SnapshotManifest(decoding: source.manifest.encoded))
        while let chunk = try source.nextChunk() {
            try install.receive(try SnapshotChunk(decoding: chunk.encoded))
            chunks += 1
        }
        try install.finish(hardState: try receiver.raftLog.initialState().0)
        transfer = now() - start
    }
    start = now()
    let installed = try Store(path: c.runDir + "/snap-receiver")
    defer { installed.close() }
    let reopen = now() - start
    let same = try installed.stateDigest() == sender.stateDigest() && installed.treeHead.rootHash == sender.treeHead.rootHash
    print("snapshot: \(entriesCount) entries of \(valueBytes / 1024) KiB values = \(fmt(Double(c.snapshotMiB))) MiB of values, "
          + "checkpoint \(fmt(Double(total) / 1048576)) MiB in \(source.manifest.files.count) files")
    print("snapshot create (checkpoint + SHA-256 of every file): \(fmt(create)) s")
    print("snapshot stream + verify + finish (\(chunks) chunks of ≤ 1 MiB, in-process): \(fmt(transfer)) s "
          + "(\(fmt(Double(total) / 1048576 / transfer)) MiB/s)")
    print("snapshot install swap + reopen: \(fmt(reopen)) s; digest and tree root equal: \(same)")
}

StoreBench.main()
