/// The key-value state machine: applies committed proposals and answers reads, as pure logic
/// over a `KVBackend` (docs/adr/0003-kv-state-machine.md).
///
/// It holds no state of its own: the current revision, the compacted revision and the client
/// sessions live in the backend's meta space, so whatever the caller commits is the whole
/// truth and a restarted node continues from its backend.
///
/// Apply contract: the caller applies committed entries in log order, each with its Raft
/// index as `revision`, into a `KVWriteBatch` it then commits atomically together with the
/// applied index. The batch may span several entries (group commit): later entries read
/// through it. If commit fails the caller must throw the batch away and stop (fail-stop).
public struct KVStateMachine: Sendable {
    /// How many client sessions are kept (eviction rule: `docs/KV-COMMANDS.md` "Sessions").
    /// Must be the same on every replica: it decides which session is evicted.
    public let sessionsMax: Int
    /// How many keys of each key space a read at a past revision takes in per step
    /// (`scanRecords(in:at:reverse:step:_:)`): its memory bound. Tests make it tiny.
    var historyScanStep = 256

    /// Whether a compaction only records its revision and leaves deleting the history it made
    /// unreadable to the caller, in bounded steps (`purgeHistory`). Reads answer the same
    /// either way, so replicas may differ in it; the store sets it so that no entry's writes
    /// scale with the history (docs/KV-COMMANDS.md "Compaction").
    public let purgesHistoryLater: Bool

    /// - Precondition: `sessionsMax >= 1`.
    public init(sessionsMax: Int = KVLimits.sessionsMaxDefault, purgesHistoryLater: Bool = false) {
        precondition(sessionsMax >= 1, "sessionsMax: got \(sessionsMax), want >= 1")
        self.sessionsMax = sessionsMax
        self.purgesHistoryLater = purgesHistoryLater
    }

    /// Decodes the payload of a committed normal entry and applies it (`apply(_:at:on:into:)`).
    /// A payload that does not decode is deterministic on every replica, so it is an outcome,
    /// `.invalid` with code `.malformed`, not an error: one bad entry must not stop the cluster.
    public func apply(
        entryData: [UInt8], at revision: Revision, on backend: some KVBackend, into batch: inout KVWriteBatch
    ) throws -> KVApplyResult {
        var effects = KVEntryEffects.noCommand
        return try apply(entryData: entryData, at: revision, on: backend, into: &batch, effects: &effects)
    }

    /// `apply(entryData:at:on:into:)` that also reports what the entry did (`effects`), for its
    /// v2 leaf.
    public func apply(
        entryData: [UInt8], at revision: Revision, on backend: some KVBackend, into batch: inout KVWriteBatch,
        effects: inout KVEntryEffects
    ) throws -> KVApplyResult {
        let proposal: KVProposal
        do {
            proposal = try KVProposal(decoding: entryData)
        } catch {
            return try applyChecked(
                nil, invalid: KVCommandError(.malformed, error.description), at: revision, on: backend, into: &batch,
                effects: &effects)
        }
        return try applyChecked(proposal, invalid: nil, at: revision, on: backend, into: &batch, effects: &effects)
    }

    /// `apply(entryData:at:on:into:effects:)` for entry data the caller has already decoded:
    /// `proposal` is what `KVProposal(decoding:)` returned for it. The same result, without
    /// decoding the bytes a second time (the store reads ahead the records a chunk's puts
    /// replace, `Store.prepare`).
    public func apply(
        decoded proposal: KVProposal, at revision: Revision, on backend: some KVBackend, into batch: inout KVWriteBatch,
        effects: inout KVEntryEffects
    ) throws -> KVApplyResult {
        try applyChecked(proposal, invalid: nil, at: revision, on: backend, into: &batch, effects: &effects)
    }

