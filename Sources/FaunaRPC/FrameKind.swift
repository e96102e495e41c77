/// What a frame's body holds. The raw values are the wire encoding and fixed forever
/// (docs/PROTOCOL.md "Kinds"). Bit 7 set marks a frame sent in answer to a request.
public enum FrameKind: UInt8, Hashable, Sendable, CaseIterable {
    // Peer traffic (the peer port).
    /// First frame on a peer connection: who I am, which cluster, whom I think I call.
    case peerHello = 0x01
    /// Raft messages batched into one frame; one-way (request ID 0), never answered.
    case raftMessages = 0x02
    /// Leader → follower: a snapshot is ready to stream; answered by `snapshotAck`.
    case snapshotOffer = 0x03
    /// A piece of one snapshot file; answered by `snapshotAck`.
    case snapshotChunk = 0x04
    /// Answer to `peerHello`: the connection is accepted.
    case peerWelcome = 0x81
    /// Answer to `snapshotOffer` and `snapshotChunk`.
    case snapshotAck = 0x83

    // Client data traffic (the client port).
    /// A write: the body is a `KVProposal` encoding (put, delete range, txn, compact).
    case write = 0x10
    /// A read: consistency + `KVRangeRequest` (get = range of one key).
    case read = 0x11
    /// Answer to `write`: a `KVApplyResult` encoding.
    case writeResponse = 0x90
    /// Answer to `read`: a `KVRangeResult` encoding.
    case readResponse = 0x91
    /// Watch a key range: answered by a stream of `watchResponse` frames (docs/PROTOCOL.md
    /// "Watch").
    case watch = 0x12
    /// Cancel a watch of this connection by its request ID; answered by `watchCancelResponse`.
    case watchCancel = 0x13
    /// One frame of a watch's stream (`more` on all but the final one).
    case watchResponse = 0x92
    /// Answer to `watchCancel`: whether the watch was found.
    case watchCancelResponse = 0x93
    /// Keep a lease alive (the leader answers).
    case leaseKeepAlive = 0x14
    /// A lease's TTL, time left and keys (the leader answers).
    case leaseTimeToLive = 0x15
    /// Every lease with its time left (the leader answers).
    case leaseList = 0x16
    case leaseKeepAliveResponse = 0x94
    case leaseTimeToLiveResponse = 0x95
    case leaseListResponse = 0x96
    /// Bind the connection to a user by name and password; answered by `authenticateResponse`.
    case authenticate = 0x17
    case authenticateResponse = 0x97

    // Admin (the client port).
    case status = 0x20
    case members = 0x21
    /// Add a learner, promote a learner, or remove a member; answered by `membersResponse`.
    case memberChange = 0x22
    case leaderTransfer = 0x23
    /// Stream a snapshot of the node's state; answered by `snapshotSaveChunk` frames.
    case snapshotSave = 0x24
    case hashKV = 0x25
    case statusResponse = 0xA0
    case membersResponse = 0xA1
    case leaderTransferResponse = 0xA3
    /// One piece of a `snapshotSave` stream; flag `more` on every frame but the last.
    case snapshotSaveChunk = 0xA4
    case hashKVResponse = 0xA5

    // Audit (docs/AUDIT.md): every node answers from its own applied state.
    case signedTreeHead = 0x30
    case inclusionProof = 0x31
    case consistencyProof = 0x32
    case journalEntry = 0x33
    case stateDigest = 0x34
    /// A journal entry with its leaf v2 effects summary and the proof of one key's effect.
    case entryProof = 0x35
    /// The indexes of recent membership-change entries above an index.
    case membershipChanges = 0x36
    case signedTreeHeadResponse = 0xB0
    case inclusionProofResponse = 0xB1
    case consistencyProofResponse = 0xB2
    case journalEntryResponse = 0xB3
    case stateDigestResponse = 0xB4
    case entryProofResponse = 0xB5
    case membershipChangesResponse = 0xB6

    /// Answer to any request that failed: an `RPCErrorResponse`.
    case error = 0xFF

    /// Sent in answer to a request (bit 7 set).
    public var isResponse: Bool { rawValue & 0x80 != 0 }
}
