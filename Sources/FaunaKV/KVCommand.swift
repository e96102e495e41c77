/// The payload of a normal Raft entry: a command and, for exactly-once retries, the session
/// that proposed it. Encoded by `encoded()` / `init(decoding:)` (docs/KV-COMMANDS.md).
public struct KVProposal: Hashable, Sendable {
    /// nil for commands the node makes itself (e.g. periodic compaction); such commands are
    /// not deduplicated.
    public var session: ClientSession?
    /// What to do.
    public var command: KVCommand
    /// Who asked, set by the leader that received the request (a client cannot set it): the
    /// user its connection is bound to, empty if none. nil for commands a node makes itself
    /// and entries of versions before authentication, which are applied unchecked. With a
    /// principal, the command is checked against the auth state at its own index, and its
    /// ranges stop below the system key space (`KVSystemKeys`).
    public var principal: [UInt8]?

    /// A proposal of `command`, deduplicated by `session` if there is one.
    public init(session: ClientSession? = nil, command: KVCommand, principal: [UInt8]? = nil) {
        self.session = session
        self.command = command
        self.principal = principal
    }
}

/// The rules an applied state follows, each from the entry that recorded it onwards: an entry
/// applies the same way on every replica and in every replay because the level it applies
/// under is in the state, set by a committed entry (docs/KV-COMMANDS.md "State levels").
public enum KVStateLevel {
    /// Leaves commit to what each entry did (leaf v2, ADR 0009); recorded in `kv/leaf-v2-from`.
    public static let leafV2: UInt32 = 1
    /// A client session belongs to the user whose write opened it: another user's write under
    /// it is refused (docs/KV-COMMANDS.md "Sessions"); recorded in `kv/sessions-bound-from`.
    public static let sessionsBound: UInt32 = 2
    /// The level this version's leaders take a cluster to.
    public static let current: UInt32 = sessionsBound
}

/// A state-changing command. Reads outside transactions do not go through the log (they use
/// ReadIndex and `KVStateMachine.range`), so the only read here is inside `txn`.
public enum KVCommand: Hashable, Sendable {
    /// Sets a key's value.
    case put(KVPut)
    /// Deletes every key in a range (one key with `KeyRange.single`).
    case deleteRange(KVDeleteRange)
    /// Compares, then runs the success or the failure branch, atomically at one revision.
    case txn(KVTxn)
    /// Discards history below a revision: reads before it then fail with `compacted`.
    case compact(Revision)
    /// Records the cluster's ID (`KVLimits.clusterIDBytes` random bytes) if none is recorded
    /// yet, else does nothing: the first one committed wins on every replica. A new leader
    /// proposes it while the state has none (docs/AUDIT.md "Cluster ID").
    case initCluster([UInt8])
    /// Records, if none is recorded yet, that leaves from this entry on are v2: they commit to
    /// what each entry did (docs/AUDIT.md §1). Later ones change nothing. A new leader proposes
    /// it, like `initCluster`, while the state has no boundary (ADR 0009).
    case upgradeLeaves
    /// Takes the applied state to `level` (`KVStateLevel`): records, for each level up to it
    /// not recorded yet, that its rules hold from this entry on. Level 1 is what
    /// `upgradeLeaves` records; level 2 binds client sessions to users. Later ones change
    /// nothing. A new leader proposes it, like `initCluster`, while the state is below
    /// `KVStateLevel.current` (docs/KV-COMMANDS.md "State levels").
    case upgradeState(UInt32)
    /// Creates a lease (docs/KV-COMMANDS.md "Leases").
    case leaseGrant(KVLeaseGrant)
    /// Deletes a lease and every key attached to it.
    case leaseRevoke(UInt64)
    /// Records the remaining time to live of leases, so that a new leader goes on from there
    /// instead of granting each lease its whole TTL again. Proposed by a leader only.
    case leaseCheckpoint([KVLeaseCheckpoint])
    /// Changes users, roles or whether authentication is enabled (docs/SECURITY.md).
    case auth(KVAuthCommand)

    /// Deletes one key.
    public static func delete(_ key: [UInt8], returnsPrevious: Bool = false) -> KVCommand {
        .deleteRange(KVDeleteRange(range: .single(key), returnsPrevious: returnsPrevious))
    }

    /// Deletes every key beginning with `prefix`.
    public static func deletePrefix(_ prefix: [UInt8], returnsPrevious: Bool = false) -> KVCommand {
        .deleteRange(KVDeleteRange(range: .prefix(prefix), returnsPrevious: returnsPrevious))
    }

    /// Whether the state machine finishes every check that can abort this command (or throw)
    /// before its first write: a put reads the previous record first, a delete range scans
    /// first. A transaction can fail in a later operation after an earlier one wrote.
    var writesOnlyAfterChecks: Bool {
        switch self {
        case .put, .deleteRange: true
        case .txn, .compact, .initCluster, .upgradeLeaves, .upgradeState, .leaseGrant, .leaseRevoke, .leaseCheckpoint, .auth: false
        }
    }
}

/// Put one key. Key: 1...`keyBytesMax` bytes; value: at most `valueBytesMax` bytes.
public struct KVPut: Hashable, Sendable {
    /// The key: 1...`KVLimits.keyBytesMax` bytes.
    public var key: [UInt8]
    /// The new value: at most `KVLimits.valueBytesMax` bytes.
    public var value: [UInt8]
    /// Put only if the key does not exist; otherwise the outcome is `.alreadyExists` and
    /// nothing is written (inside a transaction: nothing of the whole transaction).
    public var ifAbsent: Bool
    /// Return the record the key held before (etcd's `prev_kv`).
    public var returnsPrevious: Bool
    /// Attach the key to this lease (0: none; a put without a lease detaches the key from
    /// the one it had). An unknown lease makes the outcome `invalid(leaseNotFound)`.
    public var lease: UInt64

