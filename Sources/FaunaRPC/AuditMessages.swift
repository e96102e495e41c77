import FaunaKV
import FaunaRaft
import FaunaVerify

// docs/PROTOCOL.md "Audit messages": signed tree heads, inclusion and consistency proofs,
// journal entries and state digests, served by every node from its own applied state.

/// Ask a node to sign its tree head: at its applied size, or at `treeSize` (≤ its applied size).
public struct TreeHeadRequest: Hashable, Sendable {
    /// nil: the node's applied size.
    public var treeSize: UInt64?
    public init(treeSize: UInt64? = nil) { self.treeSize = treeSize }
}

/// A tree head signed by the answering node alone (a client collects a quorum of these).
public struct SignedTreeHeadResponse: Hashable, Sendable {
    /// The answering node.
    public var nodeID: NodeID
    /// Its applied index when it answered (≥ `head.treeSize`).
    public var appliedIndex: LogIndex
    /// The head: cluster ID, size, root.
    public var head: TreeHead
    /// The node's Ed25519 public key and its signature over `head.canonicalBytes`.
    public var signature: TreeHeadSignature

    public init(nodeID: NodeID, appliedIndex: LogIndex, head: TreeHead, signature: TreeHeadSignature) {
        self.nodeID = nodeID
        self.appliedIndex = appliedIndex
        self.head = head
        self.signature = signature
    }
}

/// The inclusion proof of leaf `leafIndex` (entry `leafIndex + 1`) in the tree of `treeSize`.
public struct InclusionProofRequest: Hashable, Sendable {
    public var leafIndex: UInt64
    public var treeSize: UInt64
    public init(leafIndex: UInt64, treeSize: UInt64) {
        self.leafIndex = leafIndex
        self.treeSize = treeSize
    }
}

/// The consistency proof from the tree of `oldSize` to the tree of `newSize`.
public struct ConsistencyProofRequest: Hashable, Sendable {
    public var oldSize: UInt64
    public var newSize: UInt64
    public init(oldSize: UInt64, newSize: UInt64) {
        self.oldSize = oldSize
        self.newSize = newSize
    }
}

/// Ask for the state digest and tree root as of `revision`, optionally with a re-hash of the
/// whole journal against the stored tree.
public struct StateDigestRequest: Hashable, Sendable {
    /// 0: the node's applied index.
    public var revision: Revision
    /// Also re-hash the journal (slow: reads every entry).
    public var checkJournal: Bool
    public init(revision: Revision, checkJournal: Bool = false) {
        self.revision = revision
        self.checkJournal = checkJournal
    }
}

/// A node's state digest and tree root as of one revision.
public struct StateDigestResponse: Hashable, Sendable {
    public var nodeID: NodeID
    /// The revision (= tree size) both are for.
    public var revision: Revision
    /// SHA-256 of the state as of `revision` (docs/KV-COMMANDS.md "Digest stream", version 2).
    public var digest: [UInt8]
    /// The node's tree root at size `revision`.
    public var treeRoot: MerkleHash
    /// With `checkJournal`: entries re-hashed, and the first difference found (empty: none).
    public var journalChecked: UInt64?
    public var journalProblem: String

    public init(nodeID: NodeID, revision: Revision, digest: [UInt8], treeRoot: MerkleHash, journalChecked: UInt64? = nil, journalProblem: String = "") {
        self.nodeID = nodeID
        self.revision = revision
        self.digest = digest
        self.treeRoot = treeRoot
        self.journalChecked = journalChecked
        self.journalProblem = journalProblem
    }
}

// MARK: - Codecs

extension WireWriter {
    mutating func hash(_ h: MerkleHash) { raw(h.bytes) }
    mutating func hashes(_ list: [MerkleHash]) {
        varint(UInt64(list.count))
        for h in list { hash(h) }
    }
}

extension WireReader {
    mutating func hash(_ field: String) throws(RPCDecodingError) -> MerkleHash {
        let bytes = try raw(field, count: MerkleHash.sizeBytes)
        guard let h = MerkleHash(bytes: bytes) else { throw RPCDecodingError(.invalidValue, "\(context) \(field): not 32 bytes") }
        return h
    }

