import Crypto

/// What a client believes about the cluster's audit tree: the members' keys and the last
/// tree head it verified. It only ever moves to heads that provably extend it, so a server
/// that forks or rewrites history is caught the next time the client talks to it
/// (immudb's "dual proof"; RFC 9162 §8.1.2 for the consistency check).
public struct TrustedState: Sendable {
    /// The cluster whose heads are accepted.
    public let clusterID: ClusterID
    /// The members' Ed25519 keys; a head needs valid signatures from a strict majority.
    public let members: [Curve25519.Signing.PublicKey]
    /// The last verified head. Starts as the empty tree.
    public private(set) var head: TreeHead

    /// What `advance` did with a head that is consistent with the trusted state.
    public enum Outcome: Hashable, Sendable {
        /// The head was newer and is now trusted.
        case advanced(fromSize: UInt64)
        /// The head was not newer (a stale or the same head); the trusted state is unchanged.
        case unchanged
    }

    /// Starts from the empty tree: every first head extends it.
    public init(clusterID: ClusterID, members: [Curve25519.Signing.PublicKey]) {
        self.clusterID = clusterID
        self.members = members
        self.head = TreeHead(clusterID: clusterID, treeSize: 0, rootHash: MerkleHasher.emptyRoot)
    }

    /// Resumes from a head this client verified earlier (e.g. saved on disk).
    public init(members: [Curve25519.Signing.PublicKey], trusting head: TreeHead) {
        self.clusterID = head.clusterID
        self.members = members
        self.head = head
    }

    /// Moves to `newHead` if it is quorum-signed and consistent with the trusted head.
    ///
    /// - A newer head needs `consistency` from the trusted size to the new size.
    /// - An older head needs `consistency` from its size to the trusted size: it must be a
    ///   prefix of what is trusted, or the server rolled history back or forked it.
    /// - A head of the same size needs the same root (and an empty proof).
    /// - Throws: `clusterMismatch` or `noQuorum` for the head itself; `proofSizesMismatch` for
    ///   a proof between other sizes; `forkedHistory` for another root at the trusted size;
    ///   `inconsistentHistory` (with the failing check as `cause`) when the proof fails.
    @discardableResult
    public mutating func advance(
        to newHead: SignedTreeHead, consistency: ConsistencyProof
    ) throws(VerificationError) -> Outcome {
        try newHead.verify(clusterID: clusterID, members: members)
        let new = newHead.head
        let (older, newer) = new.treeSize < head.treeSize ? (new, head) : (head, new)
        guard consistency.oldSize == older.treeSize && consistency.newSize == newer.treeSize else {
            throw VerificationError(
                .proofSizesMismatch,
                "got consistency proof from \(consistency.oldSize) to \(consistency.newSize), "
                    + "want from \(older.treeSize) to \(newer.treeSize)")
        }
        if new.treeSize == head.treeSize && new.rootHash != head.rootHash {
            throw VerificationError(
                .forkedHistory, "got root \(new.rootHash) at size \(new.treeSize), want trusted root \(head.rootHash)")
        }
        do {
            try consistency.verify(oldRoot: older.rootHash, newRoot: newer.rootHash)
        } catch {
            throw VerificationError(
                .inconsistentHistory,
                "size \(older.treeSize) root \(older.rootHash) is not a prefix of size \(newer.treeSize) "
                    + "root \(newer.rootHash) (\(new.treeSize < head.treeSize ? "older" : "newer") head): \(error)",
                cause: error.code)
        }
        guard new.treeSize > head.treeSize else { return .unchanged }
        let fromSize = head.treeSize
        head = new
        return .advanced(fromSize: fromSize)
    }
}
