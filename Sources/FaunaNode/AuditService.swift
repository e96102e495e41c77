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

    mutating func answer(_ message: RPCMessage, store: Store) -> RPCMessage {
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
            case .stateDigest(let request): return try stateDigest(request, store)
            default: return invalid("\(message.kind) is not an audit request")
            }
        } catch let error as StoreError {
            return .error(RPCErrorResponse(error.code == .invalidRequest ? .invalidRequest : .internalError, "\(message.kind): \(error.message)"))
        } catch {
            return .error(RPCErrorResponse(.internalError, "\(message.kind): \(error)"))
        }
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

    private mutating func journalEntry(_ index: LogIndex, _ store: Store) throws -> RPCMessage {
        let applied = store.appliedIndex
        guard index >= LogIndex(1) else { return invalid("journal entry 0: entries start at 1") }
        guard index <= applied else { return behind("journal entry \(index)", applied.rawValue) }
        guard let entry = try store.journalEntry(at: index) else {
            return .error(RPCErrorResponse(.internalError, "journal entry \(index) is missing below the applied index \(applied)"))
        }
        var out = JournalEntry(index: entry.index.rawValue, term: entry.term.rawValue, type: entry.type.rawValue, payload: entry.data)
        if faults.lieForge, let forgedPayload = Self.forge(out.payload) {
            out.payload = forgedPayload
            forged = (out.index - 1, out.leafHash)
        }
        return .journalEntryResponse(out)
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

    /// lie-value and lie-forge: a read answer with every value corrupted.
    func lieAboutRead(_ answer: RPCMessage) -> RPCMessage {
        guard faults.lieValue || faults.lieForge, case .readResponse(var result) = answer else { return answer }
        result.records = result.records.map { kv in
            var kv = kv
            kv.record.value = TestFaults.corrupt(kv.record.value)
            return kv
        }
        return .readResponse(result)
    }
}
