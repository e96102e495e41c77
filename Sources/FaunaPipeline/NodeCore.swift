import CoreMetrics
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// What reaches the owner thread.
public enum NodeEvent: Sendable {
    /// Raft messages from a peer (one frame's worth).
    case raftMessages([Message])
    /// A client request (data or admin) with the way to answer it.
    case request(RPCMessage, RPCRequestContext)
    /// The apply stage applied a batch of entries.
    case applied(Result<ApplyReport, StoreError>)
    /// A snapshot stream to a peer finished (metadata on success).
    case snapshotSent(NodeID, SnapshotMetadata?)
    /// Another thread met a fail-stop store error (a record that does not decode, a failed
    /// read) while doing the described work: the node stops (docs/RELIABILITY.md).
    case storeFailed(StoreError, String)
    /// A peer refused this node's hello because it has applied this node's removal from the
    /// cluster (its reason): the node stops, as when it applies its removal itself.
    case removedByPeer(NodeID, String)
    /// Stop: finish what is in flight, then return.
    case stop
}

/// The owner of the Raft core (ADR 0007): one thread drains the bounded event queue, ticks
/// the core every `tickMs`, proposes the writes that arrived since the last round as one
/// batch, and drives at most one `Ready` at a time through persist → send → apply → advance.
///
/// The thread and its queue are the wiring's (`faunad`: FaunaNode's owner thread; the node
/// simulator: its event loop): each calls `runRound` with the events that arrived and the
/// clock's time, until it returns false, then `finishStopping`.
///
/// `@unchecked Sendable`: every `var` below is touched only by the owner thread; the other
/// threads talk to it through `events`.
public final class NodeCore: @unchecked Sendable {
    let id: NodeID
    let settings: PipelineSettings
    let events: any NodeEventSink
    let members: any MemberBook
    let transport: any PeerSender
    let snapshots: any SnapshotShipping
    public let clock: any NodeClock
    /// Test-only misbehaviour (debug builds, `FAUNA_TEST_FAULT`); nil in release builds.
    let decorator: (any AnswerDecorator)?
    public internal(set) var logger: Logger

    var store: (any StateStore)!
    var raft: RaftNode!
    /// The core's view of the store's entry log, which remembers a damaged record the core met.
    var raftStorage: RaftStorageMonitor!
    /// The apply stage's queue (set by the wiring before the first round and before any
    /// request is routed: `routeToApplyStage` reads it from other threads).
    public var applier: (any ApplyQueue)!
    /// Digests and client snapshot saves waiting or running (ClientJobLimiter).
    public let clientJobs = ClientJobLimiter()
    /// Index of the last committed entry handed to the apply stage.
    var handedOutIndex: LogIndex
    /// Committed entries a follower keeps back to apply several at once, and since when
    /// (`holdsApply`). Above `handedOutIndex`.
    var heldEntries: [Entry] = []
    var heldSince: NodeInstant?
    /// What the apply stage reported last.
    var appliedIndex: LogIndex
    var treeSize: UInt64

