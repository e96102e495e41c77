import FaunaAudit
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify

// The ports of the node's pipeline (ADR 0007, docs/ARCHITECTURE.md "The pipeline and its
// ports"). The pipeline — the owner of the Raft core (`NodeCore`), the apply stage, the audit
// answers — reaches the disk, the network, the clock and other threads only through these
// protocols. `faunad` wires them to RocksDB, SwiftNIO and threads (module FaunaNode); the node
// simulator (module NodeSimulator) wires them to a simulated disk that loses what was not
// synced, a simulated network and virtual time, and runs the same pipeline code.

/// The entry log: the Raft log and hard state, as the core reads them (`RaftStorage`), plus
/// the writes the owner makes.
public protocol EntryLog: RaftStorage, AnyObject {
    /// Writes the Ready's entries, hard state and snapshot metadata durably (fsync) before
    /// returning. Any error is fail-stop.
    func persist(_ update: RaftLogUpdate) throws(StoreError)
    /// Drops entries through `index`, recording `confState` as the membership at that point.
    func compact(through index: LogIndex, confState: ConfState) throws(StoreError)
}

/// A snapshot of the applied state, taken to be sent to a follower or a client.
public protocol StateCheckpoint: Sendable {
    var metadata: SnapshotMetadata { get }
}

/// A snapshot received from the leader, complete and verified, waiting to be installed.
public protocol IncomingSnapshot: AnyObject {
    var metadata: SnapshotMetadata { get }
    /// Makes the snapshot the data directory's state (with `hardState` in its log) the next
    /// time the store is opened.
    func finish(hardState: HardState) throws(StoreError)
}

/// The state store: the KV state machine, the audit journal and Merkle tree, and the entry log
/// of one node (production: `Store` on RocksDB). Called from the apply stage's thread, except
/// where noted; the members marked "any thread" are safe anywhere.
public protocol StateStore: AnyObject, Sendable {
    /// The entry log in the same data directory.
    var entryLog: any EntryLog { get }
    /// The last applied index (any thread).
    var appliedIndex: LogIndex { get }
    /// The applied index the state on disk is known to have reached (any thread): the state
    /// is written without a WAL and flushed, so a crash re-applies the entries after it. The
    /// Raft log is never compacted beyond it.
    var durableAppliedIndex: LogIndex { get }
    /// Writes the applied state to disk now and answers the applied index it covers. Any
    /// error is fail-stop.
    @discardableResult func flushState() throws(StoreError) -> LogIndex
    /// The membership as of the applied index (any thread).
    var appliedConfState: ConfState { get }
    /// The tree size (== applied index) and root (any thread).
    var treeHead: (treeSize: UInt64, rootHash: MerkleHash) { get }
    /// The first index of the leaf v2 boundary, once applied (any thread).
    var leafV2From: LogIndex? { get }
    /// False only in benchmark stores without journal and tree.
    var auditChain: Bool { get }
    /// The cluster ID, once applied. A record that does not decode is fail-stop.
    func clusterID() throws(StoreError) -> ClusterID?
    /// The highest `KVStateLevel` the applied state has recorded (0: none).
    func stateLevel() throws(StoreError) -> UInt32

    /// Applies committed entries in order (entries at or below the applied index are skipped)
    /// and answers one result per entry applied. Any error but `.invalidRequest` is fail-stop.
    func apply(_ entries: [Entry], confState: ConfState?) throws(StoreError) -> [AppliedEntry]
    /// A range read of the applied state. Throws `KVReadError` for a request the state
    /// machine refuses, anything else for a damaged or failing store.
    func range(_ request: KVRangeRequest) throws -> KVRangeResult
    /// The compacted revision of the applied state.
    func compactedRevision() throws -> Revision
    /// Every lease of the applied state (docs/KV-COMMANDS.md "Leases").
    func leases() throws -> [KVLease]
    /// Users, roles and whether auth is enabled, in the applied state.
    func authSnapshot() throws -> KVAuthSnapshot
    /// Lease `id` and at most `keysMax` of its keys; nil if there is no such lease.
    func lease(_ id: UInt64, keysMax: Int) throws -> (lease: KVLease, keys: [[UInt8]], truncated: Bool)?
    /// The digest of the applied state (`hashKV`): safe off the apply thread.
    func stateDigest() throws(StoreError) -> StateDigest
    /// The digest of the state as of `revision` (audit `stateDigest`).
    func stateDigest(at revision: Revision) throws(StoreError) -> StateDigest
    /// Re-hashes the whole journal against the tree.
    func auditJournal() throws(StoreError) -> JournalAudit

