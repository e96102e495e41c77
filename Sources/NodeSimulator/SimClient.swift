import FaunaClient
import FaunaKV
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// A client of the simulated cluster, like FaunaClient: one operation at a time, sent to the
/// node it believes leads, following `notLeader` hints, retrying on errors and timeouts with
/// the same session (so a write applies at most once) until the operation's deadline. Writes
/// whose outcome it never learns are recorded as unknown.
final class SimClient {
    enum Kind {
        case put([UInt8]), delete, cas(expected: [UInt8]?, new: [UInt8]), linearizableRead, serializableRead
        case verifiedRead, audit
    }

    struct Pending {
        var kind: Kind
        var key: [UInt8]
        var invoke: UInt64
        var deadline: UInt64
        var message: RPCMessage
        var attempt: UInt64 = 0
        var attemptDeadline: UInt64 = 0
        var target: NodeID
        /// Sent and not answered: a write's outcome is unknown from then on.
        var mayHaveApplied = false
        /// Verified reads and audits: the steps done so far.
        var read: KVKeyValue?
        var readAbsent = false
        var head: SignedTreeHeadResponse?
        var entry: EntryProofResponse?
        var retryAt: UInt64?
    }

    let id: Int
    unowned let sim: Simulation
    var sequence = SequenceNumber.first
    /// Sessions started: a session whose first write was lost is refused (`sessionExpired`)
    /// from then on, so the client starts a new one, as FaunaClient does.
    var sessions = 0
    var pending: Pending?
    var nextAttempt: UInt64 = 1
    var written = 0
    /// The last value this client saw per key (a cas expects it).
    var lastSeen: [[UInt8]: [UInt8]?] = [:]
    /// The newest signed head this client checked, per node: later ones must extend it.
    var lastHead: (size: UInt64, root: MerkleHash)?

    init(id: Int, sim: Simulation) {
        self.id = id
        self.sim = sim
    }

    static func keys(_ n: Int) -> [[UInt8]] { (0..<n).map { Array("k\($0)".utf8) } }

    var isIdle: Bool { pending == nil }
    var now: UInt64 { sim.time.micros }

    func step(issuing: Bool) {
        if var p = pending {
            if now >= p.deadline {
                finish(unknown: true)
                return
            }
            if let retryAt = p.retryAt, now >= retryAt {
                p.retryAt = nil
                pending = p
                send()
            } else if p.retryAt == nil, now >= p.attemptDeadline {
                restartSteps(&p)
                p.target = pickTarget(avoiding: p.target)
                pending = p
                send()
            }
            return
        }
        guard issuing, sim.rng.chance(0.2) else { return }
        start()
    }

    private func pickTarget(avoiding: NodeID? = nil) -> NodeID {
        if let leader = sim.leaderGuess(), leader != avoiding, sim.rng.chance(0.8) { return leader }
        let ids = sim.nodes.keys.sorted().filter { $0 != avoiding }
        return sim.rng.pick(ids) ?? avoiding ?? NodeID(1)
    }

    private func start() {
        let key = sim.rng.pick(Self.keys(sim.options.keys))!
        let kind: Kind
        switch sim.rng.int(0..<100) {
        case 0..<30:
            written += 1
            kind = .put(Array("c\(id)-\(written)".utf8))
        case 30..<35: kind = .delete
        case 35..<45:
            written += 1
            kind = .cas(expected: lastSeen[key] ?? nil, new: Array("c\(id)-\(written)".utf8))
        case 45..<75: kind = .linearizableRead
        case 75..<85: kind = .serializableRead
        case 85..<95: kind = .verifiedRead
        default: kind = .audit
        }
        let message: RPCMessage
        switch kind {
        case .put(let value): message = write(.put(KVPut(key: key, value: value)))
        case .delete: message = write(.delete(key))
        case .cas(let expected, let new):
            let compare = expected.map { KVCompare(key: key, .value($0), .equal) } ?? KVCompare(key: key, .version(0), .equal)
            message = write(.txn(KVTxn(compares: [compare], success: [.put(KVPut(key: key, value: new))])))
        case .linearizableRead, .verifiedRead: message = .read(ReadRequest(KVRangeRequest(range: .single(key))))
        case .serializableRead: message = .read(ReadRequest(KVRangeRequest(range: .single(key)), consistency: .serializable))
        case .audit: message = .signedTreeHead(TreeHeadRequest())
        }
        sim.report.operations += 1
        pending = Pending(
            kind: kind, key: key, invoke: now, deadline: now + 3_000_000, message: message, target: pickTarget())
        send()
    }

