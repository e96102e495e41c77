import FaunaKV
import FaunaRaft
import FaunaRPC
import FaunaVerify

/// SplitMix64: a seeded generator, so every property test failure replays from its seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random values of every message type, covering empty, small and large integers.
struct Gen {
    var rng: SeededRandom
    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    /// Integers of every varint length: 0, small, byte boundaries, up to UInt64.max.
    mutating func u64() -> UInt64 {
        switch int(0...5) {
        case 0: 0
        case 1: UInt64(int(1...127))
        case 2: UInt64(int(128...20_000))
        case 3: UInt64.max - UInt64(int(0...3))
        default: UInt64.random(in: 0...(UInt64(1) << UInt64(int(1...63))), using: &rng)
        }
    }
    mutating func nonZero() -> UInt64 { max(1, u64()) }
    mutating func nodeID() -> NodeID { NodeID(nonZero()) }
    mutating func bytes(_ max: Int = 40) -> [UInt8] { (0..<int(0...max)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    mutating func key() -> [UInt8] { [UInt8.random(in: 0...255, using: &rng)] + bytes(12) }
    mutating func string(_ max: Int = 16) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.é€😀")
        return String((0..<int(0...max)).map { _ in alphabet[int(0...alphabet.count - 1)] })
    }
    mutating func fileName() -> String { "f" + string(20) }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }

    // MARK: Raft

    mutating func entry() -> Entry {
        Entry(term: Term(u64()), index: LogIndex(u64()), type: bool() ? .normal : .confChange, data: bytes(64))
    }

    mutating func confState() -> ConfState {
        let ids = (0..<int(0...7)).map { _ in nodeID() }
        let split = int(0...ids.count)
        return ConfState(voters: Array(ids[..<split]), learners: Array(ids[split...]))
    }

    mutating func snapshotMetadata() -> SnapshotMetadata {
        SnapshotMetadata(index: LogIndex(u64()), term: Term(u64()), confState: confState())
    }

    mutating func raftMessage() -> Message {
        Message(
            type: pick(MessageType.allCases), from: nodeID(), to: nodeID(), term: Term(u64()),
            logTerm: bool() ? Term(u64()) : .zero, index: bool() ? LogIndex(u64()) : .zero,
            entries: bool() ? (0..<int(1...5)).map { _ in entry() } : [],
            commit: bool() ? LogIndex(u64()) : .zero, reject: bool(),
            rejectHint: bool() ? LogIndex(u64()) : .zero,
            snapshot: int(0...4) == 0 ? Snapshot(metadata: snapshotMetadata(), data: bytes(100)) : nil,
            context: bool() ? bytes(16) : [])
    }

    // MARK: KV

    mutating func keyRange() -> KeyRange {
        switch int(0...2) {
        case 0: .single(key())
        case 1: KeyRange(start: bytes(10), end: nil)
        default: KeyRange(start: key(), end: key())
        }
    }

    mutating func rangeRequest() -> KVRangeRequest {
        KVRangeRequest(
            range: keyRange(), limit: bool() ? int(1...10_000) : nil, revision: bool() ? Revision(u64()) : nil,
            isReversed: bool(), isKeysOnly: bool(), isCountOnly: bool())
    }

