import FaunaKV

/// The leases of the applied state and, while this node leads, when each expires
/// (docs/KV-COMMANDS.md "Leases"). Owned by the owner thread. Expiry is decided here and only
/// here: the leader proposes the revoke of an expired lease as an entry; replicas never expire
/// keys on their own clock.
///
/// A new leader counts each lease from what the state says is left — the remaining TTL the
/// previous leader last checkpointed, or the whole TTL — plus one election timeout, so that an
/// owner whose keep-alives were interrupted by the election has time to reach it.
struct Lessor {
    /// Leases as applied (grants, revokes and checkpoints of `KVLeaseChange`).
    private(set) var leases: [UInt64: KVLease] = [:]
    /// While leading: when each lease expires.
    private(set) var expiry: [UInt64: NodeInstant] = [:]
    private(set) var isLeading = false
    /// Revokes proposed and not yet applied, with when (proposed again after `revokeRetry`).
    private var revoking: [UInt64: NodeInstant] = [:]
    private var nextCheckpoint: NodeInstant?
    /// Leases kept alive since their last checkpoint, recorded within `renewalCheckpointDelay`
    /// so that a new leader knows of the renewal.
    private var renewed = Set<UInt64>()
    private var nextRenewalCheckpoint: NodeInstant?
    let renewalCheckpointDelay: Duration = .milliseconds(500)

    let checkpointInterval: Duration
    let revokeRetry: Duration
    /// What a new leader adds to each lease: one election timeout.
    let promotionGrace: Duration
    /// Revokes proposed per round at most.
    static let revokesPerRoundMax = 64

    init(checkpointInterval: Duration = .seconds(5), revokeRetry: Duration = .seconds(3), promotionGrace: Duration) {
        self.checkpointInterval = checkpointInterval
        self.revokeRetry = revokeRetry
        self.promotionGrace = promotionGrace
    }

    /// Starts over from the state's leases (at start, after a snapshot install).
    mutating func load(_ all: [KVLease], now: NodeInstant) {
        leases = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        revoking.removeAll()
        expiry.removeAll()
        if isLeading { promote(now: now) }
    }

    /// What applied entries did to leases, in order.
    mutating func apply(_ changes: [KVLeaseChange], now: NodeInstant) {
        for change in changes {
            switch change {
            case .granted(let lease):
                leases[lease.id] = lease
                if isLeading { expiry[lease.id] = now + .seconds(Int64(lease.ttlSeconds)) }
            case .revoked(let id):
                leases[id] = nil
                expiry[id] = nil
                revoking[id] = nil
            case .checkpointed(let id, let remaining):
                leases[id]?.remainingMilliseconds = remaining
            }
        }
    }

    /// This node became leader: every lease gets what the state says is left, plus the grace.
    mutating func promote(now: NodeInstant) {
        isLeading = true
        expiry.removeAll(keepingCapacity: true)
        for (id, lease) in leases {
            let left = lease.remainingMilliseconds.map { Duration.milliseconds(Int64($0)) } ?? .seconds(Int64(lease.ttlSeconds))
            expiry[id] = now + left + promotionGrace
        }
        revoking.removeAll()
        renewed.removeAll()
        nextRenewalCheckpoint = nil
        nextCheckpoint = now + checkpointInterval
    }

    /// This node stopped leading: its timers mean nothing now.
    mutating func demote() {
        isLeading = false
        expiry.removeAll()
        revoking.removeAll()
        renewed.removeAll()
        nextRenewalCheckpoint = nil
        nextCheckpoint = nil
    }

    /// A keep-alive: the lease lives its whole TTL from now. nil if there is no such lease
    /// (or it is being revoked: expired is expired).
    mutating func keepAlive(_ id: UInt64, now: NodeInstant) -> UInt64? {
        guard isLeading, let lease = leases[id], revoking[id] == nil else { return nil }
        expiry[id] = now + .seconds(Int64(lease.ttlSeconds))
        renewed.insert(id)
        if nextRenewalCheckpoint == nil { nextRenewalCheckpoint = now + renewalCheckpointDelay }
        return lease.ttlSeconds
    }

    /// The time lease `id` has left on this leader, in milliseconds (nil: no such lease).
    func remaining(_ id: UInt64, now: NodeInstant) -> UInt64? {
        guard leases[id] != nil, let at = expiry[id] else { return nil }
        return Self.milliseconds(max(at - now, .zero))
    }

    /// What the leader must propose now: the revokes of expired leases (at most
    /// `revokesPerRoundMax`, each again after `revokeRetry` until applied), and the remaining
    /// TTL — of every live lease every `checkpointInterval`, and of the leases kept alive since,
    /// within `renewalCheckpointDelay` of a keep-alive — in entries of at most
    /// `KVLimits.leaseCheckpointsMax`, so that a new leader goes on from there (etcd's
    /// checkpoints, and its checkpoint on renewal).
    mutating func due(now: NodeInstant) -> (revokes: [UInt64], checkpoints: [[KVLeaseCheckpoint]]) {
        guard isLeading else { return ([], []) }
        var revokes: [UInt64] = []
        for (id, at) in expiry where at <= now {
            if let proposed = revoking[id], now - proposed < revokeRetry { continue }
            revokes.append(id)
            if revokes.count >= Self.revokesPerRoundMax { break }
        }
        for id in revokes { revoking[id] = now }
        var checkpoints: [[KVLeaseCheckpoint]] = []
        var which: [UInt64: NodeInstant] = [:]
        if let next = nextCheckpoint, now >= next {
            nextCheckpoint = now + checkpointInterval
            which = expiry
        } else if let next = nextRenewalCheckpoint, now >= next {
            for id in renewed { which[id] = expiry[id] }
        }
        if !which.isEmpty {
            renewed.removeAll()
            nextRenewalCheckpoint = nil
            let live = which.filter { $0.value > now }.sorted { $0.key < $1.key }
            var chunk: [KVLeaseCheckpoint] = []
            for (id, at) in live {
                chunk.append(KVLeaseCheckpoint(id: id, remainingMilliseconds: Self.milliseconds(at - now)))
                if chunk.count == KVLimits.leaseCheckpointsMax {
                    checkpoints.append(chunk)
                    chunk = []
                }
            }
            if !chunk.isEmpty { checkpoints.append(chunk) }
        }
        return (revokes.sorted(), checkpoints)
    }

    static func milliseconds(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        return UInt64(max(0, s)) * 1000 + UInt64(max(0, atto)) / 1_000_000_000_000_000
    }
}
