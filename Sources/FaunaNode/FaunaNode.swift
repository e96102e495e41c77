import FaunaAudit
import FaunaConfig
import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import Logging
import NIOCore
import NIOPosix

/// Why a node could not start; one line that says what to fix.
public struct NodeStartError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One Fauna server: the Raft core on its owner thread, the store, the apply stage, the peer
/// port (Raft traffic, snapshot installs) and the client port (data and admin requests).
/// `start` returns once both ports listen; `stop` shuts down gracefully; `waitUntilStopped`
/// returns when the node stopped, by `stop` or by a fail-stop error (`failure`).
public final class FaunaNode: @unchecked Sendable {
    // @unchecked Sendable: all stored properties are immutable after `start` returns, and
    // the core's mutable state is confined to its thread.
    public let settings: NodeSettings
    private let core: NodeCore
    private let events: EventQueue<NodeEvent>
    private let transport: PeerTransport
    private let group: MultiThreadedEventLoopGroup
    private let peerServer: RPCServer
    private let clientServer: RPCServer
    private let httpServer: HTTPStatusServer?
    private let monitor: ClusterMonitor?
    private let watchHub: WatchHub
    private let logger: Logger

    /// The bound port of the metrics and health server (nil: not configured).
    public var metricsPort: Int? { httpServer?.port }

    private init(
        settings: NodeSettings, core: NodeCore, events: EventQueue<NodeEvent>, transport: PeerTransport,
        group: MultiThreadedEventLoopGroup, peerServer: RPCServer, clientServer: RPCServer, httpServer: HTTPStatusServer?,
        monitor: ClusterMonitor?, watchHub: WatchHub, logger: Logger
    ) {
        self.settings = settings
        self.core = core
        self.events = events
        self.transport = transport
        self.group = group
        self.peerServer = peerServer
        self.clientServer = clientServer
        self.httpServer = httpServer
        self.monitor = monitor
        self.watchHub = watchHub
        self.logger = logger
    }

