import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real `faunad` processes on 127.0.0.1, on ports picked free at run time, in a temporary
/// directory. Every process is started with `--exit-with-parent`, so nothing outlives the
/// test run even if it crashes; `shutdown()` kills them and removes the directory.
final class ProcessCluster: @unchecked Sendable {
    // @unchecked Sendable: used from one test task at a time.
    struct NodeInfo {
        var name: String
        var id: NodeID
        var peer: Int
        var client: Int
        /// The HTTP metrics port: only TLS clusters have one (to check it serves HTTPS).
        var metrics: Int?
    }

    let root: String
    private(set) var nodes: [String: NodeInfo] = [:]
    private var processes: [String: Process] = [:]
    private var clients: [String: RPCClient] = [:]
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let logger = Logger(label: "test-cluster")
    let clusterSettings: String
    /// Where the last write succeeded.
    private var knownLeader: String?
    /// With TLS: the test's own requests present `tls/client.crt` (made by tools/tls-certs).
    private(set) var tls: TLSContexts?
    private let tlsEnabled: Bool
    /// With encryption at rest: the master key file every node names (`[encryption]`).
    let masterKeyPath: String?

    /// A cluster description for `names` (not started). `settings` are extra `[cluster]` keys.
    /// `tls`: a local CA and certificates in `root/tls` (tools/tls-certs) and a `[tls]` section.
    /// `encryption`: a random master key in `root/keys/master.key` (mode 600) and an
    /// `[encryption]` section naming it.
    init(names: [String], settings: String = "", tls: Bool = false, encryption: Bool = false) throws {
        root = NSTemporaryDirectory() + "fauna-e2e-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        clusterSettings = settings
        tlsEnabled = tls
        if encryption {
            let path = "\(root)/keys/master.key"
            try FileManager.default.createDirectory(atPath: "\(root)/keys", withIntermediateDirectories: true)
            let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0 ... 255)) }.joined()
            #expect(FileManager.default.createFile(atPath: path, contents: Data((hex + "\n").utf8), attributes: [.posixPermissions: 0o600]))
            masterKeyPath = path
        } else {
            masterKeyPath = nil
        }
        if tls {
            try Self.issueCertificates(in: "\(root)/tls", for: names)
            self.tls = try TLSContexts(files: TLSFiles(ca: "\(root)/tls/ca.crt", certificate: "\(root)/tls/client.crt", key: "\(root)/tls/client.key"), role: .client)
        }
        let ports = try freePorts(3 * names.count)
        for (i, name) in names.enumerated() {
            nodes[name] = NodeInfo(
                name: name, id: NodeID(UInt64(name.dropFirst())!), peer: ports[3 * i], client: ports[3 * i + 1], metrics: tls ? ports[3 * i + 2] : nil)
        }
        try writeConfig(names: names, file: "cluster.toml")
    }

    static let tlsSection = """

        [tls]
        ca = "tls/ca.crt"
        cert = "tls/{id}.crt"
        key = "tls/{id}.key"
        client_cert = "tls/client.crt"
        client_key = "tls/client.key"
        """

    /// Runs tools/tls-certs (synchronously: only from a test's set-up, before any node runs).
    static func issueCertificates(in dir: String, for names: [String], renew: Bool = false) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["\(repositoryRoot)/tools/tls-certs", dir] + (renew ? ["--renew"] : []) + names
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "tools/tls-certs \(dir) failed")
    }

    /// Adds a node to the description (its own config file names every node so far).
    func addNode(_ name: String) throws {
        let ports = try freePorts(2)
        nodes[name] = NodeInfo(name: name, id: NodeID(UInt64(name.dropFirst())!), peer: ports[0], client: ports[1])
        if tlsEnabled { try Self.issueCertificates(in: "\(root)/tls", for: [name]) }
        try writeConfig(names: nodes.keys.sorted(), file: "\(name).toml")
    }

    private func writeConfig(names: [String], file: String) throws {
        var text = """
            [cluster]
            name = "e2e"
            data_dir = "data"
            tick_ms = 10
            \(clusterSettings.contains("election_ticks") ? "" : "election_ticks = 100")
            heartbeat_ticks = 10
            \(clusterSettings)

            """
        for name in names {
            let n = nodes[name]!
            text += "\n[[node]]\nid = \"\(name)\"\npeer = \"127.0.0.1:\(n.peer)\"\nclient = \"127.0.0.1:\(n.client)\"\n"
            if let m = n.metrics { text += "metrics = \"127.0.0.1:\(m)\"\n" }
        }
        if tlsEnabled { text += Self.tlsSection + "\n" }
        if masterKeyPath != nil { text += "\n[encryption]\nmaster_key = \"keys/master.key\"\n" }
        // Not `atomically`: swift-corelibs-foundation leaves an empty /tmp/TemporaryDirectory.*
        // behind for every atomic write, and no node reads the file before this returns.
        try text.write(toFile: "\(root)/\(file)", atomically: false, encoding: .utf8)
    }

    /// The repository root, from this file's path (Tests/FaunaNodeTests/…).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static var faunadPath: String? {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
            Bundle.main.bundleURL,
        ]
        for dir in candidates {
            let path = dir.appendingPathComponent("faunad").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Starts `name`; `environment` adds variables (e.g. FAUNA_TEST_FAULT) to the inherited ones.
    func start(_ name: String, config: String = "cluster.toml", join: Bool = false, environment: [String: String] = [:]) throws {
        let binary = try #require(Self.faunadPath, "faunad not built (swift build --build-tests)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        var args = ["--config", "\(root)/\(config)", "--id", name, "--exit-with-parent", "\(getpid())", "--log-level", "debug"]
        if join { args.append("--join") }
        process.arguments = args
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let logPath = "\(root)/\(name).log"
        if !FileManager.default.fileExists(atPath: logPath) { try Data().write(to: URL(fileURLWithPath: logPath)) }  // not atomic: no /tmp leftovers
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes[name] = process
    }

    /// Sends `signal`; with SIGKILL or SIGTERM waits (bounded) for the process to end.
    func kill(_ name: String, signal: Int32 = SIGKILL) async {
        guard let p = processes[name] else { return }
        Glibc.kill(p.processIdentifier, signal)
        if signal == SIGKILL || signal == SIGTERM {
            for _ in 0..<1000 where p.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
            processes[name] = nil
        }
        if let c = clients.removeValue(forKey: name) { await c.close() }
    }

    func isRunning(_ name: String) -> Bool { processes[name]?.isRunning ?? false }

    /// Waits (bounded) for `name`'s process to end by itself: how it ended (`.exit` or
    /// `.uncaughtSignal`) and its status, or nil if it is still running after `seconds`.
    func waitForExit(_ name: String, seconds: Double) async -> (reason: Process.TerminationReason, status: Int32)? {
        guard let p = processes[name] else { return nil }
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        guard !p.isRunning else { return nil }
        return (p.terminationReason, p.terminationStatus)
    }

    /// The process ID of `name`, while it runs.
    func processID(of name: String) -> Int32? { processes[name].map(\.processIdentifier) }

    func log(of name: String) -> String { (try? String(contentsOfFile: "\(root)/\(name).log", encoding: .utf8)) ?? "" }

    func dataDirectory(of name: String) -> String { "\(root)/data/\(name)" }

    func shutdown() async {
        for name in processes.keys { await kill(name) }
        for c in clients.values { await c.close() }
        clients = [:]
        try? await group.shutdownGracefully()
        if ProcessInfo.processInfo.environment["FAUNA_KEEP_E2E"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        } else {
            print("e2e data kept in \(root)")
        }
    }

    // MARK: Requests

    /// One request to `name`'s client port; nil if it cannot be reached.
    func call(_ name: String, _ message: RPCMessage, timeout: TimeAmount = .seconds(5)) async -> RPCMessage? {
        guard let node = nodes[name] else { return nil }
        if clients[name] == nil {
            var configuration = RPCClientConfiguration()
            configuration.tls = tls
            clients[name] = try? await RPCClient.connect(
                to: Endpoint(host: "127.0.0.1", port: UInt16(node.client)), configuration: configuration, group: group, logger: logger)
        }
        guard let client = clients[name] else { return nil }
        do {
            return try await client.call(message, timeout: timeout)
        } catch {
            clients[name] = nil
            await client.close()
            return nil
        }
    }

    func status(_ name: String) async -> NodeStatus? {
        if case .statusResponse(let s)? = await call(name, .status(), timeout: .seconds(2)) { return s }
        return nil
    }

    func hashKV(_ name: String) async -> HashKVResult? {
        if case .hashKVResponse(let h)? = await call(name, .hashKV) { return h }
        return nil
    }

    /// Waits (bounded) until one of `among` leads and the others follow it; its name. The
    /// deadline is checked only after a look at the nodes, so a test thread that was held up past
    /// it (e.g. by a busy concurrency pool) still gets one look before failing.
    func waitForLeader(among names: [String], seconds: Double = 60) async throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            var statuses: [String: NodeStatus] = [:]
            for name in names { if let s = await status(name) { statuses[name] = s } }
            if let (name, leader) = statuses.first(where: { $0.value.role == .leader }),
                statuses.count == names.count,
                statuses.values.allSatisfy({ $0.leader == leader.nodeID && $0.term == leader.term })
            {
                return name
            }
            if Date() >= deadline {
                let seen = names.map { name in
                    "\(name): \(statuses[name].map { "\($0.role) term \($0.term) leader \($0.leader.map { "\($0)" } ?? "none")" } ?? "no answer")"
                }
                Issue.record("no leader among \(names) within \(seconds) s: \(seen)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func name(of id: NodeID) -> String? { nodes.values.first { $0.id == id }?.name }

    /// Writes through whichever node leads, following `notLeader` hints and retrying while
    /// there is none, with one client session so retries apply once.
    func write(_ command: KVCommand, session: inout ClientSession, via preferred: [String], seconds: Double = 60) async throws -> KVApplyResult {
        let proposal = KVProposal(session: session, command: command)
        let deadline = Date().addingTimeInterval(seconds)
        var target = knownLeader.flatMap { preferred.contains($0) ? $0 : nil } ?? preferred[0]
        var attempt = 0
        while Date() < deadline {
            attempt += 1
            switch await call(target, .write(WriteRequest(proposal))) {
            case .writeResponse(let result)?:
                knownLeader = target
                session.sequence = SequenceNumber(session.sequence.rawValue + 1)
                return result
            case .error(let e)? where e.code == .notLeader:
                if let hint = e.leaderHint, let n = name(of: hint.nodeID), preferred.contains(n) { target = n } else {
                    target = preferred[attempt % preferred.count]
                }
            default:
                target = preferred[attempt % preferred.count]
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("write \(command) not acknowledged within \(seconds) s")
        throw CancellationError()
    }

    /// Reads `key` on `name`, retrying (bounded) while the node cannot serve it yet — e.g. just
    /// restarted, no leader known (`unavailable`), as a client would.
    /// A membership change through `leader`, retried (bounded) while the leader answers
    /// `unavailable` ("a change is in progress; retry shortly"), as FaunaClient does.
    func changeMembership(_ change: MemberChange, via leader: String) async -> [Member]? {
        var last: RPCMessage?
        for _ in 0..<50 {
            last = await call(leader, .memberChange(change), timeout: .seconds(10))
            switch last {
            case .membersResponse(let list)?: return list
            case .error(let e)? where e.code == .unavailable: try? await Task.sleep(for: .milliseconds(200))
            default: Issue.record("\(change): got \(String(describing: last))"); return nil
            }
        }
        Issue.record("\(change): still refused after 10 s: \(String(describing: last))")
        return nil
    }

    func read(_ name: String, key: [UInt8], consistency: ReadConsistency = .linearizable) async -> KVRangeResult? {
        let request = ReadRequest(KVRangeRequest(range: .single(key)), consistency: consistency)
        let deadline = Date().addingTimeInterval(15)
        repeat {
            switch await call(name, .read(request)) {
            case .readResponse(let r)?: return r
            case .error(let e)? where e.code != .unavailable && e.code != .timeout && e.code != .overloaded: return nil
            default: try? await Task.sleep(for: .milliseconds(100))
            }
        } while Date() < deadline
        return nil
    }

    /// Waits (bounded) until every node in `names` applied the same index and reports the
    /// same state digest and tree root; returns those reports.
    func waitConverged(_ names: [String], seconds: Double = 60) async throws -> [String: HashKVResult] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: HashKVResult] = [:]
        while true {  // one look after the deadline too (see waitForLeader)
            last = [:]
            for name in names { if let h = await hashKV(name) { last[name] = h } }
            if last.count == names.count, Set(last.values.map(\.appliedIndex)).count == 1,
                Set(last.values.map(\.digest)).count == 1, Set(last.values.map(\.treeRoot)).count == 1
            {
                return last
            }
            if Date() >= deadline { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("nodes \(names) did not converge within \(seconds) s: \(last.mapValues { "applied \($0.appliedIndex) tree \($0.treeSize)" })")
        throw CancellationError()
    }
}

/// Ports the kernel says are free now (bound to 127.0.0.1:0, then released).
/// Ports handed out by `freePorts` in this test process: never twice in a run.
private let portsHandedOut = NSLock()
nonisolated(unsafe) private var portsUsed: Set<Int> = []

/// `count` distinct ports on 127.0.0.1 that were free a moment ago, for nodes to bind. Drawn
/// at random below the kernel's ephemeral range (32768–60999 on Debian), where outgoing
/// connections take their local ports, and never one this process handed out before: ports
/// from bind(0) came from that range, and with a dozen clusters starting at once a node
/// found its port taken and never answered (CI, 2026-12-04: "n1: no answer" for 60 s).
func freePorts(_ count: Int) throws -> [Int] {
    portsHandedOut.lock()
    defer { portsHandedOut.unlock() }
    var ports: [Int] = []
    var attempts = 0
    while ports.count < count {
        attempts += 1
        guard attempts <= 10_000 else { throw POSIXError(.EADDRINUSE) }
        let port = Int.random(in: 20_000..<32_768)
        guard !portsUsed.contains(port), !ports.contains(port), portIsFree(port) else { continue }
        ports.append(port)
    }
    portsUsed.formUnion(ports)
    return ports
}

/// Whether 127.0.0.1:`port` can be bound now (the probe is closed again at once).
private func portIsFree(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let len = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
}

extension Array where Element == UInt8 {
    init(_ text: String) { self = Array(text.utf8) }
}

/// Runs a command to its end (killed after `timeout` seconds) with its standard streams in
/// temporary files, not pipes. A pipe's reader waits for every holder of the write end to close
/// it, and the faunad processes other suites start at the same time inherit open descriptors:
/// one that inherited a pipe kept its reader (and the cooperative thread it blocked) waiting
/// until that node stopped, which with two such readers deadlocked the whole test run.
///
/// The wait runs on a thread of its own, not on the test's task: a test that blocked a thread of
/// the cooperative pool (two on this machine) for a command's run starved every other test's
/// tasks — a lease keeper among them missed its TTL.
func runCommand(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: Double = 30) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try runCommandBlocking(executable, arguments, stdin: stdin, timeout: timeout) })
        }
        thread.name = "test-command"
        thread.start()
    }
}

private func runCommandBlocking(_ executable: String, _ arguments: [String], stdin: String?, timeout: Double) throws -> (status: Int32, stdout: String, stderr: String) {
    let dir = NSTemporaryDirectory() + "fauna-cmd-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let paths = ["in", "out", "err"].map { "\(dir)/\($0)" }
    for (path, contents) in zip(paths, [Data((stdin ?? "").utf8), nil, nil]) {
        guard FileManager.default.createFile(atPath: path, contents: contents) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let handles = try [
        FileHandle(forReadingFrom: URL(fileURLWithPath: paths[0])), FileHandle(forWritingTo: URL(fileURLWithPath: paths[1])),
        FileHandle(forWritingTo: URL(fileURLWithPath: paths[2])),
    ]
    defer { for h in handles { try? h.close() } }
    process.standardInput = handles[0]
    process.standardOutput = handles[1]
    process.standardError = handles[2]
    try process.run()
    let killer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    process.waitUntilExit()
    killer.cancel()
    let read = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
    return (process.terminationStatus, read(paths[1]), read(paths[2]))
}
