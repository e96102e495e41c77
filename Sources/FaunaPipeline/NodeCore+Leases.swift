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
            guard let ttl = lessor.keepAlive(id, now: now) else { return context.respond(knowsAllLeases ? leaseNotFound(id) : notYet) }
            context.respond(.leaseKeepAliveResponse(LeaseKeepAliveResponse(id: id, ttlSeconds: ttl)))
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
