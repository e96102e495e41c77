import FaunaKV
import FaunaRPC

extension FaunaClient {
    /// Runs `command` exactly once on the cluster and returns what applying it produced.
    ///
    /// The write takes an idle session (or opens one) and uses its next sequence number; every
    /// retry resends the same session and sequence, so a write whose answer was lost applies
    /// once (the node then answers with `isReplay`). If the node has forgotten the session, a
    /// write that certainly did not run yet is resent under a new session; otherwise the
    /// outcome is unknown and the call throws `sessionExpired`.
    ///
    /// Domain outcomes (a failed compare, `alreadyExists`, a compacted revision inside a txn)
    /// are returned in `outcome`, not thrown.
    /// - Throws: `invalidRequest` before sending if the command breaks a limit; `unavailable`,
    ///   `timeout` or `notLeaderExhausted` when the deadline passes; other codes for errors
    ///   the node answers.
    public func write(_ command: KVCommand) async throws(FaunaClientError) -> KVApplyResult {
        var lease = sessions.take()
        let check = KVProposal(session: lease.session, command: command)
        do {
            try check.validate()
        } catch {
            sessions.giveBack(lease)
            throw FaunaClientError(.invalidRequest, "\(error)")
        }
        var budget = makeBudget()
        while true {
            let request = RPCMessage.write(WriteRequest(KVProposal(session: lease.session, command: command)))
            let answer: RPCMessage
            do {
                answer = try await perform(request, route: .leader, budget: &budget)
            } catch {
                sessions.giveBack(lease)
                throw error
            }
            guard case .writeResponse(let result) = answer else {
                sessions.giveBack(lease)
                throw FaunaClientError.unexpected(answer, want: "writeResponse", from: knownLeader ?? endpoints[0])
            }
            if case .sessionExpired(let sequence, let last) = result.outcome {
                // The session is useless now: it is not returned to the pool.
                guard !budget.isAmbiguous else {
                    throw FaunaClientError(.sessionExpired, "session \(lease.clientID) sequence \(sequence) expired (last applied \(last.map { "\($0)" } ?? "none")) after an attempt whose result is unknown: re-read to see whether the write happened")
                }
                lease = SessionPool.fresh()
                continue
            }
            // A write the state machine refused for its user is an error, not an outcome:
            // nothing was written, and retrying cannot help. A refused session is not
            // returned to the pool: the refusal may be the session's own (another user owns
            // it: docs/KV-COMMANDS.md "Sessions"), and the next write takes a fresh one.
            if case .invalid(let e) = result.outcome, e.code == .permissionDenied {
                throw FaunaClientError(.permissionDenied, e.reason)
            }
            sessions.giveBack(lease)
            if case .invalid(let e) = result.outcome, e.code == .authRequired {
                throw FaunaClientError(.authRequired, e.reason)
            }
            return result
        }
    }

    /// Sets `key` to `value`.
    /// - Parameters:
    ///   - ifAbsent: write only if the key does not exist (else outcome `alreadyExists`).
    ///   - returnsPrevious: return the previous record in the put's result (not on replays).
    ///   - lease: attach the key to this lease (0: none); an unknown lease is the outcome
    ///     `invalid(leaseNotFound)` and nothing is written.
    public func put(
        _ key: [UInt8], _ value: [UInt8], ifAbsent: Bool = false, returnsPrevious: Bool = false, lease: UInt64 = 0
    ) async throws(FaunaClientError) -> KVApplyResult {
        try await write(.put(KVPut(key: key, value: value, ifAbsent: ifAbsent, returnsPrevious: returnsPrevious, lease: lease)))
    }

    /// Deletes `key`; the result's `.deleteRange(deleted:)` says whether it existed.
    public func delete(_ key: [UInt8], returnsPrevious: Bool = false) async throws(FaunaClientError) -> KVApplyResult {
        try await write(.delete(key, returnsPrevious: returnsPrevious))
    }

    /// Deletes every key that begins with `prefix` (every key for an empty prefix).
    public func deletePrefix(_ prefix: [UInt8], returnsPrevious: Bool = false) async throws(FaunaClientError) -> KVApplyResult {
        try await write(.deletePrefix(prefix, returnsPrevious: returnsPrevious))
    }

    /// Runs a transaction; `outcome`'s `succeeded` says which branch ran.
    public func txn(_ txn: KVTxn) async throws(FaunaClientError) -> KVApplyResult {
        try await write(.txn(txn))
    }

    /// Discards history below `revision`.
    public func compact(_ revision: Revision) async throws(FaunaClientError) -> KVApplyResult {
        try await write(.compact(revision))
    }

    /// The record of `key`, or nil if it does not exist (at `revision`, or now).
    /// - Throws: `compacted` / `futureRevision` for a revision out of range.
    public func get(_ key: [UInt8], revision: Revision? = nil, consistency: ReadConsistency = .linearizable) async throws(FaunaClientError) -> KVKeyValue? {
        let result = try await range(KVRangeRequest(range: .single(key), limit: 1, revision: revision), consistency: consistency)
        return result.records.first { $0.key == key }
    }

    /// Reads a range of keys. Linearizable reads go to the leader; serializable reads to any
    /// node (round-robin), which may answer with a stale state.
    public func range(_ request: KVRangeRequest, consistency: ReadConsistency = .linearizable) async throws(FaunaClientError) -> KVRangeResult {
        if let limit = request.limit, limit < 0 {
            throw FaunaClientError(.invalidRequest, "range limit: got \(limit), want >= 0")
        }
        var budget = makeBudget()
        let route: Route = consistency == .linearizable ? .leader : .anyNode
        let answer = try await perform(.read(ReadRequest(request, consistency: consistency)), route: route, budget: &budget)
        guard case .readResponse(let result) = answer else {
            throw FaunaClientError.unexpected(answer, want: "readResponse", from: knownLeader ?? endpoints[0])
        }
        return result
    }
}