    /// Writes and membership changes proposed, by log index, until answered: shared with the
    /// apply stage, which answers the writes it applies (the wiring hands it to `ApplyStage`).
    public let proposals = ProposalRegistry()
    /// The applied auth state and the checks made with it; the apply stage keeps it current.
    public let auth = AuthGate()
    /// Writes received this round, proposed together.
    var queuedWrites: [(bytes: [UInt8], context: RPCRequestContext)] = []
    /// Linearizable reads waiting for their read index, by ReadIndex context.
    var readsAwaitingIndex: [UInt64: PendingRead] = [:]
    /// Reads whose read index is known, waiting for the entries up to it to be handed out.
    var readsAwaitingApply: [(index: LogIndex, read: PendingRead)] = []
    var nextReadID: UInt64 = 1
    /// Keep-alives renewed this round; one ReadIndex round confirms them together.
    var keepAlivesThisRound: [PendingKeepAlive] = []
    /// Keep-alives waiting for the heartbeat quorum that shows this node still led after their
    /// receipt, by read ID (the ReadIndex context is `keepAliveContextTag` ‖ ID).
    var keepAlivesAwaitingIndex: [UInt64: (replies: [PendingKeepAlive], deadline: NodeInstant)] = [:]
    var transfers: [(target: NodeID, deadline: NodeInstant, context: RPCRequestContext)] = []
    /// Whether this node has been in the configuration (a removal then stops it).
    lazy var wasMember = raft.conf.isMember(id)
    /// The term in the logger's metadata.
    var loggedTerm = Term.zero
    var lastRole = RaftRole.follower
    var lastLeader: NodeID?
    public internal(set) var failure: StoreError?
    public internal(set) var isStopping = false {
        didSet {
            // From now on requests routed past the owner are refused (`routeToApplyStage`).
            if isStopping && !oldValue { closeDirectRoute() }
        }
    }
    /// Nil while requests may go straight to the apply queue (`routeToApplyStage`); once the
    /// node is stopping, the reason they are refused. Read and set under its lock, which a
    /// request holds while it is queued, so none is queued after the owner went on to stop the
    /// apply stage (its queue drops what arrives once closed).
    let directRouteClosed = NIOLockedValueBox<String?>(nil)
    /// Whether the applied state holds a cluster ID and is at the current state level
    /// (`StateStore.isFounded`); until it does, a leader proposes them.
    var hasClusterID: Bool
    /// The leases of the applied state, and the leader's timers for them.
    var lessor: Lessor
    var clusterIDProposedTerm: Term?
    /// `.apply` jobs posted and not yet reported: the owner takes no Ready while this is at
    /// `applyQueueMax`, so a slow apply slows proposals, not the other way round.
    var applyJobsInFlight = 0
    /// Set when a Raft snapshot message was stepped: the core may now hold only the snapshot's
    /// metadata. Until its Ready is taken, no other peer message is stepped (an append stepped
    /// after the restore would be acknowledged in that Ready, yet never persisted: the install
    /// replaces the log).
    var reservedSnapshot: (any IncomingSnapshot)?
    /// When the core is ticked next, and when timeouts are checked next.
    public private(set) var nextTick: NodeInstant
    /// The last heartbeat round for reads the core started (its count), and when the next may
    /// start (`paceReadRounds`).
    var lastReadRound = (count: UInt64(0), nextAt: NodeInstant(.zero))
    /// When the owner must run a round even without events: the next tick, or earlier when
    /// reads wait for a round held back by the spacing or a follower's held entries are due.
    public var nextWake: NodeInstant {
        var wake = nextTick
        if let heldSince { wake = min(wake, heldSince + settings.followerApplyHold) }
        guard let raft, raft.holdsReadRounds, raft.hasReadsWaitingForRound else { return wake }
        return min(wake, lastReadRound.nextAt)
    }
    var nextHousekeeping: NodeInstant
    /// Signalled once `finishStopping` has run.
    public let finished = DispatchSemaphore(value: 0)
    /// Reads, applies and snapshot installs since start (the simulator's coverage report).
    public internal(set) var counters = Counters()
    let metrics: PipelineMetrics
    /// What other threads may read of this core (health checks), published every round.
    public let vitals = NIOLockedValueBox(NodeVitals())
    /// Proposed batches waiting for their commit (the propose-to-commit histogram).
    var proposalTimer = ProposalTimer()
    /// The store's figures for the vitals, and when they are read next.
    var storageFigures: (storage: StorageStats, recordCache: RecordCacheStats, at: NodeInstant)?
    var nextStorageStats = NodeInstant(.zero)

    public struct Counters: Sendable {
        public var snapshotsInstalled = 0
        public var readsReleased = 0
        /// Owner rounds in which reads waited for a heartbeat round held back (`paceReadRounds`).
        public var readRoundHolds = 0
        /// Groups of committed entries handed to the apply stage (`postApply`).
        public var applyGroupsPosted = 0
    }

