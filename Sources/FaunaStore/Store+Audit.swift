import Crypto
import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify

/// What re-hashing the journal found (`Store.auditJournal()`, `fctl audit --journal`).
public struct JournalAudit: Sendable, Hashable {
    /// Entries re-hashed (= the tree size checked).
    public var entries: UInt64
    /// The root of the tree rebuilt from the journal.
    public var rebuiltRoot: MerkleHash
    /// The first difference between the journal and the stored tree, or nil if none.
    public var problem: String?

    public init(entries: UInt64, rebuiltRoot: MerkleHash, problem: String?) {
        self.entries = entries
        self.rebuiltRoot = rebuiltRoot
        self.problem = problem
    }
}

extension Store {
    /// The cluster ID recorded by the first committed `initCluster`, or nil before it applied.
    public func clusterID() throws(StoreError) -> ClusterID? {
        let bytes: [UInt8]?
        do { bytes = try kvStateMachine.clusterID(on: makeKVBackend()) } catch { throw Self.storeError(error, "cluster ID") }
        guard let bytes else { return nil }
        guard let id = ClusterID(bytes: bytes) else {
            throw StoreError(.corruptRecord, "meta kv/cluster-id: got \(bytes.count) bytes, want \(ClusterID.sizeBytes)")
        }
        return id
    }

    /// The highest `KVStateLevel` the applied state has recorded (0: none).
    public func stateLevel() throws(StoreError) -> UInt32 {
        do { return try kvStateMachine.stateLevel(on: makeKVBackend()) } catch { throw Self.storeError(error, "state level") }
    }

    /// The digest of the key-value state as of `revision` (a log index ≤ the applied index; 0:
    /// the applied index), comparable across replicas that applied different amounts beyond it
    /// (docs/KV-COMMANDS.md "Digest stream").
    /// - Throws: `.invalidRequest` for a revision beyond the applied index or compacted.
    public func stateDigest(at revision: Revision) throws(StoreError) -> StateDigest {
        let (appliedNow, snapshot) = applyLock.withLock { (self.applied.index, db.makeSnapshot()) }
        let at = revision == .zero ? Revision(appliedNow.rawValue) : revision
        guard at.rawValue <= appliedNow.rawValue else {
            throw StoreError(.invalidRequest, "state digest at \(at): beyond the applied index \(appliedNow)")
        }
        let backend = RocksDBKVBackend(db: db, cfs: cfs, snapshot: snapshot)
        var hasher = SHA256()
        do {
            try kvStateMachine.digestStream(at: at, on: backend) { hasher.update(bufferPointer: $0) }
        } catch let e as KVReadError {
            throw StoreError(.invalidRequest, "state digest at \(revision): \(e)")
        } catch {
            throw Self.storeError(error, "state digest at \(revision)")
        }
        return StateDigest(appliedIndex: LogIndex(at.rawValue), sha256: Array(hasher.finalize()))
    }

    /// Re-hashes every journal entry up to the applied index, rebuilds the tree from them and
    /// compares every stored tree node with the rebuilt one: finds a journal or tree edited at
    /// rest. Reads in batches of `batchEntries`; memory stays bounded by one batch.
    /// - Throws: `.corruptRecord` if a journal entry is missing or does not decode, or a tree
    ///   node does not decode; `.rocksDB` if a read fails: fail-stop errors, not findings. (A
    ///   tree node that is absent or differs is a finding, in `problem`.)
    public func auditJournal(batchEntries: Int = 4096) throws(StoreError) -> JournalAudit {
        let size = appliedIndex.rawValue
        let reader = RocksDBMerkleNodeReader(db: db, cf: cfs.merkle, snapshot: nil)
        var frontier = MerkleFrontier()
        var next: UInt64 = 1
        while next <= size {
            let high = min(size + 1, next + UInt64(max(1, batchEntries)))
            // An entry that is missing or does not decode is a corrupt record, not a finding:
            // thrown, so the node stops (docs/RELIABILITY.md). Findings are records that decode
            // but hash to something else than the stored tree says.
            let entries = try journalRecords(from: LogIndex(next), to: LogIndex(high), maxBytes: Int.max)
            var writes = NodeWrites()
            // v2 records are re-hashed from their stored effects, without the state machine.
            for record in entries { frontier.append(record.leafHash, to: &writes, using: .libcrypto) }
            let stored: [MerkleHash?]
            do { stored = try reader.hashes(at: writes.writes.map(\.address)) } catch {
                throw Self.storeError(error, "reading the merkle column family")
            }
            for ((address, rebuilt), have) in zip(writes.writes, stored) where have != rebuilt {
                let what = address.level == 0
                    ? "journal entry \(address.index + 1) (leaf \(address.index)) hashes to \(rebuilt)"
                    : "tree node (level \(address.level), index \(address.index)) rebuilt from the journal is \(rebuilt)"
                return JournalAudit(
                    entries: next - 1 + UInt64(entries.count), rebuiltRoot: frontier.rootHash,
                    problem: "\(what); the stored tree has \(have.map { "\($0)" } ?? "nothing")")
            }
            next = high
        }
        return JournalAudit(entries: size, rebuiltRoot: frontier.rootHash, problem: nil)
    }

    static func storeError(_ error: any Error, _ what: String) -> StoreError { StoreError(wrapping: error, what) }
}