    private func write(_ command: KVCommand) -> RPCMessage {
        defer { sequence = SequenceNumber(sequence.rawValue + 1) }
        let clientID = ClientID(UInt64(sessions * 1000 + id + 1))
        return .write(WriteRequest(KVProposal(session: ClientSession(clientID: clientID, sequence: sequence), command: command)))
    }

    private func send() {
        guard var p = pending else { return }
        p.attempt = nextAttempt
        nextAttempt += 1
        p.attemptDeadline = now + 600_000
        if case .write = p.message { p.mayHaveApplied = true }
        pending = p
        guard let node = sim.nodes[p.target], let core = node.core, let events = node.events else { return }  // down: times out
        let (client, attempt) = (id, p.attempt)
        let reply = SimReply { [unowned sim] frames in sim.network.answer(client: client, attempt: attempt, frames: frames, sim: sim) }
        let context = RPCRequestContext(requestID: RequestID(p.attempt), reply: reply)
        // As faunad's client port: audit requests straight to the apply queue, the rest to the owner.
        if core.routeToApplyStage(p.message, context) { return }
        if !events.offer(.request(p.message, context)) {
            retry(after: 20_000, elsewhere: true)
        }
    }

    private func retry(after micros: UInt64, elsewhere: Bool, hint: NodeID? = nil) {
        guard var p = pending else { return }
        restartSteps(&p)
        if let hint, sim.nodes[hint] != nil {
            p.target = hint
        } else if elsewhere {
            p.target = pickTarget(avoiding: p.target)
        }
        p.retryAt = now + micros
        pending = p
    }

    func receive(_ frame: Frame, attempt: UInt64) {
        guard let p = pending, p.attempt == attempt, p.retryAt == nil else { return }  // a stale answer
        let message: RPCMessage
        do { message = try RPCMessage(frame) } catch {
            sim.fail("client \(id): an answer does not decode: \(error)")
            return
        }
        if case .error(let e) = message {
            switch e.code {
            case .notLeader: retry(after: 1_000, elsewhere: true, hint: e.leaderHint?.nodeID)
            case .compacted, .futureRevision, .invalidRequest, .unsupported:
                sim.fail("client \(id): \(p.message.kind) answered \(e.code): \(e.message)")
            default: retry(after: 10_000, elsewhere: true)  // unavailable, overloaded, timeout, behind
            }
            return
        }
        handle(message, p)
    }

    private func handle(_ message: RPCMessage, _ p: Pending) {
        if case .writeResponse(let result) = message, case .sessionExpired = result.outcome {
            // Nothing was written. The session cannot go on (its first write was lost): the
            // next write starts a new one.
            sessions += 1
            sequence = .first
            pending = nil
            return
        }
        switch (p.kind, message) {
        case (.put(let value), .writeResponse(let result)):
            guard case .success = result.outcome else { return unexpected(message, p) }
            lastSeen[p.key] = value
            record(.write(value), .written)
        case (.delete, .writeResponse(let result)):
            guard case .success = result.outcome else { return unexpected(message, p) }
            lastSeen[p.key] = .some(nil)
            record(.write(nil), .written)
        case (.cas(let expected, let new), .writeResponse(let result)):
            switch result.outcome {
            case .success(let succeeded, _):
                if succeeded { lastSeen[p.key] = new }
                record(.cas(expected: expected, new: new), succeeded ? .written : .casFailed)
            default: unexpected(message, p)
            }
        case (.linearizableRead, .readResponse(let result)), (.serializableRead, .readResponse(let result)):
            let value = result.records.first?.record.value
            lastSeen[p.key] = .some(value)
            if case .serializableRead = p.kind {
                sim.history.serializable(key: p.key, value: value, invoke: p.invoke, complete: now)
                sim.report.reads += 1
                pending = nil
            } else {
                record(.read, .read(value))
            }
        case (.verifiedRead, _):
            verifiedStep(message, p)
        case (.audit, _):
            auditStep(message, p)
        default:
            unexpected(message, p)
        }
    }

    /// A verified read or an audit is a sequence of requests to one node (its tree holds what
    /// it read); on another node it starts over.
    private func restartSteps(_ p: inout Pending) {
        switch p.kind {
        case .verifiedRead:
            p.message = .read(ReadRequest(KVRangeRequest(range: .single(p.key))))
            p.read = nil
            p.head = nil
            p.entry = nil
        case .audit:
            p.message = .signedTreeHead(TreeHeadRequest())
            p.head = nil
        default: break
        }
    }

    private func unexpected(_ message: RPCMessage, _ p: Pending) {
        sim.fail("client \(id): \(p.kind) of \(printable(p.key)) got an unexpected answer \(message.kind): \(message)")
    }

