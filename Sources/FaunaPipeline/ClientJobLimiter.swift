import NIOConcurrencyHelpers

/// Slots for the expensive jobs a client can ask for: a state digest (`hashKV`, the audit
/// `stateDigest`) hashes the whole state on the apply thread; a `snapshotSave` takes a
/// checkpoint there, then hashes and streams every file on a thread of its own. Each such job
/// holds a slot from the request until its answer is sent; a request that finds no free slot is
/// answered `overloaded` at once (every job a client causes takes a slot of a bounded queue).
/// Without it, thousands of pipelined `hashKV` waited in the apply queue, the applies queued
/// behind them filled the owner's apply bound, and the leader stopped taking Readies —
/// heartbeats included — and lost its term.
///
/// The jobs these slots admit are posted to the apply queue outside its bound for apply
/// batches (`NodeCore.applyJobsInFlight` counts applies only), so at most `limit(of:)` of each
/// kind ever wait there.
public final class ClientJobLimiter: Sendable {
    /// The kinds of client-caused job, each with a limit of its own.
    public enum Kind: Int, CaseIterable, Sendable, CustomStringConvertible {
        /// A digest of the whole state: `hashKV` and audit `stateDigest` requests.
        case stateDigest
        /// A client `snapshotSave`: from its checkpoint until the last chunk is sent.
        case snapshotSave

        public var description: String {
            switch self {
            case .stateDigest: "state digests"
            case .snapshotSave: "snapshot saves"
            }
        }
    }

    /// Digests waiting or running per node (etcd serves HashKV one at a time, too).
    public static let stateDigestsMaxDefault = 2
    /// Client snapshot saves (checkpoint, hashing and stream) at once per node. Peer snapshot
    /// sends are not counted here: they are bounded at one per follower (`SnapshotSender`).
    public static let snapshotSavesMaxDefault = 2

    private let limits: [Int]
    /// Slots held, by `Kind.rawValue`; each at most its limit.
    private let held: NIOLockedValueBox<[Int]>

    /// A limiter allowing `stateDigestsMax` digests and `snapshotSavesMax` saves at once.
    public init(stateDigestsMax: Int = stateDigestsMaxDefault, snapshotSavesMax: Int = snapshotSavesMaxDefault) {
        precondition(
            stateDigestsMax > 0 && snapshotSavesMax > 0, "limits \(stateDigestsMax), \(snapshotSavesMax): want > 0")
        var limits = Array(repeating: 0, count: Kind.allCases.count)
        limits[Kind.stateDigest.rawValue] = stateDigestsMax
        limits[Kind.snapshotSave.rawValue] = snapshotSavesMax
        self.limits = limits
        self.held = NIOLockedValueBox(Array(repeating: 0, count: Kind.allCases.count))
    }

    /// The most jobs of `kind` at once.
    public func limit(of kind: Kind) -> Int { limits[kind.rawValue] }

    /// Jobs of `kind` holding a slot now.
    public func held(_ kind: Kind) -> Int { held.withLockedValue { $0[kind.rawValue] } }

    /// A slot for one job of `kind`, or nil when all are taken (answer `overloaded`).
    public func claim(_ kind: Kind) -> ClientJobSlot? {
        let granted = held.withLockedValue { held -> Bool in
            guard held[kind.rawValue] < limits[kind.rawValue] else { return false }
            held[kind.rawValue] += 1
            return true
        }
        return granted ? ClientJobSlot(kind: kind, limiter: self) : nil
    }

    fileprivate func give(back kind: Kind) {
        held.withLockedValue { held in
            precondition(held[kind.rawValue] > 0, "releasing a \(kind) slot: held \(held[kind.rawValue]), want > 0")
            held[kind.rawValue] -= 1
        }
    }

    /// The message of the `overloaded` answer for `kind`.
    public func overloadedReason(_ kind: Kind) -> String {
        "\(kind): \(limit(of: kind)) at once per node, all taken; retry later"
    }
}

/// One held slot of a `ClientJobLimiter`. `release()` gives it back (once; later calls do
/// nothing); a slot dropped unreleased — its job was discarded, say by a closing queue — is
/// given back when it is deallocated, so no path can leak one.
public final class ClientJobSlot: Sendable {
    let kind: ClientJobLimiter.Kind
    private let limiter: ClientJobLimiter
    private let isReleased = NIOLockedValueBox(false)

    fileprivate init(kind: ClientJobLimiter.Kind, limiter: ClientJobLimiter) {
        self.kind = kind
        self.limiter = limiter
    }

    /// Gives the slot back; safe from any thread, any number of times.
    public func release() {
        let first = isReleased.withLockedValue { released -> Bool in
            defer { released = true }
            return !released
        }
        if first { limiter.give(back: kind) }
    }

    deinit { release() }
}