    /// A put of `value` under `key`.
    public init(key: [UInt8], value: [UInt8], ifAbsent: Bool = false, returnsPrevious: Bool = false, lease: UInt64 = 0) {
        self.key = key
        self.value = value
        self.ifAbsent = ifAbsent
        self.returnsPrevious = returnsPrevious
        self.lease = lease
    }
}

/// Create a lease of `ttlSeconds` (`KVLimits.leaseTTLSecondsMax` at most).
public struct KVLeaseGrant: Hashable, Sendable {
    /// The lease's ID; 0: the revision of the entry that grants it.
    public var id: UInt64
    /// Seconds the lease lives without a keep-alive: 1...`KVLimits.leaseTTLSecondsMax`.
    public var ttlSeconds: UInt64

    public init(id: UInt64 = 0, ttlSeconds: UInt64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
    }
}

/// A lease's remaining time to live when the leader recorded it.
public struct KVLeaseCheckpoint: Hashable, Sendable {
    public var id: UInt64
    public var remainingMilliseconds: UInt64

    public init(id: UInt64, remainingMilliseconds: UInt64) {
        self.id = id
        self.remainingMilliseconds = remainingMilliseconds
    }
}

/// Delete every key in `range`.
public struct KVDeleteRange: Hashable, Sendable {
    /// The keys to delete.
    public var range: KeyRange
    /// Return the deleted records (etcd's `prev_kv`).
    public var returnsPrevious: Bool

    /// A delete of every key in `range`.
    public init(range: KeyRange, returnsPrevious: Bool = false) {
        self.range = range
        self.returnsPrevious = returnsPrevious
    }
}

/// A read of the keys in a range, as of a revision. Used inside transactions and by
/// `KVStateMachine.range`.
public struct KVRangeRequest: Hashable, Sendable {
    /// The keys to read.
    public var range: KeyRange
    /// Return at most this many records (nil: all; in a transaction at most
    /// `KVLimits.txnRangeResultsMax`). `count` in the result is not limited.
    public var limit: Int?
    /// Read the state as of this revision; nil: the current state.
    public var revision: Revision?
    /// Descending key order (the limit then keeps the greatest keys).
    public var isReversed: Bool
    /// Return records with empty values.
    public var isKeysOnly: Bool
    /// Return only the count, no records.
    public var isCountOnly: Bool

    /// A read of `range`; by default all records at the current revision, ascending.
    public init(
        range: KeyRange, limit: Int? = nil, revision: Revision? = nil, isReversed: Bool = false,
        isKeysOnly: Bool = false, isCountOnly: Bool = false
    ) {
        self.range = range
        self.limit = limit
        self.revision = revision
        self.isReversed = isReversed
        self.isKeysOnly = isKeysOnly
        self.isCountOnly = isCountOnly
    }
}

/// A transaction (etcd's Txn): if every compare holds, run `success`, else `failure`.
/// All writes share the entry's revision; each operation sees the writes of the ones before it.
///
/// Like etcd, a branch may not write one key twice: two puts of a key, or a put of a key that
/// a delete range of the same branch covers, make the transaction invalid.
public struct KVTxn: Hashable, Sendable {
    /// At most `KVLimits.txnComparesMax` conditions, all of which must hold for `success`.
    public var compares: [KVCompare]
    /// Run if every compare holds (at most `KVLimits.txnOperationsMax`).
    public var success: [KVOperation]
    /// Run otherwise (at most `KVLimits.txnOperationsMax`).
    public var failure: [KVOperation]

    /// A transaction; `failure` defaults to doing nothing.
    public init(compares: [KVCompare], success: [KVOperation], failure: [KVOperation] = []) {
        self.compares = compares
        self.success = success
        self.failure = failure
    }
}

/// One operation of a transaction branch.
public enum KVOperation: Hashable, Sendable {
    case put(KVPut)
    case deleteRange(KVDeleteRange)
    case range(KVRangeRequest)
}

/// A condition on the current state of a key (or of every key in a range) as etcd's Compare.
///
/// A missing key has version 0, create revision 0 and mod revision 0; a value compare on a
/// missing key is false whatever the operator (etcd: "nil == empty string in grpc"). Over a
/// range, the compare holds if it holds for every key in it; an empty range behaves as one
/// missing key. Values compare byte-wise lexicographically.
public struct KVCompare: Hashable, Sendable {
    /// The key (`KeyRange.single`) or keys compared.
    public var range: KeyRange
    /// The property compared and the operand.
    public var target: Target
    /// How the key's property must relate to the operand.
    public var op: Operator

    /// A compare over every key in `range`.
    public init(range: KeyRange, _ target: Target, _ op: Operator) {
        self.range = range
        self.target = target
        self.op = op
    }

    /// A compare on one key.
    public init(key: [UInt8], _ target: Target, _ op: Operator) {
        self.init(range: .single(key), target, op)
    }

    /// What is compared, with the operand on the right-hand side.
    public enum Target: Hashable, Sendable {
        case value([UInt8])
        case version(UInt64)
        case createRevision(Revision)
        case modRevision(Revision)
    }

    /// How the key's property (left) compares to the operand (right).
    public enum Operator: UInt8, Hashable, Sendable, CaseIterable {
        case equal = 0
        case notEqual = 1
        case less = 2
        case greater = 3
    }
}
