import CoreMetrics
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
public struct AuditService: Sendable {
    let nodeID: NodeID
    let signer: TreeHeadSigner
    let metrics: PipelineMetrics

    public init(nodeID: NodeID, signer: TreeHeadSigner, metrics: PipelineMetrics = PipelineMetrics()) {
        self.nodeID = nodeID
        self.signer = signer
        self.metrics = metrics
    }

    /// The answer to an audit request.
    /// - Throws: a fail-stop `StoreError` — a record that does not decode, a journal entry or
    ///   tree node missing where the applied index says it must be, a failed read. The caller
    ///   stops the node: an answer computed from a damaged store is not an audit finding.
    func answer(_ message: RPCMessage, store: any StateStore) throws(StoreError) -> RPCMessage {
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
                let proof = try store.consistencyProof(from: request.oldSize, to: request.newSize)
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

    private func signedHead(_ request: TreeHeadRequest, _ store: any StateStore) throws -> RPCMessage {
        guard let clusterID = try store.clusterID() else {
            return .error(RPCErrorResponse(.behind, "\(nodeID) has no cluster ID yet (the first leader records it in its first entries); retry"))
        }
        let applied = store.appliedIndex.rawValue
        let size = request.treeSize ?? applied
        guard size <= applied else { return behind("tree size \(size)", applied) }
        let root = try store.rootHash(atSize: size)
        let head = TreeHead(clusterID: clusterID, treeSize: size, rootHash: root)
        let signature = try signer.sign(head)
        metrics.treeHeadsSigned.increment()
        return .signedTreeHeadResponse(SignedTreeHeadResponse(
            nodeID: nodeID, appliedIndex: LogIndex(applied), head: head, signature: signature))
    }

    private func inclusionProof(_ request: InclusionProofRequest, _ store: any StateStore) throws -> RPCMessage {
        let applied = store.appliedIndex.rawValue
        guard request.treeSize <= applied else { return behind("tree size \(request.treeSize)", applied) }
        guard request.leafIndex < request.treeSize else {
            return invalid("inclusion proof of leaf \(request.leafIndex) in tree size \(request.treeSize): want leaf < size")
        }
        let proof = try store.inclusionProof(for: LeafIndex(request.leafIndex), treeSize: request.treeSize)
        return .inclusionProofResponse(proof)
    }

    /// The journal record at `index` (checked against the applied index).
    private func journalRecord(_ index: LogIndex, _ store: any StateStore) throws -> Result<JournalRecord, RPCErrorResponse> {
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
    private func journalEntry(_ index: LogIndex, _ store: any StateStore) throws -> RPCMessage {
        let record: JournalRecord
        switch try journalRecord(index, store) {
        case .success(let r): record = r
        case .failure(let error): return .error(error)
        }
        var out = record.leaf
        out.effects = nil
        return .journalEntryResponse(out)
    }

    /// The entry with its effects summary, and the proof of `request.key`'s effect.
    private func entryProof(_ request: EntryProofRequest, _ store: any StateStore) throws -> RPCMessage {
        let record: JournalRecord
        switch try journalRecord(request.index, store) {
        case .success(let r): record = r
        case .failure(let error): return .error(error)
        }
        let effect = request.key.isEmpty ? nil : record.effects?.proof(forKey: request.key)
        return .entryProofResponse(EntryProofResponse(entry: record.leaf, effect: effect))
    }

    private func stateDigest(_ request: StateDigestRequest, _ store: any StateStore) throws -> RPCMessage {
        let digest = try store.stateDigest(at: request.revision)
        let size = UInt64(digest.appliedIndex.rawValue)
        let root = try store.rootHash(atSize: size)
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
}