    mutating func proposal() -> KVProposal {
        let session = bool() ? ClientSession(clientID: ClientID(u64()), sequence: SequenceNumber(nonZero())) : nil
        let command: KVCommand
        switch int(0...6) {
        case 6:
            let name = Array("user-\(int(0...99))".utf8)
            let hash = KVPasswordHash(logN: 15, r: 8, p: 1, salt: [UInt8](repeating: 2, count: 16), hash: [UInt8](repeating: 3, count: 32))
            command = .auth(pick([
                .enable, .disable, .userAdd(name: name, password: bool() ? hash : nil), .userDelete(name: name),
                .userPassword(name: name, password: hash), .userGrantRole(user: name, role: Array("r".utf8)),
                .userRevokeRole(user: name, role: Array("r".utf8)), .roleAdd(name: name), .roleDelete(name: name),
                .roleGrant(role: name, permission: KVPermission(pick(KVPermission.Access.allCases), .prefix(Array("app/".utf8)))),
                .roleRevoke(role: name, range: .prefix(Array("app/".utf8))),
            ]))
        case 0: command = .put(KVPut(key: key(), value: bytes(100), ifAbsent: bool(), returnsPrevious: bool(), lease: bool() ? nonZero() : 0))
        case 1: command = .deleteRange(KVDeleteRange(range: keyRange(), returnsPrevious: bool()))
        case 2: command = .compact(Revision(nonZero()))
        case 4: command = .leaseGrant(KVLeaseGrant(id: bool() ? 0 : nonZero(), ttlSeconds: UInt64(int(1...3600))))
        case 5: command = bool() ? .leaseRevoke(nonZero()) : .leaseCheckpoint((0..<int(0...3)).map { _ in KVLeaseCheckpoint(id: nonZero(), remainingMilliseconds: u64()) })
        default:
            // Puts under "p<i>", deletes under "d": no key written twice in a branch.
            let compares = (0..<int(0...3)).map { _ in
                KVCompare(key: key(), pick([.value(bytes(8)), .version(u64()), .createRevision(Revision(u64())), .modRevision(Revision(u64()))]), pick(KVCompare.Operator.allCases))
            }
            var ops: [KVOperation] = []
            for i in 0..<int(0...4) {
                switch int(0...2) {
                case 0: ops.append(.put(KVPut(key: Array("p\(i)".utf8), value: bytes(20))))
                case 1: ops.append(.deleteRange(KVDeleteRange(range: .prefix(Array("d".utf8)))))
                default: ops.append(.range(rangeRequest()))
                }
            }
            command = .txn(KVTxn(compares: compares, success: ops, failure: bool() ? [] : [.range(rangeRequest())]))
        }
        return KVProposal(session: session, command: command)
    }

    mutating func record() -> KVRecord {
        let create = Revision(nonZero())
        let mod = Revision(max(create.rawValue, u64()))
        return KVRecord(value: bytes(30), createRevision: create, modRevision: mod, version: nonZero(), lease: bool() ? nonZero() : 0)
    }

    mutating func watchEvent() -> WatchEvent {
        let revision = max(2, u64())
        let create = Revision(UInt64(int(1...Int(min(revision, 1 << 40)))))
        let record = bool() ? KVRecord(value: bytes(30), createRevision: create, modRevision: Revision(revision), version: nonZero()) : nil
        let previous = bool() ? KVRecord(value: bytes(10), createRevision: Revision(1), modRevision: Revision(revision - 1), version: nonZero()) : nil
        return WatchEvent(key: key(), revision: revision, record: record, previous: previous)
    }

    mutating func rangeResult() -> KVRangeResult {
        let records = (0..<int(0...4)).map { _ in KVKeyValue(key: key(), record: record()) }
        return KVRangeResult(records: records, count: int(0...1_000_000), hasMore: bool(), revision: Revision(u64()))
    }

    mutating func applyResult() -> KVApplyResult {
        let outcome: KVOutcome
        switch int(0...3) {
        case 0: outcome = .success(succeeded: bool(), results: [.put(previous: bool() ? record() : nil), .range(rangeResult())])
        case 1: outcome = .compacted(requested: Revision(u64()), compacted: Revision(u64()))
        case 2: outcome = .alreadyExists(key: key())
        default: outcome = .sessionExpired(sequence: SequenceNumber(nonZero()), lastApplied: bool() ? SequenceNumber(u64()) : nil)
        }
        return KVApplyResult(revision: Revision(u64()), outcome: outcome, isReplay: bool())
    }

    // MARK: RPC

    mutating func endpoint() -> Endpoint { Endpoint(host: pick(["127.0.0.1", "::1", "node-\(int(1...9)).example"]), port: UInt16(int(0...65535))) }

    mutating func member() -> Member {
        Member(nodeID: nodeID(), peerAddress: endpoint(), clientAddress: endpoint(), isLearner: bool(), publicKey: bytes(32))
    }

    mutating func chunk() -> SnapshotChunk {
        let lastOfSnapshot = bool()
        return SnapshotChunk(
            index: LogIndex(u64()), term: Term(u64()), fileName: fileName(), offset: u64() / 2, data: bytes(200),
            fileChecksum: bytes(32), isLastOfFile: lastOfSnapshot || bool(), isLastOfSnapshot: lastOfSnapshot)
    }

