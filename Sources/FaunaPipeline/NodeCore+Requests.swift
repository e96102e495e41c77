import CoreMetrics
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Client requests on the owner thread: writes are batched into one proposal round, reads go
/// through ReadIndex (or straight to the apply queue when serializable), admin requests read
/// the core's state.
extension NodeCore {
    func handleRequest(_ message: RPCMessage, _ context: RPCRequestContext) {
        if isStopping {
            context.respond(.error(RPCErrorResponse(.unavailable, "node \(id) is stopping")))
            return
        }
        switch message {
        case .write(let request):
            guard raft.isLeader else { return context.respond(notLeaderError("writes go to the leader")) }
            switch request.proposal.command {
            case .initCluster, .upgradeLeaves, .upgradeState, .leaseCheckpoint:
                return context.respond(.error(RPCErrorResponse(
                    .invalidRequest, "initCluster, upgradeLeaves, upgradeState and leaseCheckpoint are proposed by the leader itself, not by clients")))
            default: break
            }
            let inFlight = proposals.count
            guard inFlight + queuedWrites.count < settings.pendingProposalsMax else {
                return context.respond(.error(RPCErrorResponse(.overloaded, "\(inFlight) writes in flight; retry later")))
            }
            // A connection bound to no user is refused here when auth is on; everything else is
            // decided when the entry applies, against the auth state at its own index.
            if let refusal = auth.checkBound(context) { return context.respond(refusal) }
            if let refusal = Self.refusalOfRootsLastPassword(request.proposal.command, authEnabled: auth.isEnabled, context) {
                return context.respond(refusal)
            }
            // The entry names who asked: the state machine checks the user's permissions.
            guard let bytes = KVProposal.adding(principal: context.principal, to: request.proposalBytes) else {
                return context.respond(.error(RPCErrorResponse(.invalidRequest, "write: the proposal cannot take a principal")))
            }
            guard bytes.count <= KVLimits.proposalBytesMax else {
                return context.respond(.error(RPCErrorResponse(
                    .invalidRequest, "write: \(bytes.count) bytes with the user's name, want <= \(KVLimits.proposalBytesMax); write less at once")))
            }
            queuedWrites.append((bytes, context))
        case .read(let request):
            read(request, context)
        case .status(let request):
            context.respond(.statusResponse(status(withRecordCache: request.withRecordCache, withHealth: request.withHealth)))
        case .authenticate(let request):
            auth.authenticate(request, context)
        case .members:
            if let refusal = auth.checkRoot(context, "members", nodeMay: true) { return context.respond(refusal) }
            context.respond(.membersResponse(memberList()))
        case .memberChange(let change):
            if let refusal = auth.checkRoot(context, "changing membership") { return context.respond(refusal) }
            changeMembership(change, context)
        case .leaderTransfer(let target):
            if let refusal = auth.checkRoot(context, "leader transfer") { return context.respond(refusal) }
            transferLeadership(to: target, context)
        case .hashKV, .stateDigest, .signedTreeHead, .inclusionProof, .consistencyProof, .journalEntry, .entryProof,
            .membershipChanges:
            // Normally routed past the owner (`routeToApplyStage`); the same here.
            if let refusal = queueForApplyStage(message, context) { context.respond(refusal) }
        case .snapshotSave:
            if let refusal = auth.checkRoot(context, "saving a snapshot") { return context.respond(refusal) }
            saveSnapshot(context)
        case .leaseKeepAlive, .leaseTimeToLive, .leaseList:
            if let refusal = auth.checkBound(context) { return context.respond(refusal) }
            handleLeaseRequest(message, context)
        default:
            context.respond(.error(RPCErrorResponse(.invalidRequest, "got \(message.kind) on the client port, want a request kind")))
        }
    }

    // MARK: Past the owner

