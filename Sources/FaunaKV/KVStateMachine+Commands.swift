/// Ends a command with a domain outcome other than success; caught in `execute`, so its
/// staged writes are dropped.
struct AbortOutcome: Error {
    let outcome: KVOutcome
}

extension KVStateMachine {
    /// Runs one command against `view`. `current` is the revision before this entry.
    /// Writes go into `view`; the caller keeps them only if the outcome is `.success`.
    func execute(
        _ command: KVCommand, principal: [UInt8]? = nil, at revision: Revision, current: Revision, _ view: inout KVReadView
    ) throws -> KVOutcome {
        do {
            switch command {
            case .put(let put):
                return .success(succeeded: true, results: [try self.put(put, at: revision, &view)])
            case .deleteRange(let delete):
                return .success(succeeded: true, results: [try deleteRange(delete, at: revision, &view)])
            case .txn(let txn):
                return try self.txn(txn, at: revision, &view)
            case .compact(let target):
                try compact(to: target, current: current, &view)
                return .success(succeeded: true, results: [])
            case .initCluster(let id):
                if try view.metaValue(forKey: KVMetaKey.clusterID) == nil { view.setMeta(id, forKey: KVMetaKey.clusterID) }
                return .success(succeeded: true, results: [])
            case .upgradeLeaves:
                try Self.recordLevel(KVStateLevel.leafV2, at: revision, &view)
                return .success(succeeded: true, results: [])
            case .upgradeState(let level):
                // Validation keeps `level` in 1...current; `stride` stays empty for anything else.
                for l in stride(from: KVStateLevel.leafV2, through: min(level, KVStateLevel.current), by: 1) {
                    try Self.recordLevel(l, at: revision, &view)
                }
                return .success(succeeded: true, results: [])
            case .leaseGrant(let grant):
                return .success(succeeded: true, results: [try leaseGrant(grant, at: revision, &view)])
            case .leaseRevoke(let id):
                return .success(succeeded: true, results: [try leaseRevoke(id, at: revision, &view)])
            case .leaseCheckpoint(let list):
                try leaseCheckpoint(list, &view)
                return .success(succeeded: true, results: [])
            case .auth(let auth):
                return try executeAuth(auth, principal: principal, at: revision, &view)
            }
        } catch let abort as AbortOutcome {
            return abort.outcome
        }
    }

    /// Records that `level`'s rules hold from `revision` on, unless an earlier entry did.
    private static func recordLevel(_ level: UInt32, at revision: Revision, _ view: inout KVReadView) throws {
        let key = KVMetaKey.levelStart(level)
        guard try view.metaValue(forKey: key) == nil else { return }
        view.setMeta(encodeUInt64(revision.rawValue), forKey: key)
        if level == KVStateLevel.leafV2 { view.startsLeafV2 = true }
    }

    func put(_ put: KVPut, at revision: Revision, _ view: inout KVReadView) throws -> KVOperationResult {
        let previous = try view.record(forKey: put.key)
        if put.ifAbsent, previous != nil { throw AbortOutcome(outcome: .alreadyExists(key: put.key)) }
        try requireLease(put.lease, for: put.key, view)
        let (version, overflow) = (previous?.version ?? 0).addingReportingOverflow(1)
        guard !overflow else { throw KVApplyError.counterOverflow("version of key \(put.key)") }
        let record = KVRecord(
            value: put.value, createRevision: previous?.createRevision ?? revision, modRevision: revision,
            version: version, lease: put.lease)
        if let previous { Self.supersede(previous, ofKey: put.key, at: revision, &view) }
        Self.reattach(put.key, from: previous?.lease ?? 0, to: put.lease, &view)
        view.setRecord(record, forKey: put.key)
        return .put(previous: put.returnsPrevious ? previous : nil)
    }

    /// Keeps `record`, the current version of `key` until `revision` replaces it, in history
    /// (at its mod revision): history holds every version but the current ones (ADR 0008), so
    /// a key written once is stored once. A record written by this same entry was current at
    /// no revision and is not kept.
    static func supersede(
        _ record: KVRecord, ofKey key: [UInt8], at revision: Revision, _ view: inout KVReadView
    ) {
        guard record.modRevision < revision else { return }
        view.setHistory(.record(record), forKey: key, at: record.modRevision)
    }

