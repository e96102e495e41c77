import FaunaClient
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaVerify
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What the status page shows (`/status.json`, docs/METRICS.md "Status page"). Built by
/// `ClusterMonitor` on its schedule; a page load only encodes the last one.
struct StatusPageData: Codable, Sendable {
    struct Check: Codable, Sendable {
        var name: String
        var ok: Bool
        var detail: String?
    }

    struct Node: Codable, Sendable {
        var id: UInt64
        var name: String
        var client: String
        /// The node serving this page.
        var me: Bool
        var reachable: Bool
        var error: String?
        var role: String?
        var learner: Bool?
        var term: UInt64?
        var leader: UInt64?
        var commit: UInt64?
        var applied: UInt64?
        var treeSize: UInt64?
        var dbSizeBytes: UInt64?
        var ready: Bool?
        var checks: [Check] = []
        /// Its tree root at `StatusPageData.commonSize` (hex), and whether a majority of the
        /// members shares it (nil: not asked or no majority).
        var rootAtCommonSize: String?
        var rootAgrees: Bool?
        /// From the last audit: whether its state digest is the majority's (nil: no verdict).
        var digestAgrees: Bool?
    }

    struct Audit: Codable, Sendable {
        /// When it finished (Unix seconds).
        var at: Double
        var revision: UInt64?
        var clean: Bool
        /// What is wrong, one line each (nodes named); the audit's error if it could not run.
        var problems: [String]
        /// Per node name: what is wrong with it.
        var nodeProblems: [String: [String]]
        var digestDiffers: [String]
    }

    struct Sample: Codable, Sendable {
        var t: Double
        /// Entries committed per second (the highest commit index any member reports).
        var commitsPerSecond: Double
        /// Client writes and reads this node answered per second, and their latency.
        var writesPerSecond: Double
        var readsPerSecond: Double
        var writeMeanMs: Double?
        var writeP99Ms: Double?
        var readMeanMs: Double?
        var readP99Ms: Double?
    }

    struct Alert: Codable, Sendable {
        /// "critical" or "warning".
        var level: String
        var text: String
    }

    var cluster: String
    var node: String
    /// When the members were last asked (Unix seconds; nil: not yet).
    var updatedAt: Double?
    var commonSize: UInt64?
    var leader: String?
    var nodes: [Node] = []
    var alerts: [Alert] = []
    var audit: Audit?
    var auditIntervalSeconds: Int
    var nextAuditAt: Double?
    var samples: [Sample] = []
}

/// Gathers the status page's data on a bounded schedule, as a client of the members' client
/// ports: every `interval` each member's status and health and its tree root at the smallest
/// tree size among them (cheap: one signed head each); every `auditInterval` a full audit
/// (`FaunaClient.audit`: state digests at a common revision, computed by each node's apply
/// stage). Keeps `samplesMax` throughput and latency samples. Page loads read the result.
final class ClusterMonitor: Sendable {
    struct Settings: Sendable {
        var interval: Duration = .seconds(2)
        var auditInterval: Duration = .seconds(300)
        /// The first audit after start (at most `auditInterval`).
        var firstAuditDelay: Duration = .seconds(10)
        var samplesMax = 300
        /// A member whose applied index trails the highest commit by more is flagged.
        var behindEntriesMax: UInt64 = 10_000
        /// The node's TLS, for its requests to the members' client ports.
        var tls: TLSContexts?
    }

    private let settings: Settings
    private let me: NodeID
    private let vitals: NIOLockedValueBox<NodeVitals>
    private let members: MemberDirectory
    private let metrics: NodeMetrics
    private let group: any EventLoopGroup
    private let logger: Logger
    private let page: NIOLockedValueBox<StatusPageData>
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(
        settings: Settings, clusterName: String, me: NodeID, vitals: NIOLockedValueBox<NodeVitals>, members: MemberDirectory,
        metrics: NodeMetrics, group: any EventLoopGroup, logger: Logger
    ) {
        self.settings = settings
        self.me = me
        self.vitals = vitals
        self.members = members
        self.metrics = metrics
        self.group = group
        self.logger = logger
        self.page = NIOLockedValueBox(
            StatusPageData(
                cluster: clusterName, node: Self.name(me),
                auditIntervalSeconds: Int(settings.auditInterval.components.seconds)))
    }

