import ArgumentParser
import FaunaRPC
import FctlCore

/// `fctl bench put|get|txn|mixed`: a closed-loop load generator (docs/CLI.md "fctl bench").
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput and latency with a closed-loop load (release builds only).",
        discussion: """
            --clients workers each keep one request in flight, spread over --conns client instances. \
            The run stops after --total requests or --duration seconds, whichever comes first \
            (default --total 10000). Progress once a second on stderr; at the end ops/s, latency \
            percentiles in ms and errors by kind (--json: one object). Exit 0 if no request failed, \
            1 if some did (after the client's retries), 2 for bad options. Reference: docs/CLI.md.
            """,
        subcommands: [BenchPut.self, BenchGet.self, BenchTxn.self, BenchMixed.self, BenchKeepAlive.self]
    )
}

/// Options of every bench workload.
struct BenchOptions: ParsableArguments {
    @Option(help: "Concurrent requests in flight (1...\(BenchParameters.clientsMax)).") var clients = 16
    @Option(help: "Client instances (one connection per node each); clients spread over them.") var conns = 1
    @Option(help: "Stop after this many requests (default \(BenchParameters.totalDefault) if --duration is not given).")
    var total: Int?
    @Option(help: "Stop after this many seconds (at most \(Int(BenchParameters.durationSecondsMax))).") var duration: Double?
    @Option(name: .customLong("key-size"), help: "Key bytes (see --key-format).") var keySize = 8
    @Option(
        name: .customLong("key-format"),
        help: "decimal: the key index as zero-padded digits; varint: etcd's benchmark keys (zig-zag varint of the index in a --key-size buffer, stale bytes kept).")
    var keyFormat = "decimal"
    // Not `--key`: that is the TLS client key of the global options (a second `--key` made
    // every `fctl bench` fail to parse in debug builds, and `--key K` read as a TLS key file).
    @Option(
        name: .customLong("one-key"),
        help: "Send every request to this one key (UTF-8) instead of the key space, as etcd's `benchmark range KEY`; --preload then writes just it.")
    var oneKey: String?
    @Option(name: .customLong("val-size"), help: "Value bytes (random, drawn once per run).") var valSize = 256
    @Option(
        name: .customLong("values"),
        help: "Distinct random values per run (key i gets value i mod N); 1: every write the same value, as etcd's benchmark.")
    var distinctValues = 1
    @Option(name: .customLong("key-space"), help: "Keys are indexes 0..<K (at most \(BenchParameters.keySpaceMax)).")
    var keySpace = 100_000
    @Flag(help: "Zipf key popularity (s = \(BenchParameters.zipfExponent), index 0 hottest) instead of uniform.")
    var zipf = false
    @Flag(help: "Write every key of the key space (or the --one-key) once before measuring (same clients).") var preload = false
    @Option(help: "Seed of keys, values and the read/write mix (default: random; printed).") var seed: UInt64?
    @Option(help: "Watchers open on one node during the measured phase (0...\(BenchParameters.watchersMax)); the report adds the events they received.")
    var watchers = 0
    @Option(
        name: .customLong("watch-range"),
        help: "all: every watcher watches every key (each put reaches every watcher); slice: watcher i of W watches key indexes [i·K/W, (i+1)·K/W) (each put reaches one).")
    var watchRange = "all"
    @Option(name: .customLong("watch-endpoint"), help: "The node the watchers use, host:port (default: the first endpoint).")
    var watchEndpoint: String?

    /// The parameters of a `workload` run, validated.
    func parameters(_ workload: BenchWorkload) throws(FctlError) -> BenchParameters {
        var p = BenchParameters(workload: workload)
        p.clients = clients
        p.connections = conns
        p.total = total
        p.durationSeconds = duration
        p.keyBytes = keySize
        guard let format = BenchKeyFormat(rawValue: keyFormat) else {
            throw FctlError(.usage, "bench: --key-format \(keyFormat): want decimal or varint")
        }
        p.keyFormat = format
        p.fixedKey = oneKey.map { Array($0.utf8) }
        p.valueBytes = valSize
        p.distinctValues = distinctValues
        p.keySpace = keySpace
        p.distribution = zipf ? .zipf : .uniform
        p.preload = preload
        p.seed = seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
        p.watchers = watchers
        guard let range = BenchWatchRange(rawValue: watchRange) else {
            throw FctlError(.usage, "bench: --watch-range \(watchRange): want all or slice")
        }
        p.watchRange = range
        p.watchEndpoint = watchEndpoint
        return try p.validated()
    }
}

/// Parses `--consistency`.
func benchConsistency(_ text: String) throws(FctlError) -> ReadConsistency {
    switch text {
    case "linearizable": return .linearizable
    case "serializable": return .serializable
    default: throw FctlError(.usage, "bench: --consistency \(text): want linearizable or serializable")
    }
}

struct BenchPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Put(key, value) requests.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: BenchOptions

    func run() async throws {
        try await BenchRunner(global: global, parameters: try options.parameters(.put)).run()
    }
}

struct BenchGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Get(key) requests (use --preload so keys exist).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: BenchOptions
    @Option(help: "linearizable (leader, ReadIndex) or serializable (any node, may be stale).")
    var consistency = "linearizable"
    @Flag(help: "Verified reads (get --verify: record, journal entry, inclusion proof, a quorum of signed heads, consistency); keys pinned in memory at start.")
    var verify = false

    func run() async throws {
        var p = try options.parameters(.get)
        p.consistency = try benchConsistency(consistency)
        p.verify = verify
        guard !(verify && p.consistency == .serializable) else { throw FctlError(.usage, "bench get: --verify reads linearizably; drop --consistency serializable") }
        try await BenchRunner(global: global, parameters: p).run()
    }
}

struct BenchTxn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn",
        abstract: "Compare-and-put on one key: if value(key) = V then put(key, V); no else branch.",
        discussion: "Without --preload a key holds V only once a put wrote it, so most compares fail (counted as txnElse).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: BenchOptions

    func run() async throws {
        try await BenchRunner(global: global, parameters: try options.parameters(.txn)).run()
    }
}

struct BenchMixed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mixed", abstract: "Gets and puts, --read-ratio of them gets.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: BenchOptions
    @Option(name: .customLong("read-ratio"), help: "Fraction of requests that are gets (0...1).") var readRatio = 0.9
    @Option(help: "Consistency of the gets: linearizable or serializable.") var consistency = "linearizable"

    func run() async throws {
        var p = try options.parameters(.mixed)
        p.readRatio = readRatio
        p.consistency = try benchConsistency(consistency)
        try await BenchRunner(global: global, parameters: try p.validated()).run()
    }
}

struct BenchKeepAlive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keepalive",
        abstract: "Lease keep-alives: grants --leases leases, then renews them round-robin at the leader.",
        discussion: """
            The preload phase grants the leases (always run). Each lease is then renewed once every \
            leases ÷ (ops/s) seconds: below its TTL, none expires, and the report counts the leases \
            still alive at the end (leasesAlive). The leases are left to expire after the run.
            """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: BenchOptions
    @Option(help: "Leases to grant and keep alive (1...\(BenchParameters.leasesMax)).") var leases = 1000
    @Option(help: "Their TTL in seconds.") var ttl: UInt64 = 30

    func run() async throws {
        var p = try options.parameters(.keepalive)
        p.leases = leases
        p.leaseTTLSeconds = ttl
        p.preload = true
        try await BenchRunner(global: global, parameters: try p.validated()).run()
    }
}