    /// Opens the store (founding the cluster on first start unless `settings.join`), binds the
    /// ports and starts the threads.
    public static func start(settings: NodeSettings, logger baseLogger: Logger) async throws -> FaunaNode {
        var logger = baseLogger
        logger[metadataKey: "node"] = "\(settings.node.name)"
        let store: Store
        do {
            store = try Store(path: settings.dataDirectory, options: settings.storeOptions)
        } catch {
            throw NodeStartError("cannot open the data directory \(settings.dataDirectory): \(error)")
        }
        if let keyring = store.keyring {
            logger.info("values encrypted at rest", metadata: [
                "dataKey": "\(keyring.currentKeyID)", "dataKeys": "\(keyring.keyIDs.count)", "masterKey": "\(keyring.masterFingerprintHex)",
            ])
        }
        let fresh = try isFresh(store)
        if fresh && !settings.join {
            try found(store, voters: settings.cluster.nodes.map(\.nodeID))
            logger.info("founded a new cluster", metadata: ["voters": "\(settings.cluster.nodes.map(\.name))"])
        } else if fresh {
            logger.info("empty node started with --join: waiting to be added by the leader")
        }
        let signer: TreeHeadSigner
        do {
            signer = try NodeKey.loadOrCreate(
                dataDirectory: settings.dataDirectory, master: settings.storeOptions.masterKey,
                previous: settings.storeOptions.previousMasterKey
            ) { logger.notice("\($0)", metadata: ["file": "\(settings.dataDirectory)/\(NodeKey.fileName)"]) }
        } catch {
            store.close()
            throw error
        }
        var decorator: (any AnswerDecorator)?
        #if DEBUG
        if let lies = LyingAnswers.fromEnvironment(signer: signer) {
            logger.warning("TEST FAULTS ACTIVE (FAUNA_TEST_FAULT): this node lies on purpose", metadata: ["faults": "\(lies.faults)"])
            decorator = lies
        }
        #endif
        let raft: RaftNode
        let raftStorage = RaftStorageMonitor(store.raftLog)
        let hasClusterID: Bool
        let stateStore = RocksStateStore(store, options: settings.storeOptions)
        let metrics = NodeMetrics()
        var pipeline = settings.pipeline
        pipeline.metrics = metrics.pipeline
        do {
            raft = try NodeCore.makeRaftNode(settings: pipeline, applied: store.appliedIndex, storage: raftStorage)
            // Not `try?`: a cluster ID that does not decode is a corrupt record (fail-stop).
            hasClusterID = try stateStore.isFounded()
        } catch {
            store.close()
            throw NodeStartError("cannot start Raft on \(settings.dataDirectory): \(error)")
        }

        var seed: [NodeID: MemberAddresses] = [:]
        for node in settings.cluster.nodes {
            seed[node.nodeID] = MemberAddresses(
                peer: Endpoint(host: node.peer.host, port: UInt16(node.peer.port)),
                client: Endpoint(host: node.client.host, port: UInt16(node.client.port)))
        }
        let publicKey = Array(signer.publicKey.rawRepresentation)
        let members = MemberDirectory(
            seed: seed, dataDirectory: settings.dataDirectory, me: settings.nodeID, publicKey: publicKey)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.eventLoopThreads ?? settings.eventLoopThreadsDefault)
        let identity = PeerIdentity(clusterName: settings.cluster.name, nodeID: settings.nodeID, publicKey: publicKey)
        let events = EventQueue<NodeEvent>(capacity: settings.eventsMax)
        let transport = PeerTransport(identity: identity, members: members, group: group, tls: settings.tls, logger: logger) {
            peer, reason in events.offer(.removedByPeer(peer, reason))  // full: the link dials again and hears it again
        }
        let inbox = SnapshotInbox(dataDirectory: settings.dataDirectory, masterKey: settings.storeOptions.masterKey, logger: logger)
        let shipper = SnapshotShipper(
            sender: SnapshotSender(identity: identity, group: group, tls: settings.tls, logger: logger), inbox: inbox, members: members,
            logger: logger)
        let core = NodeCore(
            settings: pipeline, store: stateStore, raft: raft, raftStorage: raftStorage, events: events, members: members,
            transport: transport, snapshots: shipper, clock: MonotonicClock(), decorator: decorator,
            hasClusterID: hasClusterID, logger: logger)
        // Apply jobs are bounded by the owner (applyQueueMax); reads by this capacity.
        let applier = ApplyThread(capacity: settings.applyQueueMax + settings.pendingReadsMax)
        applier.stage = ApplyStage(
            store: stateStore, nodeID: settings.nodeID, compactEntries: settings.cluster.snapshotEntries, members: members,
            audit: AuditService(nodeID: settings.nodeID, signer: signer, metrics: metrics.pipeline), proposals: core.proposals, auth: core.auth,
            decorator: decorator, background: DispatchBackground(), logger: logger, metrics: metrics.pipeline,
            failStop: { error, doing in events.post(.storeFailed(error, doing)) }
        ) { report in
            // The owner notes a routine report at its next round (within a tick); one that
            // answers or changes something, or one it waits for (`wantsApplyReportsNow`), wakes it.
            if case .success(let r) = report, r.isRoutine {
                events.postQuietly(.applied(report))
            } else {
                events.post(.applied(report))
            }
        }
        core.applier = applier
        // Watches: the apply stage publishes every applied batch to the hub; a thread of its
        // own sends the events; store reads for watchers behind run as apply jobs.
        let watchHub = WatchHub(settings: settings.watch, appliedIndex: store.appliedIndex)
        applier.stage?.watchHub = watchHub
        watchHub.auth = core.auth
        watchHub.decorator = decorator
        watchHub.postRead = { [applier] read, done in applier.offer(.watchRead(read, done: done)) }

