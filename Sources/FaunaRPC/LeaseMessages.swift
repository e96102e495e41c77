import FaunaKV

// docs/PROTOCOL.md "Leases". Grants and revokes are writes (KV commands 7 and 8); these are
// the requests the leader answers from its timers.

/// A renewed lease: it lives `ttlSeconds` from the leader's receipt of the keep-alive.
public struct LeaseKeepAliveResponse: Hashable, Sendable {
    public var id: UInt64
    public var ttlSeconds: UInt64

    public init(id: UInt64, ttlSeconds: UInt64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
    }

    func encode(into w: inout WireWriter) {
        w.varint(id)
        w.varint(ttlSeconds)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(id: try Self.leaseID(&r), ttlSeconds: try r.varint("ttlSeconds"))
    }

    static func leaseID(_ r: inout WireReader) throws(RPCDecodingError) -> UInt64 {
        let id = try r.varint("lease ID")
        guard id != 0 else { throw RPCDecodingError(.invalidValue, "lease ID: got 0, want >= 1") }
        return id
    }
}

/// Ask for a lease's TTL, time left and (optionally) its keys.
public struct LeaseTimeToLiveRequest: Hashable, Sendable {
    public var id: UInt64
    public var withKeys: Bool

    public init(id: UInt64, withKeys: Bool = false) {
        self.id = id
        self.withKeys = withKeys
    }

    func encode(into w: inout WireWriter) {
        w.varint(id)
        w.flag(withKeys)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        self.init(id: try LeaseKeepAliveResponse.leaseID(&r), withKeys: try r.flag("withKeys"))
    }
}

/// A lease as the leader sees it.
public struct LeaseInfo: Hashable, Sendable {
    public var id: UInt64
    public var ttlSeconds: UInt64
    /// Time left before the leader revokes it, in milliseconds.
    public var remainingMilliseconds: UInt64
    public var grantRevision: UInt64
    /// Its keys, in key order (when asked; at most `keysMax`).
    public var keys: [[UInt8]]
    /// Whether it has more keys than `keys`.
    public var truncated: Bool

    /// Keys one answer lists at most.
    public static let keysMax = 10_000

    public init(id: UInt64, ttlSeconds: UInt64, remainingMilliseconds: UInt64, grantRevision: UInt64, keys: [[UInt8]] = [], truncated: Bool = false) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.remainingMilliseconds = remainingMilliseconds
        self.grantRevision = grantRevision
        self.keys = keys
        self.truncated = truncated
    }

    func encode(into w: inout WireWriter) {
        w.varint(id)
        w.varint(ttlSeconds)
        w.varint(remainingMilliseconds)
        w.varint(grantRevision)
        w.flag(truncated)
        w.varint(UInt64(keys.count))
        for key in keys { w.lengthPrefixed(key) }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try LeaseKeepAliveResponse.leaseID(&r)
        let ttl = try r.varint("ttlSeconds")
        let remaining = try r.varint("remainingMs")
        let grant = try r.varint("grantRevision")
        let truncated = try r.flag("truncated")
        let n = try r.itemCount("keys", max: Self.keysMax, minBytes: 2)
        var keys: [[UInt8]] = []
        keys.reserveCapacity(n)
        for _ in 0..<n {
            let key = try r.lengthPrefixed("key", max: KVLimits.keyBytesMax)
            guard !key.isEmpty else { throw RPCDecodingError(.invalidValue, "lease key: got 0 bytes, want >= 1") }
            keys.append(key)
        }
        self.init(id: id, ttlSeconds: ttl, remainingMilliseconds: remaining, grantRevision: grant, keys: keys, truncated: truncated)
    }
}

/// One lease of a `leaseList` answer.
public struct LeaseStatus: Hashable, Sendable {
    public var id: UInt64
    public var ttlSeconds: UInt64
    public var remainingMilliseconds: UInt64

    public init(id: UInt64, ttlSeconds: UInt64, remainingMilliseconds: UInt64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.remainingMilliseconds = remainingMilliseconds
    }

    static func encodeList(_ list: [LeaseStatus], into w: inout WireWriter) {
        w.varint(UInt64(list.count))
        for l in list {
            w.varint(l.id)
            w.varint(l.ttlSeconds)
            w.varint(l.remainingMilliseconds)
        }
    }

    static func decodeList(_ r: inout WireReader) throws(RPCDecodingError) -> [LeaseStatus] {
        let n = try r.itemCount("leases", max: KVLimits.leasesMax, minBytes: 3)
        var list: [LeaseStatus] = []
        list.reserveCapacity(n)
        for _ in 0..<n {
            list.append(LeaseStatus(
                id: try LeaseKeepAliveResponse.leaseID(&r), ttlSeconds: try r.varint("ttlSeconds"), remainingMilliseconds: try r.varint("remainingMs")))
        }
        return list
    }
}