    struct PendingKeepAlive {
        var id: UInt64
        var ttlSeconds: UInt64
        var context: RPCRequestContext
    }

    struct PendingRead {
        var request: ReadRequest
        var context: RPCRequestContext
        var deadline: NodeInstant
    }

    public init(
        settings: PipelineSettings, store: any StateStore, raft: RaftNode, raftStorage: RaftStorageMonitor,
        events: any NodeEventSink, members: any MemberBook, transport: any PeerSender, snapshots: any SnapshotShipping,
        clock: any NodeClock, decorator: (any AnswerDecorator)?, hasClusterID: Bool, logger: Logger
    ) {
        self.id = settings.nodeID
        self.settings = settings
        self.metrics = settings.metrics
        self.events = events
        self.members = members
        self.transport = transport
        self.snapshots = snapshots
        self.clock = clock
        self.decorator = decorator
        var logger = logger
        logger[metadataKey: "term"] = "\(raft.term)"
        logger[metadataKey: "role"] = "\(raft.role)"
        self.logger = logger
        self.store = store
        self.raft = raft
        self.raftStorage = raftStorage
        self.handedOutIndex = store.appliedIndex
        self.appliedIndex = store.appliedIndex
        self.treeSize = store.treeHead.treeSize
        self.hasClusterID = hasClusterID
        self.lessor = Lessor(promotionGrace: .milliseconds(Int64(settings.tickMs * settings.electionTicks)))
        let now = clock.now
        self.nextTick = now + .milliseconds(settings.tickMs)
        self.nextHousekeeping = now + .milliseconds(100)
        // Links to every member from the start (before the owner thread runs, so not racing it).
        transport.reconcile(with: raft.conf, me: settings.nodeID)
        loadLeases()
    }

    // MARK: Loop

    /// One round of the owner loop: the events that arrived, then the tick if one is due
    /// (ticks follow the monotonic clock port, so a wall-clock step never stops heartbeats),
    /// expired requests, this round's proposals, and at most one Ready. Returns false once the
    /// node is stopping: the caller then calls `finishStopping()`.
    public func runRound(_ batch: [NodeEvent], now: NodeInstant) -> Bool {
        defer { publishVitals(now: now) }
        for event in batch { handle(event) }
        if isStopping { return false }
        if failure != nil { return true }  // drain events until stopping completes
        if now >= nextTick {
            raft.tick()
            nextTick = nextTick + .milliseconds(settings.tickMs)
            // After a long stall (a paused VM), do not replay every missed tick: one is
            // enough to notice, the rest would only churn.
            if nextTick < now { nextTick = now + .milliseconds(settings.tickMs) }
        }
        if now >= nextHousekeeping {
            expireRequests(now: now)
            driveLeases(now: now)
            nextHousekeeping = now + .milliseconds(100)
        }
        proposeQueuedWrites()
        confirmKeepAlives(now: now)
        proposeClusterIDIfNeeded()
        driveReady()
        if !heldEntries.isEmpty && applyJobsInFlight < settings.applyQueueMax { postHeldIfDue(confState: nil) }
        return !isStopping
    }

