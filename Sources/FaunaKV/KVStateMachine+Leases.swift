/// A lease as the replicated state holds it (docs/KV-COMMANDS.md "Leases"). When it expires
/// is not state: only the leader keeps a clock for it, and proposes the revoke.
public struct KVLease: Hashable, Sendable {
    public var id: UInt64
    public var ttlSeconds: UInt64
    /// The revision of the entry that granted it.
    public var grantRevision: Revision
    /// The time to live the leader last recorded for it (`leaseCheckpoint`); nil: none since
    /// the grant (a new leader then counts the whole TTL).
    public var remainingMilliseconds: UInt64?

    public init(id: UInt64, ttlSeconds: UInt64, grantRevision: Revision, remainingMilliseconds: UInt64? = nil) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.grantRevision = grantRevision
        self.remainingMilliseconds = remainingMilliseconds
    }

    /// `u8 version=1 | u64 ttlSeconds | u64 grantRevision | flag hasRemaining | [u64 remainingMs]`.
    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u64(ttlSeconds)
        w.u64(grantRevision.rawValue)
        w.flag(remainingMilliseconds != nil)
        if let remainingMilliseconds { w.u64(remainingMilliseconds) }
        return w.bytes
    }

    init(id: UInt64, decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "lease \(id)")
        let version = try r.u8("format version")
        guard version == 1 else { throw KVDecodingError(.unsupportedVersion, "lease format version: got \(version), want 1") }
        let ttl = try r.u64("ttl")
        let grant = Revision(try r.u64("grant revision"))
        let remaining: UInt64? = try r.flag("has remaining") ? r.u64("remaining ms") : nil
        try r.finish()
        self.init(id: id, ttlSeconds: ttl, grantRevision: grant, remainingMilliseconds: remaining)
    }
}

/// What applying one entry did to leases: in memory only, for the node's lessor (the leader's
/// timers), which follows the applied state.
public enum KVLeaseChange: Hashable, Sendable {
    case granted(KVLease)
    case revoked(UInt64)
    case checkpointed(id: UInt64, remainingMilliseconds: UInt64)
}

/// Meta keys of leases (all under `kv/`).
enum LeaseKey {
    static let prefix = Array("kv/lease/".utf8)
    static let attachedPrefix = Array("kv/lease-key/".utf8)
    static let count = Array("kv/lease-count".utf8)

    static func lease(_ id: UInt64) -> [UInt8] { prefix + encodeUInt64(id) }
    /// The keys attached to lease `id` begin with this.
    static func attached(_ id: UInt64) -> [UInt8] { attachedPrefix + encodeUInt64(id) }
    static func attached(_ id: UInt64, _ key: [UInt8]) -> [UInt8] { attached(id) + key }
}

extension KVStateMachine {
    func leaseGrant(_ grant: KVLeaseGrant, at revision: Revision, _ view: inout KVReadView) throws -> KVOperationResult {
        let id = grant.id == 0 ? revision.rawValue : grant.id
        if try view.metaValue(forKey: LeaseKey.lease(id)) != nil {
            throw AbortOutcome(outcome: .invalid(KVCommandError(.leaseExists, "lease \(id) exists; grant another ID or 0")))
        }
        let count = try leaseCount(view)
        guard count < UInt64(KVLimits.leasesMax) else {
            throw AbortOutcome(outcome: .invalid(KVCommandError(.leasesFull, "leases: \(count) exist, want < \(KVLimits.leasesMax); revoke some")))
        }
        let lease = KVLease(id: id, ttlSeconds: grant.ttlSeconds, grantRevision: revision)
        view.setMeta(lease.encoded, forKey: LeaseKey.lease(id))
        view.setMeta(encodeUInt64(count + 1), forKey: LeaseKey.count)
        view.leaseChanges.append(.granted(lease))
        return .lease(id: id, ttlSeconds: grant.ttlSeconds)
    }

