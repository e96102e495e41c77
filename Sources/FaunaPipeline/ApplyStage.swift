import CoreMetrics
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import Logging

/// Work for the apply stage, done strictly in queue order. Because applies and reads share the
/// queue, a read queued after the entries up to its read index sees at least those entries.
public enum ApplyJob: Sendable {
    /// Committed entries (contiguous, in order) and the membership after them, if it changed.
    case apply([Entry], ConfState?)
    /// A read; answered from the state as of this point in the queue.
    case read(ReadRequest, RPCRequestContext)
    /// The state digest of the applied state, computed off this thread (`background`); the
    /// slot is given back once it is answered.
    case hashKV(RPCRequestContext, ClientJobSlot)
    /// An audit request (signed head, proofs, journal entry, digest at a revision); a digest
    /// holds a slot until it is answered.
    case audit(RPCMessage, RPCRequestContext, ClientJobSlot?)
    /// Takes a checkpoint of the applied state (fast: hard links) and hands it over; the
    /// receiver hashes its files on a thread of its own, never this one.
    case makeCheckpoint(@Sendable (Result<any StateCheckpoint, StoreError>) -> Void)
    /// Replaces the store (nil while a snapshot is installed), then calls `done`.
    case setStore((any StateStore)?, done: @Sendable () -> Void)
    /// Reads a watcher's changes from the store (`WatchHub`: it is behind the ring, or starts
    /// at a past revision) and hands them to `done`.
    case watchRead(WatchRead, done: @Sendable (WatchReadResult) -> Void)
    /// Answers `leaseTimeToLive` from the applied state, with the time left the leader's
    /// lessor gave (`remainingMs`).
    case leaseInfo(LeaseTimeToLiveRequest, remainingMs: UInt64, RPCRequestContext)
}

/// What one `.apply` job did, for the owner thread. The writes it applied are answered by the
/// apply stage itself (`ProposalRegistry.settle`); the owner keeps its bookkeeping from this.
public struct ApplyReport: Sendable {
    /// Applied membership changes this node proposed, still to be answered by the owner (with
    /// the member list it acts on).
    var memberChanges: [LogIndex]
    var appliedIndex: LogIndex
    var treeSize: UInt64
    /// Whether the state holds a cluster ID and the leaf v2 boundary (the leader proposes them
    /// while it does not).
    var hasClusterID = true
    /// What the applied entries did to leases, in order (the owner's lessor follows them).
    var leaseChanges: [KVLeaseChange] = []

    /// Only advances the applied index: no member change to answer, no lease change, no
    /// cluster ID still to propose. The owner may take it at its next round.
    public var isRoutine: Bool { memberChanges.isEmpty && leaseChanges.isEmpty && hasClusterID }
}

/// The apply stage of ADR 0007: applies committed entries to the store (state machine,
/// journal and Merkle tree in one batch), serves reads between applies, and compacts the Raft
/// log once it holds more than `compactEntries` applied entries. Slow applies never hold up
/// persisting or heartbeats, which run on the owner thread.
///
/// The wiring runs it: `faunad` on a thread of its own draining a FIFO queue, the node
/// simulator whenever its schedule lets that node's apply stage take a step. Either calls
/// `run(_:)` with jobs in queue order, and `finish()` once the queue is closed.
public final class ApplyStage: @unchecked Sendable {
    // @unchecked Sendable: `store` and the other vars are touched only by the thread running
    // the jobs (store swaps arrive as jobs); `leaseCount` only under `leases`' lock.
    private var store: (any StateStore)?
    private let nodeID: NodeID
    private let compactEntries: UInt64
    private let members: any MemberBook
    private let logger: Logger
    private let report: @Sendable (Result<ApplyReport, StoreError>) -> Void
    /// Stops the node after a fail-stop store error met outside an apply (a read, a digest, an
    /// audit, a checkpoint): the owner thread logs it and stops (docs/RELIABILITY.md).
    private let failStop: @Sendable (StoreError, String) -> Void
    /// Set after a failed apply or a fail-stop store error: the state is behind what reads
    /// were promised, or the disk cannot be trusted; nothing more is served from it.
    private var failed = false
    /// Where `hashKV` digests run: reading the whole state takes as long as the state is
    /// large, and on this thread it held up every apply behind it (and, once 256 apply
    /// batches waited, the owner's Readies and heartbeats).
    private let background: any BackgroundRunner
    /// Stores lent to `background`: a store is replaced or closed only once none is out.
    private let leases = NSCondition()
    private var leaseCount = 0
    private var lastConfChangeIndex: LogIndex
    private let audit: AuditService
    /// The proposals of this node waiting for their answer: the stage answers the writes it
    /// applies, shared with the owner (which registers them, and answers timeouts).
    private let proposals: ProposalRegistry
    private let decorator: (any AnswerDecorator)?
    /// The node's copy of the auth state: loaded here, refreshed after applies that change it.
    private let auth: AuthGate
    /// Once true, stays true (the first committed cluster ID is never replaced).
    private var hasClusterID = false