    mutating func errorResponse() -> RPCErrorResponse {
        let hint: LeaderHint? = bool() ? LeaderHint(nodeID: nodeID(), clientAddress: bool() ? endpoint() : nil) : nil
        return RPCErrorResponse(RPCErrorCode(rawValue: UInt16(int(1...12))), string(40), leaderHint: hint)
    }

    /// A random message of every kind, chosen by `index` so each kind is covered equally.
    mutating func fixedBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: u64()) } }

    mutating func hash() -> MerkleHash { MerkleHash(bytes: (0..<32).map { _ in UInt8(truncatingIfNeeded: u64()) })! }

    mutating func message(_ index: Int) -> RPCMessage {
        switch index % 48 {
        case 0: .peerHello(PeerHello(clusterName: string(), from: nodeID(), to: nodeID(), publicKey: bool() ? bytes(32) : [], features: PeerFeatures(rawValue: UInt64(int(0...3)))))
        case 1: .peerWelcome(PeerWelcome(clusterName: string(), nodeID: nodeID(), publicKey: bool() ? bytes(32) : [], features: PeerFeatures(rawValue: UInt64(int(0...3)))))
        case 2: .raftMessages((0..<int(1...6)).map { _ in raftMessage() })
        case 3:
            .snapshotOffer(SnapshotOffer(metadata: snapshotMetadata(), files: (0..<int(0...5)).map { _ in
                SnapshotFile(name: fileName(), sizeBytes: u64(), checksum: bytes(32))
            }))
        case 4: .snapshotChunk(chunk())
        case 5:
            .snapshotAck(SnapshotAck(
                index: LogIndex(u64()), term: Term(u64()), fileName: bool() ? fileName() : "", nextOffset: u64(),
                isAccepted: bool(), reason: string(30)))
        case 6: .write(WriteRequest(proposal()))
        case 7: .writeResponse(applyResult())
        case 8: .read(ReadRequest(rangeRequest(), consistency: pick(ReadConsistency.allCases)))
        case 9: .readResponse(rangeResult())
        case 10: .status(StatusRequest(withRecordCache: bool(), withHealth: bool()))
        case 11:
            .statusResponse({
                let cache = bool() ? RecordCacheStatus(budgetBytes: u64(), bytes: u64(), entries: u64(), hits: u64(), misses: u64()) : nil
                // Health travels only after the record cache (a request for it asks for both).
                let health = cache != nil && bool()
                    ? (0..<int(0...5)).map { _ in HealthCheck(name: string(10), failure: bool() ? string(40) : nil) } : nil
                return NodeStatus(
                    nodeID: nodeID(), role: pick([.follower, .preCandidate, .candidate, .leader]), isLearner: bool(),
                    term: Term(u64()), leader: bool() ? nodeID() : nil, commitIndex: LogIndex(u64()),
                    appliedIndex: LogIndex(u64()), treeSize: u64(), dbSizeBytes: u64(), recordCache: cache, health: health)
            }())
        case 12: .members
        case 13: .membersResponse((0..<int(0...5)).map { _ in member() })
        case 14:
            .memberChange(pick([0, 1, 2]) == 0 ? .promote(nodeID()) : bool() ? .remove(nodeID()) : .addLearner({
                var m = member()
                m.isLearner = true
                return m
            }()))
        case 15: .leaderTransfer(nodeID())
        case 16: .leaderTransferResponse
        case 17: .snapshotSave
        case 18: .snapshotSaveChunk(chunk())
        case 19: .hashKV
        case 20: .hashKVResponse(HashKVResult(nodeID: nodeID(), appliedIndex: LogIndex(u64()), compactRevision: Revision(u64()), digest: bytes(32), treeSize: u64(), treeRoot: bytes(32)))
        case 21: .signedTreeHead(TreeHeadRequest(treeSize: bool() ? u64() : nil))
        case 22:
            .signedTreeHeadResponse(SignedTreeHeadResponse(
                nodeID: nodeID(), appliedIndex: LogIndex(u64()),
                head: TreeHead(clusterID: ClusterID(bytes: fixedBytes(16))!, treeSize: u64(), rootHash: hash()),
                signature: TreeHeadSignature(publicKey: fixedBytes(32), signature: fixedBytes(64))))
        case 23: .inclusionProof(InclusionProofRequest(leafIndex: u64(), treeSize: u64()))
        case 24: .inclusionProofResponse(InclusionProof(leafIndex: LeafIndex(u64()), treeSize: u64(), path: (0..<int(0...40)).map { _ in hash() }))
        case 25: .consistencyProof(ConsistencyProofRequest(oldSize: u64(), newSize: u64()))
        case 26: .consistencyProofResponse(ConsistencyProof(oldSize: u64(), newSize: u64(), path: (0..<int(0...40)).map { _ in hash() }))
        case 27: .journalEntry(LogIndex(u64()))
        case 28: .journalEntryResponse(JournalEntry(index: u64(), term: u64(), type: UInt8(truncatingIfNeeded: u64()), payload: bytes(50)))
        case 29: .stateDigest(StateDigestRequest(revision: Revision(u64()), checkJournal: bool()))
        case 30:
            .stateDigestResponse(StateDigestResponse(
                nodeID: nodeID(), revision: Revision(u64()), digest: bytes(32), treeRoot: hash(),
                journalChecked: bool() ? u64() : nil, journalProblem: string(40)))
        case 31: .entryProof(EntryProofRequest(index: LogIndex(u64()), key: bytes(20)))
        case 32:
            .entryProofResponse({
                let summary = bool() ? EffectsSummary(outcome: EntryOutcome(rawValue: UInt8(int(0...9))), branch: pick([.none, .then, .else]), count: u64(), root: hash()) : nil
                let entry = JournalEntry(index: u64(), term: u64(), type: UInt8(truncatingIfNeeded: u64()), payload: bytes(50), effects: summary)
                let effect = summary.flatMap { s in
                    bool() ? (Effect(key: [], valueHash: bool() ? hash() : nil), EffectProof(summary: s, effectIndex: u64(), path: (0..<int(0...20)).map { _ in hash() })) : nil
                }
                return EntryProofResponse(entry: entry, effect: effect)
            }())
        case 33: .membershipChanges(LogIndex(u64()))
        case 34: .membershipChangesResponse((0..<int(0...64)).map { _ in LogIndex(u64()) })
        case 35:
            .watch(WatchRequest(
                range: pick([.single(key()), .prefix(key()), KeyRange(start: bytes(10), end: nil)]), startRevision: bool() ? 0 : u64(),
                options: pick([[], [.prevValue], [.noPut, .progressNotify], [.noDelete, .prevValue]])))
        case 36: .watchCancel(RequestID(nonZero()))
        case 37:
            .watchResponse(pick([
                .created(startRevision: u64()), .progress(revision: u64()), .canceled(reason: string(40)),
                .compacted(compactRevision: u64()), .events(completeThrough: u64(), (0..<int(1...5)).map { _ in watchEvent() }),
            ]))
        case 38: .watchCancelResponse(found: bool())
        case 39: .leaseKeepAlive(nonZero())
        case 40: .leaseKeepAliveResponse(LeaseKeepAliveResponse(id: nonZero(), ttlSeconds: u64()))
        case 41: .leaseTimeToLive(LeaseTimeToLiveRequest(id: nonZero(), withKeys: bool()))
        case 42:
            .leaseTimeToLiveResponse(LeaseInfo(
                id: nonZero(), ttlSeconds: u64(), remainingMilliseconds: u64(), grantRevision: u64(), keys: (0..<int(0...4)).map { _ in key() },
                truncated: bool()))
        case 43: .leaseList
        case 44: .leaseListResponse((0..<int(0...5)).map { _ in LeaseStatus(id: nonZero(), ttlSeconds: u64(), remainingMilliseconds: u64()) })
        case 45: .authenticate(AuthenticateRequest(user: Array("u\(int(0...9))".utf8), password: [0x70] + bytes(40)))
        case 46: .authenticateResponse(user: Array("u\(int(0...9))".utf8))
        default: .error(errorResponse())
        }
    }
}