    mutating func hashes(_ field: String) throws(RPCDecodingError) -> [MerkleHash] {
        let n = try itemCount(field, max: RPCLimits.proofHashesMax, minBytes: MerkleHash.sizeBytes)
        var out: [MerkleHash] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try hash(field)) }
        return out
    }
}

extension TreeHeadRequest {
    func encode(into w: inout WireWriter) {
        w.flag(treeSize != nil)
        if let treeSize { w.varint(treeSize) }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(treeSize: try r.flag("has size") ? try r.varint("tree size") : nil)
    }
}

extension SignedTreeHeadResponse {
    func encode(into w: inout WireWriter) {
        w.varint(nodeID.rawValue)
        w.varint(appliedIndex.rawValue)
        w.raw(head.clusterID.bytes)
        w.varint(head.treeSize)
        w.hash(head.rootHash)
        w.lengthPrefixed(signature.publicKey)
        w.lengthPrefixed(signature.signature)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try r.nodeID("node ID")
        let applied = LogIndex(try r.varint("applied index"))
        guard let cluster = ClusterID(bytes: try r.raw("cluster ID", count: ClusterID.sizeBytes)) else {
            throw RPCDecodingError(.invalidValue, "\(r.context) cluster ID: not \(ClusterID.sizeBytes) bytes")
        }
        let size = try r.varint("tree size")
        let root = try r.hash("root hash")
        let key = try r.lengthPrefixed("public key", max: RPCLimits.publicKeyBytesMax)
        let signature = try r.lengthPrefixed("signature", max: RPCLimits.signatureBytesMax)
        self.init(
            nodeID: id, appliedIndex: applied, head: TreeHead(clusterID: cluster, treeSize: size, rootHash: root),
            signature: TreeHeadSignature(publicKey: key, signature: signature))
    }
}

extension InclusionProofRequest {
    func encode(into w: inout WireWriter) {
        w.varint(leafIndex)
        w.varint(treeSize)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(leafIndex: try r.varint("leaf index"), treeSize: try r.varint("tree size"))
    }
}

extension InclusionProof {
    func encode(into w: inout WireWriter) {
        w.varint(leafIndex.rawValue)
        w.varint(treeSize)
        w.hashes(path)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let leaf = try r.varint("leaf index")
        let size = try r.varint("tree size")
        self.init(leafIndex: LeafIndex(leaf), treeSize: size, path: try r.hashes("path"))
    }
}

extension ConsistencyProofRequest {
    func encode(into w: inout WireWriter) {
        w.varint(oldSize)
        w.varint(newSize)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(oldSize: try r.varint("old size"), newSize: try r.varint("new size"))
    }
}

extension ConsistencyProof {
    func encode(into w: inout WireWriter) {
        w.varint(oldSize)
        w.varint(newSize)
        w.hashes(path)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let old = try r.varint("old size")
        let new = try r.varint("new size")
        self.init(oldSize: old, newSize: new, path: try r.hashes("path"))
    }
}

extension JournalEntry {
    func encode(into w: inout WireWriter) {
        w.varint(index)
        w.varint(term)
        w.u8(type)
        w.lengthPrefixed(payload)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let index = try r.varint("index")
        let term = try r.varint("term")
        let type = try r.u8("type")
        self.init(index: index, term: term, type: type, payload: try r.lengthPrefixed("payload", max: KVLimits.proposalBytesMax))
    }
}

extension StateDigestRequest {
    func encode(into w: inout WireWriter) {
        w.varint(revision.rawValue)
        w.flag(checkJournal)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(revision: Revision(try r.varint("revision")), checkJournal: try r.flag("check journal"))
    }
}

extension StateDigestResponse {
    func encode(into w: inout WireWriter) {
        w.varint(nodeID.rawValue)
        w.varint(revision.rawValue)
        w.lengthPrefixed(digest)
        w.hash(treeRoot)
        w.flag(journalChecked != nil)
        if let journalChecked { w.varint(journalChecked) }
        w.string(journalProblem)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try r.nodeID("node ID")
        let revision = Revision(try r.varint("revision"))
        let digest = try r.lengthPrefixed("digest", max: RPCLimits.checksumBytesMax)
        let root = try r.hash("tree root")
        let checked = try r.flag("journal checked") ? try r.varint("journal entries") : nil
        let problem = try r.string("journal problem", max: RPCLimits.messageBytesMax)
        self.init(nodeID: id, revision: revision, digest: digest, treeRoot: root, journalChecked: checked, journalProblem: problem)
    }
}

