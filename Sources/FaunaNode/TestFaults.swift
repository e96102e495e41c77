#if DEBUG
import FaunaAudit
import FaunaKV
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import NIOConcurrencyHelpers

/// Deliberate misbehaviour for tests of clients and of the chaos harness, chosen with
/// `FAUNA_TEST_FAULT`. This whole file is compiled into debug builds only: a release faunad
/// has neither the decorator nor the fault names (docs/TESTING.md "Lying nodes").
///
/// - `lie-value`: reads answer every value with its last byte changed (or `?` if empty).
/// - `lie-proof`: inclusion proofs carry a changed first hash.
/// - `lie-forge`: reads answer a changed value; the journal entry at a record's revision is
///   forged to write that value; the tree heads this node signs are for the root the forged
///   entry and its real inclusion path lead to — a consistent lie only this node signs.
/// - `lie-unwritten`: a one-key read answers the value of a later committed put of that key
///   that wrote nothing (a put-if-absent that found the key, an expired session), at that
///   entry's revision, with genuine proofs of the entry: caught only by leaf v2 effects.
/// - `stale-reads`: linearizable reads are served from the local state at once, without
///   ReadIndex (the broken node the chaos harness must catch).
/// - `lie-watch`: the value of every put a watcher is sent has its last byte changed.
struct TestFaults: Sendable, CustomStringConvertible {
    var lieValue = false
    var lieProof = false
    var lieForge = false
    var lieUnwritten = false
    var staleReads = false
    var lieWatch = false

    static let current: TestFaults = {
        var faults = TestFaults()
        let names = (ProcessInfo.processInfo.environment["FAUNA_TEST_FAULT"] ?? "").split(separator: ",")
        for name in names {
            switch name {
            case "lie-value": faults.lieValue = true
            case "lie-proof": faults.lieProof = true
            case "lie-forge": faults.lieForge = true
            case "lie-unwritten": faults.lieUnwritten = true
            case "stale-reads": faults.staleReads = true
            case "lie-watch": faults.lieWatch = true
            default: break
            }
        }
        return faults
    }()

    var isActive: Bool { lieValue || lieProof || lieForge || lieUnwritten || staleReads || lieWatch }

    var description: String {
        [("lie-value", lieValue), ("lie-proof", lieProof), ("lie-forge", lieForge), ("lie-unwritten", lieUnwritten),
         ("stale-reads", staleReads), ("lie-watch", lieWatch)].filter(\.1).map(\.0).joined(separator: ",")
    }

    /// A value changed in a way a verifier must notice.
    static func corrupt(_ value: [UInt8]) -> [UInt8] {
        guard let last = value.last else { return Array("?".utf8) }
        return value.dropLast() + [last ^ 0x01]
    }
}

/// The lying node: wraps the honest answers of the read and audit paths.
final class LyingAnswers: AnswerDecorator, @unchecked Sendable {
    let faults: TestFaults
    let signer: TreeHeadSigner
    /// lie-forge: the leaf of the last entry forged, and its hash (apply thread only, but
    /// guarded anyway).
    private let forged = NIOLockedValueBox<(leaf: UInt64, hash: MerkleHash)?>(nil)

    init(faults: TestFaults, signer: TreeHeadSigner) {
        self.faults = faults
        self.signer = signer
    }

    /// The decorator `FAUNA_TEST_FAULT` asks for, or nil.
    static func fromEnvironment(signer: TreeHeadSigner) -> LyingAnswers? {
        let faults = TestFaults.current
        return faults.isActive ? LyingAnswers(faults: faults, signer: signer) : nil
    }

    var servesStaleReads: Bool { faults.staleReads }

    func watchEvents(_ events: [WatchEvent]) -> [WatchEvent] {
        guard faults.lieWatch else { return events }
        return events.map { event in
            var lie = event
            if let record = event.record { lie.record = KVRecord(value: TestFaults.corrupt(record.value), createRevision: record.createRevision, modRevision: record.modRevision, version: record.version) }
            return lie
        }
    }

    /// lie-value and lie-forge: a read answer with every value corrupted. lie-unwritten: a
    /// one-key read answered with the value of a committed put of that key that wrote nothing.
    func read(_ request: ReadRequest, answer: RPCMessage, store: any StateStore) -> RPCMessage {
        if faults.lieUnwritten, case .readResponse(var result) = answer, result.records.count == 1,
            let lie = Self.unwrittenPut(of: result.records[0], in: store)
        {
            result.records[0].record.value = lie.value
            result.records[0].record.modRevision = Revision(lie.index.rawValue)
            return .readResponse(result)
        }
        guard faults.lieValue || faults.lieForge, case .readResponse(var result) = answer else { return answer }
        result.records = result.records.map { kv in
            var kv = kv
            kv.record.value = TestFaults.corrupt(kv.record.value)
            return kv
        }
        return .readResponse(result)
    }