    let metrics: PipelineMetrics
    /// The node's watches, told of every applied batch and store swap; nil: no watches
    /// (the node simulator). Set before the first job runs.
    public var watchHub: WatchHub?

    /// `proposals` is the owner's (`NodeCore.proposals`): the writes applied here are answered
    /// here.
    public init(
        store: any StateStore, nodeID: NodeID, compactEntries: Int, members: any MemberBook, audit: AuditService,
        proposals: ProposalRegistry, auth: AuthGate, decorator: (any AnswerDecorator)?, background: any BackgroundRunner,
        logger: Logger, metrics: PipelineMetrics = PipelineMetrics(), failStop: @escaping @Sendable (StoreError, String) -> Void,
        report: @escaping @Sendable (Result<ApplyReport, StoreError>) -> Void
    ) {
        self.metrics = metrics
        self.audit = audit
        self.proposals = proposals
        self.decorator = decorator
        self.auth = auth
        self.background = background
        self.store = store
        self.nodeID = nodeID
        self.compactEntries = UInt64(compactEntries)
        self.members = members
        self.logger = logger
        self.report = report
        self.failStop = failStop
        // Unknown before this run: assume a change right at the applied index (compacting
        // through it is then always correct).
        self.lastConfChangeIndex = store.appliedIndex
        loadAuth(store, "starting")
    }

    /// Loads the auth state of `store` into the gate; a store that cannot be read stops the node.
    private func loadAuth(_ store: any StateStore, _ doing: String) {
        do {
            try auth.refresh(from: store)
        } catch {
            failed = true
            failStop(error, "loading the auth state (\(doing))")
        }
    }

    /// Runs jobs taken from the queue, in order. Reads queued together are answered together
    /// (one flush per connection); anything else first sends the answers gathered so far, so
    /// no read waits for a slow job.
    public func run(_ jobs: [ApplyJob]) {
        var answers = RPCResponseBatch()
        for job in jobs {
            if case .read(let request, let context) = job, let store, !failed {
                answers.add(readAnswer(request, context, on: store), for: context)
                continue
            }
            answers.send()
            handle(job)
        }
        answers.send()
    }

    /// Runs one step of the work the store's applies left behind (`StateStore.idleStep`);
    /// the apply thread calls it while its queue is empty. Returns whether more remains. A
    /// failure stops the node, as a failed read does.
    public func idle() -> Bool {
        guard let store, !failed else { return false }
        do {
            return try store.idleStep()
        } catch {
            failed = true
            failStop(error, "purging compacted history")
            return false
        }
    }

    /// After the queue is closed and drained: waits for lent stores and drops the store.
    public func finish() {
        waitForLeases()
        store = nil
    }

