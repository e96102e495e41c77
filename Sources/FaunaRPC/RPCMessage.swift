import FaunaKV
import FaunaRaft
import FaunaVerify

/// Every message of the protocol; one case per frame kind (docs/PROTOCOL.md "Kinds").
/// `Frame(message, requestID:)` encodes one, `RPCMessage(frame)` decodes one.
public enum RPCMessage: Hashable, Sendable {
    // Peer
    /// First frame on a peer connection.
    case peerHello(PeerHello)
    /// Answer to an accepted hello.
    case peerWelcome(PeerWelcome)
    /// Raft messages batched per flush; one-way, never empty.
    case raftMessages([Message])
    /// A snapshot is ready to stream.
    case snapshotOffer(SnapshotOffer)
    /// A piece of a snapshot file (peer install).
    case snapshotChunk(SnapshotChunk)
    /// Answer to an offer or chunk.
    case snapshotAck(SnapshotAck)

    // Client data
    /// put / delete / delete range / txn / compact.
    case write(WriteRequest)
    /// The result of applying the write's entry.
    case writeResponse(KVApplyResult)
    /// get / range.
    case read(ReadRequest)
    /// The records read.
    case readResponse(KVRangeResult)
    /// Watch a key range (a streamed answer).
    case watch(WatchRequest)
    /// Cancel the watch with this request ID on the same connection.
    case watchCancel(RequestID)
    /// One frame of a watch's stream.
    case watchResponse(WatchResponse)
    /// Whether the cancelled watch was found.
    case watchCancelResponse(found: Bool)
    /// Renew a lease for its whole TTL (leader only).
    case leaseKeepAlive(UInt64)
    case leaseKeepAliveResponse(LeaseKeepAliveResponse)
    case leaseTimeToLive(LeaseTimeToLiveRequest)
    case leaseTimeToLiveResponse(LeaseInfo)
    case leaseList
    case leaseListResponse([LeaseStatus])
    /// Binds the connection to a user (docs/SECURITY.md "Users and roles").
    case authenticate(AuthenticateRequest)
    /// The user the connection is now bound to.
    case authenticateResponse(user: [UInt8])

    // Admin
    /// Ask for `NodeStatus` (with the record cache's figures if the request says so).
    case status(StatusRequest = StatusRequest())
    case statusResponse(NodeStatus)
    /// Ask for the member list.
    case members
    /// The member list (answer to `members` and `memberChange`).
    case membersResponse([Member])
    case memberChange(MemberChange)
    /// Transfer leadership to this node.
    case leaderTransfer(NodeID)
    /// The transfer completed.
    case leaderTransferResponse
    /// Stream a snapshot of the node's state.
    case snapshotSave
    /// One piece of the stream (frame flag `more` on all but the last).
    case snapshotSaveChunk(SnapshotChunk)
    /// Ask for the state digest.
    case hashKV
    case hashKVResponse(HashKVResult)

    // Audit (docs/AUDIT.md)
    /// Sign the tree head at the applied size or a given size.
    case signedTreeHead(TreeHeadRequest)
    case signedTreeHeadResponse(SignedTreeHeadResponse)
    case inclusionProof(InclusionProofRequest)
    case inclusionProofResponse(InclusionProof)
    case consistencyProof(ConsistencyProofRequest)
    case consistencyProofResponse(ConsistencyProof)
    /// The committed entry at an index (kept forever in the journal).
    case journalEntry(LogIndex)
    case journalEntryResponse(JournalEntry)
    /// State digest and tree root as of a revision (and optionally a journal re-hash).
    case stateDigest(StateDigestRequest)
    case stateDigestResponse(StateDigestResponse)
    /// The committed entry at an index with its effects summary (leaf v2), and the proof of
    /// one key's effect among them.
    case entryProof(EntryProofRequest)
    case entryProofResponse(EntryProofResponse)
    /// The indexes (ascending, at most 64) of the membership-change entries above an index,
    /// among the last 64 the node applied; a client proves each with `entryProof`.
    case membershipChanges(LogIndex)
    case membershipChangesResponse([LogIndex])

    /// Any request failed.
    case error(RPCErrorResponse)