    /// The entry point of client requests, on the thread that decoded them (an event loop in
    /// faunad, the client in the node simulator), before the owner's queue: the requests the
    /// apply stage answers from the applied state alone — the audit requests (signed heads,
    /// proofs, journal entries, membership-change indexes, state digests at a revision) and
    /// `hashKV` — go straight to the apply queue, with the same bounds as through the owner (a
    /// full queue answers `overloaded`; a digest claims a `ClientJobLimiter` slot first), and
    /// the owner thread is not woken for them. Returns true if it took the request (queued or
    /// answered it); false for any other request, which the caller queues for the owner
    /// (`NodeEvent.request`). Safe from any thread once the wiring has set `applier`.
    public func routeToApplyStage(_ message: RPCMessage, _ context: RPCRequestContext) -> Bool {
        switch message {
        case .hashKV, .stateDigest, .signedTreeHead, .inclusionProof, .consistencyProof, .journalEntry, .entryProof,
            .membershipChanges:
            break
        default:
            return false
        }
        // Queued under the lock the owner takes when it starts stopping (`isStopping`): what
        // gets in runs before the apply stage stops; what comes later is refused here.
        let refusal: RPCMessage? = directRouteClosed.withLockedValue { closed in
            if let closed { return .error(RPCErrorResponse(.unavailable, closed)) }
            return queueForApplyStage(message, context)
        }
        if let refusal { context.respond(refusal) }
        return true
    }

    /// Queues a request the apply stage answers by itself; returns the answer instead when it
    /// is refused (`overloaded`).
    func queueForApplyStage(_ message: RPCMessage, _ context: RPCRequestContext) -> RPCMessage? {
        // Digests cover every key: root only. Tree heads, consistency proofs and membership
        // indexes say nothing of keys: any bound user (a verified read needs them). Entries and
        // their proofs are checked against the entry by the apply stage.
        switch message {
        case .hashKV, .stateDigest:
            if let refusal = auth.checkRoot(context, "\(message.kind)", nodeMay: true) { return refusal }
        default:
            if let refusal = auth.checkBound(context, nodeMay: true) { return refusal }
        }
        switch message {
        case .hashKV, .stateDigest:
            // A slot first: a digest reads the whole state (ClientJobLimiter); `hashKV` on the
            // digest thread, a `stateDigest` on the apply thread.
            guard let slot = clientJobs.claim(.stateDigest) else {
                return .error(RPCErrorResponse(.overloaded, clientJobs.overloadedReason(.stateDigest)))
            }
            if case .hashKV = message {
                applier.post(.hashKV(context, slot))
            } else {
                applier.post(.audit(message, context, slot))
            }
        default:
            if !applier.offer(.audit(message, context, nil)) { return .error(RPCErrorResponse(.overloaded, "apply stage busy; retry")) }
        }
        return nil
    }

    /// Once the node is stopping: requests routed past the owner are refused as the owner
    /// refuses its own (`unavailable`).
    func closeDirectRoute() {
        let reason = failure != nil ? "node \(id) stopped on a disk error" : "node \(id) is stopping"
        directRouteClosed.withLockedValue { $0 = $0 ?? reason }
    }

    // MARK: Writes

    /// Proposes every write of this round in as few entries-appends as the proposal size
    /// bound allows (etcd batches the same way: one Ready carries them all).
    func proposeQueuedWrites() {
        guard !queuedWrites.isEmpty else { return }
        let writes = queuedWrites
        queuedWrites = []
        let deadline = clock.now + settings.requestTimeout
        var start = 0
        while start < writes.count {
            var end = start
            var bytes = 0
            while end < writes.count && (end == start || bytes + writes[end].bytes.count <= settings.proposalBatchBytesMax) {
                bytes += writes[end].bytes.count
                end += 1
            }
            let slice = writes[start..<end]
            do {
                let first = try raft.propose(batch: slice.map(\.bytes))
                metrics.proposals.increment(by: slice.count)
                proposalTimer.proposed(through: first + UInt64(slice.count - 1), at: clock.now)
                for (offset, w) in slice.enumerated() {
                    track(.init(kind: .write, term: raft.term, deadline: deadline, context: w.context), at: first + UInt64(offset))
                }
            } catch {
                let answer = proposalError(error)
                for w in slice { w.context.respond(answer) }
            }
            start = end
        }
    }