    private func record(_ call: HistoryOp.Call, _ outcome: HistoryOp.Outcome) {
        guard let p = pending else { return }
        sim.history.append(client: id, key: p.key, call: call, invoke: p.invoke, complete: now, outcome: outcome)
        switch outcome {
        case .read: sim.report.reads += 1
        case .written, .casFailed: sim.report.acknowledgedWrites += 1
        case .unknown: break
        }
        pending = nil
    }

    /// The operation ran out of time (or the run ended): a write that may have been applied is
    /// recorded with an unknown outcome; a read or an audit is simply dropped.
    func finish(unknown: Bool) {
        guard let p = pending else { return }
        pending = nil
        guard p.mayHaveApplied else { return }
        let call: HistoryOp.Call
        switch p.kind {
        case .put(let value): call = .write(value)
        case .delete: call = .write(nil)
        case .cas(let expected, let new): call = .cas(expected: expected, new: new)
        default: return
        }
        sim.report.unknownWrites += 1
        lastSeen[p.key] = nil
        sim.history.append(client: id, key: p.key, call: call, invoke: p.invoke, complete: nil, outcome: .unknown)
    }

    func abandon() { finish(unknown: true) }

    // MARK: Verified reads and audits

    /// A verified read, as `fctl get --verify` does it against one node: the value, then a
    /// signed tree head, the entry at the record's revision with the proof of its effect, and
    /// the entry's inclusion in the head. Any check that fails is a violation (no node lies
    /// in the simulator).
    private func verifiedStep(_ message: RPCMessage, _ p: Pending) {
        var p = p
        switch message {
        case .readResponse(let result):
            guard let kv = result.records.first else {
                record(.read, .read(nil))
                sim.report.verifiedReads += 1
                return
            }
            p.read = kv
            p.message = .signedTreeHead(TreeHeadRequest())
        case .signedTreeHeadResponse(let head):
            guard checkHead(head, from: p.target) else { return }
            p.head = head
            p.message = .entryProof(EntryProofRequest(index: LogIndex(p.read!.record.modRevision.rawValue), key: p.key))
        case .entryProofResponse(let response):
            let kv = p.read!
            switch EntryPayload.check(response.entry, effectProof: response.effect?.1, writes: kv.key, value: kv.record.value) {
            case .success: break
            case .failure(let why): return sim.fail("verified read of \(printable(kv.key)) on \(p.target): \(why)")
            }
            p.entry = response
            p.message = .inclusionProof(InclusionProofRequest(leafIndex: response.entry.index - 1, treeSize: p.head!.head.treeSize))
        case .inclusionProofResponse(let proof):
            do { try proof.verify(leafHash: p.entry!.entry.leafHash, rootHash: p.head!.head.rootHash) } catch {
                return sim.fail("verified read of \(printable(p.key)) on \(p.target): inclusion proof: \(error)")
            }
            sim.report.verifiedReads += 1
            pending = p
            record(.read, .read(p.read!.record.value))
            return
        default:
            return unexpected(message, p)
        }
        // The next step goes to the same node (its tree contains what it read).
        pending = p
        send()
    }

    /// An audit: a signed head from some node, checked against the node's key, against every
    /// head seen at that size, and for consistency with the last head this client checked.
    private func auditStep(_ message: RPCMessage, _ p: Pending) {
        var p = p
        switch message {
        case .signedTreeHeadResponse(let head):
            guard checkHead(head, from: p.target) else { return }
            if let last = lastHead, last.size < head.head.treeSize, last.size > 0 {
                p.head = head
                p.message = .consistencyProof(ConsistencyProofRequest(oldSize: last.size, newSize: head.head.treeSize))
                pending = p
                send()
                return
            }
            lastHead = (head.head.treeSize, head.head.rootHash)
        case .consistencyProofResponse(let proof):
            let head = p.head!.head
            do { try proof.verify(oldRoot: lastHead!.root, newRoot: head.rootHash) } catch {
                return sim.fail("audit on \(p.target): head \(head.treeSize) does not extend head \(lastHead!.size): \(error)")
            }
            lastHead = (head.treeSize, head.rootHash)
        default:
            return unexpected(message, p)
        }
        sim.report.audits += 1
        pending = nil
    }

    /// Checks a signed head's signature with the node's key and records it: two heads of one
    /// size must have one root, whoever signed them.
    private func checkHead(_ head: SignedTreeHeadResponse, from node: NodeID) -> Bool {
        guard let signer = sim.nodes[node]?.signer else { return false }
        let signed = SignedTreeHead(head: head.head, signatures: [head.signature])
        do { try signed.verify(clusterID: head.head.clusterID, members: [signer.publicKey]) } catch {
            sim.fail("\(node) signed a tree head that does not verify with its key: \(error)")
            return false
        }
        sim.checker.recordHead(head.head, by: node, sim: sim)
        return sim.failure == nil
    }
}