    /// Applies `proposal` as the entry with index `revision`, adding its writes to `batch`.
    ///
    /// Reads see `backend` overlaid with `batch`. Only `.success` writes state; every outcome
    /// (replays and invalid commands included) advances the current revision to `revision`.
    /// - Throws: `KVApplyError` if `revision` is not above the current revision or a stored
    ///   counter would overflow; any error of the backend, unchanged. After a throw `batch` is
    ///   unchanged, but the caller must stop (fail-stop): the entry is not applied.
    public func apply(
        _ proposal: KVProposal, at revision: Revision, on backend: some KVBackend, into batch: inout KVWriteBatch
    ) throws -> KVApplyResult {
        var effects = KVEntryEffects.noCommand
        do {
            try proposal.validate()
        } catch {
            return try applyChecked(nil, invalid: error, at: revision, on: backend, into: &batch, effects: &effects)
        }
        return try applyChecked(proposal, invalid: nil, at: revision, on: backend, into: &batch, effects: &effects)
    }

    private func applyChecked(
        _ proposal: KVProposal?, invalid: KVCommandError?, at revision: Revision, on backend: any KVBackend,
        into batch: inout KVWriteBatch, effects: inout KVEntryEffects
    ) throws -> KVApplyResult {
        // The view takes the caller's batch and `batch` lets go of it, so that merging this
        // entry's writes at the end mutates it in place instead of copying it (copy-on-write)
        // once per entry. On a throw the untouched base goes back to the caller.
        // A put or delete range without a session writes only after every check that can end
        // it, so its writes can go straight into the batch.
        let inPlace = proposal.map { $0.session == nil && $0.command.writesOnlyAfterChecks } ?? true
        var view = KVReadView(backend: backend, base: batch, writesInPlace: inPlace)
        batch = KVWriteBatch()
        let result: KVApplyResult
        do {
            result = try run(proposal, invalid: invalid, at: revision, &view)
        } catch {
            batch = view.takeBase()
            throw error
        }
        var isTxn = false
        if case .txn = proposal?.command { isTxn = true }
        effects = KVEntryEffects(result, isTxn: isTxn, recordWrites: view.recordWrites)
        effects.startsLeafV2 = view.startsLeafV2 && effects.outcome == .success
        if effects.outcome == .success { effects.leaseChanges = view.leaseChanges }
        batch = view.takeMerged()
        return result
    }

    /// Runs one entry on `view`: its writes end in `view.staged`.
    private func run(
        _ proposal: KVProposal?, invalid: KVCommandError?, at revision: Revision, _ view: inout KVReadView
    ) throws -> KVApplyResult {
        let current = try view.currentRevision()
        guard revision > current else { throw KVApplyError.revisionNotIncreasing(got: revision, current: current) }
        let result: KVApplyResult
        if let invalid {
            result = KVApplyResult(revision: revision, outcome: .invalid(invalid))
        } else if let proposal {
            let owner = try sessionOwner(of: proposal, view)
            if let session = proposal.session, let early = try sessionOutcome(session, owner: owner, at: revision, view) {
                result = early
            } else {
                // A client's command (it has a principal) stops below the system key space and
                // runs only if its user may run it, as of this index.
                let command = proposal.principal == nil ? proposal.command : proposal.command.clippedToUserSpace
                let outcome: KVOutcome
                if let denied = try authorize(command, principal: proposal.principal, view) {
                    outcome = .invalid(denied)
                } else {
                    outcome = try execute(command, principal: proposal.principal, at: revision, current: current, &view)
                }
                if case .success = outcome {} else { view.staged = KVWriteBatch() }
                result = KVApplyResult(revision: revision, outcome: outcome)
                if let session = proposal.session { try recordSession(session, result, owner: owner, at: revision, &view) }
            }
        } else {
            preconditionFailure("applyChecked: neither a proposal nor an invalid reason")
        }
        view.setMeta(encodeUInt64(revision.rawValue), forKey: KVMetaKey.revision)
        return result
    }

    /// The revision of the last applied entry (0 before the first): reads without a revision
    /// read this one.
    public func currentRevision(on backend: some KVBackend) throws -> Revision {
        try KVReadView(backend: backend, base: KVWriteBatch()).currentRevision()
    }

