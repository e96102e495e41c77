import FaunaKV
import FaunaRPC

/// A held lock or a won election (`FaunaClient.lock`, `campaign`): a key under the name's
/// prefix, attached to a lease this client keeps alive. Release it with `release()`; if the
/// client dies, the lease expires and the next waiter takes over (docs/KV-COMMANDS.md "Locks and
/// elections").
public final class FaunaLease: Sendable {
    /// The key this client holds: `name/` followed by the lease ID in hex.
    public let key: [UInt8]
    public let lease: UInt64
    /// The revision the key was created at: the place in the queue.
    public let revision: Revision
    let keeper: LeaseKeeper
    let client: FaunaClient

    init(key: [UInt8], lease: UInt64, revision: Revision, keeper: LeaseKeeper, client: FaunaClient) {
        self.key = key
        self.lease = lease
        self.revision = revision
        self.keeper = keeper
        self.client = client
    }

    /// Whether the lease is still kept alive (false once it is gone, e.g. after a partition
    /// longer than its TTL: the lock is then no longer held).
    public var isAlive: Bool { !keeper.isEnded }

    /// Releases it: the keep-alives stop and the lease is revoked, deleting the key.
    public func release() async {
        keeper.cancel()
        _ = try? await client.revokeLease(lease)
    }
}

extension FaunaClient {
    /// Waits until this client holds the lock `name` (etcd's concurrency.Mutex): it grants a
    /// lease of `ttlSeconds`, keeps it alive, puts `name/<lease>` with it, and holds the lock once
    /// no key under `name/` was created before its own — waiting, with a watch, for the deletion
    /// of the one just before it. Fair (first come, first served); a holder that dies releases
    /// it within its TTL plus an election timeout. A lease that expires before its key is
    /// written (this client paused for longer than the TTL) is replaced by a new one, at most
    /// `queueAttemptsMax` times in all.
    public func lock(_ name: [UInt8], ttlSeconds: UInt64 = 10, deadline: Duration? = nil) async throws(FaunaClientError) -> FaunaLease {
        try await queue(name, value: [], ttlSeconds: ttlSeconds, deadline: deadline)
    }

    /// Campaigns in the election `name` with `value` (etcd's concurrency.Election): the
    /// candidate whose key under `name/` was created first leads; this returns once it is this
    /// client. `observe` reads who leads.
    public func campaign(_ name: [UInt8], value: [UInt8], ttlSeconds: UInt64 = 10, deadline: Duration? = nil) async throws(FaunaClientError) -> FaunaLease {
        try await queue(name, value: value, ttlSeconds: ttlSeconds, deadline: deadline)
    }

    /// The leader of election `name` now: the key created first under `name/` and its value;
    /// nil if no one campaigns.
    public func electionLeader(_ name: [UInt8]) async throws(FaunaClientError) -> KVKeyValue? {
        try await waiters(Self.prefix(name)).records.first
    }

    static func prefix(_ name: [UInt8]) -> [UInt8] { name + [UInt8(ascii: "/")] }

    /// The keys under `prefix`, oldest first (by create revision), and the read's revision.
    private func waiters(_ prefix: [UInt8]) async throws(FaunaClientError) -> (records: [KVKeyValue], revision: Revision) {
        let result = try await range(KVRangeRequest(range: .prefix(prefix)))
        return (result.records.sorted { $0.record.createRevision < $1.record.createRevision }, result.revision)
    }

    /// Times a lease may be granted again when it expired before its key was queued.
    static let queueAttemptsMax = 3

    private func queue(_ name: [UInt8], value: [UInt8], ttlSeconds: UInt64, deadline: Duration?) async throws(FaunaClientError) -> FaunaLease {
        let giveUp = deadline.map { ContinuousClock.now + $0 }
        for _ in 0..<Self.queueAttemptsMax {
            if let queued = try await queueOnce(name, value: value, ttlSeconds: ttlSeconds, until: giveUp) { return queued }
        }
        throw FaunaClientError(.leaseNotFound, "queueing under \(String(decoding: name, as: UTF8.self)): the lease expired before its key "
            + "was written, \(Self.queueAttemptsMax) times (no keep-alive reached the leader within its TTL of \(ttlSeconds) s)")
    }

    /// One attempt: nil if the lease expired before its key was written (nothing is held
    /// then, so a fresh lease can queue again).
    private func queueOnce(
        _ name: [UInt8], value: [UInt8], ttlSeconds: UInt64, until giveUp: ContinuousClock.Instant?
    ) async throws(FaunaClientError) -> FaunaLease? {
        let granted = try await grantLease(ttlSeconds: ttlSeconds)
        let keeper = keepAlive(granted.id)
        let prefix = Self.prefix(name)
        let key = prefix + Array(String(granted.id, radix: 16).utf8)
        do throws(FaunaClientError) {
            let put = try await self.put(key, value, lease: granted.id)
            switch put.outcome {
            case .success: break
            case .invalid(let e) where e.code == .leaseNotFound:
                keeper.cancel()
                return nil
            default:
                throw FaunaClientError(.internal, "queueing under \(String(decoding: name, as: UTF8.self)): \(put.outcome)")
            }
            let mine = put.revision
            while true {
                let (records, revision) = try await waiters(prefix)
                guard records.contains(where: { $0.key == key }) else {
                    throw FaunaClientError(.leaseNotFound, "lease \(granted.id) expired while waiting (no keep-alive reached the leader for its TTL)")
                }
                guard let blocker = records.last(where: { $0.record.createRevision < mine }) else {
                    return FaunaLease(key: key, lease: granted.id, revision: mine, keeper: keeper, client: self)
                }
                try await waitForDelete(of: blocker.key, after: revision, until: giveUp)
            }
        } catch {
            keeper.cancel()
            _ = try? await revokeLease(granted.id)
            throw error
        }
    }

    /// Returns once `key` is deleted after `revision` (or at once if it is already), or throws
    /// `timeout` at `until`.
    private func waitForDelete(of key: [UInt8], after revision: Revision, until: ContinuousClock.Instant?) async throws(FaunaClientError) {
        let watch = self.watch(.single(key), from: revision.rawValue + 1, options: [.noPut])
        defer { watch.cancel() }
        let result: Result<Void, FaunaClientError> = await withTaskGroup(of: Result<Void, FaunaClientError>?.self) { group in
            group.addTask {
                do {
                    for try await batch in watch where !batch.events.isEmpty { return .success(()) }
                    return .failure(FaunaClientError(.cancelled, "the watch ended"))
                } catch let error as FaunaClientError {
                    // History compacted past the start: look again at who waits.
                    return error.code == .compacted ? .success(()) : .failure(error)
                } catch {
                    return .failure(FaunaClientError(.internal, "\(error)"))
                }
            }
            if let until {
                group.addTask {
                    try? await Task.sleep(until: until)
                    return .failure(FaunaClientError(.timeout, "still waiting at the deadline"))
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(FaunaClientError(.cancelled, "cancelled"))
        }
        try result.get()
    }
}