    func audit(_ request: RPCMessage, answer: RPCMessage, store: any StateStore) -> RPCMessage {
        switch answer {
        case .inclusionProofResponse(var proof) where faults.lieProof:
            if let first = proof.path.first { proof.path[0] = MerkleHash(bytes: TestFaults.corrupt(first.bytes)) ?? first }
            return .inclusionProofResponse(proof)
        case .journalEntryResponse(var out) where faults.lieForge:
            guard let forgedPayload = Self.forge(out.payload) else { return answer }
            out.payload = forgedPayload
            forged.withLockedValue { $0 = (out.index - 1, out.leafHash) }
            return .journalEntryResponse(out)
        case .entryProofResponse(var response) where faults.lieForge:
            guard case .entryProof(let req) = request, let forgedPayload = Self.forge(response.entry.payload) else { return answer }
            response.entry.payload = forgedPayload
            if let summary = response.entry.effects, let value = Self.putValue(of: req.key, in: forgedPayload) {
                // A consistent lie: the effects this node claims write the forged value.
                let lie = Effect.put(key: req.key, value: value)
                let forgedSummary = EffectsTree.summary(outcome: .success, branch: summary.branch, effects: [lie])
                response.entry.effects = forgedSummary
                response.effect = (lie, EffectProof(summary: forgedSummary, effectIndex: 0, path: []))
            }
            forged.withLockedValue { $0 = (response.entry.index - 1, response.entry.leafHash) }
            return .entryProofResponse(response)
        case .signedTreeHeadResponse(let signed) where faults.lieForge:
            // Sign the root the forged leaf and its real inclusion path lead to.
            guard let forged = forged.withLockedValue({ $0 }), forged.leaf < signed.head.treeSize,
                let path = try? store.inclusionProof(for: LeafIndex(forged.leaf), treeSize: signed.head.treeSize),
                let root = try? path.rootHash(fromLeafHash: forged.hash)
            else { return answer }
            let head = TreeHead(clusterID: signed.head.clusterID, treeSize: signed.head.treeSize, rootHash: root)
            guard let signature = try? signer.sign(head) else { return answer }
            return .signedTreeHeadResponse(SignedTreeHeadResponse(
                nodeID: signed.nodeID, appliedIndex: signed.appliedIndex, head: head, signature: signature))
        default:
            return answer
        }
    }

    /// lie-unwritten: the newest of the last 10,000 committed entries that proposes a put of
    /// `kv.key` with another value than the current one, which it therefore never wrote (a
    /// put-if-absent that found the key, an expired session). Its journal entry, inclusion
    /// path and tree heads are all genuine.
    private static func unwrittenPut(of kv: KVKeyValue, in store: any StateStore) -> (index: LogIndex, value: [UInt8])? {
        let applied = store.appliedIndex.rawValue
        var index = applied
        while index > kv.record.modRevision.rawValue && index + 10_000 > applied {
            defer { index -= 1 }
            guard let entry = try? store.journalRecord(at: LogIndex(index))?.entry, entry.type == .normal,
                let value = putValue(of: kv.key, in: entry.data), value != kv.record.value
            else { continue }
            return (LogIndex(index), value)
        }
        return nil
    }

    /// The value a put of `key` in `payload` writes (either txn branch), if any.
    private static func putValue(of key: [UInt8], in payload: [UInt8]) -> [UInt8]? {
        guard let proposal = try? KVProposal(decoding: payload) else { return nil }
        switch proposal.command {
        case .put(let put): return put.key == key ? put.value : nil
        case .txn(let txn):
            for case .put(let put) in txn.success + txn.failure where put.key == key { return put.value }
            return nil
        default: return nil
        }
    }

    /// lie-forge: the payload with every put's value corrupted, or nil if it has no put.
    private static func forge(_ payload: [UInt8]) -> [UInt8]? {
        guard var proposal = try? KVProposal(decoding: payload) else { return nil }
        func lie(_ op: KVOperation) -> KVOperation {
            guard case .put(var put) = op else { return op }
            put.value = TestFaults.corrupt(put.value)
            return .put(put)
        }
        switch proposal.command {
        case .put(var put):
            put.value = TestFaults.corrupt(put.value)
            proposal.command = .put(put)
        case .txn(var txn):
            txn.success = txn.success.map(lie)
            txn.failure = txn.failure.map(lie)
            proposal.command = .txn(txn)
        default:
            return nil
        }
        return proposal.encoded()
    }
}
#endif