    /// Gauges and the vitals other threads read: a handful of stores per round.
    private func publishVitals(now: NodeInstant) {
        let stopped = failure.map { "stopped on a disk error: \($0)" } ?? (isStopping ? "stopping" : nil)
        guard let raft else {
            // No core: a failed snapshot install (fail-stop) or after `finishStopping`.
            vitals.withLockedValue {
                $0.lastRound = now
                $0.stopped = stopped ?? "no Raft core"
            }
            return
        }
        var v = NodeVitals()
        if failure == nil, let store, now >= nextStorageStats {
            // The owner reads them: it alone reopens the store (snapshot installs).
            storageFigures = (store.storageStats, store.recordCacheStats, now)
            nextStorageStats = now + .seconds(1)
        }
        v.storage = storageFigures?.storage
        v.recordCache = storageFigures?.recordCache
        v.storageAt = storageFigures?.at
        v.role = raft.role
        v.isLearner = raft.conf.isLearner(id)
        v.configuration = raft.conf
        v.term = raft.term
        v.leader = raft.leader
        v.commitIndex = raft.commitIndex
        v.appliedIndex = appliedIndex
        v.treeSize = treeSize
        v.lastRound = now
        v.stopped = stopped
        vitals.withLockedValue { $0 = v }
        metrics.term.record(v.term.rawValue)
        metrics.commitIndex.record(v.commitIndex.rawValue)
        metrics.appliedIndex.record(v.appliedIndex.rawValue)
        metrics.treeSize.record(v.treeSize)
        metrics.isLeader.record(v.role == .leader ? 1 : 0)
        metrics.hasLeader.record(v.leader == nil ? 0 : 1)
        metrics.pendingProposals.record(proposals.count)
        metrics.pendingReads.record(readsAwaitingIndex.count + readsAwaitingApply.count + keepAlivesAwaitingIndex.count)
        metrics.applyJobsInFlight.record(applyJobsInFlight)
    }

    private func handle(_ event: NodeEvent) {
        if failure != nil {
            // Fail-stop: nothing touches the core or the store any more.
            switch event {
            case .request(_, let context): context.respond(.error(RPCErrorResponse(.unavailable, "node \(id) stopped on a disk error")))
            case .stop: isStopping = true
            default: break
            }
            return
        }
        switch event {
        case .raftMessages(let messages):
            for m in messages where reservedSnapshot == nil { stepPeerMessage(m) }
        case .request(let message, let context):
            handleRequest(message, context)
        case .applied(let result):
            applyJobsInFlight -= 1
            switch result {
            case .success(let report): handleApplied(report)
            case .failure(let error): failStop(error, while: "applying committed entries")
            }
        case .snapshotSent(let peer, let meta):
            guard let meta, raft.isLeader else { return }
            // The files are there: now the Raft message, with the checkpoint's metadata
            // (at or after the core's snapshot index; the leader has every entry after it).
            transport.send([Message(type: .snapshot, from: id, to: peer, term: raft.term, snapshot: Snapshot(metadata: meta))])
        case .storeFailed(let error, let doing):
            failStop(error, while: doing)
        case .removedByPeer(let peer, let reason):
            guard !isStopping else { return }
            // Only a node that has applied the removal refuses this way, so the removal is
            // committed: this node missed the entry (down or cut off when it committed).
            logger.notice("this node was removed from the cluster (peer \(peer) has applied its removal): stopping",
                          metadata: ["reason": "\(reason)"])
            isStopping = true
        case .stop:
            isStopping = true
        }
    }

    private func stepPeerMessage(_ m: Message) {
        if m.type == .snapshot, let meta = m.snapshot?.metadata, meta.index > raft.commitIndex, m.term >= raft.term {
            // Take the verified files first (no new offer may replace them now): the core will
            // take the metadata and expect us to hold the state.
            guard let receiver = snapshots.take(at: meta.index) else {
                logger.debug("dropping a snapshot message without its files", metadata: ["index": "\(meta.index)"])
                return
            }
            reservedSnapshot = receiver
        }
        raft.step(m)
    }

    // MARK: Ready