    static func name(_ id: NodeID) -> String { "n\(id.rawValue)" }

    /// The last data as JSON.
    func json() -> [UInt8] {
        let data = page.withLockedValue { $0 }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(data))) ?? Array("{}".utf8)
    }

    func start() {
        let t = Task { [self] in
            await withTaskGroup(of: Void.self) { loops in
                loops.addTask { await self.statusLoop() }
                loops.addTask { await self.auditLoop() }
            }
        }
        task.withLockedValue { $0 = t }
    }

    func stop() async {
        guard let t = task.withLockedValue({ $0 }) else { return }
        t.cancel()
        await t.value
    }

    // MARK: Members

    /// The client addresses of the members of the node's configuration (itself alone before
    /// it knows one), in node order.
    private func memberEndpoints() -> [(NodeID, Endpoint)] {
        let conf = vitals.withLockedValue { $0.configuration }
        let ids = conf.members.isEmpty ? [me] : conf.members
        return ids.compactMap { id in members.addresses(of: id).map { (id, $0.client) } }
    }

    /// A client of `endpoints`, reused while the membership is unchanged.
    private struct Clients {
        var endpoints: [Endpoint] = []
        var client: FaunaClient?

        mutating func client(
            for endpoints: [Endpoint], configuration: FaunaClientConfiguration, group: any EventLoopGroup
        ) async -> FaunaClient? {
            if endpoints != self.endpoints || client == nil {
                await client?.close()
                self.endpoints = endpoints
                client = endpoints.isEmpty ? nil : FaunaClient(endpoints: endpoints, configuration: configuration, group: group)
            }
            return client
        }

        mutating func close() async {
            await client?.close()
            client = nil
        }
    }

    // MARK: Status

    private func statusLoop() async {
        var clients = Clients()
        let configuration = FaunaClientConfiguration(
            deadline: .seconds(1), requestTimeout: .seconds(1), connectTimeout: .milliseconds(500), attemptsMax: 1,
            connectionsMax: 16, idleSessionsMax: 1, tls: settings.tls)
        var last: (at: ContinuousClock.Instant, commit: UInt64)?
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let members = memberEndpoints()
            if let client = await clients.client(for: members.map(\.1), configuration: configuration, group: group) {
                var nodes = await ask(client, members)
                let commonSize = nodes.compactMap(\.treeSize).filter { $0 > 0 }.min()
                if let commonSize { await compareRoots(client, members, &nodes, size: commonSize) }
                let highestCommit = nodes.compactMap(\.commit).max() ?? vitals.withLockedValue { $0.commitIndex.rawValue }
                let now = ContinuousClock.now
                let sample = makeSample(since: last, now: now, commit: highestCommit)
                last = (now, highestCommit)
                publish(nodes: nodes, commonSize: commonSize, sample: sample)
            }
            try? await Task.sleep(until: started + settings.interval)
        }
        await clients.close()
    }

    /// Every member's status and health, one attempt each.
    private func ask(_ client: FaunaClient, _ members: [(NodeID, Endpoint)]) async -> [StatusPageData.Node] {
        let answers = await client.statusAll(withHealth: true)
        var byEndpoint: [Endpoint: Result<NodeStatus, FaunaClientError>] = [:]
        for (endpoint, result) in answers { byEndpoint[endpoint] = result }
        return members.map { id, endpoint in
            var node = StatusPageData.Node(id: id.rawValue, name: Self.name(id), client: "\(endpoint)", me: id == me, reachable: false)
            switch byEndpoint[endpoint] {
            case .success(let s):
                node.reachable = true
                node.role = "\(s.role)"
                node.learner = s.isLearner
                node.term = s.term.rawValue
                node.leader = s.leader?.rawValue
                node.commit = s.commitIndex.rawValue
                node.applied = s.appliedIndex.rawValue
                node.treeSize = s.treeSize
                node.dbSizeBytes = s.dbSizeBytes
                let checks = s.health ?? []
                node.checks = checks.map { .init(name: $0.name, ok: $0.ok, detail: $0.failure) }
                node.ready = s.health.map { $0.allSatisfy(\.ok) }
            case .failure(let error):
                node.error = error.message
            case nil:
                node.error = "not asked"
            }
            return node
        }
    }

    /// Each reachable node's tree root at `size`, and whether it is the majority's.
    private func compareRoots(
        _ client: FaunaClient, _ members: [(NodeID, Endpoint)], _ nodes: inout [StatusPageData.Node], size: UInt64
    ) async {
        let roots = await withTaskGroup(of: (Int, MerkleHash?).self) { tasks in
            for (i, node) in nodes.enumerated() where node.reachable {
                let endpoint = members[i].1
                tasks.addTask { (i, try? await client.signedTreeHead(of: endpoint, treeSize: size, within: .seconds(1)).head.rootHash) }
            }
            var out: [Int: MerkleHash] = [:]
            for await (i, root) in tasks { if let root { out[i] = root } }
            return out
        }
        let majority = FaunaClient.majority(Array(roots.values), of: nodes.count)
        for (i, root) in roots {
            nodes[i].rootAtCommonSize = root.description
            nodes[i].rootAgrees = majority.map { $0 == root }
        }
    }

    private func makeSample(
        since last: (at: ContinuousClock.Instant, commit: UInt64)?, now: ContinuousClock.Instant, commit: UInt64
    ) -> StatusPageData.Sample? {
        let windows = metrics.takeWindows()
        guard let last else { return nil }
        let d = (now - last.at).components
        let seconds = Double(d.seconds) + Double(d.attoseconds) / 1e18
        guard seconds > 0 else { return nil }
        return StatusPageData.Sample(
            t: Date().timeIntervalSince1970, commitsPerSecond: Double(commit &- min(last.commit, commit)) / seconds,
            writesPerSecond: Double(windows.write.count) / seconds, readsPerSecond: Double(windows.read.count) / seconds,
            writeMeanMs: windows.write.meanMilliseconds, writeP99Ms: windows.write.quantileMilliseconds(0.99),
            readMeanMs: windows.read.meanMilliseconds, readP99Ms: windows.read.quantileMilliseconds(0.99))
    }

    private func publish(nodes: [StatusPageData.Node], commonSize: UInt64?, sample: StatusPageData.Sample?) {
        page.withLockedValue { p in
            p.nodes = nodes
            p.updatedAt = Date().timeIntervalSince1970
            p.commonSize = commonSize
            let leaders = Set(nodes.filter { $0.role == "leader" }.map(\.name))
            p.leader = leaders.count == 1 ? leaders.first : nil
            if let sample {
                p.samples.append(sample)
                if p.samples.count > settings.samplesMax { p.samples.removeFirst(p.samples.count - settings.samplesMax) }
            }
            annotate(&p)
        }
    }

    /// What follows from the members' rows and the last audit together: each row's digest
    /// verdict, and the alerts. Run whenever either changes.
    private func annotate(_ p: inout StatusPageData) {
        for i in p.nodes.indices {
            p.nodes[i].digestAgrees = p.audit.flatMap { a in a.revision == nil ? nil : !a.digestDiffers.contains(p.nodes[i].name) }
        }
        p.alerts = Self.alerts(p, behindMax: settings.behindEntriesMax)
    }

    /// The alerts that matter, most severe first.
    static func alerts(_ p: StatusPageData, behindMax: UInt64) -> [StatusPageData.Alert] {
        var critical: [String] = []
        var warning: [String] = []
        let reachable = p.nodes.filter(\.reachable)
        for n in p.nodes where !n.reachable {
            critical.append("\(n.name) (\(n.client)) does not answer: \(n.error ?? "no answer")")
        }
        if !p.nodes.isEmpty && !p.nodes.contains(where: { $0.role == "leader" }) {
            critical.append("no member reports itself leader")
        }
        if reachable.count * 2 <= p.nodes.count {
            critical.append("only \(reachable.count) of \(p.nodes.count) members answer: no quorum is reachable from \(p.node)")
        }
        if let size = p.commonSize {
            for n in p.nodes where n.rootAgrees == false {
                critical.append("\(n.name)'s tree root at size \(size) differs from the majority's: its history departs")
            }
        }
        if let audit = p.audit {
            for name in audit.digestDiffers {
                critical.append("\(name)'s state digest differs from the majority's (audit at revision \(audit.revision ?? 0))")
            }
            for line in audit.problems where !audit.digestDiffers.contains(where: { line.hasPrefix("\($0) ") }) {
                if audit.revision == nil { warning.append("the last audit could not run: \(line)") } else { critical.append(line) }
            }
        }
        let commit = p.nodes.compactMap(\.commit).max() ?? 0
        for n in reachable {
            if let applied = n.applied, commit > applied, commit - applied > behindMax {
                warning.append("\(n.name) is \(commit - applied) entries behind the highest commit index")
            }
            for check in n.checks where !check.ok {
                let text = "\(n.name) is not ready: \(check.name): \(check.detail ?? "failed")"
                if check.name == "disk" { critical.append("disk nearly full on \(n.name): \(check.detail ?? "")") } else { warning.append(text) }
            }
        }
        return critical.map { .init(level: "critical", text: $0) } + warning.map { .init(level: "warning", text: $0) }
    }

    // MARK: Audit

    private func auditLoop() async {
        var clients = Clients()
        // A digest reads the whole state: the whole deadline for one attempt per node.
        let configuration = FaunaClientConfiguration(
            deadline: .seconds(120), requestTimeout: .seconds(5), connectTimeout: .seconds(1), attemptsMax: 1,
            connectionsMax: 16, idleSessionsMax: 1, tls: settings.tls)
        // Staggered by node id: every member's page audits, and a node computes only so many
        // digests at once (a busy one answers `overloaded`, retried below).
        let slot = settings.auditInterval / 3 * Int(me.rawValue % 3)
        var next = ContinuousClock.now + min(settings.firstAuditDelay, settings.auditInterval) + slot
        while !Task.isCancelled {
            let wall = Date().timeIntervalSince1970 + seconds(next - ContinuousClock.now)
            page.withLockedValue { $0.nextAuditAt = wall }
            try? await Task.sleep(until: next)
            guard !Task.isCancelled else { break }
            next = ContinuousClock.now + settings.auditInterval
            let members = memberEndpoints()
            guard let client = await clients.client(for: members.map(\.1), configuration: configuration, group: group) else { continue }
            let names = Dictionary(members.map { ("\($0.1)", Self.name($0.0)) }, uniquingKeysWith: { a, _ in a })
            let verdict: StatusPageData.Audit
            do {
                var report = try await client.audit(checkJournal: false)
                // Another member's page may be auditing at the same moment: up to two more tries.
                for _ in 0..<2 where Self.wasBusy(report) && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Int.random(in: 500...2000)))
                    report = try await client.audit(checkJournal: false)
                }
                verdict = Self.verdict(report, names: names)
            } catch {
                verdict = .init(
                    at: Date().timeIntervalSince1970, revision: nil, clean: false, problems: [error.message], nodeProblems: [:],
                    digestDiffers: [])
            }
            if !verdict.clean { logger.warning("status page audit found problems", metadata: ["problems": "\(verdict.problems)"]) }
            page.withLockedValue { p in
                p.audit = verdict
                annotate(&p)
            }
        }
        await clients.close()
    }

    /// Whether some node declined to compute its digest because it was computing others.
    static func wasBusy(_ report: ClusterAudit) -> Bool {
        report.nodes.contains { node in
            if case .failure(let e) = node.result { e.message.contains("answered overloaded") } else { false }
        }
    }

    static func verdict(_ report: ClusterAudit, names: [String: String]) -> StatusPageData.Audit {
        var problems = report.problems
        var nodeProblems: [String: [String]] = [:]
        var digestDiffers: [String] = []
        for node in report.nodes where !node.problems.isEmpty {
            let name = names["\(node.endpoint)"] ?? "\(node.endpoint)"
            nodeProblems[name] = node.problems
            problems += node.problems.map { "\(name) \($0)" }
            if node.problems.contains(where: { $0.hasPrefix("state digest") }) { digestDiffers.append(name) }
        }
        return .init(
            at: Date().timeIntervalSince1970, revision: report.revision.rawValue, clean: report.isClean, problems: problems,
            nodeProblems: nodeProblems, digestDiffers: digestDiffers)
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
