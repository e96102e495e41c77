import FaunaAudit
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify

/// Answers the audit requests (docs/PROTOCOL.md "Audit messages") from the node's own applied
/// state, on the apply thread: between two applies, so the applied index, the tree and the
/// journal agree. Each node signs only heads of its own tree, at most its applied size.
///
/// The state digest and the journal check read the whole state or journal: like `hashkv`,
/// they hold up applies on this node while they run (an operator's tool, not a hot path).
struct AuditService {
    let nodeID: NodeID
    let signer: TreeHeadSigner
    let faults: TestFaults
    /// lie-forge only: the leaf of the last entry forged, and its hash.
    private var forged: (leaf: UInt64, hash: MerkleHash)?

    init(nodeID: NodeID, signer: TreeHeadSigner, faults: TestFaults) {
        self.nodeID = nodeID
        self.signer = signer
        self.faults = faults
    }

    /// The answer to an audit request.
    /// - Throws: a fail-stop `StoreError` — a record that does not decode, a journal entry or
    ///   tree node missing where the applied index says it must be, a failed read. The caller
    ///   stops the node: an answer computed from a damaged store is not an audit finding.
    mutating func answer(_ message: RPCMessage, store: Store) throws(StoreError) -> RPCMessage {
        guard store.auditChain else {
            return .error(RPCErrorResponse(.unsupported, "\(nodeID) runs without the audit chain (--unsafe-no-audit-chain, benchmarks only)"))
        }
        do {
            switch message {
            case .signedTreeHead(let request): return try signedHead(request, store)
            case .inclusionProof(let request): return try inclusionProof(request, store)
            case .consistencyProof(let request):
                let applied = store.appliedIndex.rawValue
                guard request.newSize <= applied else { return behind("tree size \(request.newSize)", applied) }
                guard request.oldSize <= request.newSize else {
                    return invalid("consistency proof from \(request.oldSize) to \(request.newSize): want old ≤ new")
                }
                let proof = try store.makeMerkleProver().consistencyProof(from: request.oldSize, to: request.newSize)
                return .consistencyProofResponse(proof)
            case .journalEntry(let index): return try journalEntry(index, store)
            case .entryProof(let request): return try entryProof(request, store)
            case .membershipChanges(let after): return .membershipChangesResponse(store.confChangeIndexes(after: after))
            case .stateDigest(let request): return try stateDigest(request, store)
            default: return invalid("\(message.kind) is not an audit request")
            }
        } catch let error as StoreError {
            if error.isFailStop { throw error }
            return .error(RPCErrorResponse(error.code == .invalidRequest ? .invalidRequest : .internalError, "\(message.kind): \(error.message)"))
        } catch let error as AuditError where Self.isCorruption(error) {
            throw StoreError(.corruptRecord, "merkle column family: \(error)")
        } catch {
            return .error(RPCErrorResponse(.internalError, "\(message.kind): \(error)"))
        }
    }

    /// The tree lacks a node its size requires, or returned something the reader contract
    /// forbids: the store is damaged (AuditError says the caller must stop, not guess).
    static func isCorruption(_ error: AuditError) -> Bool {
        error.code == .missingNode || error.code == .storeContract || error.code == .malformedKey
    }

    private mutating func signedHead(_ request: TreeHeadRequest, _ store: Store) throws -> RPCMessage {
        guard let clusterID = try store.clusterID() else {
            return .error(RPCErrorResponse(.behind, "\(nodeID) has no cluster ID yet (the first leader records it in its first entries); retry"))
        }
        let applied = store.appliedIndex.rawValue
        let size = request.treeSize ?? applied
        guard size <= applied else { return behind("tree size \(size)", applied) }
        let prover = store.makeMerkleProver()
        var root = try prover.rootHash(atSize: size)
        if faults.lieForge, let forged, forged.leaf < size {
            let path = try prover.inclusionProof(for: LeafIndex(forged.leaf), treeSize: size)
            root = try path.rootHash(fromLeafHash: forged.hash)
        }
        let head = TreeHead(clusterID: clusterID, treeSize: size, rootHash: root)
        return .signedTreeHeadResponse(SignedTreeHeadResponse(
            nodeID: nodeID, appliedIndex: LogIndex(applied), head: head, signature: try signer.sign(head)))
    }