// MARK: - Entry proofs (leaf v2)

/// Ask for the committed entry at `index` with its effects summary, and the proof that it
/// wrote or deleted `key` (empty `key`: the entry and summary only).
public struct EntryProofRequest: Hashable, Sendable {
    public var index: LogIndex
    public var key: [UInt8]
    public init(index: LogIndex, key: [UInt8]) {
        self.index = index
        self.key = key
    }
}

/// The entry (with `effects` set for a v2 leaf, nil for a v1 leaf) and, if the entry's
/// effects include the requested key, that effect and its path in the effects tree.
public struct EntryProofResponse: Hashable, Sendable {
    public var entry: JournalEntry
    /// The key's effect and its proof; nil for a v1 leaf or when the entry did not touch the key.
    public var effect: (Effect, EffectProof)? {
        get { effectAndProof.map { ($0.effect, $0.proof) } }
        set { effectAndProof = newValue.map { EffectAndProof(effect: $0.0, proof: $0.1) } }
    }
    private var effectAndProof: EffectAndProof?

    private struct EffectAndProof: Hashable, Sendable {
        var effect: Effect
        var proof: EffectProof
    }

    public init(entry: JournalEntry, effect: (Effect, EffectProof)?) {
        self.entry = entry
        self.effect = effect
    }
}

extension EntryProofRequest {
    func encode(into w: inout WireWriter) {
        w.varint(index.rawValue)
        w.lengthPrefixed(key)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let index = LogIndex(try r.varint("index"))
        self.init(index: index, key: try r.lengthPrefixed("key", max: KVLimits.keyBytesMax))
    }
}

extension EntryProofResponse {
    // entry (as `journalEntryResponse`) | flag v2 [u8 outcome | u8 branch | varint count |
    // hash root] | flag effect [varint effect index | flag put [hash value hash] | hashes path]
    func encode(into w: inout WireWriter) {
        entry.encode(into: &w)
        w.flag(entry.effects != nil)
        if let s = entry.effects {
            w.u8(s.outcome.rawValue)
            w.u8(s.branch.rawValue)
            w.varint(s.count)
            w.hash(s.root)
        }
        w.flag(effect != nil)
        if let (e, proof) = effect {
            w.varint(proof.effectIndex)
            w.flag(e.valueHash != nil)
            if let h = e.valueHash { w.hash(h) }
            w.hashes(proof.path)
        }
    }

    /// The effect's key is the request's; a response decodes with an empty one, which the
    /// client replaces (`FaunaClient.entryProof`).
    init(from r: inout WireReader) throws(RPCDecodingError) {
        var entry = try JournalEntry(from: &r)
        if try r.flag("leaf v2") {
            let outcome = EntryOutcome(rawValue: try r.u8("outcome"))
            let rawBranch = try r.u8("branch")
            guard let branch = TxnBranch(rawValue: rawBranch) else {
                throw RPCDecodingError(.invalidValue, "\(r.context) branch: got \(rawBranch), want 0...2")
            }
            let count = try r.varint("effect count")
            entry.effects = EffectsSummary(outcome: outcome, branch: branch, count: count, root: try r.hash("effects root"))
        }
        var effect: (Effect, EffectProof)?
        if try r.flag("has effect") {
            guard let summary = entry.effects else {
                throw RPCDecodingError(.invalidValue, "\(r.context) effect: got one for a v1 leaf, want none")
            }
            let index = try r.varint("effect index")
            let valueHash = try r.flag("is put") ? try r.hash("value hash") : nil
            let path = try r.hashes("effect path")
            effect = (Effect(key: [], valueHash: valueHash), EffectProof(summary: summary, effectIndex: index, path: path))
        }
        self.init(entry: entry, effect: effect)
    }
}