    private func driveReady() {
        guard failure == nil, !stopIfRaftLogDamaged() else { return }
        paceReadRounds()
        guard raft.hasReady else {
            // The core ignored the snapshot message (a restore always makes a Ready).
            if reservedSnapshot != nil {
                reservedSnapshot = nil
                snapshots.installFinished()
            }
            return
        }
        // A reserved snapshot is installed as soon as possible, whatever the apply queue holds.
        guard applyJobsInFlight < settings.applyQueueMax || reservedSnapshot != nil else { return }
        let ready = raft.ready()
        if raft.readRoundsStarted != lastReadRound.count {
            let hold = Self.readRoundHold(after: raft.readsInLastRound, spacing: settings.readRoundSpacing)
            lastReadRound = (raft.readRoundsStarted, clock.now + hold)
            metrics.readRounds.increment()
        }
        // Nothing of a Ready built over a damaged log is persisted or sent.
        if stopIfRaftLogDamaged() { return }
        if raft.isLeader {
            let metrics = metrics
            proposalTimer.committed(through: raft.commitIndex, at: clock.now) { metrics.proposeToCommit.record($0) }
        }
        if let hard = ready.hardState, hard.term != loggedTerm {
            loggedTerm = hard.term
            logger[metadataKey: "term"] = "\(hard.term)"
        }
        if let soft = ready.softState { softStateChanged(soft) }
        sendMessages(ready.earlyMessages)
        if let snapshot = ready.snapshot, let receiver = reservedSnapshot,
            receiver.metadata.index == snapshot.metadata.index
        {
            reservedSnapshot = nil
            installSnapshot(snapshot.metadata, receiver: receiver, ready: ready)
            return
        }
        if let snapshot = ready.snapshot {
            failStop(StoreError(.snapshotInvalid, "Raft took snapshot \(snapshot.metadata.index) without its files"), while: "installing a snapshot")
            return
        }
        if reservedSnapshot != nil {
            // The core did not restore (it already had those entries): release the files.
            reservedSnapshot = nil
            snapshots.installFinished()
        }
        handOut(ready)
        guard !ready.entries.isEmpty || ready.hardState != nil || ready.confState != nil else {
            finishReady(ready)
            return
        }
        // Persisted on this thread: there is one Ready in flight at a time, so handing it to
        // the log's writer thread and back batched nothing and cost two context switches per
        // Ready (docs/PERFORMANCE.md). Events that arrive meanwhile wait in the queue and go
        // into the next Ready, which is the group commit.
        let update = RaftLogUpdate(ready)
        do {
            let started = clock.now
            try store.entryLog.persist(update)
            metrics.logPersist.record(clock.now - started)
        } catch {
            failStop(error, while: "persisting the Raft log")
            return
        }
        finishReady(ready)
    }

    /// Holds the next heartbeat round for reads for a while after the last one started. Each
    /// round costs a message to and from every follower and a wake-up of each thread on the
    /// way; when reads arrive faster than a round trip, rounds run back to back with a few
    /// reads each. Held, one round serves every read of the interval.
    private func paceReadRounds() {
        guard let raft else { return }
        raft.holdsReadRounds = raft.isLeader && clock.now < lastReadRound.nextAt
        if raft.holdsReadRounds && raft.hasReadsWaitingForRound { counters.readRoundHolds += 1 }
    }

    /// How long the round after one of `reads` reads waits after it: the spacing in full once
    /// rounds carry `readRoundFullAt` reads, in proportion below. One client's reads (one per
    /// round) wait an eighth of it, less than their own round trip: they wait for nothing.
    /// Under load rounds grow, the hold with them, and fewer rounds serve the same reads
    /// (docs/PERFORMANCE.md "Read rounds held under load").
    static func readRoundHold(after reads: Int, spacing: Duration) -> Duration {
        spacing * min(reads, readRoundFullAt) / readRoundFullAt
    }

    static let readRoundFullAt = 8

