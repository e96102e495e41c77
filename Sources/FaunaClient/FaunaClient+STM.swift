import FaunaKV
import FaunaRPC

/// How much of other writers' work a transaction may observe (docs/KV-COMMANDS.md "Isolation
/// levels"). Built on compare-on-mod-revision transactions, as etcd's client builds its STM.
public enum IsolationLevel: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Reads from one revision (the first read's); commits only if nothing it read or wrote
    /// changed since. Serializable, and no write is lost to a concurrent blind write.
    case serializableSnapshot = "serializable-snapshot"
    /// Reads from one revision; commits only if nothing it read changed since. A key it only
    /// writes may have been written meanwhile (the later commit wins).
    case serializable
    /// Each read sees the latest committed value (the pair may come from different
    /// revisions); commits only if nothing it read changed since.
    case repeatableReads = "repeatable-reads"
    /// Each read sees the latest committed value; commits whatever it read. Allows lost
    /// updates and write skew.
    case readCommitted = "read-committed"

    public var description: String { rawValue }
}

/// One attempt of a transaction (`FaunaClient.transaction`): reads go to the cluster (and are
/// remembered), writes are buffered and committed together at the end. Used by one task.
public final class STM: @unchecked Sendable {
    // @unchecked Sendable: confined to the task running the transaction body.
    public let isolation: IsolationLevel
    /// Which attempt this is, from 1.
    public let attempt: Int
    private let client: FaunaClient
    /// The revision every read of a serializable level is made at (the first read's).
    public private(set) var readRevision: Revision?
    /// Each key read, with the mod revision it had (0: absent) and its record.
    private var reads: [HashedBytes: KVRecord?] = [:]
    private var readOrder: [[UInt8]] = []
    /// Each key written, with its new value (nil: deleted), in the order of first write.
    private var writes: [HashedBytes: [UInt8]?] = [:]
    private var writeOrder: [[UInt8]] = []

    init(client: FaunaClient, isolation: IsolationLevel, attempt: Int) {
        self.client = client
        self.isolation = isolation
        self.attempt = attempt
    }

    /// The value of `key` as this transaction sees it: its own write if it wrote the key, else
    /// what it read before, else a read (at `readRevision` for the serializable levels).
    public func get(_ key: [UInt8]) async throws(FaunaClientError) -> [UInt8]? {
        try await getRecord(key)?.value
    }

    /// `get` with the record's revisions and version (nil: absent). A key the transaction
    /// wrote has no new record yet: its buffered value comes with the revisions and version
    /// of the record it read (0 if it read none).
    public func getRecord(_ key: [UInt8]) async throws(FaunaClientError) -> KVRecord? {
        let h = HashedBytes(key)
        if let written = writes[h] {
            let before = reads[h] ?? nil
            return written.map {
                KVRecord(
                    value: $0, createRevision: before?.createRevision ?? Revision(0), modRevision: before?.modRevision ?? Revision(0),
                    version: before?.version ?? 0)
            }
        }
        if let known = reads[h] { return known }
        let record: KVRecord?
        switch isolation {
        case .serializable, .serializableSnapshot:
            if let readRevision {
                record = try await client.get(key, revision: readRevision)?.record
            } else {
                let result = try await client.range(KVRangeRequest(range: .single(key), limit: 1))
                readRevision = result.revision
                record = result.records.first { $0.key == key }?.record
            }
        case .repeatableReads, .readCommitted:
            record = try await client.get(key)?.record
        }
        reads[h] = .some(record)
        readOrder.append(key)
        return record
    }

    /// Buffers a put of `key`.
    public func put(_ key: [UInt8], _ value: [UInt8]) {
        buffer(key, value)
    }

    /// Buffers a delete of `key`.
    public func delete(_ key: [UInt8]) {
        buffer(key, nil)
    }

    private func buffer(_ key: [UInt8], _ value: [UInt8]?) {
        let h = HashedBytes(key)
        if writes[h] == nil { writeOrder.append(key) }
        writes[h] = .some(value)
    }

    /// The keys read so far, in order (for tests and diagnostics).
    public var keysRead: [[UInt8]] { readOrder }

