import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// The audit requests of docs/PROTOCOL.md, each to one node. A node that has not applied far
/// enough answers `behind`, retried (on that node) until the deadline.
extension FaunaClient {
    /// The node's tree head signed by the node alone: at its applied size, or at `treeSize`.
    public func signedTreeHead(of endpoint: Endpoint, treeSize: UInt64? = nil, within: Duration? = nil) async throws(FaunaClientError) -> SignedTreeHeadResponse {
        let answer = try await ask(.signedTreeHead(TreeHeadRequest(treeSize: treeSize)), endpoint, within: within)
        guard case .signedTreeHeadResponse(let head) = answer else {
            throw FaunaClientError.unexpected(answer, want: "signedTreeHeadResponse", from: endpoint)
        }
        return head
    }

    /// Each node's tree-head public key as the node itself reports it (one attempt each).
    public func publicKeys() async -> [NodeID: [UInt8]] {
        var out: [NodeID: [UInt8]] = [:]
        let heads = await askEveryNode(.signedTreeHead(TreeHeadRequest()), within: configuration.requestTimeout) { answer in
            if case .signedTreeHeadResponse(let head) = answer { head } else { nil }
        }
        for case (_, .success(let head)) in heads { out[head.nodeID] = head.signature.publicKey }
        return out
    }

    /// The inclusion proof of entry `index` (leaf `index - 1`) in the tree of `treeSize`.
    public func inclusionProof(ofEntry index: UInt64, treeSize: UInt64, from endpoint: Endpoint) async throws(FaunaClientError) -> InclusionProof {
        guard index >= 1 else { throw FaunaClientError(.invalidRequest, "inclusion proof of entry 0: entries start at 1") }
        let answer = try await ask(.inclusionProof(InclusionProofRequest(leafIndex: index - 1, treeSize: treeSize)), endpoint)
        guard case .inclusionProofResponse(let proof) = answer else {
            throw FaunaClientError.unexpected(answer, want: "inclusionProofResponse", from: endpoint)
        }
        return proof
    }

    /// The consistency proof from the tree of `oldSize` to the tree of `newSize`.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64, at endpoint: Endpoint) async throws(FaunaClientError) -> ConsistencyProof {
        let answer = try await ask(.consistencyProof(ConsistencyProofRequest(oldSize: oldSize, newSize: newSize)), endpoint)
        guard case .consistencyProofResponse(let proof) = answer else {
            throw FaunaClientError.unexpected(answer, want: "consistencyProofResponse", from: endpoint)
        }
        return proof
    }

    /// The committed entry at `index`, from the node's journal.
    public func journalEntry(at index: UInt64, from endpoint: Endpoint) async throws(FaunaClientError) -> JournalEntry {
        let answer = try await ask(.journalEntry(LogIndex(index)), endpoint)
        guard case .journalEntryResponse(let entry) = answer else {
            throw FaunaClientError.unexpected(answer, want: "journalEntryResponse", from: endpoint)
        }
        return entry
    }

    /// The committed entry at `index` with its leaf v2 effects summary (nil for a v1 leaf) and,
    /// if the entry wrote or deleted `key`, that effect with its path in the effects tree.
    public func entryProof(at index: UInt64, key: [UInt8], from endpoint: Endpoint) async throws(FaunaClientError) -> EntryProofResponse {
        let answer = try await ask(.entryProof(EntryProofRequest(index: LogIndex(index), key: key)), endpoint)
        guard case .entryProofResponse(var response) = answer else {
            throw FaunaClientError.unexpected(answer, want: "entryProofResponse", from: endpoint)
        }
        if let (sent, proof) = response.effect {  // the wire leaves the key out: it is ours
            var effect = sent
            effect.key = key
            response.effect = (effect, proof)
        }
        return response
    }

    /// The indexes of the membership-change entries above `index` among the last 64 the node
    /// applied (unproven: prove each with `entryProof` and an inclusion proof).
    public func membershipChanges(after index: UInt64, from endpoint: Endpoint) async throws(FaunaClientError) -> [LogIndex] {
        let answer = try await ask(.membershipChanges(LogIndex(index)), endpoint)
        guard case .membershipChangesResponse(let indexes) = answer else {
            throw FaunaClientError.unexpected(answer, want: "membershipChangesResponse", from: endpoint)
        }
        return indexes
    }

    /// The node's state digest and tree root as of `revision` (0: its applied index); with
    /// `checkJournal`, also a re-hash of its whole journal against its stored tree.
    public func stateDigest(of endpoint: Endpoint, revision: Revision, checkJournal: Bool = false) async throws(FaunaClientError) -> StateDigestResponse {
        let answer = try await ask(.stateDigest(StateDigestRequest(revision: revision, checkJournal: checkJournal)), endpoint)
        guard case .stateDigestResponse(let digest) = answer else {
            throw FaunaClientError.unexpected(answer, want: "stateDigestResponse", from: endpoint)
        }
        return digest
    }

    /// A linearizable (or serializable) read of one key served by the node at `endpoint`
    /// itself, not by the leader: a follower serves linearizable reads after ReadIndex.
    public func get(_ key: [UInt8], revision: Revision? = nil, consistency: ReadConsistency = .linearizable, servedBy endpoint: Endpoint) async throws(FaunaClientError) -> KVKeyValue? {
        let request = KVRangeRequest(range: .single(key), limit: 1, revision: revision)
        let answer = try await ask(.read(ReadRequest(request, consistency: consistency)), endpoint)
        guard case .readResponse(let result) = answer else {
            throw FaunaClientError.unexpected(answer, want: "readResponse", from: endpoint)
        }
        return result.records.first { $0.key == key }
    }

    private func ask(_ request: RPCMessage, _ endpoint: Endpoint, within: Duration? = nil) async throws(FaunaClientError) -> RPCMessage {
        var budget = within.map { RetryBudget(deadline: .now + $0, attemptsMax: max(configuration.attemptsMax, 1)) } ?? makeBudget()
        return try await perform(request, route: .node(endpoint), budget: &budget)
    }
}