    private func handle(_ job: ApplyJob) {
        switch job {
        case .apply(let entries, let confState):
            // Every apply job is reported once (the owner counts them). Without a store (a
            // snapshot install replaced what these entries held) or after a failure, nothing
            // is applied.
            guard let store, !failed else {
                report(.success(ApplyReport(memberChanges: [], appliedIndex: .zero, treeSize: 0)))
                return
            }
            do {
                let started = ContinuousClock.now
                let applied = try store.apply(entries, confState: confState)
                metrics.applyBatch.record(ContinuousClock.now - started)
                metrics.appliedEntries.increment(by: applied.count)
                if !hasClusterID { hasClusterID = try store.isFounded() }
                var settled: [ProposalRegistry.Applied] = []
                settled.reserveCapacity(applied.count)
                // `apply` skips entries already applied and answers the rest in order: they are
                // the last `applied.count` of `entries`.
                for (a, e) in zip(applied, entries.suffix(applied.count)) {
                    precondition(a.index == e.index, "apply answered index \(a.index) for entry \(e.index)")
                    settled.append(.init(index: a.index, term: e.term, result: a.result))
                }
                // The writes of this group are answered from here, one batch per connection
                // (matched by index and term, as the owner once did on the report).
                var answers = RPCResponseBatch()
                let members = members
                let memberChanges = proposals.settle(settled, into: &answers) { leader in
                    LeaderHint(nodeID: leader, clientAddress: members.addresses(of: leader)?.client)
                }
                recordMemberAddresses(in: entries)
                // Before anything is answered: a read queued behind this batch is checked
                // against the auth state it changed.
                if applied.contains(where: { $0.writes.contains { KVSystemKeys.contains($0.key) } }) {
                    try auth.refresh(from: store)
                } else if confState != nil {
                    auth.setMembers(store.appliedConfState)
                }
                watchHub?.published(applied)
                // The report goes first: a request a client sends once it has its answer then
                // finds the owner's bookkeeping (`status`) past this group.
                report(.success(ApplyReport(
                    memberChanges: memberChanges, appliedIndex: store.appliedIndex, treeSize: store.treeHead.treeSize,
                    hasClusterID: hasClusterID, leaseChanges: applied.flatMap(\.leaseChanges))))
                answers.send()
                try compactLogIfLong(store, after: entries)
            } catch {
                failed = true
                report(.failure(error))
            }
        case .read(let request, let context):
            guard let store, !failed else { return context.respond(notServing) }
            context.respond(readAnswer(request, context, on: store))
        case .audit(let message, let context, let slot):
            defer { slot?.release() }
            guard let store, !failed else { return context.respond(notServing) }
            do {
                if let refusal = try entryRefusal(message, context, store) { return context.respond(refusal) }
                let answer = try audit.answer(message, store: store)
                context.respond(decorator?.audit(message, answer: answer, store: store) ?? answer)
            } catch {
                context.respond(stop(on: error, while: "answering \(message.kind)"))
            }
        case .hashKV(let context, let slot):
            guard let store, !failed else {
                slot.release()
                return context.respond(notServing)
            }
            let (nodeID, failStop) = (nodeID, failStop)
            lend(store) { store in
                defer { slot.release() }
                do throws(StoreError) {
                    context.respond(try Self.hashKV(of: store, nodeID: nodeID))
                } catch {
                    // Off the apply thread: the owner stops the node (and this stage with it).
                    if error.isFailStop { failStop(error, "computing the state digest") }
                    context.respond(.error(RPCErrorResponse(
                        error.isFailStop ? .unavailable : .internalError, "state digest: \(error)")))
                }
            }
        case .makeCheckpoint(let body):
            guard let store, !failed else {
                body(.failure(StoreError(.closed, "no store to checkpoint (installing a snapshot, or stopped)")))
                return
            }
            do {
                body(.success(try store.makeCheckpoint()))
            } catch {
                if error.isFailStop { _ = stop(on: error, while: "taking a checkpoint") }
                body(.failure(error))
            }
        case .setStore(let new, let done):
            // The old store may be closed once this returns: no digest may still read it.
            waitForLeases()
            store = new
            if let new {
                lastConfChangeIndex = new.appliedIndex
                watchHub?.reset(appliedIndex: new.appliedIndex)
                loadAuth(new, "after a snapshot install")
            }
            done()
        case .leaseInfo(let request, let remaining, let context):
            guard let store, !failed else { return context.respond(notServing) }
            do {
                guard let found = try store.lease(request.id, keysMax: request.withKeys ? LeaseInfo.keysMax : 0) else {
                    return context.respond(.error(RPCErrorResponse(.leaseNotFound, "lease \(request.id) not found (never granted, revoked or expired)")))
                }
                // The keys of a lease are shown only to a user who may read each of them.
                if request.withKeys {
                    for key in found.keys {
                        if let refusal = auth.checkRead(context, .single(key)) { return context.respond(refusal) }
                    }
                }
                context.respond(.leaseTimeToLiveResponse(LeaseInfo(
                    id: request.id, ttlSeconds: found.lease.ttlSeconds, remainingMilliseconds: remaining,
                    grantRevision: found.lease.grantRevision.rawValue, keys: request.withKeys ? found.keys : [],
                    truncated: request.withKeys && found.truncated)))
            } catch let error as StoreError {
                context.respond(stop(on: error, while: "reading lease \(request.id)"))
            } catch {
                context.respond(.error(RPCErrorResponse(.internalError, "lease \(request.id): \(error)")))
            }
        case .watchRead(let read, let done):
            guard let store, !failed else { return done(.failed("the node is not serving (installing a snapshot, or stopped)")) }
            done(WatchStoreReader.read(store, read))
        }
    }

