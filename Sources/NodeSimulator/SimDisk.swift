import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaStore
import FaunaVerify

// The simulated durable media of one node: what its RocksDB instance (the `log` column family
// behind the write-ahead log; `kv`, `history`, `effects`, `merkle` and `meta` written without it
// and flushed) and an incoming snapshot's directory hold, with the line between what is durable
// and what is not.

/// The Raft log part of a disk (production: the `raft` column family, `RaftLogStorage`).
struct SimLogState: Sendable, Hashable {
    /// The hard state as last written (a commit-index-only change is written unsynced, as
    /// production does: `RaftLogWriter.mustSync`).
    var hardState = HardState()
    /// The log's snapshot/compaction metadata: entries through `snapshot.index` are gone.
    var snapshot = SnapshotMetadata()
    /// `entries[i]` has index `snapshot.index + 1 + i`.
    var entries: [Entry] = []

    var firstIndex: LogIndex { snapshot.index + 1 }
    var lastIndex: LogIndex { snapshot.index + UInt64(entries.count) }
    var lastTerm: Term { entries.last?.term ?? snapshot.term }

    /// The stored entry at `index` (`firstIndex ... lastIndex`).
    func entry(at index: LogIndex) -> Entry {
        precondition(index > snapshot.index && index <= lastIndex, "log entry \(index) outside \(firstIndex)...\(lastIndex)")
        return entries[Int(index.rawValue - snapshot.index.rawValue - 1)]
    }
}

/// The applied state of a disk: everything but the Raft log — what a RocksDB checkpoint
/// carries to a follower (its `raft` column family is rewritten on install).
struct SimStateData: Sendable {
    /// Production's record of what was applied (FaunaStore `AppliedState`).
    var applied = AppliedState()
    /// The `kv`, `history` and `meta` (`kv/...`) column families, stored exactly as the RocksDB
    /// backend stores them.
    var kv = MemoryKVBackend()
    /// The `journal` column family: `journal[i]` is the record of index `i + 1`.
    var journal = SimJournal()
    /// The `merkle` column family: every complete subtree's hash.
    var merkle = SimMerkleNodes()
}

/// An append-only array in segments of `segmentElements`: a value whose copy (one per
/// written batch, see `SimDisk`) shares every segment but the one an append writes to, so a
/// batch costs O(count / segmentElements + segmentElements), not O(count), for the journal and
/// tree, which never shrink.
struct SimSegmentedArray<Element: Sendable>: Sendable, RandomAccessCollection {
    static var segmentElements: Int { 256 }
    private var segments: [[Element]] = []
    private(set) var count = 0

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(i: Int) -> Element {
        precondition(i >= 0 && i < count, "element \(i) of \(count)")
        return segments[i / Self.segmentElements][i % Self.segmentElements]
    }

    mutating func append(_ element: Element) {
        if count % Self.segmentElements == 0 {
            var segment: [Element] = []
            segment.reserveCapacity(Self.segmentElements)
            segments.append(segment)
        }
        segments[segments.count - 1].append(element)
        count += 1
    }
}

/// The journal: `journal[i]` is the record of index `i + 1`.
typealias SimJournal = SimSegmentedArray<JournalRecord>

/// The `merkle` column family: complete-subtree hashes, append-only by level (as FaunaAudit's
/// `InMemoryMerkleNodeStore`, in segments).
struct SimMerkleNodes: MerkleNodeStore, Sendable {
    /// `levels[l][i]` is the hash at `NodeAddress(level: l, index: i)`.
    private var levels: [SimSegmentedArray<MerkleHash>] = []

    var nodeCount: Int { levels.reduce(0) { $0 + $1.count } }

    func hash(at address: NodeAddress) -> MerkleHash? {
        let level = Int(address.level)
        guard level < levels.count, address.index < UInt64(levels[level].count) else { return nil }
        return levels[level][Int(address.index)]
    }

    func hashes(at addresses: [NodeAddress]) -> [MerkleHash?] { addresses.map { hash(at: $0) } }