    private func inclusionProof(_ request: InclusionProofRequest, _ store: Store) throws -> RPCMessage {
        let applied = store.appliedIndex.rawValue
        guard request.treeSize <= applied else { return behind("tree size \(request.treeSize)", applied) }
        guard request.leafIndex < request.treeSize else {
            return invalid("inclusion proof of leaf \(request.leafIndex) in tree size \(request.treeSize): want leaf < size")
        }
        var proof = try store.makeMerkleProver().inclusionProof(for: LeafIndex(request.leafIndex), treeSize: request.treeSize)
        if faults.lieProof, let first = proof.path.first {
            proof.path[0] = MerkleHash(bytes: TestFaults.corrupt(first.bytes)) ?? first
        }
        return .inclusionProofResponse(proof)
    }

    /// The journal record at `index` (checked against the applied index).
    private func journalRecord(_ index: LogIndex, _ store: Store) throws -> Result<JournalRecord, RPCErrorResponse> {
        let applied = store.appliedIndex
        guard index >= LogIndex(1) else { return .failure(RPCErrorResponse(.invalidRequest, "journal entry 0: entries start at 1")) }
        guard index <= applied else {
            return .failure(RPCErrorResponse(.behind, "journal entry \(index) is beyond what \(nodeID) applied (\(applied)); retry or ask another node"))
        }
        guard let record = try store.journalRecord(at: index) else {
            // The journal keeps every applied entry forever: a gap is damage, not an answer.
            throw StoreError(
                .corruptRecord, "journal entry \(index) is missing below the applied index \(applied) (column family journal)")
        }
        return .success(record)
    }

    /// The entry alone, as v1 clients read it (its effects, if any, are not sent: ask
    /// `entryProof` for a v2 leaf).
    private mutating func journalEntry(_ index: LogIndex, _ store: Store) throws -> RPCMessage {
        let record: JournalRecord
        switch try journalRecord(index, store) {
        case .success(let r): record = r
        case .failure(let error): return .error(error)
        }
        var out = record.leaf
        out.effects = nil
        if faults.lieForge, let forgedPayload = Self.forge(out.payload) {
            out.payload = forgedPayload
            forged = (out.index - 1, out.leafHash)
        }
        return .journalEntryResponse(out)
    }

    /// The entry with its effects summary, and the proof of `request.key`'s effect.
    private mutating func entryProof(_ request: EntryProofRequest, _ store: Store) throws -> RPCMessage {
        let record: JournalRecord
        switch try journalRecord(request.index, store) {
        case .success(let r): record = r
        case .failure(let error): return .error(error)
        }
        var entry = record.leaf
        var effect = request.key.isEmpty ? nil : record.effects?.proof(forKey: request.key)
        if faults.lieForge, let forgedPayload = Self.forge(entry.payload) {
            entry.payload = forgedPayload
            if let summary = entry.effects, let value = Self.putValue(of: request.key, in: forgedPayload) {
                // A consistent lie: the effects this node claims write the forged value.
                let lie = Effect.put(key: request.key, value: value)
                let forgedSummary = EffectsTree.summary(outcome: .success, branch: summary.branch, effects: [lie])
                entry.effects = forgedSummary
                effect = (lie, EffectProof(summary: forgedSummary, effectIndex: 0, path: []))
            }
            forged = (entry.index - 1, entry.leafHash)
        }
        return .entryProofResponse(EntryProofResponse(entry: entry, effect: effect))
    }