    /// A read's answer, through the test decorator if one is installed.
    private func readAnswer(_ request: ReadRequest, _ context: RPCRequestContext, on store: any StateStore) -> RPCMessage {
        if let refusal = auth.checkRead(context, request.range.range) { return refusal }
        let honest = answer(request, on: store)
        return decorator?.read(request, answer: honest, store: store) ?? honest
    }

    /// A journal entry, an inclusion proof or an entry proof shows an entry: a user who may not
    /// read every key it touches is refused (`KVAccess.checkEntry`). nil: go on.
    private func entryRefusal(_ message: RPCMessage, _ context: RPCRequestContext, _ store: any StateStore) throws(StoreError) -> RPCMessage? {
        let index: LogIndex
        switch message {
        case .journalEntry(let i): index = i
        case .entryProof(let request): index = request.index
        case .inclusionProof(let request): index = LogIndex(request.leafIndex &+ 1)
        default: return nil
        }
        guard let access = auth.access(context) else { return auth.checkBound(context, nodeMay: true) }
        if case .everything = access.level { return nil }
        if let refusal = auth.checkBound(context, nodeMay: true) { return refusal }
        // An index beyond the journal is answered by the audit service (behind / invalid).
        guard index >= LogIndex(1), index <= store.appliedIndex, let record = try store.journalRecord(at: index) else { return nil }
        return access.checkEntry(isNormal: record.entry.type == .normal, payload: record.entry.data).map(AuthGate.refusal)
    }

    /// Runs `body` with `store` on `background`; until it returns, `store` is neither
    /// replaced nor dropped (`waitForLeases`). Called on the apply thread only.
    private func lend(_ store: any StateStore, _ body: @escaping @Sendable (any StateStore) -> Void) {
        leases.withLock { leaseCount += 1 }
        background.run { [leases] in
            body(store)
            leases.withLock {
                self.leaseCount -= 1
                leases.broadcast()
            }
        }
    }

    /// Waits until no store is lent out (at most the digests holding a slot: two).
    private func waitForLeases() {
        leases.lock()
        defer { leases.unlock() }
        while leaseCount > 0 { leases.wait() }
    }

    /// The `hashKV` answer: the digest, and the tree head and compacted revision at the same
    /// applied index. Safe off the apply thread: the digest reads one RocksDB snapshot taken
    /// under the apply lock, the tree root is read at the digest's size (stored subtrees never
    /// change), and the compacted revision, which only grows, is read before and after — equal,
    /// it held throughout.
    static func hashKV(of store: any StateStore, nodeID: NodeID) throws(StoreError) -> RPCMessage {
        do {
            for _ in 0..<3 {
                let compactedBefore = try store.compactedRevision()
                let digest = try store.stateDigest()
                let compacted = try store.compactedRevision()
                guard compacted == compactedBefore else { continue }  // a compaction applied meanwhile
                // The tree has one leaf per applied entry; a store without the audit chain
                // (benchmarks, --unsafe-no-audit-chain) keeps none and reports its empty head.
                var head = store.treeHead
                let size = UInt64(digest.appliedIndex.rawValue)
                if store.auditChain && head.treeSize != size {
                    head = (size, try store.rootHash(atSize: size))
                }
                return .hashKVResponse(HashKVResult(
                    nodeID: nodeID, appliedIndex: digest.appliedIndex, compactRevision: compacted, digest: digest.sha256,
                    treeSize: head.treeSize, treeRoot: Array(head.rootHash.bytes)))
            }
            return .error(RPCErrorResponse(.unavailable, "the state was compacted during each of 3 digests; retry"))
        } catch {
            throw StoreError(wrapping: error, "state digest")
        }
    }

