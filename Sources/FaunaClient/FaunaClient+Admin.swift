import FaunaRPC
import FaunaRaft

extension FaunaClient {
    /// The status of the node at `endpoint`. Only that node is asked; connection failures and
    /// `overloaded` are retried until the deadline.
    public func status(of endpoint: Endpoint) async throws(FaunaClientError) -> NodeStatus {
        var budget = makeBudget()
        let answer = try await perform(.status(), route: .node(endpoint), budget: &budget)
        guard case .statusResponse(let status) = answer else {
            throw FaunaClientError.unexpected(answer, want: "statusResponse", from: endpoint)
        }
        return status
    }

    /// The status of every configured node, asked concurrently, in `endpoints` order. Each node
    /// gets one attempt of at most `requestTimeout` (an unreachable node fails fast).
    /// - Parameters:
    ///   - withRecordCache: also ask for each node's record cache figures
    ///     (`NodeStatus.recordCache`).
    ///   - withHealth: also ask for each node's readiness checks (`NodeStatus.health`; the
    ///     record cache comes with them).
    ///
    /// A node of an earlier build refuses a request with a field it does not know with
    /// `invalidRequest`; it is then asked again with fewer (those answers lack them).
    public func statusAll(withRecordCache: Bool = false, withHealth: Bool = false) async -> [(Endpoint, Result<NodeStatus, FaunaClientError>)] {
        let decode: @Sendable (RPCMessage) -> NodeStatus? = { answer in
            if case .statusResponse(let status) = answer { status } else { nil }
        }
        var request = StatusRequest(withRecordCache: withRecordCache, withHealth: withHealth)
        var all = await askEveryNode(.status(request), within: configuration.requestTimeout, decode: decode)
        // Each refusal steps down one field: health, then the record cache.
        while request.withRecordCache {
            request = request.withHealth ? StatusRequest(withRecordCache: true) : StatusRequest()
            let refused = all.indices.filter { i in
                if case .failure(let e) = all[i].1 { e.code == .invalidRequest } else { false }
            }
            guard !refused.isEmpty else { break }
            for i in refused {
                let endpoint = all[i].0
                var budget = RetryBudget(deadline: .now + configuration.requestTimeout, attemptsMax: 1)
                do throws(FaunaClientError) {
                    let answer = try await perform(.status(request), route: .node(endpoint), budget: &budget)
                    all[i].1 = decode(answer).map { .success($0) } ?? .failure(.unexpected(answer, want: "statusResponse", from: endpoint))
                } catch {
                    all[i].1 = .failure(error)
                }
            }
        }
        return all
    }

    /// Sends `request` to every node once, concurrently; `decode` picks the expected answer.
    /// `attemptTimeout` replaces the per-request timeout (for requests that read a whole state).
    func askEveryNode<Answer: Sendable>(
        _ request: RPCMessage, within timeout: Duration, attemptTimeout: Duration? = nil,
        decode: @escaping @Sendable (RPCMessage) -> Answer?
    ) async -> [(Endpoint, Result<Answer, FaunaClientError>)] {
        await withTaskGroup(of: (Int, Result<Answer, FaunaClientError>).self) { tasks in
            for (i, endpoint) in endpoints.enumerated() {
                tasks.addTask {
                    var budget = RetryBudget(deadline: .now + timeout, attemptsMax: 1)
                    budget.attemptTimeout = attemptTimeout
                    do throws(FaunaClientError) {
                        let answer = try await self.perform(request, route: .node(endpoint), budget: &budget)
                        guard let decoded = decode(answer) else {
                            return (i, .failure(.unexpected(answer, want: "an answer to \(request.kind)", from: endpoint)))
                        }
                        return (i, .success(decoded))
                    } catch {
                        return (i, .failure(error))
                    }
                }
            }
            var results = [Result<Answer, FaunaClientError>?](repeating: nil, count: endpoints.count)
            for await (i, result) in tasks { results[i] = result }
            return zip(endpoints, results).map { ($0, $1!) }
        }
    }

    /// The cluster's members, as the leader knows them.
    public func members() async throws(FaunaClientError) -> [Member] {
        var budget = makeBudget()
        let answer = try await perform(.members, route: .leader, budget: &budget)
        guard case .membersResponse(let members) = answer else {
            throw FaunaClientError.unexpected(answer, want: "membersResponse", from: knownLeader ?? endpoints[0])
        }
        return members
    }

    /// Adds a learner, promotes a learner or removes a member (one server at a time); returns
    /// the new member list. A retry after a lost answer may be refused with `invalidRequest`
    /// (the change is already in): check `members()`.
    public func changeMembership(_ change: MemberChange) async throws(FaunaClientError) -> [Member] {
        var budget = makeBudget()
        let answer = try await perform(.memberChange(change), route: .leader, budget: &budget)
        guard case .membersResponse(let members) = answer else {
            throw FaunaClientError.unexpected(answer, want: "membersResponse", from: knownLeader ?? endpoints[0])
        }
        return members
    }

    /// Asks the leader to hand leadership to `nodeID`; returns when the transfer completed.
    public func transferLeadership(to nodeID: NodeID) async throws(FaunaClientError) {
        var budget = makeBudget()
        let answer = try await perform(.leaderTransfer(nodeID), route: .leader, budget: &budget)
        guard case .leaderTransferResponse = answer else {
            throw FaunaClientError.unexpected(answer, want: "leaderTransferResponse", from: knownLeader ?? endpoints[0])
        }
        if let leader = knownLeader { forgetLeader(leader) }
    }

    /// The state digest of the node at `endpoint` (equal on replicas at the same applied index).
    public func hashKV(of endpoint: Endpoint) async throws(FaunaClientError) -> HashKVResult {
        var budget = makeBudget()
        let answer = try await perform(.hashKV, route: .node(endpoint), budget: &budget)
        guard case .hashKVResponse(let result) = answer else {
            throw FaunaClientError.unexpected(answer, want: "hashKVResponse", from: endpoint)
        }
        return result
    }

    /// Every node's state digest, asked concurrently; a node that does not answer within one
    /// attempt (up to the deadline: a digest reads the whole state) is reported as failed.
    public func hashKVAll() async -> [(Endpoint, Result<HashKVResult, FaunaClientError>)] {
        await askEveryNode(.hashKV, within: configuration.deadline) { answer in
            if case .hashKVResponse(let result) = answer { result } else { nil }
        }
    }

    /// The client address of the leader: the known one, else the node whose status says it
    /// leads in the highest term.
    public func findLeader() async throws(FaunaClientError) -> Endpoint {
        if let leader = knownLeader { return leader }
        let leaders = await statusAll().compactMap { endpoint, result -> (Endpoint, NodeStatus)? in
            guard case .success(let status) = result, status.role == .leader else { return nil }
            return (endpoint, status)
        }
        guard let best = leaders.max(by: { $0.1.term < $1.1.term }) else {
            throw FaunaClientError(.unavailable, "no node of \(endpoints.map(\.description).joined(separator: ", ")) says it is the leader")
        }
        noteLeader(best.0)
        return best.0
    }
}