    mutating func recordHash(_ hash: MerkleHash, at address: NodeAddress) {
        let level = Int(address.level)
        while levels.count <= level { levels.append(SimSegmentedArray()) }
        precondition(
            address.index == UInt64(levels[level].count),
            "append-only store: got node \(address), want index \(levels[level].count) at level \(level)")
        levels[level].append(hash)
    }
}

/// Everything one node's disk holds in its database: a value, so that each written batch can
/// keep the state after it (copy-on-write shares what a batch does not touch).
struct SimDiskState: Sendable {
    var log = SimLogState()
    var data = SimStateData()
}

/// One node's durable media.
///
/// Two kinds of writes, as production's RocksDB instance has them (ADR 0010):
///
/// - **the entry log** (`EntryLog.persist`, `EntryLog.compact`) goes through the write-ahead
///   log: batches arrive in order, and a synced batch makes every log batch before it durable
///   too. `persist` is synced, except an update that only moves the commit index
///   (`RaftLogWriter.mustSync`, etcd's `MustSync`); `compact` is synced. A process crash keeps
///   every log batch (the page cache survives SIGKILL); a power loss keeps every synced batch
///   and a random prefix of the unsynced ones after the last synced one — what RocksDB's
///   point-in-time WAL recovery gives: each batch is one record, checked by its CRC, so a torn
///   record is discarded whole and nothing after it is replayed;
/// - **the applied state** (`StateStore.apply`, one batch per chunk of at most
///   `SimStore.Options.applyChunkEntries` entries) is written without the WAL: it reaches the
///   disk only by a flush (`flushState`: the store's bounded-replay flush and its close; `flush`:
///   a flush RocksDB starts by itself, which also syncs the log). Any crash, a process crash
///   too, loses the state written since the last flush, whole batches only (atomic flush); the
///   node re-applies it from the log.
///
/// Two more writes are durable at once: `IncomingSnapshot.finish` (production: a separate
/// RocksDB instance in `db.incoming`, fsynced, with its ready marker — it does not sync the live
/// database) and the swap of a finished install when a store is opened (production renames the
/// directories and fsyncs the parent at open).
///
/// The state is kept as values: the log after the last synced batch and after each later
/// unsynced one (a synced batch drops the list), the state as last flushed, and the state as
/// the running database sees it.
///
/// Not thread-safe: the simulator drives it from one thread.
public final class SimDisk {
    /// What was written to this disk and what was lost (for the driver's reports).
    public struct Counters: Sendable, Hashable {
        /// Batches written (synced or not; failed writes not counted).
        public var batchesWritten = 0
        /// Of those, batches written synced.
        public var batchesSynced = 0
        /// Unsynced log batches the last power loss dropped.
        public var batchesLostOnLastPowerLoss = 0
        /// Unsynced log batches all power losses dropped.
        public var batchesLost = 0
        /// Applied entries crashes (process or power) took back to the last state flush: the
        /// node re-applied them from the log.
        public var appliedEntriesLost = 0
        /// State flushes (bounded replay, close, or RocksDB's own).
        public var stateFlushes = 0
        public var powerLosses = 0
        /// Writes failed by `failNextWrite`.
        public var failedWrites = 0
        /// Batches written to the live database while a finished snapshot install waited for
        /// the next open: the swap discards them. Log writes among them are lost votes and
        /// entries, which the pipeline must never cause (`IncomingSnapshot.finish`: "nothing
        /// may be persisted to the old store's Raft log in between").
        public var batchesWrittenWhileInstallPending = 0
        /// Snapshot installs swapped in at open.
        public var installsSwappedIn = 0
    }

    /// What a batch is, for targeted fault injection.
    public enum WriteKind: Hashable, Sendable, CaseIterable {
        /// `StateStore.apply` (one per chunk).
        case apply
        /// `EntryLog.persist`.
        case logPersist
        /// `EntryLog.compact`.
        case logCompact
        /// `IncomingSnapshot.finish`.
        case snapshotFinish
        /// The swap of a finished install when a store opens.
        case snapshotSwap
    }

    /// A name for messages (e.g. "n1").
    public let name: String
    public private(set) var counters = Counters()

