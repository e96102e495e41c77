import ArgumentParser
import FaunaConfig
import FaunaNode
import FaunaRPC
import FaunaStore
import Foundation
import Logging

@main
enum FaunadMain {
    /// The arguments, or — when the process got none, as happens to Swift programs started
    /// under libfaketime's LD_PRELOAD (the chaos harness's clock-skew nemesis) — the lines of
    /// `FAUNAD_ARGS`.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.isEmpty, let fallback = ProcessInfo.processInfo.environment["FAUNAD_ARGS"] {
            arguments = fallback.split(separator: "\n").map(String.init)
        }
        await Faunad.main(arguments)
    }
}

struct Faunad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faunad",
        abstract: "Run one Fauna node.",
        discussion: """
            Starts the node named by --id from the cluster description in --config (see
            cluster.toml). On its first start a node of the file founds the cluster with every
            node of the file as a voter; with --join an empty node instead waits to be added
            (`fctl member add-learner`). State lives in <data_dir>/<id> (data_dir relative to
            the config file). SIGTERM or SIGINT stops it gracefully.

            Exit status: 0 after a graceful stop; 1 if it cannot start (bad configuration, data
            directory in use, port taken) or stopped on a disk error (fail-stop; the log says
            which file or column family); 64 for a malformed command line.

            A node with a `metrics` address in the file serves /metrics (Prometheus text),
            /livez and /readyz there over HTTP (docs/METRICS.md).
            """)

    @Option(help: "The cluster description (TOML).")
    var config: String = "cluster.toml"

    @Option(help: "This node's id in the configuration, e.g. n1.")
    var id: String

    @Option(help: "Override the data directory of this node.")
    var dataDir: String?

    @Flag(help: "Start empty and wait to be added to a running cluster instead of founding one.")
    var join = false

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(
        name: .customLong("memtable-mib"),
        help: "RocksDB memtables of all column families together stay below this many MiB (16...65536); most of a node's memory. More absorbs longer write bursts before flushing.")
    var memtableMiB: Int = Store.Options().memtableBytesMax >> 20

    @Option(
        name: .customLong("record-cache-mib"),
        help: "Memory for the cache of current records the apply path reads (0...65536 MiB; 0 turns it off). Counts keys, values and the cache's tables.")
    var recordCacheMiB: Int = Store.Options().recordCacheBytes >> 20

    @Option(
        name: .customLong("read-round-us"),
        help: "On the leader, how long at most (microseconds) a heartbeat round confirming linearizable reads waits after the previous round started: all of it once rounds carry 8 reads, proportionally less below (0...100000; 0: back to back). Reads arriving meanwhile share the round: fewer messages per read under load.")
    var readRoundMicros: Int = Int(NodeSettings.readRoundSpacingDefault / .microseconds(1))

    @Option(
        name: .customLong("follower-apply-hold-us"),
        help: "On a follower, how long at most (microseconds) newly committed entries wait before they are applied, so that several are applied at once (0...100000; 0: each append's entries at once). Never on the leader, never while a read waits for them; serializable reads and watches on a follower may see a write up to this much later.")
    var followerApplyHoldMicros: Int = Int(NodeSettings.followerApplyHoldDefault / .microseconds(1))

    @Option(
        name: .customLong("event-loop-threads"),
        help: "Threads serving the peer and client ports (1...64; default 1, or 2 with [tls]). A put crosses the loops several times and each crossing between two loops can cost a wake-up, so one loop suits a plaintext node on a few cores; TLS does its crypto on the loops. On a larger machine more may serve more connections.")
    var eventLoopThreads: Int?

    @Option(
        name: .customLong("ready-disk-free-mib"),
        help: "/readyz reports unready below this many MiB free on the data directory's disk (default: twice the 256 MiB at which writes stop).")
    var readyDiskFreeMiB: Int?

    @Flag(help: "With [encryption] in the configuration: add a fresh data key on start that encrypts everything written from then on; data sealed by older keys stays readable (docs/SECURITY.md \"Encryption at rest\").")
    var rotateDataKey = false

    @Option(help: .hidden)
    var exitWithParent: Int32?

    /// BENCHMARKS ONLY (tools/bench-audit-chain): apply without the journal and the Merkle
    /// tree, to measure what the audit chain costs. The node then answers no audit request and
    /// its data directory does not reopen. Hidden from --help.
    @Flag(help: .hidden)
    var unsafeNoAuditChain = false

    mutating func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            Self.fail("faunad: --log-level \(logLevel): want trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "faunad")
        let settings: NodeSettings
        do {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            let cluster = try ClusterConfig(parsing: text)
            let base = URL(fileURLWithPath: config).deletingLastPathComponent().path
            var s = try NodeSettings(cluster: cluster, name: id, baseDirectory: base)
            if let dataDir { s.dataDirectory = dataDir }
            s.join = join
            if unsafeNoAuditChain { s.storeOptions.auditChain = false }
            if rotateDataKey {
                guard s.storeOptions.masterKey != nil else {
                    Self.fail("faunad: --rotate-data-key: \(config) has no [encryption] master_key")
                }
                s.storeOptions.rotateDataKey = true
            }
            guard (16...65536).contains(memtableMiB) else {
                Self.fail("faunad: --memtable-mib \(memtableMiB): want 16...65536")
            }
            s.storeOptions.memtableBytesMax = memtableMiB << 20
            guard (0...65536).contains(recordCacheMiB) else {
                Self.fail("faunad: --record-cache-mib \(recordCacheMiB): want 0...65536")
            }
            s.storeOptions.recordCacheBytes = recordCacheMiB << 20
            guard (0...100_000).contains(readRoundMicros) else {
                Self.fail("faunad: --read-round-us \(readRoundMicros): want 0...100000")
            }
            s.readRoundSpacing = .microseconds(readRoundMicros)
            guard (0...100_000).contains(followerApplyHoldMicros) else {
                Self.fail("faunad: --follower-apply-hold-us \(followerApplyHoldMicros): want 0...100000")
            }
            s.followerApplyHold = .microseconds(followerApplyHoldMicros)
            if let eventLoopThreads {
                guard (1...64).contains(eventLoopThreads) else {
                    Self.fail("faunad: --event-loop-threads \(eventLoopThreads): want 1...64")
                }
                s.eventLoopThreads = eventLoopThreads
            }
            if let readyDiskFreeMiB {
                guard (0...1 << 30).contains(readyDiskFreeMiB) else {
                    Self.fail("faunad: --ready-disk-free-mib \(readyDiskFreeMiB): want 0...\(1 << 30)")
                }
                s.health.diskFreeBytesMin = UInt64(readyDiskFreeMiB) << 20
            }
            settings = s
        } catch let error as ConfigError {
            Self.fail("faunad: \(config): \(error)")
        } catch {
            Self.fail("faunad: cannot read \(config): \(error.localizedDescription)")
        }

        if unsafeNoAuditChain {
            logger.warning("--unsafe-no-audit-chain: no journal, no Merkle tree (benchmarks only; this data directory will not reopen)")
        }
        let node: FaunaNode
        do {
            node = try await FaunaNode.start(settings: settings, logger: logger)
        } catch {
            Self.fail("faunad: \(id): \(error)")
        }
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stopper = SignalStopper(node: node, logger: logger)
        stopper.install()
        stopper.reloadOnHangUp(settings.tls)
        if let parent = exitWithParent { stopper.watchParent(parent) }
        await node.waitUntilStopped()
        if let failure = node.failure {
            Self.fail("faunad: \(id) stopped: \(failure)")
        }
        withExtendedLifetime(stopper) {}
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(1)
    }
}