    /// The tree's root at `size` (≤ the applied index).
    func rootHash(atSize size: UInt64) throws -> MerkleHash
    func inclusionProof(for leaf: LeafIndex, treeSize: UInt64) throws -> InclusionProof
    func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> ConsistencyProof
    /// The journal record at `index`, or nil if not applied.
    func journalRecord(at index: LogIndex) throws(StoreError) -> JournalRecord?
    /// The last membership-change indexes after `index` (the applied state keeps 64).
    func confChangeIndexes(after index: LogIndex) -> [LogIndex]

    /// A checkpoint of exactly the applied state (under the apply lock).
    func makeCheckpoint() throws(StoreError) -> any StateCheckpoint
    /// Closes this store and opens the data directory again (which installs a finished
    /// incoming snapshot). The old instance must not be used afterwards.
    func reopen() throws(StoreError) -> any StateStore
    /// Stops background work; the store is not used afterwards.
    func close()
    /// Bytes on disk and in memtables, for `status` (any thread).
    var sizeBytes: UInt64 { get }
    /// The record cache's figures as of the last applied chunk, for `status` (any thread;
    /// never waits for an apply).
    var recordCacheStats: RecordCacheStats { get }
    /// RocksDB and disk figures for metrics and health (owner thread: it alone reopens the
    /// store).
    var storageStats: StorageStats { get }
    /// One bounded step of work earlier applies left behind (the history purge after a
    /// compaction: docs/STORAGE.md "History purge"), if any; the apply stage runs it while
    /// its queue is empty. Returns whether more remains. Any error is fail-stop.
    func idleStep() throws(StoreError) -> Bool
}

extension StateStore {
    /// Whether a leader has nothing to found: the cluster ID is recorded and the state is at
    /// `KVStateLevel.current` (else a new leader proposes them, `NodeCore`).
    public func isFounded() throws(StoreError) -> Bool {
        guard try clusterID() != nil else { return false }
        return try stateLevel() >= KVStateLevel.current
    }

    /// An in-memory store has no RocksDB and no disk of its own.
    public var storageStats: StorageStats { StorageStats() }
    /// A store whose applies leave no work behind.
    public func idleStep() throws(StoreError) -> Bool { false }
}

/// Sends Raft messages to peers (production: one TCP link per peer). Never blocks; a message
/// that cannot go is dropped (Raft retransmits).
public protocol PeerSender: AnyObject, Sendable {
    func send(_ messages: [Message])
    /// Opens links to new members, closes those of removed ones.
    func reconcile(with conf: ConfState, me: NodeID)
}

/// Snapshot transfer in both directions.
public protocol SnapshotShipping: AnyObject, Sendable {
    /// Claims the one transfer allowed per peer; false if one is running.
    func claim(_ peer: NodeID) -> Bool
    func release(_ peer: NodeID)
    /// Streams `checkpoint` to `peer` and calls `done` with its metadata once the peer holds
    /// every file (nil if the transfer failed), releasing the claim.
    func send(_ checkpoint: any StateCheckpoint, to peer: NodeID, done: @escaping @Sendable (SnapshotMetadata?) -> Void)
    /// The complete snapshot received for `index`, reserved for installing (no new offer may
    /// replace it until `installFinished`).
    func take(at index: LogIndex) -> (any IncomingSnapshot)?
    func installFinished()
    /// Streams `checkpoint` to a client (`snapshotSave`), off the calling thread, releasing
    /// `slot` at the end.
    func stream(_ checkpoint: any StateCheckpoint, to context: RPCRequestContext, slot: ClientJobSlot)
}