    /// The index of the first entry with a v2 leaf (the first committed `upgradeLeaves`), or
    /// nil while every leaf is v1.
    public func leafV2From(on backend: some KVBackend) throws -> Revision? {
        guard let bytes = try KVReadView(backend: backend, base: KVWriteBatch()).metaValue(forKey: KVMetaKey.leafV2From) else {
            return nil
        }
        return Revision(try decodeUInt64(bytes, "kv/leaf-v2-from"))
    }

    /// The highest `KVStateLevel` the applied state has recorded (0: none).
    public func stateLevel(on backend: some KVBackend) throws -> UInt32 {
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        var level: UInt32 = 0
        while level < KVStateLevel.current, try view.metaValue(forKey: KVMetaKey.levelStart(level + 1)) != nil { level += 1 }
        return level
    }

    /// The meta key of `leafV2From` (u64 BE), for a store that loads it with its applied state.
    public static var leafV2FromMetaKey: [UInt8] { KVMetaKey.leafV2From }

    /// The cluster ID the first committed `initCluster` recorded, or nil before it.
    public func clusterID(on backend: some KVBackend) throws -> [UInt8]? {
        try KVReadView(backend: backend, base: KVWriteBatch()).metaValue(forKey: KVMetaKey.clusterID)
    }

    /// The revision history was last compacted to (0 if never): reads below it fail.
    public func compactedRevision(on backend: some KVBackend) throws -> Revision {
        try KVReadView(backend: backend, base: KVWriteBatch()).compactedRevision()
    }
}

/// Errors of `KVStateMachine.apply` that are not domain outcomes: the caller broke the apply
/// contract or the stored state is impossible. The node must stop.
public enum KVApplyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Entries must be applied with growing revisions (Raft indexes, in log order).
    case revisionNotIncreasing(got: Revision, current: Revision)
    /// A stored counter is at its maximum (only possible with corrupt state).
    case counterOverflow(String)

    public var description: String {
        switch self {
        case .revisionNotIncreasing(let got, let current):
            "apply revision: got \(got), want > current revision \(current)"
        case .counterOverflow(let what): "counter overflow: \(what)"
        }
    }
}

/// The state machine's keys in the meta space (docs/KV-COMMANDS.md "Meta keys"). All start
/// with `kv/` so they cannot collide with the store's own meta keys.
enum KVMetaKey {
    static let revision = Array("kv/revision".utf8)
    static let compacted = Array("kv/compacted".utf8)
    static let clusterID = Array("kv/cluster-id".utf8)
    /// The index of the first entry whose leaf is v2 (set once by `upgradeLeaves`).
    static let leafV2From = Array("kv/leaf-v2-from".utf8)
    /// The index from which client sessions belong to users (set once by `upgradeState(2)`).
    static let sessionsBoundFrom = Array("kv/sessions-bound-from".utf8)
    /// The key that records where `level` (1...`KVStateLevel.current`) starts.
    static func levelStart(_ level: UInt32) -> [UInt8] { level == KVStateLevel.leafV2 ? leafV2From : sessionsBoundFrom }
    static let sessionCount = Array("kv/session-count".utf8)
    static let sessionPrefix = Array("kv/session/".utf8)
    static let sessionLRUPrefix = Array("kv/session-lru/".utf8)
}

func encodeUInt64(_ value: UInt64) -> [UInt8] {
    var out: [UInt8] = []
    appendUInt64(value, to: &out)
    return out
}

func decodeUInt64(_ bytes: [UInt8], _ field: String) throws(KVDecodingError) -> UInt64 {
    guard bytes.count == 8 else {
        throw KVDecodingError(bytes.count < 8 ? .truncated : .trailingBytes, "meta \(field): got \(bytes.count) bytes, want 8")
    }
    return bytes.reduce(0) { $0 << 8 | UInt64($1) }
}

extension KVReadView {
    func currentRevision() throws -> Revision {
        guard let bytes = try metaValue(forKey: KVMetaKey.revision) else { return .zero }
        return Revision(try decodeUInt64(bytes, "kv/revision"))
    }

    func compactedRevision() throws -> Revision {
        guard let bytes = try metaValue(forKey: KVMetaKey.compacted) else { return .zero }
        return Revision(try decodeUInt64(bytes, "kv/compacted"))
    }
}
