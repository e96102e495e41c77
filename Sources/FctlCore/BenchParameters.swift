import FaunaKV
import FaunaRPC

/// What `fctl bench` sends.
public enum BenchWorkload: String, CaseIterable, Sendable {
    /// Put(key, value).
    case put
    /// Get(key) at `consistency`.
    case get
    /// A compare-and-put on one key: `if value(key) = V then put(key, V)` (no else branch).
    case txn
    /// `readRatio` of gets, the rest puts.
    case mixed
    /// Lease keep-alives at the leader, round-robin over `leases` leases granted first (the
    /// "preload" phase grants them).
    case keepalive
}

/// Which keys each of `--watchers` watches.
public enum BenchWatchRange: String, Sendable, CaseIterable {
    /// Every watcher watches every key: each put is an event for every watcher (fan-out).
    case all
    /// Watcher i of W watches key indexes [i·K/W, (i+1)·K/W): each put is an event for one.
    case slice
}

/// How keys are drawn from the key space.
public enum BenchKeyDistribution: String, Sendable {
    /// Every index equally likely.
    case uniform
    /// Zipf with exponent `BenchParameters.zipfExponent` (index 0 hottest).
    case zipf
}

/// How a key index becomes key bytes.
public enum BenchKeyFormat: String, Sendable, CaseIterable {
    /// Zero-padded ASCII decimal, `--key-size` digits: index 42 is `00000042`.
    case decimal
    /// etcd's tools/benchmark: the zig-zag varint of the index written over the start of a
    /// `--key-size` buffer kept per client, whose other bytes keep what a longer earlier key
    /// left there (~8% of random puts land outside the preloaded keys; docs/PERFORMANCE.md
    /// "Fauna vs etcd"). The preload writes keys in order, so it leaves no stale bytes.
    case varint
}

/// The parameters of one `fctl bench` run, checked by `validated()` before any request.
public struct BenchParameters: Sendable, Hashable {
    /// Concurrent requests in flight at most; the hard cap on `clients`.
    public static let clientsMax = 4096
    /// FaunaClient instances (connections per node) at most.
    public static let connectionsMax = 256
    /// Requests per run at most.
    public static let totalMax = 100_000_000
    /// Seconds per run at most.
    public static let durationSecondsMax = 3600.0
    /// Keys at most (the zipf table holds 8 bytes per key: 80 MB at this limit).
    public static let keySpaceMax = 10_000_000
    /// Requests per run when neither `total` nor `durationSeconds` is given.
    public static let totalDefault = 10_000
    /// The zipf exponent used by `--zipf` (YCSB's and etcd's 0.99).
    public static let zipfExponent = 0.99
    /// Watchers at most: a node's default cap (WatchSettings.watchersMax).
    public static let watchersMax = 10_000
    /// Leases at most: the state machine's cap.
    public static let leasesMax = KVLimits.leasesMax

    public var workload: BenchWorkload
    /// Concurrent workers, each with one request in flight (closed loop); 1...clientsMax.
    public var clients = 16
    /// FaunaClient instances the workers are spread over round-robin; 1...min(clients, connectionsMax).
    public var connections = 1
    /// Stop after this many requests (nil: no count bound).
    public var total: Int?
    /// Stop after this many seconds (nil: no time bound). At least one of the two is set after `validated()`.
    public var durationSeconds: Double?
    public var keyBytes = 8
    public var keyFormat = BenchKeyFormat.decimal
    /// Every request uses this key instead of one drawn from the key space (etcd's
    /// `benchmark range KEY`); the preload then writes just this key.
    public var fixedKey: [UInt8]?
    public var valueBytes = 256
    /// Distinct values drawn per run; key i is written with value i mod distinctValues. 1 (the
    /// default, as etcd's benchmark): every write carries the same value, which RocksDB's block
    /// compression shrinks to almost nothing and a sealed value does not (docs/PERFORMANCE.md).
    public var distinctValues = 1
    /// At most this many bytes of distinct values are held, counting each value as at least
    /// 64 bytes (an array's own storage).
    public static let distinctValueBytesMax = 64 << 20
    /// Keys are indexes 0..<keySpace; at most keySpaceMax and 10^keyBytes.
    public var keySpace = 100_000
    public var distribution = BenchKeyDistribution.uniform
    /// Consistency of gets (`get`, `mixed`).
    public var consistency = ReadConsistency.linearizable
    /// Gets are verified reads (docs/AUDIT.md §10).
    public var verify = false
    /// Fraction of gets in `mixed`, 0...1.
    public var readRatio = 0.9
    /// Write every key once before measuring.
    public var preload = false
    /// Seeds keys, values and the operation mix; printed so a run can be replayed.
    public var seed: UInt64 = 1
    /// Watchers on one node during the measured phase (0: none).
    public var watchers = 0
    public var watchRange = BenchWatchRange.all
    /// The node the watchers use, `host:port` (nil: the first endpoint).
    public var watchEndpoint: String?
    /// `keepalive`: leases granted, and their TTL.
    public var leases = 1000
    public var leaseTTLSeconds: UInt64 = 30

    public init(workload: BenchWorkload) { self.workload = workload }

