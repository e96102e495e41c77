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