    /// Committed entries go to the apply stage as soon as the Ready is taken, not after its own
    /// writes are durable: the core hands out only entries already durable here (at most its
    /// stable index) and committed on a quorum, so nothing in this Ready's writes concerns them.
    /// This keeps the fsync of the Ready (often just the new commit index) off the write path.
    /// Read states likewise depend on a heartbeat quorum only.
    private func handOut(_ ready: Ready) {
        if !ready.committedEntries.isEmpty {
            if heldEntries.isEmpty { heldSince = clock.now }
            heldEntries.append(contentsOf: ready.committedEntries)
        }
        for state in ready.readStates {
            if state.context.count == 9 && state.context[0] == Self.keepAliveContextTag {
                keepAlivesConfirmed(state.context.dropFirst().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                continue
            }
            guard state.context.count == 8 else { continue }
            let readID = state.context.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if let read = readsAwaitingIndex.removeValue(forKey: readID) {
                readsAwaitingApply.append((state.index, read))
            }
        }
        postHeldIfDue(confState: ready.confState)
    }

    /// Posts the held entries unless the hold still applies (a membership change always goes
    /// at once), then releases the reads they let through.
    private func postHeldIfDue(confState: ConfState?) {
        if confState != nil || !holdsApply() { postApply(confState: confState) }
        releaseReads()
    }

    /// Hands the held entries, and the membership after them if it changed, to the apply stage.
    private func postApply(confState: ConfState?) {
        guard !heldEntries.isEmpty || confState != nil else { return }
        applier.post(.apply(heldEntries, confState))
        applyJobsInFlight += 1
        counters.applyGroupsPosted += 1
        if let last = heldEntries.last { handedOutIndex = last.index }
        heldEntries = []
        heldSince = nil
    }

    /// Whether a follower keeps its newly committed entries back for now. At one entry per
    /// append, each apply cost the apply thread a wake-up and a store write for one entry;
    /// held for up to `followerApplyHold`, they are applied several at once (docs/PERFORMANCE.md
    /// "Followers apply in groups"). Never on a leader, which answers the writes as they
    /// apply; never while a read waits for them (it is served after them) or a snapshot is
    /// coming in. Entries still held when the node stops are applied from the entry log at
    /// the next start, like any entry above the flushed state.
    func holdsApply() -> Bool {
        guard let heldSince, settings.followerApplyHold > .zero, let raft else { return false }
        return !raft.isLeader && reservedSnapshot == nil && !isStopping
            && heldEntries.count < settings.followerApplyHoldEntries
            && clock.now < heldSince + settings.followerApplyHold
            && !readsAwaitingApply.contains { $0.index > handedOutIndex }
    }

    /// After the Ready's writes are durable: its messages (votes, acknowledgements) may go.
    private func finishReady(_ ready: Ready) {
        sendMessages(ready.messages)
        raft.advance(ready)
        if ready.confState != nil {
            transport.reconcile(with: raft.conf, me: id)
            if raft.conf.isMember(id) {
                wasMember = true
            } else if wasMember {
                // Like etcd: a removed member stops rather than linger as a zombie that clients
                // might still ask. (Its data directory is left for inspection.)
                logger.notice("this node was removed from the cluster: stopping")
                isStopping = true
            }
        }
    }

    /// Sends Raft messages; snapshot messages start a checkpoint stream instead (the message
    /// itself goes once the files are there).
    private func sendMessages(_ messages: [Message]) {
        guard messages.contains(where: { $0.type == .snapshot }) else {
            transport.send(messages)
            return
        }
        transport.send(messages.filter { $0.type != .snapshot })
        for m in messages where m.type == .snapshot { startSnapshot(to: m.to) }
    }

    private func startSnapshot(to peer: NodeID) {
        guard snapshots.claim(peer) else { return }
        logger.info("sending a snapshot", metadata: ["peer": "\(peer)"])
        let sender = snapshots
        applier.post(.makeCheckpoint { [events, logger] result in
            switch result {
            case .success(let checkpoint):
                sender.send(checkpoint, to: peer) { meta in events.post(.snapshotSent(peer, meta)) }
            case .failure(let error):
                // A fail-stop error has already stopped the node (the apply stage reports it).
                logger.error("snapshot for \(peer): \(error)")
                sender.release(peer)
            }
        })
    }

    private func softStateChanged(_ soft: SoftState) {
        let (oldRole, oldLeader) = (lastRole, lastLeader)
        (lastRole, lastLeader) = (soft.role, soft.leader)
        logger[metadataKey: "term"] = "\(raft.term)"
        logger[metadataKey: "role"] = "\(soft.role)"
        // The hint of the "replaced" answers the apply stage gives.
        if soft.leader != oldLeader {
            proposals.leader = soft.leader
            if soft.leader != nil { metrics.leaderChanges.increment() }
        }
        if soft.role != .leader { proposalTimer.forgetAll() }
        // The core counts read rounds per role: start over with it.
        if soft.role != oldRole { lastReadRound = (0, NodeInstant(.zero)) }
        if soft.role == .leader && oldRole != .leader { lessor.promote(now: clock.now) }
        if soft.role != .leader && oldRole == .leader { lessor.demote() }
        if soft.role != oldRole || soft.leader != oldLeader {
            logger.info("raft state changed", metadata: ["leader": "\(soft.leader.map { "\($0)" } ?? "none")"])
        }
        if oldRole == RaftRole.leader && soft.role != RaftRole.leader {
            // Reads waiting for this leader's heartbeat round will not be confirmed.
            for (_, read) in readsAwaitingIndex { read.context.respond(notLeaderError("leadership changed")) }
            readsAwaitingIndex.removeAll()
            dropKeepAlives(notLeaderError("leadership changed before the keep-alive was confirmed"))
        }
        transfers.removeAll { waiter in
            guard soft.leader == waiter.target, soft.role != .candidate else { return false }
            waiter.context.respond(.leaderTransferResponse)
            return true
        }
    }

    // MARK: Apply results

    /// Whether the owner needs each apply report as it comes: the apply queue is full, so the
    /// next Ready waits for one, or the node is stopping. Otherwise routine reports may wait
    /// for the next event or tick (the wiring's `EventQueue.postQuietly`).
    public var wantsApplyReportsNow: Bool {
        applyJobsInFlight >= settings.applyQueueMax || isStopping || failure != nil
    }

    /// The apply stage has answered the writes of the group; the owner keeps its bookkeeping
    /// and answers the membership changes, whose answer is the member list it acts on.
    private func handleApplied(_ report: ApplyReport) {
        // Reports of the store a snapshot replaced may still arrive: they are behind.
        if report.appliedIndex > appliedIndex {
            appliedIndex = report.appliedIndex
            treeSize = report.treeSize
            hasClusterID = hasClusterID || report.hasClusterID
            if !report.leaseChanges.isEmpty { lessor.apply(report.leaseChanges, now: clock.now) }
        }
        let changes = proposals.takeMemberChanges(at: report.memberChanges)
        guard !changes.isEmpty else { return }
        var answers = RPCResponseBatch()
        let list = memberList()
        for p in changes { answers.add(.membersResponse(list), for: p.context) }
        answers.send()
    }

    private func releaseReads() {
        guard !readsAwaitingApply.isEmpty else { return }
        readsAwaitingApply.removeAll { item in
            guard item.index <= handedOutIndex else { return false }
            counters.readsReleased += 1
            // The apply queue is FIFO: this read runs after every entry up to its index.
            if !applier.offer(.read(item.read.request, item.read.context)) {
                item.read.context.respond(.error(RPCErrorResponse(.overloaded, "apply stage busy; retry")))
            }
            return true
        }
    }

    // MARK: Timeouts

    private func expireRequests(now: NodeInstant) {
        // Removed under the registry's lock: a write the apply stage answered meanwhile is not
        // answered again, and one answered here will not be by the apply stage.
        for (index, p) in proposals.expire(before: now) {
            p.context.respond(.error(RPCErrorResponse(
                .timeout, "entry \(index) not applied within \(settings.requestTimeout); outcome unknown, retry with the same session")))
        }
        expireKeepAlives(now: now)
        for (readID, read) in readsAwaitingIndex where read.deadline < now {
            readsAwaitingIndex[readID] = nil
            read.context.respond(.error(RPCErrorResponse(.timeout, "read index not confirmed in time (no quorum?); retry")))
        }
        readsAwaitingApply.removeAll { item in
            guard item.read.deadline < now else { return false }
            item.read.context.respond(.error(RPCErrorResponse(.timeout, "read waited too long for entries to apply; retry")))
            return true
        }
        transfers.removeAll { waiter in
            guard waiter.deadline < now else { return false }
            waiter.context.respond(.error(RPCErrorResponse(.timeout, "leadership did not move to \(waiter.target) in time")))
            return true
        }
    }

    // MARK: Stopping

    /// Stops the node if the core met a Raft log record it could not read. The core records
    /// every fatal storage error (`RaftNode.storageFailure`, ADR 0006 "Storage failures") and
    /// stops itself — no Ready, inputs ignored — but the node around it must stop too; the
    /// monitor's copy of the error names what the store could not read, so it is preferred.
    /// Called before and after every `ready()`. Returns whether the node is stopping.
    private func stopIfRaftLogDamaged() -> Bool {
        guard failure == nil else { return true }
        let coreError = raft.storageFailure.map { StoreError(wrapping: $0, "reading the Raft log") }
        guard let error = raftStorage.failure ?? coreError else { return false }
        failStop(error, while: "reading the Raft log")
        return true
    }

    func failStop(_ error: StoreError, while doing: String) {
        guard failure == nil else { return }
        failure = error
        logger.critical("stopping: \(doing) failed: \(error)")
        isStopping = true
    }

    /// Answers everything in flight with `unavailable`, stops the apply stage and closes the
    /// store. Called by the wiring once `runRound` returned false.
    public func finishStopping() {
        let stopping = RPCErrorResponse(.unavailable, "node \(id) is stopping")
        for p in proposals.removeAll() { p.context.respond(.error(stopping)) }
        for (_, r) in readsAwaitingIndex { r.context.respond(.error(stopping)) }
        for item in readsAwaitingApply { item.read.context.respond(.error(stopping)) }
        for (bytes: _, context: c) in queuedWrites { c.respond(.error(stopping)) }
        dropKeepAlives(.error(stopping))
        readsAwaitingIndex = [:]
        readsAwaitingApply = []
        queuedWrites = []
        // Answer whatever was still queued.
        for case .request(_, let context) in events.closeAndDrain() { context.respond(.error(stopping)) }
        // Close the store before the process exits: RocksDB's background threads must not
        // outlive the static destructors (std::terminate at exit otherwise).
        applier.stopAndWait()
        if reservedSnapshot != nil {
            reservedSnapshot = nil
            snapshots.installFinished()
        }
        store?.close()
        store = nil
        raft = nil
        raftStorage = nil
        finished.signal()
    }

    var leaderHint: LeaderHint? {
        guard let leader = raft.leader else { return nil }
        return LeaderHint(nodeID: leader, clientAddress: members.addresses(of: leader)?.client)
    }

    func notLeaderError(_ why: String) -> RPCMessage {
        let leader = raft.leader.map { "\($0)" } ?? "unknown"
        return .error(RPCErrorResponse(.notLeader, "\(id) is not the leader (\(why)); leader: \(leader)", leaderHint: leaderHint))
    }
}

// MARK: Introspection (status pages, the node simulator's checks)

extension NodeCore {
    public var role: RaftRole { raft?.role ?? .follower }
    public var isLeader: Bool { raft?.isLeader ?? false }
    public var term: Term { raft?.term ?? .zero }
    public var commitIndex: LogIndex { raft?.commitIndex ?? .zero }
    public var leader: NodeID? { raft?.leader }
    /// The store the pipeline uses now (a snapshot install replaces it).
    public var stateStore: (any StateStore)? { store }
    /// The membership the core acts on.
    public var configuration: ConfState? { raft?.conf }
}