    private func stateDigest(_ request: StateDigestRequest, _ store: Store) throws -> RPCMessage {
        let digest = try store.stateDigest(at: request.revision)
        let size = UInt64(digest.appliedIndex.rawValue)
        let root = try store.makeMerkleProver().rootHash(atSize: size)
        var response = StateDigestResponse(nodeID: nodeID, revision: Revision(size), digest: digest.sha256, treeRoot: root)
        if request.checkJournal {
            let audit = try store.auditJournal()
            response.journalChecked = audit.entries
            response.journalProblem = audit.problem ?? ""
        }
        return .stateDigestResponse(response)
    }

    private func behind(_ what: String, _ applied: UInt64) -> RPCMessage {
        .error(RPCErrorResponse(.behind, "\(what) is beyond what \(nodeID) applied (\(applied)); retry or ask another node"))
    }

    private func invalid(_ why: String) -> RPCMessage { .error(RPCErrorResponse(.invalidRequest, why)) }

    /// lie-unwritten: the newest of the last 10,000 committed entries that proposes a put of
    /// `kv.key` with another value than the current one, which it therefore never wrote (a
    /// put-if-absent that found the key, an expired session). Its journal entry, inclusion
    /// path and tree heads are all genuine.
    private static func unwrittenPut(of kv: KVKeyValue, in store: Store) -> (index: LogIndex, value: [UInt8])? {
        let applied = store.appliedIndex.rawValue
        var index = applied
        while index > kv.record.modRevision.rawValue && index + 10_000 > applied {
            defer { index -= 1 }
            guard let entry = try? store.journalEntry(at: LogIndex(index)), entry.type == .normal,
                let value = putValue(of: kv.key, in: entry.data), value != kv.record.value
            else { continue }
            return (LogIndex(index), value)
        }
        return nil
    }

    /// The value a put of `key` in `payload` writes (either txn branch), if any.
    private static func putValue(of key: [UInt8], in payload: [UInt8]) -> [UInt8]? {
        guard let proposal = try? KVProposal(decoding: payload) else { return nil }
        switch proposal.command {
        case .put(let put): return put.key == key ? put.value : nil
        case .txn(let txn):
            for case .put(let put) in txn.success + txn.failure where put.key == key { return put.value }
            return nil
        default: return nil
        }
    }

    /// lie-forge: the payload with every put's value corrupted, or nil if it has no put.
    private static func forge(_ payload: [UInt8]) -> [UInt8]? {
        guard var proposal = try? KVProposal(decoding: payload) else { return nil }
        func lie(_ op: KVOperation) -> KVOperation {
            guard case .put(var put) = op else { return op }
            put.value = TestFaults.corrupt(put.value)
            return .put(put)
        }
        switch proposal.command {
        case .put(var put):
            put.value = TestFaults.corrupt(put.value)
            proposal.command = .put(put)
        case .txn(var txn):
            txn.success = txn.success.map(lie)
            txn.failure = txn.failure.map(lie)
            proposal.command = .txn(txn)
        default:
            return nil
        }
        return proposal.encoded()
    }

    /// lie-value and lie-forge: a read answer with every value corrupted. lie-unwritten: a
    /// one-key read answered with the value of a committed put of that key that wrote nothing.
    func lieAboutRead(_ answer: RPCMessage, store: Store) -> RPCMessage {
        if faults.lieUnwritten, case .readResponse(var result) = answer, result.records.count == 1,
            let lie = Self.unwrittenPut(of: result.records[0], in: store)
        {
            result.records[0].record.value = lie.value
            result.records[0].record.modRevision = Revision(lie.index.rawValue)
            return .readResponse(result)
        }
        guard faults.lieValue || faults.lieForge, case .readResponse(var result) = answer else { return answer }
        result.records = result.records.map { kv in
            var kv = kv
            kv.record.value = TestFaults.corrupt(kv.record.value)
            return kv
        }
        return .readResponse(result)
    }
}