    /// The log after the last synced batch.
    private var logDurable = SimLogState()
    /// The log after each unsynced batch since then, in write order.
    private var logUnsynced: [SimLogState] = []
    /// The applied state as last flushed.
    private var dataFlushed = SimStateData()
    /// The applied state written since (memtables), or nil if nothing was.
    private var dataLive: SimStateData?
    /// A finished incoming snapshot (already the full disk state it will become: the
    /// checkpoint's applied state and a log restarting after it), durable, installed at the
    /// next open.
    private(set) var pendingInstall: SimDiskState?

    /// Bumped by each crash: a store opened before is dead.
    private(set) var epoch: UInt64 = 0
    /// The token of the store that has the disk open (RocksDB's LOCK), if any.
    private(set) var openToken: UInt64?
    private var tokens: UInt64 = 0
    /// Writes (of the kinds in `failKinds`) to let through before one fails.
    private var failCountdown: Int?
    private var failKinds: Set<WriteKind> = []

    public init(name: String = "disk") { self.name = name }

    /// The state as the running database sees it: every batch written so far.
    var current: SimDiskState { SimDiskState(log: logUnsynced.last ?? logDurable, data: dataLive ?? dataFlushed) }

    /// Unsynced log batches a power loss now could drop.
    public var unsyncedBatches: Int { logUnsynced.count }

    /// Whether a finished snapshot install waits for the next open.
    public var hasPendingInstall: Bool { pendingInstall != nil }

    /// The applied index a store opened now would find (before any pending install).
    public var appliedIndex: LogIndex { current.data.applied.index }
    /// The applied index that survives any crash: the state as last flushed.
    public var durableAppliedIndex: LogIndex { dataFlushed.applied.index }
    /// The hard state a store opened now would find (before any pending install).
    public var hardState: HardState { current.log.hardState }
    /// The hard state that survives any power loss.
    public var durableHardState: HardState { logDurable.hardState }
    /// The log's last index now, and the one that survives any power loss.
    public var lastLogIndex: LogIndex { current.log.lastIndex }
    public var durableLastLogIndex: LogIndex { logDurable.lastIndex }

    // MARK: Faults

    /// Makes a later write fail: `skipping` writes of `kinds` succeed, the next one throws a
    /// fail-stop `StoreError` (`.rocksDB`, I/O error) and writes nothing. One-shot; a later
    /// call replaces an earlier one.
    public func failNextWrite(skipping: Int = 0, of kinds: Set<WriteKind> = Set(WriteKind.allCases)) {
        precondition(skipping >= 0, "failNextWrite: skipping \(skipping)")
        failCountdown = skipping
        failKinds = kinds
    }

    /// Cancels a failure `failNextWrite` armed and that has not fired yet.
    public func cancelFailure() {
        failCountdown = nil
        failKinds = []
    }

    /// Whether a `failNextWrite` is armed.
    public var isFailureArmed: Bool { failCountdown != nil }

    /// Power fails: every synced log batch survives, and of the unsynced ones after the last
    /// synced one a random prefix (possibly none, possibly all); the applied state is the one
    /// last flushed. A finished snapshot install survives. The store open on this disk is dead:
    /// it must not be used again (it traps); open a new `SimStore`. Returns how many unsynced
    /// log batches survived.
    @discardableResult
    public func powerLoss(using rng: inout SimRandom) -> Int {
        let keep = rng.int(0..<(logUnsynced.count + 1))
        powerLoss(keepingUnsynced: keep)
        return keep
    }

    /// The process dies but the machine does not: every log batch reached the kernel and stays
    /// (SIGKILL keeps the page cache), but the state written since the last flush was only in
    /// the process's memtables and is gone. The store open on this disk is dead; open a new one.
    public func processCrash() {
        dropUnflushedState()
        epoch += 1
        openToken = nil
    }