    func deleteRange(
        _ delete: KVDeleteRange, at revision: Revision, _ view: inout KVReadView
    ) throws -> KVOperationResult {
        var deleted: [KVKeyValue] = []
        try view.scanRecords(in: delete.range, reverse: false) { key, record in
            deleted.append(KVKeyValue(key: key, record: record))
            return true
        }
        for entry in deleted {
            Self.reattach(entry.key, from: entry.record.lease, to: 0, &view)
            Self.supersede(entry.record, ofKey: entry.key, at: revision, &view)
            view.setRecord(nil, forKey: entry.key)
            view.setHistory(.tombstone, forKey: entry.key, at: revision)
        }
        return .deleteRange(deleted: deleted.count, previous: delete.returnsPrevious ? deleted : [])
    }

    /// etcd's Txn: every compare is evaluated on the state before the transaction; then one
    /// branch runs, each operation seeing the writes of the ones before it.
    func txn(_ txn: KVTxn, at revision: Revision, _ view: inout KVReadView) throws -> KVOutcome {
        var succeeded = true
        for compare in txn.compares {
            if try !holds(compare, view) {
                succeeded = false
                break
            }
        }
        var results: [KVOperationResult] = []
        for op in succeeded ? txn.success : txn.failure {
            switch op {
            case .put(let put): results.append(try self.put(put, at: revision, &view))
            case .deleteRange(let delete): results.append(try deleteRange(delete, at: revision, &view))
            case .range(let request): results.append(.range(try rangeInTxn(request, at: revision, view)))
            }
        }
        return .success(succeeded: succeeded, results: results)
    }

    /// A read inside a transaction: "now" is the transaction's own revision (its earlier writes
    /// are visible); results are capped at `KVLimits.txnRangeResultsMax`.
    private func rangeInTxn(
        _ request: KVRangeRequest, at revision: Revision, _ view: KVReadView
    ) throws -> KVRangeResult {
        let readRevision = try checkedReadRevision(request.revision, current: revision, view).get()
        let limit = min(request.limit ?? KVLimits.txnRangeResultsMax, KVLimits.txnRangeResultsMax)
        return try readRange(request, limit: limit, at: readRevision, current: revision, view)
    }

    /// Resolves a requested read revision (nil or 0: `current`) and checks it against the
    /// compacted and current revisions, as etcd's checkRange.
    func checkedReadRevision(
        _ requested: Revision?, current: Revision, _ view: KVReadView
    ) throws -> Result<Revision, AbortOutcome> {
        guard let requested, requested != .zero else { return .success(current) }
        if requested > current {
            return .failure(AbortOutcome(outcome: .futureRevision(requested: requested, current: current)))
        }
        let compacted = try view.compactedRevision()
        if requested < compacted {
            return .failure(AbortOutcome(outcome: .compacted(requested: requested, compacted: compacted)))
        }
        return .success(requested)
    }

    /// Whether `compare` holds for every key in its range (for a missing key: on a zero record;
    /// a value compare with a missing key never holds — etcd's applyCompare).
    func holds(_ compare: KVCompare, _ view: KVReadView) throws -> Bool {
        var sawKey = false
        var allHold = true
        try view.scanRecords(in: compare.range, reverse: false) { _, record in
            sawKey = true
            allHold = KVStateMachine.holds(compare, on: record)
            return allHold
        }
        return sawKey ? allHold : KVStateMachine.holds(compare, on: nil)
    }

    static func holds(_ compare: KVCompare, on record: KVRecord?) -> Bool {
        let order: Int
        switch compare.target {
        case .value(let operand):
            guard let record else { return false }
            order = compareBytes(record.value, operand)
        case .version(let operand): order = compareValues(record?.version ?? 0, operand)
        case .createRevision(let operand): order = compareValues(record?.createRevision ?? .zero, operand)
        case .modRevision(let operand): order = compareValues(record?.modRevision ?? .zero, operand)
        }
        switch compare.op {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order < 0
        case .greater: return order > 0
        }
    }
}

/// -1, 0 or 1 as `a` is below, equal to or above `b`.
func compareValues<T: Comparable>(_ a: T, _ b: T) -> Int { a < b ? -1 : (a == b ? 0 : 1) }

extension KVRecord {
    /// The record with an empty value (keys-only reads).
    var withoutValue: KVRecord {
        KVRecord(value: [], createRevision: createRevision, modRevision: modRevision, version: version, lease: lease)
    }
}