    /// Deletes every key attached to lease `id` (a delete at `revision` each, in key order:
    /// they appear in watches and in the entry's effects), then the lease.
    func leaseRevoke(_ id: UInt64, at revision: Revision, _ view: inout KVReadView) throws -> KVOperationResult {
        guard try view.metaValue(forKey: LeaseKey.lease(id)) != nil else {
            throw AbortOutcome(outcome: .invalid(KVCommandError(.leaseNotFound, "lease \(id) not found (never granted, revoked or expired)")))
        }
        let prefix = LeaseKey.attached(id)
        var keys: [[UInt8]] = []
        try view.scanMeta(in: .prefix(prefix)) { key, _ in
            keys.append(Array(key.dropFirst(prefix.count)))
            return true
        }
        var deleted = 0
        for key in keys {
            view.setMeta(nil, forKey: prefix + key)
            guard let record = try view.record(forKey: key), record.lease == id else { continue }
            Self.supersede(record, ofKey: key, at: revision, &view)
            view.setRecord(nil, forKey: key)
            view.setHistory(.tombstone, forKey: key, at: revision)
            deleted += 1
        }
        view.setMeta(nil, forKey: LeaseKey.lease(id))
        view.setMeta(encodeUInt64(try leaseCount(view) - 1), forKey: LeaseKey.count)
        view.leaseChanges.append(.revoked(id))
        return .deleteRange(deleted: deleted, previous: [])
    }

    /// Records remaining TTLs; a lease revoked meanwhile is skipped.
    func leaseCheckpoint(_ list: [KVLeaseCheckpoint], _ view: inout KVReadView) throws {
        for c in list {
            guard let bytes = try view.metaValue(forKey: LeaseKey.lease(c.id)) else { continue }
            var lease = try KVLease(id: c.id, decoding: bytes)
            lease.remainingMilliseconds = min(c.remainingMilliseconds, lease.ttlSeconds * 1000)
            view.setMeta(lease.encoded, forKey: LeaseKey.lease(c.id))
            view.leaseChanges.append(.checkpointed(id: c.id, remainingMilliseconds: lease.remainingMilliseconds!))
        }
    }

    /// Keeps the lease index of `key` in step with its new record (`lease` 0: none): a put
    /// with another lease, or none, detaches it from the one it had.
    static func reattach(_ key: [UInt8], from old: UInt64, to new: UInt64, _ view: inout KVReadView) {
        guard old != new else { return }
        if old != 0 { view.setMeta(nil, forKey: LeaseKey.attached(old, key)) }
        if new != 0 { view.setMeta([], forKey: LeaseKey.attached(new, key)) }
    }

    func requireLease(_ id: UInt64, for key: [UInt8], _ view: KVReadView) throws {
        guard id != 0, try view.metaValue(forKey: LeaseKey.lease(id)) == nil else { return }
        throw AbortOutcome(outcome: .invalid(KVCommandError(.leaseNotFound, "put lease \(id): no such lease (never granted, revoked or expired)")))
    }

    private func leaseCount(_ view: KVReadView) throws -> UInt64 {
        guard let bytes = try view.metaValue(forKey: LeaseKey.count) else { return 0 }
        return try decodeUInt64(bytes, "kv/lease-count")
    }

    // MARK: Reads (outside the log)

    /// Every lease, by ID.
    public func leases(on backend: some KVBackend) throws -> [KVLease] {
        var out: [KVLease] = []
        var failure: KVDecodingError?
        try backend.scanMeta(in: .prefix(LeaseKey.prefix)) { key, value in
            let suffix = Array(key.dropFirst(LeaseKey.prefix.count))
            guard suffix.count == 8 else {
                failure = KVDecodingError(.invalidValue, "lease key: got \(suffix.count) bytes after the prefix, want 8")
                return false
            }
            let id = suffix.reduce(0) { $0 << 8 | UInt64($1) }
            do throws(KVDecodingError) { out.append(try KVLease(id: id, decoding: value)) } catch {
                failure = error
                return false
            }
            return true
        }
        if let failure { throw failure }
        return out
    }

    /// Lease `id` (nil: none) and at most `keysMax` of its keys, in key order; `truncated` if
    /// it has more.
    public func lease(_ id: UInt64, keysMax: Int, on backend: some KVBackend) throws -> (lease: KVLease, keys: [[UInt8]], truncated: Bool)? {
        guard let bytes = try backend.metaValue(forKey: LeaseKey.lease(id)) else { return nil }
        let lease = try KVLease(id: id, decoding: bytes)
        let prefix = LeaseKey.attached(id)
        var keys: [[UInt8]] = []
        var truncated = false
        try backend.scanMeta(in: .prefix(prefix)) { key, _ in
            guard keys.count < keysMax else {
                truncated = true
                return false
            }
            keys.append(Array(key.dropFirst(prefix.count)))
            return true
        }
        return (lease, keys, truncated)
    }
}
