import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import Logging

/// Work for the apply stage, done strictly in queue order. Because applies and reads share the
/// queue, a read queued after the entries up to its read index sees at least those entries.
enum ApplyJob: Sendable {
    /// Committed entries (contiguous, in order) and the membership after them, if it changed.
    case apply([Entry], ConfState?)
    /// A read; answered from the state as of this point in the queue.
    case read(ReadRequest, RPCRequestContext)
    /// The state digest of the applied state.
    case hashKV(RPCRequestContext)
    /// Makes a snapshot source (a checkpoint of the applied state) and hands it over.
    case makeSnapshot(@Sendable (Result<SnapshotSource, StoreError>) -> Void)
    /// Replaces the store (nil while a snapshot is installed); signals when done.
    case setStore(Store?, DispatchSemaphore)
}

/// What one `.apply` job did, for the owner thread.
struct ApplyReport: Sendable {
    struct Applied: Sendable {
        var index: LogIndex
        var term: Term
        var result: KVApplyResult?
    }
    var entries: [Applied]
    var appliedIndex: LogIndex
    var treeSize: UInt64
}

/// The apply stage of ADR 0007: one thread that applies committed entries to the store (state
/// machine, journal and Merkle tree in one batch), serves reads between applies, and compacts
/// the Raft log once it holds more than `compactEntries` applied entries. Slow applies never
/// hold up persisting or heartbeats, which run on the owner thread.
final class ApplyStage: @unchecked Sendable {
    // @unchecked Sendable: `store` and `thread` are touched only by the stage's own thread
    // (store swaps arrive as jobs); `queue` is thread-safe.
    let queue: EventQueue<ApplyJob>
    private var store: Store?
    private let nodeID: NodeID
    private let compactEntries: UInt64
    private let members: MemberDirectory
    private let logger: Logger
    private let report: @Sendable (Result<ApplyReport, StoreError>) -> Void
    private var thread: Thread?
    private let exited = DispatchSemaphore(value: 0)

    init(
        store: Store, nodeID: NodeID, capacity: Int, compactEntries: Int, members: MemberDirectory,
        logger: Logger, report: @escaping @Sendable (Result<ApplyReport, StoreError>) -> Void
    ) {
        self.queue = EventQueue(capacity: capacity)
        self.store = store
        self.nodeID = nodeID
        self.compactEntries = UInt64(compactEntries)
        self.members = members
        self.logger = logger
        self.report = report
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "fauna-apply"
        thread.start()
        self.thread = thread
    }

    /// Whether another job fits without going over the bound.
    var hasRoom: Bool { queue.count < queue.capacity }

    private func run() {
        while let jobs = queue.take(until: nil, max: 256) {
            for job in jobs { handle(job) }
        }
        store = nil
        exited.signal()
    }

    /// After `stop`: waits until the thread has finished its queue and dropped the store.
    func waitUntilStopped() {
        guard thread != nil else { return }
        exited.wait()
        exited.signal()
    }

    private func handle(_ job: ApplyJob) {
        switch job {
        case .apply(let entries, let confState):
            guard let store else { return }  // a snapshot install replaces what these held
            do {
                let applied = try store.apply(entries, confState: confState)
                var out = ApplyReport(entries: [], appliedIndex: store.appliedIndex, treeSize: store.treeHead.treeSize)
                out.entries.reserveCapacity(applied.count)
                var terms: [LogIndex: Term] = [:]
                for e in entries { terms[e.index] = e.term }
                for a in applied { out.entries.append(.init(index: a.index, term: terms[a.index] ?? .zero, result: a.result)) }
                recordMemberAddresses(in: entries)
                report(.success(out))
                try compactLogIfLong(store)
            } catch {
                report(.failure(error))
            }
        case .read(let request, let context):
            guard let store else {
                context.respond(.error(RPCErrorResponse(.unavailable, "installing a snapshot; retry")))
                return
            }
            context.respond(Self.read(request, on: store))
        case .hashKV(let context):
            guard let store else {
                context.respond(.error(RPCErrorResponse(.unavailable, "installing a snapshot; retry")))
                return
            }
            do {
                // On this thread nothing applies in between: digest and tree head agree.
                let digest = try store.stateDigest()
                let compacted = try store.kvStateMachine.compactedRevision(on: store.makeKVBackend())
                let head = store.treeHead
                context.respond(.hashKVResponse(HashKVResult(
                    nodeID: nodeID, appliedIndex: digest.appliedIndex, compactRevision: compacted, digest: digest.sha256,
                    treeSize: head.treeSize, treeRoot: Array(head.rootHash.bytes))))
            } catch {
                context.respond(.error(RPCErrorResponse(.internalError, "state digest: \(error)")))
            }
        case .makeSnapshot(let body):
            guard let store else {
                body(.failure(StoreError(.closed, "installing a snapshot")))
                return
            }
            do { body(.success(try store.makeSnapshotSource())) } catch { body(.failure(error)) }
        case .setStore(let new, let done):
            store = new
            done.signal()
        }
    }

    static func read(_ request: ReadRequest, on store: Store) -> RPCMessage {
        do {
            return .readResponse(try store.kvStateMachine.range(request.range, on: store.makeKVBackend()))
        } catch let error as KVReadError {
            switch error {
            case .compacted: return .error(RPCErrorResponse(.compacted, error.description))
            case .futureRevision: return .error(RPCErrorResponse(.futureRevision, error.description))
            case .invalid: return .error(RPCErrorResponse(.invalidRequest, error.description))
            }
        } catch {
            return .error(RPCErrorResponse(.internalError, "read failed: \(error)"))
        }
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
    /// snapshot, so it is enough to drop applied entries from the Raft log once there are more
    /// than `compactEntries`. A follower that needs them gets a checkpoint instead.
    private func compactLogIfLong(_ store: Store) throws(StoreError) {
        let applied = store.appliedIndex
        let first: LogIndex
        do { first = try store.raftLog.firstIndex() } catch { return }
        guard applied >= first, applied.rawValue - first.rawValue + 1 > compactEntries else { return }
        try store.raftLog.compact(through: applied, confState: store.appliedConfState)
        logger.info("compacted the Raft log", metadata: ["through": "\(applied)"])
    }

    func stop() { queue.close() }
}
