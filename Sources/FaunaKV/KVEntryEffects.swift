/// What applying one entry did, as a v2 leaf commits to it (docs/AUDIT.md §1): the outcome,
/// the transaction branch taken, and the final write of every key the entry changed. Computed
/// by the state machine from its own writes, so it is the same on every replica.
public struct KVEntryEffects: Hashable, Sendable {
    /// The outcome code hashed into the leaf. Fixed forever (docs/AUDIT.md §1 lists them).
    public enum Outcome: UInt8, Hashable, Sendable {
        case success = 0, alreadyExists = 1, compacted = 2, futureRevision = 3, invalid = 4
        case sessionExpired = 5, replay = 6
        /// A leader's no-op or a membership change: no key-value command ran.
        case noCommand = 7
    }

    /// The branch code hashed into the leaf: 0 not a transaction, 1 then, 2 else.
    public enum Branch: UInt8, Hashable, Sendable {
        case none = 0, then = 1, `else` = 2
    }

    /// One key's final write in the entry: its new record, or nil for a delete. The leaf
    /// commits to the key and the value only; the record's revisions and version are here for
    /// the watchers of the node that applied it (they are the same on every replica).
    public struct Write: Hashable, Sendable {
        public var key: [UInt8]
        public var record: KVRecord?
        /// The new value; nil for a delete.
        public var value: [UInt8]? { record?.value }
        public init(key: [UInt8], record: KVRecord?) {
            self.key = key
            self.record = record
        }
    }

    public var outcome: Outcome
    public var branch: Branch
    /// Sorted by key (`bytesPrecede`), one per key; empty unless `outcome` is `.success`.
    public var writes: [Write]
    /// This entry recorded the leaf v2 boundary (the first committed `upgradeLeaves`): its own
    /// leaf and every later one are v2. Not part of the leaf.
    public var startsLeafV2 = false
    /// What the entry did to leases (a success only). Not part of the leaf: its key writes
    /// (a revoke's deletes) are; this is for the node's lessor.
    public var leaseChanges: [KVLeaseChange] = []

    public init(outcome: Outcome, branch: Branch = .none, writes: [Write] = []) {
        self.outcome = outcome
        self.branch = branch
        self.writes = writes
    }

    /// The effects of an entry that ran no key-value command.
    public static let noCommand = KVEntryEffects(outcome: .noCommand)

    /// The effects of `result`, given the record writes the entry made in order (a key may
    /// appear more than once: the last write counts). `isTxn`: the command was a transaction,
    /// so a success names the branch that ran.
    init(_ result: KVApplyResult, isTxn: Bool, recordWrites: [(key: [UInt8], record: KVRecord?)]) {
        if result.isReplay {
            self.init(outcome: .replay)
            return
        }
        switch result.outcome {
        case .success(let succeeded, _):
            let branch: Branch = isTxn ? (succeeded ? .then : .else) : .none
            self.init(outcome: .success, branch: branch, writes: Self.finalWrites(recordWrites))
        case .alreadyExists: self.init(outcome: .alreadyExists)
        case .compacted: self.init(outcome: .compacted)
        case .futureRevision: self.init(outcome: .futureRevision)
        case .invalid: self.init(outcome: .invalid)
        case .sessionExpired: self.init(outcome: .sessionExpired)
        }
    }

    /// The last write of each key, in key order.
    static func finalWrites(_ writes: [(key: [UInt8], record: KVRecord?)]) -> [Write] {
        if writes.count == 1 { return [Write(key: writes[0].key, record: writes[0].record)] }
        var last: [HashedBytes: Int] = [:]
        last.reserveCapacity(writes.count)
        for (i, w) in writes.enumerated() { last[HashedBytes(w.key)] = i }
        let order = last.values.sorted { bytesPrecede(writes[$0].key, writes[$1].key) }
        return order.map { Write(key: writes[$0].key, record: writes[$0].record) }
    }
}
