import FaunaKV
import FaunaRPC
import Logging

/// Leases on the owner thread (docs/KV-COMMANDS.md "Leases"): the leader's timers
/// (`Lessor`), keep-alives and lease queries, and the revokes and checkpoints it proposes.
extension NodeCore {
    /// Loads the applied state's leases (at start, after a snapshot install).
    func loadLeases() {
        do {
            lessor.load(try store.leases(), now: clock.now)
        } catch {
            logger.error("cannot read the leases of the applied state: \(error); leases are not timed until the next load")
            lessor.load([], now: clock.now)
        }
    }

    func handleLeaseRequest(_ message: RPCMessage, _ context: RPCRequestContext) {
        guard raft.isLeader else { return context.respond(notLeaderError("leases are timed by the leader")) }
        let now = clock.now
        // A new leader knows every lease only once it has applied an entry of its own term
        // (then every entry of earlier terms is applied). Before that an unknown lease may be a
        // grant it has not applied yet: `unavailable` (retry), not `leaseNotFound`, which ends a
        // client's keep-alives for good.
        let knowsAllLeases = raft.term(at: appliedIndex) == raft.term
        let notYet = RPCMessage.error(RPCErrorResponse(.unavailable, "this leader has not applied the log of its term yet; retry"))
        switch message {
        case .leaseKeepAlive(let id):
            guard keepAlivesThisRound.count + keepAlivesAwaitingIndex.values.reduce(0, { $0 + $1.replies.count }) < settings.pendingReadsMax else {
                return context.respond(.error(RPCErrorResponse(.overloaded, "too many keep-alives waiting; retry")))
            }
            guard let ttl = lessor.keepAlive(id, now: now) else { return context.respond(knowsAllLeases ? leaseNotFound(id) : notYet) }
            // Answered once a heartbeat quorum shows this node still led after the receipt
            // (`confirmKeepAlives`): a deposed leader that has not heard of its successor yet
            // must not promise a TTL that the new leader does not know of.
            keepAlivesThisRound.append(PendingKeepAlive(id: id, ttlSeconds: ttl, context: context))
        case .leaseTimeToLive(let request):
            guard let remaining = lessor.remaining(request.id, now: now) else {
                return context.respond(knowsAllLeases ? leaseNotFound(request.id) : notYet)
            }
            if !applier.offer(.leaseInfo(request, remainingMs: remaining, context)) {
                context.respond(.error(RPCErrorResponse(.overloaded, "apply stage busy; retry")))
            }
        case .leaseList:
            guard knowsAllLeases else { return context.respond(notYet) }
            let list = lessor.leases.values.sorted { $0.id < $1.id }.map {
                LeaseStatus(id: $0.id, ttlSeconds: $0.ttlSeconds, remainingMilliseconds: lessor.remaining($0.id, now: now) ?? 0)
            }
            context.respond(.leaseListResponse(list))
        default:
            context.respond(.error(RPCErrorResponse(.invalidRequest, "got \(message.kind), want a lease request")))
        }
    }

    /// ReadIndex contexts of keep-alive rounds begin with this byte and are 9 bytes long (a
    /// read's are 8).
    static let keepAliveContextTag: UInt8 = 0x4B

    /// Starts one ReadIndex round for the keep-alives renewed this round. Its read state proves
    /// that a quorum still followed this leader's term after their receipt, so any later
    /// leader was elected after them and counts their TTL from a checkpoint no older than the
    /// one before them plus an election timeout (docs/KV-COMMANDS.md "Leases").
    func confirmKeepAlives(now: NodeInstant) {
        guard !keepAlivesThisRound.isEmpty else { return }
        let batch = keepAlivesThisRound
        keepAlivesThisRound.removeAll(keepingCapacity: true)
        guard raft.isLeader else {
            for k in batch { k.context.respond(notLeaderError("leases are timed by the leader")) }
            return
        }
        let readID = nextReadID
        nextReadID += 1
        var ctx: [UInt8] = [Self.keepAliveContextTag]
        for shift in stride(from: 56, through: 0, by: -8) { ctx.append(UInt8(truncatingIfNeeded: readID >> UInt64(shift))) }
        do {
            try raft.readIndex(context: ctx)
        } catch {
            let answer: RPCMessage = error.code == .notLeader
                ? notLeaderError("leases are timed by the leader") : .error(RPCErrorResponse(.overloaded, error.message))
            for k in batch { k.context.respond(answer) }
            return
        }
        keepAlivesAwaitingIndex[readID] = (batch, now + settings.readTimeout)
    }

    /// A keep-alive round's read state arrived: its leadership held, the renewals stand.
    func keepAlivesConfirmed(_ readID: UInt64) {
        guard let (replies, _) = keepAlivesAwaitingIndex.removeValue(forKey: readID) else { return }
        for k in replies { k.context.respond(.leaseKeepAliveResponse(LeaseKeepAliveResponse(id: k.id, ttlSeconds: k.ttlSeconds))) }
    }

    /// Answers every keep-alive not yet confirmed with `answer` (leadership lost, a snapshot
    /// installed, stopping): the client tries again, at whichever node leads.
    func dropKeepAlives(_ answer: RPCMessage) {
        for k in keepAlivesThisRound { k.context.respond(answer) }
        for (_, round) in keepAlivesAwaitingIndex { for k in round.replies { k.context.respond(answer) } }
        keepAlivesThisRound.removeAll()
        keepAlivesAwaitingIndex.removeAll()
    }

    func expireKeepAlives(now: NodeInstant) {
        for (readID, round) in keepAlivesAwaitingIndex where round.deadline < now {
            keepAlivesAwaitingIndex[readID] = nil
            for k in round.replies {
                k.context.respond(.error(RPCErrorResponse(.timeout, "keep-alive not confirmed by a quorum in time; retry")))
            }
        }
    }

    private func leaseNotFound(_ id: UInt64) -> RPCMessage {
        .error(RPCErrorResponse(.leaseNotFound, "lease \(id) not found (never granted, revoked or expired)"))
    }

    /// The leader proposes the revokes of expired leases and the checkpoints of renewed ones
    /// (every housekeeping round, 100 ms).
    func driveLeases(now: NodeInstant) {
        guard raft.isLeader else { return }
        let (revokes, checkpoints) = lessor.due(now: now)
        var batch = revokes.map { KVProposal(command: .leaseRevoke($0)).encoded() }
        batch += checkpoints.map { KVProposal(command: .leaseCheckpoint($0)).encoded() }
        guard !batch.isEmpty else { return }
        do {
            _ = try raft.propose(batch: batch)
            if !revokes.isEmpty { logger.info("leases expired; revoking", metadata: ["leases": "\(revokes)"]) }
        } catch {
            // Refused (a transfer, a full log): the revokes are proposed again after
            // `revokeRetry`, the checkpoint at the next interval.
            logger.debug("could not propose lease revokes or checkpoints: \(error)")
        }
    }
}
