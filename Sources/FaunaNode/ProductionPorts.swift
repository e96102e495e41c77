import FaunaAudit
import FaunaKV
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import Logging

// The pipeline's ports wired to RocksDB, SwiftNIO and threads (docs/ARCHITECTURE.md).

extension RaftLogStorage: EntryLog {}
extension Checkpoint: StateCheckpoint {}
extension SnapshotReceiver: IncomingSnapshot {
    public var metadata: SnapshotMetadata { manifest.metadata }
}

/// The state store port over `Store` (RocksDB).
final class RocksStateStore: StateStore, @unchecked Sendable {
    // @unchecked Sendable: `opened` is set at init and cleared only by `reopen`, which the
    // owner calls once every other user of this instance has dropped it.
    private var opened: Store?
    let options: Store.Options

    init(_ store: Store, options: Store.Options) {
        self.opened = store
        self.options = options
    }

    /// The open store (not after `reopen`).
    var store: Store {
        guard let opened else { preconditionFailure("RocksStateStore used after reopen()") }
        return opened
    }

    var entryLog: any EntryLog { store.raftLog }
    var appliedIndex: LogIndex { store.appliedIndex }
    var durableAppliedIndex: LogIndex { store.durableAppliedIndex }
    func flushState() throws(StoreError) -> LogIndex { try store.flushState() }
    func idleStep() throws(StoreError) -> Bool { try store.purgeHistoryWhileIdle() }
    var appliedConfState: ConfState { store.appliedConfState }
    var treeHead: (treeSize: UInt64, rootHash: MerkleHash) { store.treeHead }
    var leafV2From: LogIndex? { store.leafV2From }
    var auditChain: Bool { store.auditChain }
    func clusterID() throws(StoreError) -> ClusterID? { try store.clusterID() }
    func stateLevel() throws(StoreError) -> UInt32 { try store.stateLevel() }

    func apply(_ entries: [Entry], confState: ConfState?) throws(StoreError) -> [AppliedEntry] {
        try store.apply(entries, confState: confState)
    }

    func range(_ request: KVRangeRequest) throws -> KVRangeResult {
        try store.kvStateMachine.range(request, on: store.makeKVBackend())
    }

    func compactedRevision() throws -> Revision { try store.kvStateMachine.compactedRevision(on: store.makeKVBackend()) }
    func leases() throws -> [KVLease] { try store.kvStateMachine.leases(on: store.makeKVBackend()) }
    func authSnapshot() throws -> KVAuthSnapshot { try store.kvStateMachine.authSnapshot(on: store.makeKVBackend()) }
    func lease(_ id: UInt64, keysMax: Int) throws -> (lease: KVLease, keys: [[UInt8]], truncated: Bool)? {
        try store.kvStateMachine.lease(id, keysMax: keysMax, on: store.makeKVBackend())
    }
    func stateDigest() throws(StoreError) -> StateDigest { try store.stateDigest() }
    func stateDigest(at revision: Revision) throws(StoreError) -> StateDigest { try store.stateDigest(at: revision) }
    func auditJournal() throws(StoreError) -> JournalAudit { try store.auditJournal() }
    func rootHash(atSize size: UInt64) throws -> MerkleHash { try store.makeMerkleProver().rootHash(atSize: size) }

    func inclusionProof(for leaf: LeafIndex, treeSize: UInt64) throws -> InclusionProof {
        try store.makeMerkleProver().inclusionProof(for: leaf, treeSize: treeSize)
    }

    func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof {
        try store.makeMerkleProver().consistencyProof(from: oldSize, to: newSize)
    }

    func journalRecord(at index: LogIndex) throws(StoreError) -> JournalRecord? { try store.journalRecord(at: index) }
    func confChangeIndexes(after index: LogIndex) -> [LogIndex] { store.confChangeIndexes(after: index) }
    func makeCheckpoint() throws(StoreError) -> any StateCheckpoint { try store.makeCheckpoint() }

    /// Closes the database and opens the directory again: the swap of an installed snapshot
    /// happens at open, crash-safe (docs/STORAGE.md).
    func reopen() throws(StoreError) -> any StateStore {
        let path = store.path
        store.close()
        // The database closes when its last reference goes; RocksDB refuses a second open of
        // the directory until then.
        opened = nil
        return RocksStateStore(try Store(path: path, options: options), options: options)
    }

    func close() { store.close() }

    var recordCacheStats: RecordCacheStats { store.recordCacheStats }
    var storageStats: StorageStats { store.storageStats() }

    var sizeBytes: UInt64 {
        var bytes: UInt64 = 0
        for family in StoreColumnFamily.allCases {
            for property in ["rocksdb.total-sst-files-size", "rocksdb.size-all-mem-tables"] {
                bytes += store.property(property, of: family).flatMap { UInt64($0) } ?? 0
            }
        }
        return bytes
    }
}

/// The owner's event queue.
extension EventQueue: NodeEventSink where Element == NodeEvent {
    @discardableResult func offer(_ event: NodeEvent) -> Bool { offer(event, limit: nil) }

    func closeAndDrain() -> [NodeEvent] {
        close()
        var out: [NodeEvent] = []
        while let rest = take(until: Date(), max: 4096), !rest.isEmpty { out += rest }
        return out
    }
}

/// The apply stage on a thread of its own, draining a FIFO queue.
final class ApplyThread: ApplyQueue, @unchecked Sendable {
    // @unchecked Sendable: `stage` and `thread` are set once before `start`.
    let queue: EventQueue<ApplyJob>
    var stage: ApplyStage!
    private var thread: Thread?
    private let exited = DispatchSemaphore(value: 0)

    init(capacity: Int) { queue = EventQueue(capacity: capacity) }

    func start() {
        let thread = Thread { [self] in
            // While the store has work left behind (a history purge), the queue is polled
            // and a step of it runs whenever no job waits; a job waits at most one step.
            var idleWork = true  // an open may have resumed a purge
            while let jobs = queue.take(until: idleWork ? .distantPast : nil, max: 256) {
                if jobs.isEmpty {
                    idleWork = stage.idle()
                } else {
                    stage.run(jobs)
                    idleWork = true
                }
            }
            stage.finish()
            exited.signal()
        }
        thread.name = "fauna-apply"
        thread.start()
        self.thread = thread
    }

    func offer(_ job: ApplyJob) -> Bool { queue.offer(job) }
    func post(_ job: ApplyJob) { queue.post(job) }

    func replaceStore(with store: (any StateStore)?) {
        let done = DispatchSemaphore(value: 0)
        queue.post(.setStore(store, done: { done.signal() }))
        done.wait()
    }

    func stopAndWait() {
        queue.close()
        guard thread != nil else { return }
        exited.wait()
        exited.signal()
    }
}

/// Digests on a serial dispatch queue of their own.
struct DispatchBackground: BackgroundRunner {
    let queue = DispatchQueue(label: "fauna-digest")
    func run(_ body: @escaping @Sendable () -> Void) { queue.async(execute: body) }
}

/// The monotonic clock: a wall-clock step never moves it.
struct MonotonicClock: NodeClock {
    let origin = ContinuousClock.now
    var now: NodeInstant { NodeInstant(ContinuousClock.now - origin) }
}
