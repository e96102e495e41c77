import FaunaKV
import FaunaRPC
import NIOConcurrencyHelpers

extension FaunaClient {
    /// Grants a lease of `ttlSeconds` (docs/KV-COMMANDS.md "Leases"); `id` 0 lets the cluster
    /// choose (the grant's revision). Keys put with it are deleted when it is revoked or
    /// expires: keep it alive with `keepAlive(_:)`.
    /// - Throws: `invalidRequest` for a TTL out of range or an ID in use.
    public func grantLease(ttlSeconds: UInt64, id: UInt64 = 0) async throws(FaunaClientError) -> (id: UInt64, ttlSeconds: UInt64) {
        let result = try await write(.leaseGrant(KVLeaseGrant(id: id, ttlSeconds: ttlSeconds)))
        switch result.outcome {
        case .success(_, let results):
            guard case .lease(let id, let ttl)? = results.first else { break }
            return (id, ttl)
        case .invalid(let e): throw Self.leaseError(e, "lease grant")
        default: break
        }
        throw FaunaClientError(.internal, "lease grant: unexpected outcome \(result.outcome)")
    }

    /// Revokes lease `id`: it and every key attached to it are deleted, in one entry.
    /// Returns how many keys that deleted.
    /// - Throws: `leaseNotFound` if there is no such lease.
    @discardableResult
    public func revokeLease(_ id: UInt64) async throws(FaunaClientError) -> Int {
        let result = try await write(.leaseRevoke(id))
        switch result.outcome {
        case .success(_, let results):
            guard case .deleteRange(let deleted, _)? = results.first else { break }
            return deleted
        case .invalid(let e): throw Self.leaseError(e, "lease revoke")
        default: break
        }
        throw FaunaClientError(.internal, "lease revoke: unexpected outcome \(result.outcome)")
    }

    /// Renews lease `id` once: the leader counts its whole TTL again from now. Returns the TTL.
    /// - Throws: `leaseNotFound` once the lease is gone (revoked or expired).
    public func keepAliveOnce(_ id: UInt64) async throws(FaunaClientError) -> UInt64 {
        var budget = makeBudget()
        let answer = try await perform(.leaseKeepAlive(id), route: .leader, budget: &budget)
        guard case .leaseKeepAliveResponse(let r) = answer else {
            throw FaunaClientError.unexpected(answer, want: "leaseKeepAliveResponse", from: knownLeader ?? endpoints[0])
        }
        return r.ttlSeconds
    }

    /// Lease `id`'s TTL, the time the leader gives it now, and (`withKeys`) its keys.
    public func leaseTimeToLive(_ id: UInt64, withKeys: Bool = false) async throws(FaunaClientError) -> LeaseInfo {
        var budget = makeBudget()
        let answer = try await perform(.leaseTimeToLive(LeaseTimeToLiveRequest(id: id, withKeys: withKeys)), route: .leader, budget: &budget)
        guard case .leaseTimeToLiveResponse(let info) = answer else {
            throw FaunaClientError.unexpected(answer, want: "leaseTimeToLiveResponse", from: knownLeader ?? endpoints[0])
        }
        return info
    }

    /// Every lease, with the time the leader gives each now.
    public func leases() async throws(FaunaClientError) -> [LeaseStatus] {
        var budget = makeBudget()
        let answer = try await perform(.leaseList, route: .leader, budget: &budget)
        guard case .leaseListResponse(let list) = answer else {
            throw FaunaClientError.unexpected(answer, want: "leaseListResponse", from: knownLeader ?? endpoints[0])
        }
        return list
    }

    /// Keeps lease `id` alive until `cancel()`: a keep-alive every third of its TTL (and at
    /// once), retried through leader changes. It ends by itself once the lease is gone.
    public func keepAlive(_ id: UInt64) -> LeaseKeeper {
        let keeper = LeaseKeeper(id: id)
        keeper.start(self)
        return keeper
    }

    static func leaseError(_ e: KVCommandError, _ action: String) -> FaunaClientError {
        switch e.code {
        case .leaseNotFound: FaunaClientError(.leaseNotFound, "\(action): \(e.reason)")
        case .leasesFull: FaunaClientError(.unavailable, "\(action): \(e.reason)")
        default: FaunaClientError(.invalidRequest, "\(action): \(e.code): \(e.reason)")
        }
    }
}

/// A lease kept alive in the background (`FaunaClient.keepAlive(_:)`).
public final class LeaseKeeper: Sendable {
    public let id: UInt64
    private let state = NIOLockedValueBox<State>(State())

    private struct State {
        var task: Task<Void, Never>?
        var renewals = 0
        var ended: FaunaClientError??
    }

    init(id: UInt64) { self.id = id }

    fileprivate func start(_ client: FaunaClient) {
        let id = id
        let task = Task { [weak self] in
            var interval: Duration = .milliseconds(200)
            while !Task.isCancelled {
                do throws(FaunaClientError) {
                    let ttl = try await client.keepAliveOnce(id)
                    self?.state.withLockedValue { $0.renewals += 1 }
                    interval = .milliseconds(Int64(max(1, ttl) * 1000 / 3))
                } catch {
                    if error.code == .leaseNotFound || error.code == .cancelled {
                        self?.state.withLockedValue { $0.ended = .some(error.code == .cancelled ? nil : error) }
                        return
                    }
                    // A leader change or a lost connection: try again soon, well within the TTL.
                    interval = .milliseconds(200)
                }
                try? await Task.sleep(for: interval)
            }
        }
        state.withLockedValue { $0.task = task }
    }

    /// Keep-alives the leader acknowledged so far.
    public var renewals: Int { state.withLockedValue { $0.renewals } }

    /// Why it stopped by itself (`leaseNotFound`: the lease is gone), if it did.
    public var failure: FaunaClientError? { state.withLockedValue { $0.ended ?? nil } }

    /// Whether it stopped (cancelled, or the lease is gone).
    public var isEnded: Bool { state.withLockedValue { $0.ended != nil } }

    /// Stops the keep-alives (the lease then expires after its TTL unless revoked first).
    public func cancel() {
        let task = state.withLockedValue { s in
            if s.ended == nil { s.ended = .some(nil) }
            return s.task
        }
        task?.cancel()
    }
}