    /// The frame kind of this message.
    public var kind: FrameKind {
        switch self {
        case .peerHello: .peerHello
        case .peerWelcome: .peerWelcome
        case .raftMessages: .raftMessages
        case .snapshotOffer: .snapshotOffer
        case .snapshotChunk: .snapshotChunk
        case .snapshotAck: .snapshotAck
        case .write: .write
        case .writeResponse: .writeResponse
        case .read: .read
        case .readResponse: .readResponse
        case .watch: .watch
        case .watchCancel: .watchCancel
        case .watchResponse: .watchResponse
        case .watchCancelResponse: .watchCancelResponse
        case .leaseKeepAlive: .leaseKeepAlive
        case .leaseKeepAliveResponse: .leaseKeepAliveResponse
        case .leaseTimeToLive: .leaseTimeToLive
        case .leaseTimeToLiveResponse: .leaseTimeToLiveResponse
        case .leaseList: .leaseList
        case .leaseListResponse: .leaseListResponse
        case .authenticate: .authenticate
        case .authenticateResponse: .authenticateResponse
        case .status: .status
        case .statusResponse: .statusResponse
        case .members: .members
        case .membersResponse: .membersResponse
        case .memberChange: .memberChange
        case .leaderTransfer: .leaderTransfer
        case .leaderTransferResponse: .leaderTransferResponse
        case .snapshotSave: .snapshotSave
        case .snapshotSaveChunk: .snapshotSaveChunk
        case .hashKV: .hashKV
        case .hashKVResponse: .hashKVResponse
        case .signedTreeHead: .signedTreeHead
        case .signedTreeHeadResponse: .signedTreeHeadResponse
        case .inclusionProof: .inclusionProof
        case .inclusionProofResponse: .inclusionProofResponse
        case .consistencyProof: .consistencyProof
        case .consistencyProofResponse: .consistencyProofResponse
        case .journalEntry: .journalEntry
        case .journalEntryResponse: .journalEntryResponse
        case .entryProof: .entryProof
        case .entryProofResponse: .entryProofResponse
        case .membershipChanges: .membershipChanges
        case .membershipChangesResponse: .membershipChangesResponse
        case .stateDigest: .stateDigest
        case .stateDigestResponse: .stateDigestResponse
        case .error: .error
        }
    }

    /// The frame body.
    public func encodedBody() -> [UInt8] {
        var w = WireWriter()
        switch self {
        case .peerHello(let m): m.encode(into: &w)
        case .peerWelcome(let m): m.encode(into: &w)
        case .raftMessages(let messages): return RaftBatchCodec.encode(messages)
        case .snapshotOffer(let m): m.encode(into: &w)
        case .snapshotChunk(let m), .snapshotSaveChunk(let m): m.encode(into: &w)
        case .snapshotAck(let m): m.encode(into: &w)
        case .write(let m): return m.proposalBytes
        case .writeResponse(let result): return result.encoded()
        case .read(let m): m.encode(into: &w)
        case .readResponse(let result): return result.encoded()
        case .watch(let m): m.encode(into: &w)
        case .watchCancel(let id): w.varint(id.rawValue)
        case .watchResponse(let m): m.encode(into: &w)
        case .watchCancelResponse(let found): w.flag(found)
        case .leaseKeepAlive(let id): w.varint(id)
        case .leaseKeepAliveResponse(let m): m.encode(into: &w)
        case .leaseTimeToLive(let m): m.encode(into: &w)
        case .leaseTimeToLiveResponse(let m): m.encode(into: &w)
        case .leaseList: break
        case .leaseListResponse(let list): LeaseStatus.encodeList(list, into: &w)
        case .authenticate(let m): m.encode(into: &w)
        case .authenticateResponse(let user): w.lengthPrefixed(user)
        case .status(let m): m.encode(into: &w)
        case .members, .leaderTransferResponse, .snapshotSave, .hashKV: break
        case .statusResponse(let m): m.encode(into: &w)
        case .membersResponse(let list): Member.encodeList(list, into: &w)
        case .memberChange(let m): m.encode(into: &w)
        case .leaderTransfer(let id): w.varint(id.rawValue)
        case .hashKVResponse(let m): m.encode(into: &w)
        case .signedTreeHead(let m): m.encode(into: &w)
        case .signedTreeHeadResponse(let m): m.encode(into: &w)
        case .inclusionProof(let m): m.encode(into: &w)
        case .inclusionProofResponse(let m): m.encode(into: &w)
        case .consistencyProof(let m): m.encode(into: &w)
        case .consistencyProofResponse(let m): m.encode(into: &w)
        case .journalEntry(let index): w.varint(index.rawValue)
        case .journalEntryResponse(let m): m.encode(into: &w)
        case .entryProof(let m): m.encode(into: &w)
        case .entryProofResponse(let m): m.encode(into: &w)
        case .membershipChanges(let index): w.varint(index.rawValue)
        case .membershipChangesResponse(let list):
            w.varint(UInt64(list.count))
            list.forEach { w.varint($0.rawValue) }
        case .stateDigest(let m): m.encode(into: &w)
        case .stateDigestResponse(let m): m.encode(into: &w)
        case .error(let m): m.encode(into: &w)
        }
        return w.bytes
    }

    /// Decodes the body of `frame`; throws on any body `encodedBody()` cannot produce.
    public init(_ frame: Frame) throws(RPCDecodingError) {
        try self.init(kind: frame.kind, body: frame.body)
    }