    /// A leader whose state has no cluster ID or is below `KVStateLevel.current` proposes
    /// them, once per term: an `upgradeState` entry, then 16 random bytes in an `initCluster`
    /// entry. Whichever of each commits first takes effect on every replica (docs/AUDIT.md
    /// "Cluster ID", docs/KV-COMMANDS.md "State levels"); later ones change nothing. In a new
    /// cluster the levels come first, so every entry from the cluster ID on has a v2 leaf and
    /// sessions bound to users; a cluster created by an earlier version gets them at its first
    /// leader on this version.
    func proposeClusterIDIfNeeded() {
        guard !hasClusterID, raft.isLeader, clusterIDProposedTerm != raft.term else { return }
        var id: [UInt8] = []
        if let source = settings.clusterIDBytes {
            id = source(KVLimits.clusterIDBytes)
        } else {
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<KVLimits.clusterIDBytes { id.append(UInt8.random(in: 0...255, using: &rng)) }
        }
        do {
            _ = try raft.propose(batch: [
                KVProposal(command: .upgradeState(KVStateLevel.current)).encoded(), KVProposal(command: .initCluster(id)).encoded(),
            ])
            // Only once proposed: a refusal (overloaded, a transfer) is retried next round.
            clusterIDProposedTerm = raft.term
            // Either may already be recorded (an upgraded cluster has its ID): that one changes nothing.
            logger.info(
                "proposed the state level and a cluster ID; each takes effect only if none is recorded yet",
                metadata: ["level": "\(KVStateLevel.current)", "id": "\(ClusterID(bytes: id).map { "\($0)" } ?? "?")"])
        } catch {
            logger.debug("could not propose a cluster ID this term: \(error)")
        }
    }

    /// Records a proposal awaiting its apply. An older proposal at the same index (its entry
    /// was overwritten by a later leader's log, then this node led again) is answered now.
    func track(_ proposal: ProposalRegistry.Proposal, at index: LogIndex) {
        if let old = proposals.register(proposal, at: index) {
            old.context.respond(.error(RPCErrorResponse(.notLeader, ProposalRegistry.replaced(index), leaderHint: leaderHint)))
        }
    }

    func proposalError(_ error: RaftError) -> RPCMessage {
        switch error.code {
        case .notLeader: return notLeaderError("writes go to the leader")
        case .transferInProgress:
            return .error(RPCErrorResponse(.unavailable, "leadership is being transferred; retry shortly"))
        case .overloaded, .readQueueFull: return .error(RPCErrorResponse(.overloaded, error.message))
        case .storageFailed: return .error(RPCErrorResponse(.unavailable, "node \(id) is stopping: \(error.message)"))
        default: return .error(RPCErrorResponse(.invalidRequest, error.message))
        }
    }

    // MARK: Reads

