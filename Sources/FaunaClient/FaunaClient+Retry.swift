import FaunaRPC
import NIOCore

/// Where a request must go.
enum Route: Sendable, Equatable {
    /// The leader (writes, linearizable reads, membership): follow `notLeader` hints.
    case leader
    /// Any node (serializable reads): round-robin, next node on failure.
    case anyNode
    /// This node only (status, hashkv of a given node).
    case node(Endpoint)
}

extension FaunaClient {
    /// Sends `request` along `route`, retrying until an answer that is not a retryable error
    /// arrives or `budget` runs out. Retryable: `notLeader` (follow the hint at once, or try the
    /// next node), `unavailable`, `overloaded`, `timeout`, connection failures (after a backoff).
    /// Any other `error` answer is thrown as a typed error.
    func perform(_ request: RPCMessage, route: Route, budget: inout RetryBudget) async throws(FaunaClientError) -> RPCMessage {
        var cursor = nextCursor()
        var hintHops = 0
        var endpoint = firstEndpoint(route: route, cursor: cursor)
        while true {
            guard let remaining = budget.remaining, budget.attemptsLeft > 0 else { throw exhausted(budget, request) }
            guard !Task.isCancelled, !isClosed else { throw FaunaClientError(.cancelled, "\(request.kind): cancelled or client closed") }
            budget.attemptsLeft -= 1
            let failure: FaunaClientError
            switch await attempt(request, at: endpoint, timeout: min(budget.attemptTimeout ?? configuration.requestTimeout, remaining)) {
            case .failure(let error) where error.code == .tlsFailed:
                throw FaunaClientError(.tls, "\(endpoint): \(error.reason)")
            case .failure(let error) where error.code == .authFailed:
                throw FaunaClientError(.authFailed, error.reason)
            case .failure(let error):
                failure = connectionFailure(error, endpoint: endpoint, budget: &budget)
            case .success(.error(let response)):
                switch response.code {
                case .notLeader:
                    failure = FaunaClientError(.notLeaderExhausted, "\(endpoint) is not the leader: \(response.message)")
                    forgetLeader(endpoint)
                    if let hinted = response.leaderHint?.clientAddress, hinted != endpoint, route == .leader {
                        hintHops += 1
                        // A hint is followed at once; only hint chains longer than the cluster
                        // (an election in progress) pay backoff.
                        if hintHops <= endpoints.count + 1 {
                            budget.lastFailure = failure
                            configuration.logger.debug("following leader hint", metadata: ["request": "\(request.kind)", "from": "\(endpoint)", "to": "\(hinted)"])
                            noteLeader(hinted)
                            endpoint = hinted
                            continue
                        }
                    }
                case .unavailable, .overloaded, .behind:
                    failure = FaunaClientError(.unavailable, "\(endpoint) answered \(response)")
                    if response.code == .unavailable { forgetLeader(endpoint) }
                case .timeout:
                    failure = FaunaClientError(.timeout, "\(endpoint) answered \(response)")
                    budget.isAmbiguous = true
                default:
                    throw FaunaClientError(response: response, from: endpoint)
                }
            case .success(let answer):
                // Only an answer the node gives as leader names it: any node serves linearizable
                // reads (ReadIndex) and the member list.
                switch request {
                case .read, .members: break
                default: if route == .leader { noteLeader(endpoint) }
                }
                return answer
            }
            budget.lastFailure = failure
            configuration.logger.debug("retrying", metadata: ["request": "\(request.kind)", "endpoint": "\(endpoint)", "failure": "\(failure)"])
            budget.failures += 1
            try await pause(budget: budget)
            // The next attempt goes to another node (the failed one may be partitioned away,
            // and a follower points back to the leader if it is fine).
            cursor &+= 1
            endpoint = firstEndpoint(route: route, cursor: cursor, avoiding: endpoint)
        }
    }

    /// One request on the pooled connection to `endpoint`.
    private func attempt(_ request: RPCMessage, at endpoint: Endpoint, timeout: Duration) async -> Result<RPCMessage, RPCClientError> {
        do {
            let connection = try await pool.connection(to: endpoint)
            return .success(try await connection.call(request, timeout: Self.timeAmount(timeout)))
        } catch {
            return .failure(error)
        }
    }

    /// Handles a failed connect or call: forgets a broken connection and the leader behind it.
    private func connectionFailure(_ error: RPCClientError, endpoint: Endpoint, budget: inout RetryBudget) -> FaunaClientError {
        switch error.code {
        case .connectFailed:
            forgetLeader(endpoint)
            return FaunaClientError(.unavailable, "cannot connect to \(endpoint): \(error.reason)")
        case .tooManyInFlight:
            return FaunaClientError(.unavailable, "\(endpoint): \(error.reason)")
        case .timeout:
            budget.isAmbiguous = true
            return FaunaClientError(.timeout, "\(endpoint) did not answer in time: \(error.reason)")
        default:  // connectionClosed, protocolViolation: the request may have been run.
            budget.isAmbiguous = true
            // The connection is closed; the pool replaces it on the next request.
            forgetLeader(endpoint)
            let code: FaunaClientError.Code = error.code == .protocolViolation ? .internal : .unavailable
            return FaunaClientError(code, "connection to \(endpoint) failed: \(error)")
        }
    }

    /// Sleeps the backoff, cut at the deadline.
    private func pause(budget: RetryBudget) async throws(FaunaClientError) {
        guard let remaining = budget.remaining else { return }
        let delay = RetryBudget.backoff(failures: budget.failures - 1, initial: configuration.backoffInitial, max: configuration.backoffMax)
        do {
            try await Task.sleep(for: min(delay, remaining))
        } catch {
            throw FaunaClientError(.cancelled, "cancelled while retrying")
        }
    }

    /// The error when the budget is spent: says why the last attempt failed.
    private func exhausted(_ budget: RetryBudget, _ request: RPCMessage) -> FaunaClientError {
        let attempts = configuration.attemptsMax - budget.attemptsLeft
        guard let last = budget.lastFailure else {
            return FaunaClientError(.timeout, "\(request.kind): deadline passed before the first attempt")
        }
        let code: FaunaClientError.Code = [.notLeaderExhausted, .timeout, .internal].contains(last.code) ? last.code : .unavailable
        return FaunaClientError(code, "\(request.kind): gave up after \(attempts) attempts; last: \(last.message)")
    }

    /// The endpoint to try: the known leader for `.leader`, else the configured endpoints in
    /// turn starting at `cursor` (skipping `avoiding` when there is another).
    private func firstEndpoint(route: Route, cursor: Int, avoiding: Endpoint? = nil) -> Endpoint {
        switch route {
        case .node(let endpoint): return endpoint
        case .leader:
            if let leader = knownLeader, leader != avoiding { return leader }
            fallthrough
        case .anyNode:
            let n = endpoints.count
            let candidate = endpoints[((cursor % n) + n) % n]
            if candidate == avoiding && n > 1 { return endpoints[(((cursor + 1) % n) + n) % n] }
            return candidate
        }
    }

    /// NIO's time type for a `Duration` (at least 1 ms).
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow else { return .nanoseconds(Int64.max) }
        return .nanoseconds(max(1_000_000, nanoseconds.partialValue + attoseconds / 1_000_000_000))
    }
}