    /// Decodes a body of `kind`.
    public init(kind: FrameKind, body: [UInt8]) throws(RPCDecodingError) {
        var r = WireReader(body, kind: kind)
        switch kind {
        case .peerHello: self = .peerHello(try PeerHello(from: &r))
        case .peerWelcome: self = .peerWelcome(try PeerWelcome(from: &r))
        case .raftMessages: self = .raftMessages(try RaftBatchCodec.decode(body)); return
        case .snapshotOffer: self = .snapshotOffer(try SnapshotOffer(from: &r))
        case .snapshotChunk: self = .snapshotChunk(try SnapshotChunk(from: &r))
        case .snapshotSaveChunk: self = .snapshotSaveChunk(try SnapshotChunk(from: &r))
        case .snapshotAck: self = .snapshotAck(try SnapshotAck(from: &r))
        case .write: self = .write(try WriteRequest(proposalBytes: body)); return
        case .writeResponse:
            do {
                self = .writeResponse(try KVApplyResult(decoding: body))
            } catch {
                throw RPCDecodingError(.invalidValue, "writeResponse: \(error.reason)")
            }
            return
        case .read: self = .read(try ReadRequest(from: &r))
        case .readResponse:
            do {
                self = .readResponse(try KVRangeResult(decoding: body))
            } catch {
                throw RPCDecodingError(.invalidValue, "readResponse: \(error.reason)")
            }
            return
        case .watch: self = .watch(try WatchRequest(from: &r))
        case .watchCancel:
            let id = try r.varint("watch request ID")
            guard id != 0 else { throw RPCDecodingError(.invalidValue, "watchCancel: request ID 0, want the ID of a watch") }
            self = .watchCancel(RequestID(id))
        case .watchResponse: self = .watchResponse(try WatchResponse(from: &r))
        case .watchCancelResponse: self = .watchCancelResponse(found: try r.flag("found"))
        case .leaseKeepAlive: self = .leaseKeepAlive(try LeaseKeepAliveResponse.leaseID(&r))
        case .leaseKeepAliveResponse: self = .leaseKeepAliveResponse(try LeaseKeepAliveResponse(from: &r))
        case .leaseTimeToLive: self = .leaseTimeToLive(try LeaseTimeToLiveRequest(from: &r))
        case .leaseTimeToLiveResponse: self = .leaseTimeToLiveResponse(try LeaseInfo(from: &r))
        case .leaseList: self = .leaseList
        case .leaseListResponse: self = .leaseListResponse(try LeaseStatus.decodeList(&r))
        case .authenticate: self = .authenticate(try AuthenticateRequest(from: &r))
        case .authenticateResponse: self = .authenticateResponse(user: try r.lengthPrefixed("user", max: KVAuthLimits.nameBytesMax))
        case .status: self = .status(try StatusRequest(from: &r))
        case .statusResponse: self = .statusResponse(try NodeStatus(from: &r))
        case .members: self = .members
        case .membersResponse: self = .membersResponse(try Member.decodeList(&r))
        case .memberChange: self = .memberChange(try MemberChange(from: &r))
        case .leaderTransfer: self = .leaderTransfer(try r.nodeID("target"))
        case .leaderTransferResponse: self = .leaderTransferResponse
        case .snapshotSave: self = .snapshotSave
        case .hashKV: self = .hashKV
        case .hashKVResponse: self = .hashKVResponse(try HashKVResult(from: &r))
        case .error: self = .error(try RPCErrorResponse(from: &r))
        case .signedTreeHead: self = .signedTreeHead(try TreeHeadRequest(from: &r))
        case .signedTreeHeadResponse: self = .signedTreeHeadResponse(try SignedTreeHeadResponse(from: &r))
        case .inclusionProof: self = .inclusionProof(try InclusionProofRequest(from: &r))
        case .inclusionProofResponse: self = .inclusionProofResponse(try InclusionProof(from: &r))
        case .consistencyProof: self = .consistencyProof(try ConsistencyProofRequest(from: &r))
        case .consistencyProofResponse: self = .consistencyProofResponse(try ConsistencyProof(from: &r))
        case .journalEntry: self = .journalEntry(LogIndex(try r.varint("index")))
        case .journalEntryResponse: self = .journalEntryResponse(try JournalEntry(from: &r))
        case .entryProof: self = .entryProof(try EntryProofRequest(from: &r))
        case .entryProofResponse: self = .entryProofResponse(try EntryProofResponse(from: &r))
        case .membershipChanges: self = .membershipChanges(LogIndex(try r.varint("index")))
        case .membershipChangesResponse:
            let n = try r.itemCount("membership changes", max: RPCLimits.membershipChangesMax, minBytes: 1)
            var list: [LogIndex] = []
            for _ in 0..<n { list.append(LogIndex(try r.varint("index"))) }
            self = .membershipChangesResponse(list)
        case .stateDigest: self = .stateDigest(try StateDigestRequest(from: &r))
        case .stateDigestResponse: self = .stateDigestResponse(try StateDigestResponse(from: &r))
        }
        try r.finish()
    }
}