    func read(_ request: ReadRequest, _ context: RPCRequestContext) {
        if request.consistency == .serializable || decorator?.servesStaleReads == true {
            if !applier.offer(.read(request, context)) {
                context.respond(.error(RPCErrorResponse(.overloaded, "apply stage busy; retry")))
            }
            return
        }
        guard readsAwaitingIndex.count + readsAwaitingApply.count < settings.pendingReadsMax else {
            return context.respond(.error(RPCErrorResponse(.overloaded, "too many reads waiting; retry later")))
        }
        let readID = nextReadID
        nextReadID += 1
        var ctx: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) { ctx.append(UInt8(truncatingIfNeeded: readID >> UInt64(shift))) }
        do {
            // On a follower the core forwards the request to the leader (follower reads).
            try raft.readIndex(context: ctx)
            metrics.readIndexRounds.increment()
        } catch {
            switch error.code {
            case .notLeader: return context.respond(.error(RPCErrorResponse(.unavailable, "no leader known to \(id); retry")))
            default: return context.respond(.error(RPCErrorResponse(.overloaded, error.message)))
            }
        }
        readsAwaitingIndex[readID] = PendingRead(
            request: request, context: context, deadline: clock.now + settings.readTimeout)
    }

    // MARK: Admin

    func status(withRecordCache: Bool, withHealth: Bool = false) -> NodeStatus {
        var status = NodeStatus(
            nodeID: id, role: raft.role, isLearner: raft.conf.isLearner(id), term: raft.term, leader: raft.leader,
            commitIndex: raft.commitIndex, appliedIndex: appliedIndex, treeSize: treeSize, dbSizeBytes: store.sizeBytes)
        if withRecordCache {
            let c = store.recordCacheStats
            status.recordCache = RecordCacheStatus(
                budgetBytes: c.budgetBytes, bytes: c.bytes, entries: c.entries, hits: c.hits, misses: c.misses)
        }
        if withHealth {
            // The vitals of the last round (this one's are published at its end): what /readyz says.
            let now = clock.now
            status.health = NodeHealth.ready(vitals.withLockedValue { $0 }, now: now, limits: settings.health).checks
        }
        return status
    }

    func memberList() -> [Member] {
        let conf = raft.conf
        return conf.members.map { member in
            let addresses = members.addresses(of: member)
            let none = Endpoint(host: "unknown", port: 0)
            return Member(
                nodeID: member, peerAddress: addresses?.peer ?? none, clientAddress: addresses?.client ?? none,
                isLearner: conf.isLearner(member), publicKey: members.publicKey(of: member) ?? [])
        }
    }

    func changeMembership(_ change: MemberChange, _ context: RPCRequestContext) {
        guard raft.isLeader else { return context.respond(notLeaderError("membership changes go to the leader")) }
        let confChange: ConfChange
        switch change {
        case .addLearner(let member):
            let addresses = MemberAddresses(peer: member.peerAddress, client: member.clientAddress)
            confChange = ConfChange(.addLearner, member.nodeID, context: addresses.encoded)
            // Known at once, so the leader can start replicating as soon as the change applies.
            members.record(addresses, for: member.nodeID)
        case .promote(let node):
            confChange = ConfChange(.addVoter, node)
        case .remove(let node):
            confChange = ConfChange(.remove, node)
        }
        do {
            let index = try raft.proposeConfChange(confChange)
            track(.init(
                kind: .memberChange, term: raft.term, deadline: clock.now + settings.requestTimeout,
                context: context), at: index)
            logger.info("proposed a membership change", metadata: ["change": "\(change)", "index": "\(index)"])
        } catch {
            switch error.code {
            case .notLeader: context.respond(notLeaderError("membership changes go to the leader"))
            case .confChangeInProgress, .transferInProgress, .learnerNotCaughtUp, .storageFailed:
                context.respond(.error(RPCErrorResponse(.unavailable, "\(error.message); retry shortly")))
            default:
                context.respond(.error(RPCErrorResponse(.invalidRequest, error.message)))
            }
        }
    }

    func transferLeadership(to target: NodeID, _ context: RPCRequestContext) {
        if raft.leader == target && !raft.isLeader || (target == id && raft.isLeader) {
            return context.respond(.leaderTransferResponse)
        }
        guard raft.isLeader else { return context.respond(notLeaderError("transfers are run by the leader")) }
        do {
            try raft.transferLeadership(to: target)
        } catch {
            let code: RPCErrorCode = error.code == .storageFailed ? .unavailable : .invalidRequest
            return context.respond(.error(RPCErrorResponse(code, error.message)))
        }
        let timeout = Duration.milliseconds(2 * settings.electionTicks * settings.tickMs)
        transfers.append((target, clock.now + max(timeout, .seconds(1)), context))
        logger.info("transferring leadership", metadata: ["to": "\(target)"])
    }

    /// `snapshotSave`: a checkpoint streamed to the client in chunks, read off the owner
    /// thread. It holds a `.snapshotSave` slot from here until the stream ends, so at most
    /// `ClientJobLimiter.snapshotSavesMaxDefault` checkpoints wait in the apply queue or stream
    /// at once; beyond that the answer is `overloaded`.
    func saveSnapshot(_ context: RPCRequestContext) {
        guard let slot = clientJobs.claim(.snapshotSave) else {
            return context.respond(.error(RPCErrorResponse(.overloaded, clientJobs.overloadedReason(.snapshotSave))))
        }
        let shipping = snapshots
        applier.post(.makeCheckpoint { result in
            switch result {
            case .failure(let error):
                context.respond(.error(RPCErrorResponse(.internalError, "snapshot: \(error)")))
                slot.release()
            case .success(let checkpoint):
                shipping.stream(checkpoint, to: context, slot: slot)
            }
        })
    }

    /// Removing root's password while auth is enabled leaves root a client certificate naming
    /// it as its only credential; if none exists, nobody can administer the cluster again. The
    /// state machine cannot see certificates, so the leader admits the change only over a
    /// connection whose certificate names root, which shows one exists. (Checked against the
    /// applied auth state: an `auth enable` still in flight is not seen.)
    static func refusalOfRootsLastPassword(_ command: KVCommand, authEnabled: Bool, _ context: RPCRequestContext) -> RPCMessage? {
        guard authEnabled, case .auth(.userPassword(let name, nil)) = command, name == KVAuthLimits.root,
            context.identity?.certificateName != KVAuthLimits.root
        else { return nil }
        return .error(RPCErrorResponse(
            .invalidRequest,
            "user passwd root --no-password: with auth enabled, a client certificate whose common name is root would be "
                + "root's only credential; send this over a connection with such a certificate, or set a new password instead"))
    }
}
