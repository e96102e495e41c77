/// Limits every decoded field is checked against before anything is allocated. Part of the
/// protocol (docs/PROTOCOL.md "Limits"): raising one needs a new protocol version.
public enum RPCLimits {
    /// The longest cluster name in a `peerHello`.
    public static let clusterNameBytesMax = 255
    /// The longest host name or address literal in an `Endpoint`.
    public static let hostBytesMax = 255
    /// The longest Raft `context` (ReadIndex round identifiers).
    public static let contextBytesMax = 64 * 1024
    /// The most members of a configuration, in snapshots and `membersResponse`.
    public static let membersMax = 1024
    /// The longest snapshot file name (a plain name, no directories).
    public static let fileNameBytesMax = 255
    /// The most files a snapshot offer lists.
    public static let snapshotFilesMax = 100_000
    /// The longest checksum or digest field (SHA-512 fits).
    public static let checksumBytesMax = 64
    /// The longest member public key.
    public static let publicKeyBytesMax = 256
    /// The longest error message or rejection reason.
    public static let messageBytesMax = 4096
    /// Hashes in one inclusion or consistency proof (a path has at most ~2·64).
    public static let proofHashesMax = 192
    /// Entries in a `membershipChangesResponse` (the node keeps the last 64).
    public static let membershipChangesMax = 64
    /// Bytes of one signature.
    public static let signatureBytesMax = 256
}
