import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaStore
import FaunaVerify

// The simulated durable media of one node: what its RocksDB instance (the `raft`, `kv`,
// `history`, `journal`, `merkle` and `meta` column families behind one write-ahead log) and
// an incoming snapshot's directory hold, with the line between what is synced and what is not.

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
/// Writes arrive as atomic batches, in order, as RocksDB's write-ahead log receives them: one
/// WAL holds the Raft log and the applied state, so a synced batch makes every batch before
/// it durable too. Which writes are synced follows production:
///
/// - `EntryLog.persist`: synced, except an update that only moves the commit index
///   (`RaftLogWriter.mustSync`, etcd's `MustSync`): written unsynced, like production;
/// - `EntryLog.compact`: synced (production writes every compaction, even a no-op one, as a
///   synced batch);
/// - `StateStore.apply`: unsynced (the node applies with `sync: false`), one batch per chunk of
///   at most `SimStore.Options.applyChunkEntries` entries, like `Store.apply`;
/// - `IncomingSnapshot.finish`: durable at once, but in the incoming snapshot's own directory
///   (production: a separate RocksDB instance in `db.incoming`, fsynced, with its ready
///   marker) — it does not sync the live database's WAL;
/// - the swap of a finished install when a store is opened: synced (production renames the
///   directories and fsyncs the parent at open).
///
/// `powerLoss(using:)` keeps every synced batch and a random prefix of the unsynced ones after
/// the last synced batch. That is what RocksDB's recovery gives (`WALRecoveryMode`
/// point-in-time, the default): the WAL is replayed record by record up to the first record
/// that is missing or torn — each batch is one record, checked by its CRC, so a torn record is
/// discarded whole and nothing after it is replayed. A batch is never half applied and a
/// surviving set never has a hole. (A memtable flush also makes a prefix durable: RocksDB syncs
/// the closed WAL files before flushing with several column families; `flush()` models it.)
///
/// The state is kept as values: the state after the last synced batch, and the state after
/// each later unsynced batch. Power loss picks one of them; a synced batch drops the list, so
/// memory holds one state per unsynced batch since the last sync.
///
/// Not thread-safe: the simulator drives it from one thread.
public final class SimDisk {
    /// What was written to this disk and what was lost (for the driver's reports).
    public struct Counters: Sendable, Hashable {
        /// Batches written (synced or not; failed writes not counted).
        public var batchesWritten = 0
        /// Of those, batches written synced.
        public var batchesSynced = 0
        /// Unsynced batches the last power loss dropped.
        public var batchesLostOnLastPowerLoss = 0
        /// Unsynced batches all power losses dropped.
        public var batchesLost = 0
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

    /// The state after the last synced batch.
    private var durable = SimDiskState()
    /// The state after each unsynced batch since then, in write order.
    private var unsynced: [SimDiskState] = []
    /// A finished incoming snapshot (already the full disk state it will become: the
    /// checkpoint's applied state and a log restarting after it), durable, installed at the
    /// next open.
    private(set) var pendingInstall: SimDiskState?

    /// Bumped by each power loss: a store opened before is dead.
    private(set) var epoch: UInt64 = 0
    /// The token of the store that has the disk open (RocksDB's LOCK), if any.
    private(set) var openToken: UInt64?
    private var tokens: UInt64 = 0
    /// Writes (of the kinds in `failKinds`) to let through before one fails.
    private var failCountdown: Int?
    private var failKinds: Set<WriteKind> = []

    public init(name: String = "disk") { self.name = name }

    /// The state as the running database sees it: every batch written so far.
    var current: SimDiskState { unsynced.last ?? durable }

    /// Unsynced batches a power loss now could drop.
    public var unsyncedBatches: Int { unsynced.count }

    /// Whether a finished snapshot install waits for the next open.
    public var hasPendingInstall: Bool { pendingInstall != nil }

    /// The applied index a store opened now would find (before any pending install).
    public var appliedIndex: LogIndex { current.data.applied.index }
    /// The applied index that survives a power loss that keeps no unsynced batch.
    public var durableAppliedIndex: LogIndex { durable.data.applied.index }
    /// The hard state a store opened now would find (before any pending install).
    public var hardState: HardState { current.log.hardState }
    /// The hard state that survives any power loss.
    public var durableHardState: HardState { durable.log.hardState }
    /// The log's last index now, and the one that survives any power loss.
    public var lastLogIndex: LogIndex { current.log.lastIndex }
    public var durableLastLogIndex: LogIndex { durable.log.lastIndex }

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

    /// Power fails: every synced batch survives, and of the unsynced batches after the last
    /// synced one a random prefix (possibly none, possibly all). A finished snapshot install
    /// survives. The store open on this disk is dead: it must not be used again (it traps);
    /// open a new `SimStore`. Returns how many unsynced batches survived.
    @discardableResult
    public func powerLoss(using rng: inout SimRandom) -> Int {
        let keep = rng.int(0..<(unsynced.count + 1))
        powerLoss(keepingUnsynced: keep)
        return keep
    }

    /// The process dies but the machine does not: every write reached the kernel and stays
    /// (SIGKILL keeps the page cache). The store open on this disk is dead; open a new one.
    public func processCrash() {
        epoch += 1
        openToken = nil
    }

    /// `powerLoss(using:)` keeping exactly the first `keep` unsynced batches.
    public func powerLoss(keepingUnsynced keep: Int) {
        precondition(keep >= 0 && keep <= unsynced.count, "powerLoss: keep \(keep) of \(unsynced.count) unsynced batches")
        if keep > 0 { durable = unsynced[keep - 1] }
        let lost = unsynced.count - keep
        unsynced.removeAll()
        counters.batchesLostOnLastPowerLoss = lost
        counters.batchesLost += lost
        counters.powerLosses += 1
        epoch += 1
        openToken = nil
    }

    /// Makes every batch written so far durable, as a memtable flush does (RocksDB syncs the
    /// closed WAL files first). Production does this at unpredictable moments; a driver may
    /// call it whenever it likes.
    public func flush() {
        if let last = unsynced.last { durable = last }
        unsynced.removeAll()
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

    /// Writes one atomic batch: `change` applied to the current state.
    func write(_ kind: WriteKind, sync: Bool, _ change: (inout SimDiskState) -> Void) throws(StoreError) {
        try injectFailure(kind)
        var next = current
        change(&next)
        if sync {
            durable = next
            unsynced.removeAll()
            counters.batchesSynced += 1
        } else {
            unsynced.append(next)
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
        durable = install
        unsynced.removeAll()
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