    /// The transaction that commits this attempt: the buffered writes, if the compares of the
    /// isolation level hold.
    func commitTxn() -> KVTxn {
        var compares: [KVCompare] = []
        switch isolation {
        case .readCommitted:
            break
        case .repeatableReads:
            for key in readOrder {
                let mod = reads[HashedBytes(key)]??.modRevision ?? Revision(0)
                compares.append(KVCompare(key: key, .modRevision(mod), .equal))
            }
        case .serializable, .serializableSnapshot:
            if let readRevision {
                // Unchanged since the revision read at: mod revision ≤ it (absent keys: 0).
                let bound = Revision(readRevision.rawValue + 1)
                var checked = Set<HashedBytes>()
                for key in readOrder {
                    checked.insert(HashedBytes(key))
                    compares.append(KVCompare(key: key, .modRevision(bound), .less))
                }
                if isolation == .serializableSnapshot {
                    for key in writeOrder where !checked.contains(HashedBytes(key)) {
                        compares.append(KVCompare(key: key, .modRevision(bound), .less))
                    }
                }
            }
        }
        let ops: [KVOperation] = writeOrder.map { key in
            switch writes[HashedBytes(key)]! {
            case .some(let value): .put(KVPut(key: key, value: value))
            case .none: .deleteRange(KVDeleteRange(range: .single(key)))
            }
        }
        return KVTxn(compares: compares, success: ops)
    }
}

/// What `FaunaClient.transaction` did.
public struct STMOutcome<T: Sendable>: Sendable {
    /// The body's result in the attempt that committed.
    public var value: T
    /// The revision of the commit (of the last read, for a transaction that wrote nothing).
    public var revision: Revision
    /// The attempts it took, from 1.
    public var attempts: Int
}

extension FaunaClient {
    /// Runs `body` as a transaction at `isolation`: its reads go to the cluster, its writes are
    /// buffered and committed together, only if what the level protects did not change; if it
    /// did, `body` runs again (with fresh reads), at most `attemptsMax` times, after which the
    /// call fails with `conflict`. `body` must do nothing outside the `STM` that cannot be
    /// repeated. docs/KV-COMMANDS.md "Isolation levels" says what each level allows.
    ///
    /// ```swift
    /// let moved = try await client.transaction(isolation: .serializable) { stm in
    ///     let from = Int(String(decoding: try await stm.get(a) ?? [], as: UTF8.self)) ?? 0
    ///     stm.put(a, Array("\(from - 10)".utf8))
    ///     ...
    /// }
    /// ```
    public func transaction<T: Sendable>(
        isolation: IsolationLevel = .serializableSnapshot, attemptsMax: Int = 10, _ body: (STM) async throws -> T
    ) async throws -> STMOutcome<T> {
        var lastConflict = ""
        for attempt in 1...max(attemptsMax, 1) {
            let stm = STM(client: self, isolation: isolation, attempt: attempt)
            let value: T
            do {
                value = try await body(stm)
            } catch let error as FaunaClientError where error.code == .compacted && stm.readRevision != nil {
                // The revision read at was compacted meanwhile: start again from a newer one.
                lastConflict = "its read revision was compacted (\(error.message))"
                continue
            }
            let txn = stm.commitTxn()
            // Nothing written: reads from one revision are consistent as they are, and read
            // committed promises nothing more; repeatable reads still validates what it read.
            if txn.success.isEmpty && (isolation != .repeatableReads || txn.compares.isEmpty) {
                return STMOutcome(value: value, revision: stm.readRevision ?? Revision(0), attempts: attempt)
            }
            if txn.success.count > KVLimits.txnOperationsMax || txn.compares.count > KVLimits.txnComparesMax {
                throw FaunaClientError(
                    .invalidRequest,
                    "transaction: \(txn.success.count) writes and \(txn.compares.count) compares; want at most \(KVLimits.txnOperationsMax) and \(KVLimits.txnComparesMax)")
            }
            let result = try await self.txn(txn)
            switch result.outcome {
            case .success(true, _):
                return STMOutcome(value: value, revision: result.revision, attempts: attempt)
            case .success(false, _):
                lastConflict = "what it read changed before its commit (attempt \(attempt), revision \(result.revision))"
            default:
                throw FaunaClientError(.invalidRequest, "transaction commit: \(result.outcome)")
            }
        }
        throw FaunaClientError(.conflict, "transaction (\(isolation)) gave up after \(max(attemptsMax, 1)) attempts: \(lastConflict)")
    }
}