    /// These parameters with the default bound filled in, or a usage error in "got X, want Y" form.
    public func validated() throws(FctlError) -> BenchParameters {
        var p = self
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(FctlError) {
            if !ok { throw FctlError(.usage, "bench: \(message())") }
        }
        try check((1...Self.clientsMax).contains(clients), "--clients \(clients): want 1...\(Self.clientsMax)")
        try check(
            connections >= 1 && connections <= min(clients, Self.connectionsMax),
            "--conns \(connections): want 1...\(min(clients, Self.connectionsMax)) (at most --clients)")
        if let total { try check((1...Self.totalMax).contains(total), "--total \(total): want 1...\(Self.totalMax)") }
        if let durationSeconds {
            try check(
                durationSeconds > 0 && durationSeconds <= Self.durationSecondsMax,
                "--duration \(durationSeconds): want 0 < seconds <= \(Int(Self.durationSecondsMax))")
        }
        if p.total == nil && p.durationSeconds == nil { p.total = Self.totalDefault }
        try check(
            (1...KVLimits.keyBytesMax).contains(keyBytes), "--key-size \(keyBytes): want 1...\(KVLimits.keyBytesMax)")
        try check(
            (0...KVLimits.valueBytesMax).contains(valueBytes),
            "--val-size \(valueBytes): want 0...\(KVLimits.valueBytesMax)")
        try check((1...Self.keySpaceMax).contains(keySpace), "--key-space \(keySpace): want 1...\(Self.keySpaceMax)")
        try check(
            distinctValues >= 1 && distinctValues <= Self.distinctValueBytesMax / max(valueBytes, 64),
            "--values \(distinctValues): want 1...\(Self.distinctValueBytesMax / max(valueBytes, 64)) (\(Self.distinctValueBytesMax >> 20) MiB of values of --val-size \(valueBytes), each counted as at least 64 B)")
        switch keyFormat {
        case .decimal:
            let capacity = BenchKeys.capacity(width: keyBytes)
            try check(
                keySpace <= capacity,
                "--key-space \(keySpace) does not fit in --key-size \(keyBytes) decimal digits: want at most \(capacity) keys or a larger --key-size")
        case .varint:
            let needed = BenchKeys.varintBytes(keySpace - 1)
            try check(
                needed <= keyBytes,
                "--key-space \(keySpace) needs \(needed)-byte varints: want --key-size >= \(needed)")
        }
        if let fixedKey {
            try check(
                (1...KVLimits.keyBytesMax).contains(fixedKey.count),
                "--key of \(fixedKey.count) bytes: want 1...\(KVLimits.keyBytesMax)")
            try check(distribution == .uniform, "--key and --zipf: a fixed key has no popularity; drop one")
        }
        try check(readRatio >= 0 && readRatio <= 1, "--read-ratio \(readRatio): want 0...1")
        try check((0...Self.watchersMax).contains(watchers), "--watchers \(watchers): want 0...\(Self.watchersMax)")
        if watchers > 0 && watchRange == .slice {
            try check(keyFormat == .decimal && fixedKey == nil, "--watch-range slice needs decimal keys from the key space (no --key, no --key-format varint)")
            try check(watchers <= keySpace, "--watch-range slice: --watchers \(watchers) above --key-space \(keySpace)")
        }
        if workload == .keepalive {
            try check((1...Self.leasesMax).contains(leases), "--leases \(leases): want 1...\(Self.leasesMax)")
            try check((1...31_536_000).contains(leaseTTLSeconds), "--ttl \(leaseTTLSeconds): want 1...31536000 seconds")
            try check(watchers == 0, "--watchers goes with workloads that write keys, not keepalive")
        }
        return p
    }

    /// The parameters as JSON fields.
    public var json: [String: Any] {
        var fields: [String: Any] = [
            "workload": workload.rawValue, "clients": clients, "conns": connections, "keySize": keyBytes,
            "valSize": valueBytes, "keySpace": keySpace, "distribution": distribution.rawValue,
            "preload": preload, "seed": seed, "keyFormat": keyFormat.rawValue,
        ]
        if let fixedKey { fields["key"] = String(decoding: fixedKey, as: UTF8.self) }
        if distinctValues > 1 { fields["values"] = distinctValues }
        if distribution == .zipf { fields["zipfExponent"] = Self.zipfExponent }
        if let total { fields["total"] = total }
        if let durationSeconds { fields["durationSeconds"] = durationSeconds }
        if workload == .get || workload == .mixed {
            fields["consistency"] = consistency == .linearizable ? "linearizable" : "serializable"
        }
        if workload == .mixed { fields["readRatio"] = readRatio }
        if verify { fields["verify"] = true }
        if watchers > 0 {
            fields["watchers"] = watchers
            fields["watchRange"] = watchRange.rawValue
        }
        if workload == .keepalive {
            fields["leases"] = leases
            fields["ttlSeconds"] = leaseTTLSeconds
        }
        return fields
    }

    /// One line for humans: the parameters that shape the load.
    public var summary: String {
        var parts = ["clients \(clients)", "conns \(connections)"]
        if let fixedKey {
            parts.append("one key \(String(decoding: fixedKey, as: UTF8.self))")
        } else {
            parts.append("key \(keyBytes) B \(keyFormat.rawValue)")
        }
        parts.append(distinctValues > 1 ? "value \(valueBytes) B (\(distinctValues) distinct)" : "value \(valueBytes) B")
        if fixedKey == nil {
            parts.append("key space \(keySpace) \(distribution == .zipf ? "zipf s=\(Self.zipfExponent)" : "uniform")")
        }
        if workload == .get || workload == .mixed { parts.append(consistency == .linearizable ? "linearizable" : "serializable") }
        if workload == .mixed { parts.append("read ratio \(readRatio)") }
        if verify { parts.append("verified") }
        if watchers > 0 { parts.append("\(watchers) watchers (\(watchRange.rawValue))") }
        if workload == .keepalive { parts.append("\(leases) leases of \(leaseTTLSeconds) s") }
        if preload { parts.append("preloaded") }
        parts.append("seed \(seed)")
        return parts.joined(separator: ", ")
    }
}