    /// `powerLoss(using:)` keeping exactly the first `keep` unsynced log batches.
    public func powerLoss(keepingUnsynced keep: Int) {
        precondition(keep >= 0 && keep <= logUnsynced.count, "powerLoss: keep \(keep) of \(logUnsynced.count) unsynced batches")
        if keep > 0 { logDurable = logUnsynced[keep - 1] }
        let lost = logUnsynced.count - keep
        logUnsynced.removeAll()
        dropUnflushedState()
        counters.batchesLostOnLastPowerLoss = lost
        counters.batchesLost += lost
        counters.powerLosses += 1
        epoch += 1
        openToken = nil
    }

    private func dropUnflushedState() {
        if let live = dataLive {
            counters.appliedEntriesLost += Int(live.applied.index.rawValue - min(live.applied.index.rawValue, dataFlushed.applied.index.rawValue))
        }
        dataLive = nil
    }

    /// Writes the applied state to disk (an atomic flush of the state families): the store's
    /// bounded-replay flush and its close.
    func flushState() {
        guard let live = dataLive else { return }
        dataFlushed = live
        dataLive = nil
        counters.stateFlushes += 1
    }

    /// A flush RocksDB starts by itself (memtables full): the state reaches the disk, and the
    /// log too (RocksDB syncs the closed WAL files first). Production does this at
    /// unpredictable moments; a driver may call it whenever it likes.
    public func flush() {
        flushState()
        if let last = logUnsynced.last { logDurable = last }
        logUnsynced.removeAll()
    }

    // MARK: Writes (SimStore, SimEntryLog, SimIncomingSnapshot)

    /// Throws the injected error if this write is the one `failNextWrite` chose.
    private func injectFailure(_ kind: WriteKind) throws(StoreError) {
        guard let n = failCountdown, failKinds.contains(kind) else { return }
        guard n == 0 else {
            failCountdown = n - 1
            return
        }
        cancelFailure()
        counters.failedWrites += 1
        throw StoreError(
            .rocksDB, "injected write failure (\(kind)) on \(name)",
            rocksDB: RocksDBError(code: .ioError, operation: "write", message: "IO error: injected by the simulator (\(kind))"))
    }

    /// Writes one atomic batch: `change` applied to the current state. An `.apply` batch
    /// changes only the state (written without the WAL: `sync` must be false); any other
    /// changes only the log.
    func write(_ kind: WriteKind, sync: Bool, _ change: (inout SimDiskState) -> Void) throws(StoreError) {
        try injectFailure(kind)
        var next = current
        change(&next)
        if kind == .apply {
            precondition(!sync, "state is written without the WAL: flush it instead")
            dataLive = next.data
        } else if sync {
            logDurable = next.log
            logUnsynced.removeAll()
            counters.batchesSynced += 1
        } else {
            logUnsynced.append(next.log)
        }
        counters.batchesWritten += 1
        if pendingInstall != nil { counters.batchesWrittenWhileInstallPending += 1 }
    }

    /// Makes `state` the install to swap in at the next open (durable at once).
    func finishInstall(_ state: SimDiskState) throws(StoreError) {
        try injectFailure(.snapshotFinish)
        pendingInstall = state
        counters.batchesWritten += 1
        counters.batchesSynced += 1
    }

    /// At open: swaps a finished install in (synced), discarding the old database.
    func swapInPendingInstall() throws(StoreError) {
        guard let install = pendingInstall else { return }
        try injectFailure(.snapshotSwap)
        logDurable = install.log
        logUnsynced.removeAll()
        dataFlushed = install.data
        dataLive = nil
        pendingInstall = nil
        counters.batchesWritten += 1
        counters.batchesSynced += 1
        counters.installsSwappedIn += 1
    }

    /// Takes the disk for a store being opened (RocksDB's LOCK): a token, or `alreadyInUse`
    /// (not fail-stop) if another store has it open.
    func claim() throws(StoreError) -> UInt64 {
        guard openToken == nil else {
            throw StoreError(
                .rocksDB, "\(name) is already open",
                rocksDB: RocksDBError(code: .alreadyInUse, operation: "open", message: "IO error: lock hold by current process"))
        }
        tokens += 1
        openToken = tokens
        return tokens
    }

    /// Lets go of the disk (close or reopen of the store holding `token`).
    func release(_ token: UInt64) {
        if openToken == token { openToken = nil }
    }
}
