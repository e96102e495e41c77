import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// Valid messages of every kind, for the seed corpus (tools/fuzz) and nothing else.
enum Seeds {
    static func messages() -> [RPCMessage] {
        let entry = Entry(term: Term(3), index: LogIndex(41), data: Array("payload".utf8))
        let conf = ConfState(voters: [NodeID(1), NodeID(2), NodeID(3)], learners: [NodeID(4)])
        let meta = SnapshotMetadata(index: LogIndex(40), term: Term(3), confState: conf)
        let chunk = SnapshotChunk(
            index: LogIndex(40), term: Term(3), fileName: "000012.sst", offset: 4096, data: [1, 2, 3, 4],
            fileChecksum: Array(repeating: 0xAB, count: 32), isLastOfFile: true, isLastOfSnapshot: false)
        let record = KVRecord(value: Array("v1".utf8), createRevision: Revision(5), modRevision: Revision(9), version: 2)
        let range = KVRangeResult(records: [KVKeyValue(key: Array("k1".utf8), record: record)], count: 1, hasMore: false, revision: Revision(12))
        let member = Member(
            nodeID: NodeID(4), peerAddress: Endpoint(host: "127.0.0.1", port: 7004),
            clientAddress: Endpoint(host: "127.0.0.1", port: 7104), isLearner: true, publicKey: Array(repeating: 7, count: 32))
        let txn = KVTxn(
            compares: [KVCompare(key: Array("k1".utf8), .version(2), .equal)],
            success: [.put(KVPut(key: Array("k1".utf8), value: Array("v2".utf8))), .range(KVRangeRequest(range: .prefix(Array("k".utf8)), limit: 10))],
            failure: [.deleteRange(KVDeleteRange(range: .single(Array("k2".utf8))))])
        return [
            .peerHello(PeerHello(clusterName: "local", from: NodeID(1), to: NodeID(2))),
            .peerWelcome(PeerWelcome(clusterName: "local", nodeID: NodeID(2))),
            .raftMessages([
                Message(type: .append, from: NodeID(1), to: NodeID(2), term: Term(3), logTerm: Term(3), index: LogIndex(40), entries: [entry], commit: LogIndex(40)),
                Message(type: .appendResponse, from: NodeID(1), to: NodeID(2), term: Term(3), logTerm: Term(2), reject: true, rejectHint: LogIndex(17)),
                Message(type: .heartbeat, from: NodeID(1), to: NodeID(2), term: Term(3), commit: LogIndex(40), context: [9, 9]),
                Message(type: .snapshot, from: NodeID(1), to: NodeID(2), term: Term(3), snapshot: Snapshot(metadata: meta)),
            ]),
            .snapshotOffer(SnapshotOffer(metadata: meta, files: [SnapshotFile(name: "CURRENT", sizeBytes: 16, checksum: [1, 2])])),
            .snapshotChunk(chunk),
            .snapshotAck(SnapshotAck(index: LogIndex(40), term: Term(3), fileName: "000012.sst", nextOffset: 4100, isAccepted: true)),
            .write(WriteRequest(KVProposal(session: ClientSession(clientID: ClientID(77), sequence: .first), command: .put(KVPut(key: Array("k1".utf8), value: Array("v1".utf8)))))),
            .write(WriteRequest(KVProposal(command: .txn(txn)))),
            .write(WriteRequest(KVProposal(command: .compact(Revision(10))))),
            .writeResponse(KVApplyResult(revision: Revision(12), outcome: .success(succeeded: true, results: [.put(previous: record), .range(range)]))),
            .read(ReadRequest(KVRangeRequest(range: .single(Array("k1".utf8))), consistency: .serializable)),
            .readResponse(range),
            .status(),
            .status(StatusRequest(withRecordCache: true)),
            .statusResponse(NodeStatus(nodeID: NodeID(1), role: .leader, term: Term(3), leader: NodeID(1), commitIndex: LogIndex(40), appliedIndex: LogIndex(39), treeSize: 39, dbSizeBytes: 1 << 20)),
            .statusResponse(NodeStatus(
                nodeID: NodeID(1), role: .follower, term: Term(3), leader: NodeID(2), commitIndex: LogIndex(40), appliedIndex: LogIndex(39),
                treeSize: 39, dbSizeBytes: 1 << 20,
                recordCache: RecordCacheStatus(budgetBytes: 64 << 20, bytes: 5_000_000, entries: 20_000, hits: 123_456, misses: 7_890))),
            .members,
            .membersResponse([member]),
            .memberChange(.addLearner(member)),
            .memberChange(.remove(NodeID(3))),
            .leaderTransfer(NodeID(2)),
            .leaderTransferResponse,
            .snapshotSave,
            .snapshotSaveChunk(chunk),
            .hashKV,
            .hashKVResponse(HashKVResult(nodeID: NodeID(1), appliedIndex: LogIndex(39), compactRevision: Revision(10), digest: Array(repeating: 0xCD, count: 32), treeSize: 39, treeRoot: Array(repeating: 0xAB, count: 32))),
            .signedTreeHead(TreeHeadRequest(treeSize: 39)),
            .signedTreeHeadResponse(SignedTreeHeadResponse(
                nodeID: NodeID(1), appliedIndex: LogIndex(40),
                head: TreeHead(clusterID: ClusterID(bytes: Array(0..<16))!, treeSize: 39, rootHash: MerkleHash(bytes: Array(repeating: 0xAB, count: 32))!),
                signature: TreeHeadSignature(publicKey: Array(repeating: 7, count: 32), signature: Array(repeating: 8, count: 64)))),
            .inclusionProof(InclusionProofRequest(leafIndex: 5, treeSize: 39)),
            .inclusionProofResponse(InclusionProof(leafIndex: LeafIndex(5), treeSize: 39, path: [MerkleHash(bytes: Array(repeating: 1, count: 32))!])),
            .consistencyProof(ConsistencyProofRequest(oldSize: 20, newSize: 39)),
            .consistencyProofResponse(ConsistencyProof(oldSize: 20, newSize: 39, path: [MerkleHash(bytes: Array(repeating: 2, count: 32))!])),
            .journalEntry(LogIndex(6)),
            .journalEntryResponse(JournalEntry(index: 6, term: 2, type: 0, payload: Array("payload".utf8))),
            .entryProof(EntryProofRequest(index: LogIndex(6), key: Array("k".utf8))),
            .entryProofResponse({
                let summary = EffectsSummary(outcome: .success, branch: .then, count: 3, root: MerkleHash(bytes: Array(repeating: 3, count: 32))!)
                let entry = JournalEntry(index: 6, term: 2, type: 0, payload: Array("payload".utf8), effects: summary)
                let proof = EffectProof(summary: summary, effectIndex: 1, path: [MerkleHash(bytes: Array(repeating: 4, count: 32))!, MerkleHash(bytes: Array(repeating: 5, count: 32))!])
                return EntryProofResponse(entry: entry, effect: (Effect(key: [], valueHash: MerkleHash(bytes: Array(repeating: 6, count: 32))!), proof))
            }()),
            .membershipChanges(LogIndex(3)),
            .membershipChangesResponse([LogIndex(4), LogIndex(9)]),
            .watch(WatchRequest(range: .prefix(Array("app/".utf8)), startRevision: 12, options: [.prevValue, .progressNotify])),
            .watchCancel(RequestID(3)),
            .watchResponse(.events(completeThrough: 14, [
                WatchEvent(key: Array("app/a".utf8), revision: 13, record: KVRecord(value: Array("v".utf8), createRevision: Revision(5), modRevision: Revision(13), version: 2),
                           previous: KVRecord(value: Array("u".utf8), createRevision: Revision(5), modRevision: Revision(5), version: 1)),
                WatchEvent(key: Array("app/b".utf8), revision: 14, record: nil),
            ])),
            .watchResponse(.compacted(compactRevision: 9)),
            .watchCancelResponse(found: true),
            .leaseKeepAlive(42), .leaseKeepAliveResponse(LeaseKeepAliveResponse(id: 42, ttlSeconds: 10)),
            .leaseTimeToLive(LeaseTimeToLiveRequest(id: 42, withKeys: true)),
            .leaseTimeToLiveResponse(LeaseInfo(id: 42, ttlSeconds: 10, remainingMilliseconds: 7300, grantRevision: 12, keys: [Array("svc/a".utf8)])),
            .leaseList, .leaseListResponse([LeaseStatus(id: 42, ttlSeconds: 10, remainingMilliseconds: 7300)]),
            .authenticate(AuthenticateRequest(user: Array("alice".utf8), password: Array("secret".utf8))),
            .authenticateResponse(user: Array("alice".utf8)),
            .stateDigest(StateDigestRequest(revision: Revision(39), checkJournal: true)),
            .stateDigestResponse(StateDigestResponse(nodeID: NodeID(2), revision: Revision(39), digest: Array(repeating: 0xCD, count: 32), treeRoot: MerkleHash(bytes: Array(repeating: 0xAB, count: 32))!, journalChecked: 39)),
            .error(RPCErrorResponse(.notLeader, "not the leader", leaderHint: LeaderHint(nodeID: NodeID(2), clientAddress: Endpoint(host: "127.0.0.1", port: 7102)))),
        ]
    }

    /// Fuzzer inputs: each message as a frame stream (mode 0) and as a bare body (mode 1),
    /// plus a stream of all frames back to back.
    static func inputs() -> [[UInt8]] {
        let kinds = FrameKind.allCases
        var out: [[UInt8]] = []
        var all: [UInt8] = [0]
        for (i, message) in messages().enumerated() {
            let frame = Frame(message, requestID: RequestID(UInt64(i + 1)))
            out.append([0] + frame.encoded())
            all += frame.encoded()
            guard let kindIndex = kinds.firstIndex(of: message.kind) else { continue }
            out.append([1, UInt8(kindIndex)] + message.encodedBody())
        }
        out.append(all)
        return out
    }
}
