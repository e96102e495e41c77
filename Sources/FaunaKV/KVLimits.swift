/// Limits every command, record and result is checked against before anything is allocated.
/// They are part of the protocol: changing one changes which entries are valid, so it needs a
/// new command format version (docs/KV-COMMANDS.md).
public enum KVLimits {
    /// The longest key. etcd has no fixed limit but rejects requests over 1.5 MiB in total.
    public static let keyBytesMax = 4 * 1024
    /// Bytes of a cluster ID (`KVCommand.initCluster`; docs/AUDIT.md).
    public static let clusterIDBytes = 16
    /// The longest range end: a key plus one byte, so that `KeyRange.single` of any valid key
    /// is valid too.
    public static let rangeEndBytesMax = keyBytesMax + 1
    /// The longest value.
    public static let valueBytesMax = 1024 * 1024
    /// The most operations in each branch (success, failure) of a transaction.
    public static let txnOperationsMax = 128
    /// The most compares in a transaction.
    public static let txnComparesMax = 128
    /// The longest encoded proposal: one maximal put plus headroom, and the cap for a whole
    /// transaction (so one entry stays far below Raft's message size limit).
    public static let proposalBytesMax = 2 * 1024 * 1024
    /// The most records a range inside a transaction returns; a larger or absent limit is
    /// clamped to this and the result says `hasMore`. Txn reads run on every replica while
    /// applying, so they must stay small.
    public static let txnRangeResultsMax = 1000
    /// The default number of client sessions kept (KVStateMachine eviction rule).
    public static let sessionsMaxDefault = 10_000
    /// The longest lease TTL: a year.
    public static let leaseTTLSecondsMax: UInt64 = 365 * 24 * 3600
    /// Leases that may exist at once (each costs the leader a timer).
    public static let leasesMax = 100_000
    /// Leases in one checkpoint entry.
    public static let leaseCheckpointsMax = 4096
    /// The longest encoded apply result the decoder accepts (results of replays are stored).
    public static let resultBytesMax = 4 * 1024 * 1024
}
