import Crypto

/// The identity of a cluster: 16 random bytes chosen when the cluster is created. Part of
/// every signed tree head, so a head of one cluster is never accepted for another.
public struct ClusterID: Hashable, Sendable, CustomStringConvertible {
    /// The size of a cluster ID in bytes.
    public static let sizeBytes = 16
    /// Exactly `sizeBytes` bytes.
    public let bytes: [UInt8]

    /// Creates a cluster ID from exactly 16 bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.sizeBytes else { return nil }
        self.bytes = bytes
    }

    public var description: String { hexString(bytes) }
}

/// What the cluster's members sign: the tree of `treeSize` leaves has root `rootHash`.
public struct TreeHead: Hashable, Sendable {
    public var clusterID: ClusterID
    public var treeSize: UInt64
    public var rootHash: MerkleHash

    public init(clusterID: ClusterID, treeSize: UInt64, rootHash: MerkleHash) {
        self.clusterID = clusterID
        self.treeSize = treeSize
        self.rootHash = rootHash
    }

    /// `"fauna tree head"` (15 ASCII bytes) then the version byte 0x01: the domain separation
    /// prefix, so a tree head signature can never be mistaken for a signature over anything else.
    public static let domainPrefix: [UInt8] = Array("fauna tree head".utf8) + [0x01]
    /// The size of `canonicalBytes`: prefix 16, cluster ID 16, tree size 8, root hash 32.
    public static let canonicalSizeBytes = 72

    /// The bytes that are signed (docs/AUDIT.md): `domainPrefix ‖ clusterID ‖ u64BE(treeSize) ‖ rootHash`.
    public var canonicalBytes: [UInt8] {
        var out = Self.domainPrefix
        out.reserveCapacity(Self.canonicalSizeBytes)
        out.append(contentsOf: clusterID.bytes)
        appendBigEndian(treeSize, to: &out)
        out.append(contentsOf: rootHash.bytes)
        return out
    }

    /// Decodes `canonicalBytes`.
    /// - Throws: `malformed` for a wrong length, prefix or version.
    public init(canonicalBytes b: [UInt8]) throws(VerificationError) {
        guard b.count == Self.canonicalSizeBytes else {
            throw VerificationError(.malformed, "got \(b.count) tree head bytes, want \(Self.canonicalSizeBytes)")
        }
        guard b[0..<16].elementsEqual(Self.domainPrefix) else {
            throw VerificationError(.malformed, "got tree head prefix \(hexString(b[0..<16])), want \(hexString(Self.domainPrefix))")
        }
        guard let clusterID = ClusterID(bytes: Array(b[16..<32])), let rootHash = MerkleHash(bytes: b[40..<72]) else {
            throw VerificationError(.malformed, "got tree head fields of the wrong length, want 16 and 32 bytes")
        }
        self.clusterID = clusterID
        self.treeSize = b[32..<40].reduce(0) { $0 << 8 | UInt64($1) }
        self.rootHash = rootHash
    }
}

/// One member's Ed25519 signature over `TreeHead.canonicalBytes`. Raw bytes, as received:
/// a wrong length or an invalid signature simply does not count toward the quorum.
public struct TreeHeadSignature: Hashable, Sendable {
    /// The signer's Ed25519 public key (32 bytes).
    public var publicKey: [UInt8]
    /// The Ed25519 signature (64 bytes).
    public var signature: [UInt8]

    public init(publicKey: [UInt8], signature: [UInt8]) {
        self.publicKey = publicKey
        self.signature = signature
    }
}

/// A tree head with the signatures collected for it.
public struct SignedTreeHead: Hashable, Sendable {
    public var head: TreeHead
    public var signatures: [TreeHeadSignature]

    public init(head: TreeHead, signatures: [TreeHeadSignature]) {
        self.head = head
        self.signatures = signatures
    }

    /// Checks that the head is for `clusterID` and that a strict majority of `members`
    /// signed it. Signatures by unknown keys, invalid signatures and any signature after a
    /// member's first do not count. Returns the number of distinct members whose signature is valid.
    /// - Throws: `clusterMismatch`, `noQuorum`.
    @discardableResult
    public func verify(
        clusterID: ClusterID, members: [Curve25519.Signing.PublicKey]
    ) throws(VerificationError) -> Int {
        guard head.clusterID == clusterID else {
            throw VerificationError(.clusterMismatch, "got tree head of cluster \(head.clusterID), want \(clusterID)")
        }
        var memberByKey: [[UInt8]: Curve25519.Signing.PublicKey] = [:]
        for key in members { memberByKey[Array(key.rawRepresentation)] = key }
        let message = head.canonicalBytes
        // Only the first signature of each member is checked, so a head padded with copies
        // costs at most one Ed25519 verification per member.
        var tried: Set<[UInt8]> = []
        var signers = 0, unknown = 0, repeated = 0, invalid = 0
        for s in signatures {
            guard let key = memberByKey[s.publicKey] else { unknown += 1; continue }
            guard tried.insert(s.publicKey).inserted else { repeated += 1; continue }
            guard key.isValidSignature(s.signature, for: message) else { invalid += 1; continue }
            signers += 1
        }
        let quorum = memberByKey.count / 2 + 1
        guard signers >= quorum else {
            throw VerificationError(
                .noQuorum,
                "got \(signers) valid signatures of \(memberByKey.count) members, want ≥ \(quorum)"
                    + " (ignored: \(unknown) unknown key, \(repeated) repeated signer, \(invalid) invalid)")
        }
        return signers
    }
}