/// Turns SIGTERM/SIGINT into a graceful stop.
final class SignalStopper: Sendable {
    let node: FaunaNode
    let logger: Logger
    nonisolated(unsafe) var sources: [DispatchSourceSignal] = []  // set once, before any signal
    nonisolated(unsafe) var parentWatch: [DispatchSourceTimer] = []  // likewise

    init(node: FaunaNode, logger: Logger) {
        self.node = node
        self.logger = logger
    }

    func install() {
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [node, logger] in
                logger.notice("signal \(sig): stopping")
                Task { await node.stop() }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// SIGHUP reads the TLS files again (certificate rotation): new connections use them, open
    /// ones keep theirs; on an error the old ones stay, and the error is logged. Without `[tls]`
    /// there is nothing to reload, and a SIGHUP (a closed terminal, a reflexive `kill -HUP`) is
    /// logged rather than left to its default action, which would stop the node.
    func reloadOnHangUp(_ tls: TLSContexts?) {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { [logger] in
            guard let tls else {
                logger.notice("SIGHUP: nothing to reload (no [tls] section); the node goes on")
                return
            }
            do {
                try tls.reload()
                logger.notice("SIGHUP: TLS certificates reloaded", metadata: ["certificate": "\(tls.files.certificate ?? "-")"])
            } catch {
                logger.error("SIGHUP: TLS certificates NOT reloaded, the previous ones stay: \(error)")
            }
        }
        source.resume()
        sources.append(source)
    }

    /// Test harnesses: stop when the process that started us is gone (even if it crashed).
    func watchParent(_ parent: Int32) {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [node, logger] in
            guard getppid() != parent else { return }
            logger.notice("parent \(parent) is gone: stopping")
            Task { await node.stop() }
        }
        timer.resume()
        parentWatch.append(timer)
    }
}