        let peerServer: RPCServer
        let clientServer: RPCServer
        do {
            peerServer = try await RPCServer.start(
                // No idle timeout: a link between two followers carries nothing for as long as
                // both follow; closing it would only make it dial again.
                configuration: {
                    var configuration = RPCServerConfiguration(
                        host: settings.node.peer.host, port: settings.node.peer.port, peerIdentity: identity,
                        connectionsMax: 64, idleTimeout: nil)
                    configuration.tls = settings.tls
                    configuration.onPeerKey = { [members] node, key in members.recordKey(key, for: node) }
                    configuration.removedPeer = { [members] node, key in members.removalReason(of: node, key: key) }
                    return configuration
                }(),
                group: group, logger: logger
            ) { message, context in
                switch message {
                case .raftMessages(let messages):
                    events.offer(.raftMessages(messages))  // full: dropped, Raft retransmits
                case .snapshotOffer, .snapshotChunk:
                    if let peer = context.peer { inbox.handle(message, from: peer, context: context) }
                default:
                    break
                }
            }
        } catch {
            try? await group.shutdownGracefully()
            throw NodeStartError("cannot listen on the peer address \(settings.node.peer) of \(settings.node.name): \(error)")
        }
        do {
            clientServer = try await RPCServer.start(
                configuration: {
                    var configuration = RPCServerConfiguration(host: settings.node.client.host, port: settings.node.client.port)
                    configuration.observer = metrics
                    configuration.tls = settings.tls
                    return configuration
                }(),
                group: group, logger: logger
            ) { message, context in
                // Watches go to the watch hub, audit requests and digests straight to the
                // apply queue: the owner is not woken for what it does not answer.
                if watchHub.handle(message, context) { return }
                if core.routeToApplyStage(message, context) { return }
                // Three quarters of the queue at most: the rest stays for Raft traffic.
                if !events.offer(.request(message, context), limit: events.capacity / 4 * 3) {
                    context.respond(.error(RPCErrorResponse(.overloaded, "node queue full; retry later")))
                }
            }
        } catch {
            try? await peerServer.close()
            try? await group.shutdownGracefully()
            throw NodeStartError("cannot listen on the client address \(settings.node.client) of \(settings.node.name): \(error)")
        }
        var httpServer: HTTPStatusServer?
        var monitor: ClusterMonitor?
        if let address = settings.node.metrics {
            var monitorSettings = ClusterMonitor.Settings()
            monitorSettings.auditInterval = .seconds(settings.cluster.auditIntervalSeconds)
            monitorSettings.tls = settings.tls
            let m = ClusterMonitor(
                settings: monitorSettings, clusterName: settings.cluster.name, me: settings.nodeID, vitals: core.vitals,
                members: members, metrics: metrics, group: group, logger: logger)
            monitor = m
            let route = statusRoutes(
                core: core, events: events, applyQueue: applier.queue, metrics: metrics, monitor: m, limits: settings.health,
                clusterName: settings.cluster.name)
            do {
                httpServer = try await HTTPStatusServer.start(
                    host: address.host, port: address.port, tls: settings.tls, group: group, logger: logger, route: route)
            } catch {
                try? await clientServer.close()
                try? await peerServer.close()
                try? await group.shutdownGracefully()
                throw NodeStartError("cannot listen on the metrics address \(address) of \(settings.node.name): \(error)")
            }
        }
        applier.start()
        let thread = Thread { runOwner(core, events: events) }
        thread.name = "fauna-raft"
        thread.start()
        let watchThread = Thread {
            while let wait = watchHub.runPass() { watchHub.waitForWork(timeout: wait) }
        }
        watchThread.name = "fauna-watch"
        watchThread.start()
        monitor?.start()
        logger.info("node started", metadata: [
            "peer": "\(settings.node.peer)", "client": "\(settings.node.client)", "data": "\(settings.dataDirectory)",
            "metrics": "\(settings.node.metrics.map { "\($0)" } ?? "off")",
            "applied": "\(store.appliedIndex)", "term": "\(raft.term)",
            "publicKey": "\(signer.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined())",
        ])
        return FaunaNode(
            settings: settings, core: core, events: events, transport: transport, group: group, peerServer: peerServer,
            clientServer: clientServer, httpServer: httpServer, monitor: monitor, watchHub: watchHub, logger: logger)
    }

    /// What the metrics port serves: everything from the owner's published vitals and the
    /// queues' counts, so a scrape never waits for the owner or touches the store. With auth
    /// enabled (docs/SECURITY.md "The metrics and status port"), `/livez` and `/readyz` stay
    /// open, `/metrics` needs a user and the status page the root role, by client certificate
    /// or HTTP Basic.
    private static func statusRoutes(
        core: NodeCore, events: EventQueue<NodeEvent>, applyQueue: EventQueue<ApplyJob>, metrics: NodeMetrics,
        monitor: ClusterMonitor, limits: NodeHealth.Limits, clusterName: String
    ) -> HTTPRoute {
        let vitals = core.vitals
        let clock = core.clock
        let auth = core.auth
        let answer: @Sendable (String) -> HTTPAnswer = { path in
            let v = vitals.withLockedValue { $0 }
            switch path {
            case "/metrics":
                let body = metrics.render(vitals: v, queues: [
                    ("events", events.count, events.capacity), ("apply", applyQueue.count, applyQueue.capacity),
                ])
                return HTTPAnswer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
            case "/livez", "/readyz":
                let health = path == "/livez"
                    ? NodeHealth.live(v, now: clock.now, limits: limits) : NodeHealth.ready(v, now: clock.now, limits: limits)
                return .text(health.ok ? .ok : .serviceUnavailable, health.text)
            case "/", "/index.html":
                return HTTPAnswer(status: .ok, contentType: "text/html; charset=utf-8", body: StatusPage.html)
            case "/status.json":
                return HTTPAnswer(status: .ok, contentType: "application/json", body: monitor.json())
            default:
                return .text(.notFound, "\(path): not found; try / (the status page), /status.json, /metrics, /livez or /readyz\n")
            }
        }
        let realm = "Basic realm=\"Fauna \(clusterName.filter { $0 != "\"" && $0 != "\\" })\", charset=\"UTF-8\""
        return { request, done in
            let need: AuthGate.HTTPNeed
            switch request.path {
            case "/metrics": need = .user
            case "/", "/index.html", "/status.json": need = .root
            default: return done(answer(request.path))
            }
            var basic: (user: [UInt8], password: [UInt8])?
            if let header = request.authorization {
                guard let credentials = basicCredentials(header) else {
                    return done(.text(.badRequest, "Authorization: want Basic with base64 of user:password\n"))
                }
                basic = credentials
            }
            auth.authorizeHTTP(identity: request.identity, basic: basic, need: need) { verdict in
                switch verdict {
                case .allowed: done(answer(request.path))
                case .unauthenticated(let why):
                    var refusal = HTTPAnswer.text(.unauthorized, "\(request.path): \(why)\n")
                    refusal.headers = [("WWW-Authenticate", realm)]
                    done(refusal)
                case .forbidden(let why): done(.text(.forbidden, "\(request.path): \(why)\n"))
                case .unavailable(let why):
                    var refusal = HTTPAnswer.text(.serviceUnavailable, "\(request.path): \(why)\n")
                    refusal.headers = [("Retry-After", "1")]
                    done(refusal)
                }
            }
        }
    }

    /// The user and password of an `Authorization: Basic …` header (RFC 7617), or nil.
    static func basicCredentials(_ header: String) -> (user: [UInt8], password: [UInt8])? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", parts[1].utf8.count <= 1024,
            let decoded = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        let bytes = Array(decoded)
        let split = colon - decoded.startIndex
        return (Array(bytes[..<split]), Array(bytes[(split + 1)...]))
    }

    /// The owner thread: waits for events until the next tick (or a held read round) is due,
    /// runs a round, and stops the pipeline once a round says so. The wait takes a wall-clock
    /// deadline, recomputed each time from the monotonic clock the pipeline runs on.
    private static func runOwner(_ core: NodeCore, events: EventQueue<NodeEvent>) {
        let clock = core.clock
        while true {
            let wait = max(core.nextWake - clock.now, .zero)
            let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
            let batch = events.take(until: Date().addingTimeInterval(seconds), max: 4096, wakeForQuiet: core.wantsApplyReportsNow)
            guard let batch else { break }
            if !core.runRound(batch, now: clock.now) { break }
        }
        core.finishStopping()
    }

    /// Writes the founding log: one committed `addVoter` entry per voter, term 1 (the same on
    /// every founding node, so their logs and audit trees agree from index 1).
    private static func found(_ store: Store, voters: [NodeID]) throws(StoreError) {
        let entries = bootstrapEntries(voters: voters)
        let update = RaftLogUpdate(entries: entries, hardState: HardState(term: Term(1), vote: nil, commit: entries.last?.index ?? .zero))
        try store.raftLog.persist(update)
    }

    /// Nothing logged, voted or applied (the membership is the applied state's, so empty too).
    private static func isFresh(_ store: Store) throws -> Bool {
        let (hard, _) = try store.raftLog.initialState()
        return try store.raftLog.lastIndex() == .zero && store.appliedIndex == .zero && hard == HardState()
    }

    /// Stops accepting, answers what is in flight with `unavailable`, waits for the Raft log
    /// writer, closes the store.
    public func stop() async {
        events.post(.stop)
        await waitUntilStopped()
    }

    /// Returns once the node has stopped (after `stop`, or after a fail-stop error).
    public func waitUntilStopped() async {
        let finished = core.finished
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                finished.wait()
                finished.signal()  // later callers pass too
                c.resume()
            }
        }
        await shutdownIO()
    }

    private let shutdownOnce = NIOLockedValueBoxFlag()

    private func shutdownIO() async {
        guard shutdownOnce.setOnce() else { return }
        watchHub.stop("the node is stopping; watch again from the last revision received")
        await monitor?.stop()
        try? await httpServer?.close()
        try? await clientServer.close()
        try? await peerServer.close()
        await transport.shutdown()
        try? await group.shutdownGracefully()
        logger.info("node stopped")
    }

    /// Set if the node stopped because a write to disk failed (fail-stop).
    public var failure: StoreError? { core.failure }
}

import NIOConcurrencyHelpers

/// A flag that can be set once.
final class NIOLockedValueBoxFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    func setOnce() -> Bool { box.withLockedValue { was in defer { was = true }; return !was } }
}