    /// The answer to a read. A request the state machine refuses is answered with the reason;
    /// any other error came from the store (a record that does not decode, a failed read) and
    /// stops the node: the client gets an error, never a guess.
    private func answer(_ request: ReadRequest, on store: any StateStore) -> RPCMessage {
        do {
            return try Self.read(request, on: store)
        } catch {
            return stop(on: error, while: "serving a read")
        }
    }

    static func read(_ request: ReadRequest, on store: any StateStore) throws(StoreError) -> RPCMessage {
        do {
            return .readResponse(try store.range(request.range))
        } catch let error as KVReadError {
            switch error {
            case .compacted: return .error(RPCErrorResponse(.compacted, error.description))
            case .futureRevision: return .error(RPCErrorResponse(.futureRevision, error.description))
            case .invalid: return .error(RPCErrorResponse(.invalidRequest, error.description))
            }
        } catch {
            throw StoreError(wrapping: error, "read")
        }
    }

    /// What a job gets once nothing is served from this store (a snapshot install swapping it,
    /// or a failure).
    private var notServing: RPCMessage {
        .error(RPCErrorResponse(
            .unavailable, failed ? "node \(nodeID) is stopping after a store error" : "installing a snapshot; retry"))
    }

    /// A store error met while answering: a fail-stop one stops serving from this store and
    /// stops the node (the owner thread logs it, naming the column family and key, and exits
    /// 1); the client is told the node is stopping (`unavailable`: retry on another node). Any
    /// other (none is expected here) is answered as an internal error.
    private func stop(on error: StoreError, while doing: String) -> RPCMessage {
        guard error.isFailStop else { return .error(RPCErrorResponse(.internalError, "\(doing): \(error)")) }
        if !failed {
            failed = true
            failStop(error, doing)
        }
        return .error(RPCErrorResponse(.unavailable, "node \(nodeID) is stopping: \(doing) failed: \(error.message)"))
    }

    /// Membership changes that add a member carry its addresses: keep them for restarts.
    private func recordMemberAddresses(in entries: [Entry]) {
        for e in entries where e.type == .confChange {
            guard let change = ConfChange(decoding: e.data), !change.context.isEmpty,
                let addresses = MemberAddresses(decoding: change.context)
            else { continue }
            members.record(addresses, for: change.nodeID)
        }
    }

    /// Log compaction ("snapshots triggered by log size"): the state machine in RocksDB is the
    /// snapshot, so it is enough to move the first index Raft serves once the log holds more
    /// than `compactEntries` applied entries (nothing is deleted: they are the journal, ADR
    /// 0010). Half of them stay served, so a follower a little behind (a restart, a short
    /// partition) catches up by log; one further behind gets a checkpoint.
    ///
    /// The compaction point must carry the membership as of that index. The store knows it as
    /// of the applied index, which is the same unless a membership change lies in between: the
    /// point then moves up to the last such change.
    private func compactLogIfLong(_ store: any StateStore, after entries: [Entry]) throws(StoreError) {
        if let change = entries.last(where: { $0.type == .confChange }) { lastConfChangeIndex = change.index }
        let applied = store.appliedIndex
        let first: LogIndex
        do { first = try store.entryLog.firstIndex() } catch { return }
        guard applied >= first, applied.rawValue - first.rawValue + 1 > compactEntries else { return }
        let keep = compactEntries / 2
        let through = max(LogIndex(applied.rawValue - min(keep, applied.rawValue)), lastConfChangeIndex)
        guard through >= first else { return }
        // Never beyond the state on disk: after a crash the node re-applies from there, and
        // the entries it needs must still be ones Raft serves. Flush first if needed (one
        // flush per compaction, every `compactEntries / 2` entries).
        if through > store.durableAppliedIndex { try store.flushState() }
        try store.entryLog.compact(through: through, confState: store.appliedConfState)
        logger.info("compacted the Raft log", metadata: ["through": "\(through)"])
    }
}