/// Where members can be reached. Membership changes that add a member carry its addresses;
/// the book keeps them (production: in the data directory, for restarts).
public protocol MemberBook: AnyObject, Sendable {
    func addresses(of id: NodeID) -> MemberAddresses?
    func record(_ addresses: MemberAddresses, for id: NodeID)
    /// The member's tree-head public key as this node knows it (its own; a peer's from the
    /// peer handshake), or nil. Reported by `members`; clients pin keys from signed heads.
    func publicKey(of id: NodeID) -> [UInt8]?
}

/// A point on the node's monotonic clock (production: `ContinuousClock`; simulator: virtual).
public struct NodeInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Time since the clock's origin.
    public var sinceOrigin: Duration
    public init(_ sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }
    public static func < (a: NodeInstant, b: NodeInstant) -> Bool { a.sinceOrigin < b.sinceOrigin }
    public static func + (a: NodeInstant, d: Duration) -> NodeInstant { NodeInstant(a.sinceOrigin + d) }
    public static func - (a: NodeInstant, b: NodeInstant) -> Duration { a.sinceOrigin - b.sinceOrigin }
    public var description: String { "\(sinceOrigin)" }
}

/// The clock port. Deadlines and ticks follow it; a wall-clock step never moves it.
public protocol NodeClock: Sendable {
    var now: NodeInstant { get }
}

/// The owner's event queue, as other threads see it.
public protocol NodeEventSink: AnyObject, Sendable {
    /// Queues an event unless the queue is full or closed (then false).
    @discardableResult func offer(_ event: NodeEvent) -> Bool
    /// Queues an event even beyond capacity (completions that must not be lost).
    func post(_ event: NodeEvent)
    /// Refuses further events and returns the ones still queued.
    func closeAndDrain() -> [NodeEvent]
}

/// The apply stage's queue, as the owner sees it: jobs run in FIFO order.
public protocol ApplyQueue: AnyObject, Sendable {
    /// Queues a job unless the read bound is reached (false).
    func offer(_ job: ApplyJob) -> Bool
    /// Queues a job the owner bounds itself (applies) or that holds a slot.
    func post(_ job: ApplyJob)
    /// Replaces the stage's store once every job queued before has run; returns when done.
    func replaceStore(with store: (any StateStore)?)
    /// Closes the queue, lets the stage finish what is queued, and returns when it has.
    func stopAndWait()
}

/// Runs work that must not hold up the apply stage (state digests) — production: a serial
/// dispatch queue; simulator: at once.
public protocol BackgroundRunner: Sendable {
    func run(_ body: @escaping @Sendable () -> Void)
}

/// Deliberate misbehaviour for tests of clients, verifiers and the chaos harness: the one
/// implementation, `LyingAnswers`, exists only in debug builds of FaunaNode (`#if DEBUG`) and
/// is installed only when `FAUNA_TEST_FAULT` asks for it. Release builds always pass nil, and
/// contain none of the lying code.
public protocol AnswerDecorator: Sendable {
    /// Linearizable reads are served from the local state at once, without ReadIndex.
    var servesStaleReads: Bool { get }
    /// What a read answers instead of `answer`.
    func read(_ request: ReadRequest, answer: RPCMessage, store: any StateStore) -> RPCMessage
    /// What an audit request answers instead of `answer`.
    func audit(_ request: RPCMessage, answer: RPCMessage, store: any StateStore) -> RPCMessage
    /// What a watcher is sent instead of `events`.
    func watchEvents(_ events: [WatchEvent]) -> [WatchEvent]
}

extension AnswerDecorator {
    /// Honest by default.
    public func watchEvents(_ events: [WatchEvent]) -> [WatchEvent] { events }
}
