import Crypto

/// Everything a client needs to check, offline, that a journal entry was committed by the
/// cluster: the entry, its inclusion path, and the quorum-signed head the path leads to.
/// (Whether the entry's payload writes a given key/value is the KV layer's check.)
public struct EntryProof: Hashable, Sendable {
    /// The committed entry; its leaf is `entry.index - 1`.
    public var entry: JournalEntry
    /// The inclusion path of the entry's leaf in the tree of `signedHead.head.treeSize`.
    public var inclusion: InclusionProof
    /// The tree head the path leads to, with the members' signatures.
    public var signedHead: SignedTreeHead

    public init(entry: JournalEntry, inclusion: InclusionProof, signedHead: SignedTreeHead) {
        self.entry = entry
        self.inclusion = inclusion
        self.signedHead = signedHead
    }

    /// Checks the quorum of signatures, that the proof is for the entry's leaf and the head's
    /// size, and that the entry's leaf hash leads to the head's root.
    /// - Throws: `clusterMismatch`, `noQuorum`, `leafIndexOutOfRange` (also for entry index 0
    ///   or a proof for another leaf), `proofSizesMismatch`, `pathLengthMismatch`, `rootMismatch`.
    public func verify(clusterID: ClusterID, members: [Curve25519.Signing.PublicKey]) throws(VerificationError) {
        try signedHead.verify(clusterID: clusterID, members: members)
        guard let leaf = entry.leafIndex, leaf == inclusion.leafIndex else {
            throw VerificationError(
                .leafIndexOutOfRange,
                "got proof for leaf \(inclusion.leafIndex), want leaf \(entry.index) - 1 of entry index \(entry.index)")
        }
        try inclusion.verify(leafHash: entry.leafHash, treeHead: signedHead.head)
    }
}
