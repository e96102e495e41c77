/// What applying one entry produced. Every outcome is deterministic: every replica that applies
/// the same entries gets the same result and the same writes.
public struct KVApplyResult: Hashable, Sendable {
    /// The revision of the entry (its Raft index). For a replay: the revision of the original.
    public var revision: Revision
    /// What the command did.
    public var outcome: KVOutcome
    /// A retry of an already applied proposal: nothing was written; `outcome` is the stored
    /// one with read data dropped (records of ranges and `returnsPrevious`: see
    /// `KVOutcome.withoutReadData`). Re-read if the records are needed.
    public var isReplay: Bool

    /// A result; `isReplay` only for stored results returned to a retry.
    public init(revision: Revision, outcome: KVOutcome, isReplay: Bool = false) {
        self.revision = revision
        self.outcome = outcome
        self.isReplay = isReplay
    }
}

/// The domain outcome of a command. Only `.success` writes anything.
public enum KVOutcome: Hashable, Sendable {
    /// The command ran. For a transaction, `succeeded` says which branch (etcd's
    /// `succeeded`); other commands always succeed. One result per operation run, in order:
    /// put → `.put`, delete range → `.deleteRange`, compact → none.
    case success(succeeded: Bool, results: [KVOperationResult])
    /// An `ifAbsent` put found the key; nothing was written.
    case alreadyExists(key: [UInt8])
    /// A read in a transaction or a compaction asked for a revision below the compacted one.
    case compacted(requested: Revision, compacted: Revision)
    /// A read in a transaction or a compaction asked for a revision above the current one.
    case futureRevision(requested: Revision, current: Revision)
    /// The command breaks a limit or a rule (`KVCommandError`); nothing was written.
    case invalid(KVCommandError)
    /// The session's sequence is below the last one applied (or the session was forgotten and
    /// the sequence is not `.first`): its result is no longer known; nothing was written.
    case sessionExpired(sequence: SequenceNumber, lastApplied: SequenceNumber?)
}

/// The result of one operation.
public enum KVOperationResult: Hashable, Sendable {
    /// A put; `previous` is the record before it if `returnsPrevious` was set and it existed.
    case put(previous: KVRecord?)
    /// A delete range: how many keys it deleted, and the deleted records if asked for.
    case deleteRange(deleted: Int, previous: [KVKeyValue])
    /// A read.
    case range(KVRangeResult)
    /// A lease granted: its ID and TTL.
    case lease(id: UInt64, ttlSeconds: UInt64)
}

/// The result of a range read.
public struct KVRangeResult: Hashable, Sendable {
    /// The records, in key order (descending if reversed), at most `limit`; empty for
    /// count-only reads; values empty for keys-only reads.
    public var records: [KVKeyValue]
    /// How many keys the range holds at the read revision, regardless of the limit.
    public var count: Int
    /// Whether keys beyond `records` exist (the limit cut the result).
    public var hasMore: Bool
    /// The current revision of the store when read (etcd's header revision), not the read one.
    public var revision: Revision

    /// A range result (see the properties for their invariants).
    public init(records: [KVKeyValue], count: Int, hasMore: Bool, revision: Revision) {
        self.records = records
        self.count = count
        self.hasMore = hasMore
        self.revision = revision
    }
}

extension KVOutcome {
    /// The outcome as stored for session replays: previous records and range records removed
    /// (counts and `hasMore` kept), so a stored result stays small whatever the reads returned.
    public var withoutReadData: KVOutcome {
        guard case .success(let succeeded, let results) = self else { return self }
        return .success(
            succeeded: succeeded,
            results: results.map { result in
                switch result {
                case .put: return .put(previous: nil)
                case .deleteRange(let deleted, _): return .deleteRange(deleted: deleted, previous: [])
                case .range(var r):
                    r.records = []
                    return .range(r)
                case .lease: return result
                }
            })
    }
}
