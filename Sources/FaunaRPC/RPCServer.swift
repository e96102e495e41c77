import FaunaRaft
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Who a node is on the peer port: a server with an identity requires every connection to
/// open with a `peerHello` naming this cluster and this node.
public struct PeerIdentity: Hashable, Sendable {
    /// `[cluster] name` of cluster.toml.
    public var clusterName: String
    /// This node.
    public var nodeID: NodeID
    /// This node's tree-head public key, sent in its hellos and welcomes (empty: not sent).
    public var publicKey: [UInt8]

    /// The identity of `nodeID` in `clusterName`.
    public init(clusterName: String, nodeID: NodeID, publicKey: [UInt8] = []) {
        self.clusterName = clusterName
        self.nodeID = nodeID
        self.publicKey = publicKey
    }
}

/// Settings of an `RPCServer`.
public struct RPCServerConfiguration: Sendable {
    /// The address to bind; port 0 picks a free port (`RPCServer.port` tells which).
    public var host: String
    public var port: Int
    /// The largest frame body accepted (checked before buffering).
    public var bodyBytesMax: Int
    /// Requests of one connection the node has not answered yet; more are answered at once
    /// with `overloaded`.
    public var requestsInFlightMax: Int
    /// Set on the peer port: connections must open with a matching `peerHello`, and only peer
    /// kinds are accepted. Nil on the client port: peer kinds are refused.
    public var peerIdentity: PeerIdentity?
    /// Open connections at most; a connection beyond it is closed at once (logged).
    public var connectionsMax: Int
    /// On a peer port: a connection that has not completed its hello by then is closed.
    public var handshakeTimeout: TimeAmount
    /// On a peer port: called (on an event loop) with the node and key of every accepted hello
    /// that carries a public key.
    public var onPeerKey: (@Sendable (NodeID, [UInt8]) -> Void)?
    /// On a peer port: asked (on an event loop) with the node and key of every hello, and of
    /// the sender of every `raftMessages` frame. A reason means this node has applied that
    /// node's removal from the cluster: its hello is refused `memberRemoved` with the reason
    /// (the removed node then stops), and an open connection from it is closed, so that it
    /// dials again and hears the same. Nil: nobody is refused for this.
    public var removedPeer: (@Sendable (NodeID, [UInt8]) -> String?)?
    /// Told of the final answer to every request (a node's metrics). Nil: nothing is timed.
    public var observer: (any RPCServerObserver)?
    /// Bytes of partial frames all connections together may buffer beyond
    /// `FrameBufferBudget.freeBytesPerConnection` each; a connection whose partial frame would
    /// take more is closed (logged). Without it, `connectionsMax` connections that each declare
    /// a `bodyBytesMax` body and send it slowly buffer 16 GiB.
    public var bufferedBytesMax: Int
    /// A connection with no partial frame and no request in flight that completes no frame
    /// for this long is closed (logged at info). Nil: never.
    public var idleTimeout: TimeAmount?
    /// A connection whose partial frame gains no byte for this long is closed (logged). Nil:
    /// never.
    public var progressTimeout: TimeAmount?
    /// TLS only (docs/SECURITY.md): the node's contexts; the client port takes a client
    /// certificate if one is presented, the peer port requires one whose DNS names include the
    /// hello's sender. A plaintext request is answered `tlsRequired` and the connection closed.
    /// Nil: plaintext.
    public var tls: TLSContexts?

    /// The defaults of `bufferedBytesMax`, `idleTimeout` and `progressTimeout`.
    public static let bufferedBytesMaxDefault = 256 << 20
    public static let idleTimeoutDefault = TimeAmount.minutes(5)
    public static let progressTimeoutDefault = TimeAmount.seconds(30)

    /// A configuration; defaults suit a client port on an ephemeral port.
    public init(
        host: String = "127.0.0.1", port: Int = 0, bodyBytesMax: Int = FrameHeader.bodyBytesMaxDefault,
        requestsInFlightMax: Int = 1024, peerIdentity: PeerIdentity? = nil, connectionsMax: Int = 1024,
        handshakeTimeout: TimeAmount = .seconds(5), bufferedBytesMax: Int = bufferedBytesMaxDefault,
        idleTimeout: TimeAmount? = idleTimeoutDefault, progressTimeout: TimeAmount? = progressTimeoutDefault
    ) {
        self.host = host
        self.port = port
        self.bodyBytesMax = bodyBytesMax
        self.requestsInFlightMax = requestsInFlightMax
        self.peerIdentity = peerIdentity
        self.connectionsMax = connectionsMax
        self.handshakeTimeout = handshakeTimeout
        self.bufferedBytesMax = bufferedBytesMax
        self.idleTimeout = idleTimeout
        self.progressTimeout = progressTimeout
    }
}

/// Where the answers to one connection's requests go: a SwiftNIO channel in a node, an
/// in-memory client in the node simulator. Thread-safe.
public protocol RPCReplyChannel: AnyObject, Sendable {
    /// Writes the frames in order and flushes once.
    func send(_ frames: [Frame])
    /// Whether the connection can take more output now (false: the remote reads slowly).
    var isWritable: Bool { get }
    /// Whether the connection is still open.
    var isOpen: Bool { get }
}

/// A SwiftNIO channel as a reply channel.
final class NIOReplyChannel: RPCReplyChannel {
    let channel: any Channel
    init(_ channel: any Channel) { self.channel = channel }

    func send(_ frames: [Frame]) {
        if frames.count == 1 {
            channel.writeAndFlush(frames[0], promise: nil)
            return
        }
        let channel = channel
        channel.eventLoop.execute {
            for frame in frames { channel.write(frame, promise: nil) }
            channel.flush()
        }
    }

    var isWritable: Bool { channel.isWritable }
    var isOpen: Bool { channel.isActive }
}

/// One request as the node receives it, with the way to answer it.
public struct RPCRequestContext: Sendable {
    /// The request's ID (`.none` for `raftMessages`).
    public let requestID: RequestID
    /// The peer that sent it, on a peer port (after its hello); nil on a client port.
    public let peer: NodeID?
    /// The remote address, for logs.
    public let remoteAddress: SocketAddress?
    /// Who the connection is (client port): its certificate's name and bound user.
    public let identity: ConnectionIdentity?
    let reply: any RPCReplyChannel

    /// A request answered through `reply` (the node simulator's clients).
    public init(
        requestID: RequestID, peer: NodeID? = nil, remoteAddress: SocketAddress? = nil, identity: ConnectionIdentity? = nil,
        reply: any RPCReplyChannel
    ) {
        self.requestID = requestID
        self.peer = peer
        self.remoteAddress = remoteAddress
        self.identity = identity
        self.reply = reply
    }

    /// Who the request runs as (`ConnectionIdentity.principal`); empty without an identity.
    public var principal: [UInt8] { identity?.principal ?? [] }

    /// Sends the final answer. Safe from any thread; one final answer per request (a second
    /// one is dropped). Not for `raftMessages`, which are never answered.
    public func respond(_ message: RPCMessage) {
        reply.send([Frame(message, requestID: requestID)])
    }

    /// Sends one frame of a streamed answer (`snapshotSaveChunk`); more will follow, and the
    /// stream ends with `respond(_:)`.
    public func respondPartial(_ message: RPCMessage) {
        reply.send([Frame(message, requestID: requestID, flags: .more)])
    }

    /// Whether the connection can take more output now (false: the remote reads slowly;
    /// a streaming responder should wait before sending more).
    public var isWritable: Bool { reply.isWritable }

    /// Whether the connection is still open (false: the requester went away; a streaming
    /// responder stops).
    public var isOpen: Bool { reply.isOpen }

    /// Names the connection the request came on: requests of one connection share it (a
    /// `watchCancel` finds its watch by this and the watch's request ID).
    public var connectionID: ObjectIdentifier { ObjectIdentifier(reply) }
}

/// Answers gathered to go out together: one event-loop task and one flush (one write syscall)
/// per connection, instead of one of each per answer. A node completes writes and reads in
/// batches (an applied group, a queue of reads); answering them one by one woke the event loop
/// and flushed once per answer, a visible share of a loaded node's CPU (docs/PERFORMANCE.md).
/// `send()` must be called; until then nothing is sent.
public struct RPCResponseBatch {
    private var byChannel: [ObjectIdentifier: (channel: any RPCReplyChannel, frames: [Frame])] = [:]

    public init() {}

    /// Whether nothing is gathered.
    public var isEmpty: Bool { byChannel.isEmpty }

    /// Gathers the final answer to `context`'s request (see `RPCRequestContext.respond`).
    public mutating func add(_ message: RPCMessage, for context: RPCRequestContext) {
        let frame = Frame(message, requestID: context.requestID)
        byChannel[ObjectIdentifier(context.reply), default: (context.reply, [])].frames.append(frame)
    }

    /// Gathers one frame of a streamed answer (`more` set; see `RPCRequestContext.respondPartial`).
    public mutating func addPartial(_ message: RPCMessage, for context: RPCRequestContext) {
        let frame = Frame(message, requestID: context.requestID, flags: .more)
        byChannel[ObjectIdentifier(context.reply), default: (context.reply, [])].frames.append(frame)
    }

    /// Sends everything gathered and empties the batch. Safe from any thread.
    public mutating func send() {
        for (_, group) in byChannel { group.channel.send(group.frames) }
        byChannel.removeAll(keepingCapacity: true)
    }
}

/// Counts and times the answers of a server (a node's request metrics, docs/METRICS.md).
/// Called on the connection's event loop: must be cheap and must not block.
public protocol RPCServerObserver: Sendable {
    /// The final answer to a request of kind `request` went out `nanoseconds` after the request
    /// was decoded; `error` is the answer's code if it is an error. Requests refused before
    /// the node saw them (too many in flight, a body that does not decode) count too, with 0.
    func answered(_ request: FrameKind, error: RPCErrorCode?, nanoseconds: Int64)
}

/// Called on the connection's event loop for every decoded request: must not block. The node
/// answers later, from any thread, through the context.
public typealias RPCRequestHandler = @Sendable (RPCMessage, RPCRequestContext) -> Void

/// A TCP server of the Fauna protocol. Frames that break the protocol close their connection
/// with a logged reason; other connections are unaffected.
public final class RPCServer: Sendable {
    /// The listening channel.
    let channel: any Channel
    /// Accepted connections still open, so `close()` can end them.
    let connections: ConnectionSet
    /// What the open connections buffer of partial frames, together.
    public let frameBuffers: FrameBufferBudget
    /// The address it is bound to.
    public var localAddress: SocketAddress? { channel.localAddress }
    /// The bound port (useful with port 0).
    public var port: Int? { channel.localAddress?.port }

    private init(channel: any Channel, connections: ConnectionSet, frameBuffers: FrameBufferBudget) {
        self.channel = channel
        self.connections = connections
        self.frameBuffers = frameBuffers
    }

    /// Binds and starts accepting connections; `handler` receives every request.
    public static func start(
        configuration: RPCServerConfiguration, group: any EventLoopGroup, logger: Logger,
        handler: @escaping RPCRequestHandler
    ) async throws -> RPCServer {
        let connections = ConnectionSet()
        let frameBuffers = FrameBufferBudget(bytesMax: configuration.bufferedBytesMax)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard connections.insert(channel, max: configuration.connectionsMax) else {
                    logger.warning("closing rpc connection", metadata: [
                        "remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                        "reason": "open connections: got \(configuration.connectionsMax), want fewer",
                    ])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try configureConnection(
                        channel, configuration: configuration, frameBuffers: frameBuffers, logger: logger, handler: handler)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        logger.info("rpc server listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return RPCServer(channel: channel, connections: connections, frameBuffers: frameBuffers)
    }

    /// Builds an accepted connection's pipeline (on its event loop): the frame codec metered
    /// against `frameBuffers`, then the request handler with its timeouts. Tests run it on an
    /// embedded channel to drive the timeouts with virtual time.
    static func configureConnection(
        _ channel: any Channel, configuration: RPCServerConfiguration, frameBuffers: FrameBufferBudget, logger: Logger,
        handler: @escaping RPCRequestHandler
    ) throws {
        let meter = InboundFrameMeter(budget: frameBuffers, now: channel.eventLoop.now)
        let boundMeter = NIOLoopBound(meter, eventLoop: channel.eventLoop)
        // Whatever closes the connection gives its charge back (on its event loop).
        channel.closeFuture.whenComplete { _ in boundMeter.value.close() }
        if let tls = configuration.tls {
            guard let context = configuration.peerIdentity == nil ? tls.clientPort : tls.peerPort else {
                throw TLSSetupError("TLS contexts of a client, not a node, given to a server")
            }
            try channel.pipeline.syncOperations.addHandler(PlaintextRefuser(logger: logger))
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }
        try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
        try channel.pipeline.syncOperations.addFrameCodec(bodyBytesMax: configuration.bodyBytesMax, meter: meter)
        var connectionLogger = logger
        connectionLogger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        try channel.pipeline.syncOperations.addHandler(
            ServerConnectionHandler(configuration: configuration, meter: meter, logger: connectionLogger, handler: handler))
    }

    /// Stops accepting connections, then closes the open ones (answers not yet written are
    /// lost; requesters see `connectionClosed`).
    public func close() async throws {
        try await channel.close()
        // All at once: a TLS connection's close waits for the peer's close_notify (up to
        // `TLSContexts.closeNotifyWait`), and one at a time those waits added up.
        let closing = connections.removeAll().map { $0.close() }
        for done in closing { try? await done.get() }
    }

    /// The number of open connections.
    public var connectionCount: Int { connections.count }
}

/// The open connections of a server.
final class ConnectionSet: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    /// Adds `channel` unless `max` are open already.
    func insert(_ channel: any Channel, max: Int) -> Bool {
        let id = ObjectIdentifier(channel)
        let added = channels.withLockedValue { channels -> Bool in
            guard channels.count < max else { return false }
            channels[id] = channel
            return true
        }
        guard added else { return false }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.channels.withLockedValue { $0.removeValue(forKey: id) }
        }
        return true
    }

    func removeAll() -> [any Channel] {
        channels.withLockedValue { channels in
            defer { channels.removeAll() }
            return Array(channels.values)
        }
    }

    var count: Int { channels.withLockedValue { $0.count } }
}

/// Per-connection protocol rules of the server side: handshake, request/response kinds,
/// in-flight bound. Closes the connection on any violation or decoding error.
final class ServerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    private let configuration: RPCServerConfiguration
    private let logger: Logger
    /// Who the client is; made at its first request.
    private var identity: ConnectionIdentity?
    private let handler: RPCRequestHandler
    /// What the decoder holds of a partial frame, and since when it has not grown.
    private let meter: InboundFrameMeter
    /// The peer after its accepted hello (peer port only).
    private var peer: NodeID?
    /// The public key the peer's hello carried (empty if none).
    private var peerKey: [UInt8] = []
    /// This connection's reply channel, shared by its requests (answers batch per connection).
    private var reply: NIOReplyChannel?
    /// Requests handed to the node and not answered yet.
    /// Each with its kind and, for the observer, when it arrived (nil without one).
    private var pending: [RequestID: (kind: FrameKind, at: NIODeadline?)] = [:]
    private var isClosing = false
    /// When a frame last completed or an answer was last written: the idle timeout counts from
    /// the later of the two.
    private var lastActivity: NIODeadline?
    /// The periodic check of the idle and progress timeouts, while the connection is active.
    private var timeoutCheck: RepeatedTask?

    init(configuration: RPCServerConfiguration, meter: InboundFrameMeter, logger: Logger, handler: @escaping RPCRequestHandler) {
        self.configuration = configuration
        self.meter = meter
        self.logger = logger
        self.handler = handler
    }

    private func replyChannel(_ context: ChannelHandlerContext) -> NIOReplyChannel {
        if let reply { return reply }
        let made = NIOReplyChannel(context.channel)
        reply = made
        return made
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        startTimeoutChecks(context)
        // Started here, not in handlerAdded: under load a connection may become active only
        // after the timeout, and a check of isActive would then skip it forever.
        guard configuration.peerIdentity != nil else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let timeout = configuration.handshakeTimeout
        context.eventLoop.scheduleTask(in: timeout) {
            guard handler.value.peer == nil, boundContext.value.channel.isActive else { return }
            handler.value.close(boundContext.value, "no peerHello within \(timeout.nanoseconds / 1_000_000) ms")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeoutCheck?.cancel()
        timeoutCheck = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeoutCheck?.cancel()
        timeoutCheck = nil
    }

    /// Checks the idle and progress timeouts every quarter of the shorter one, so a
    /// connection is closed at most 25% after its timeout. Time is the event loop's
    /// (`EventLoop.now`: monotonic, and virtual on an embedded loop).
    private func startTimeoutChecks(_ context: ChannelHandlerContext) {
        let timeouts = [configuration.idleTimeout, configuration.progressTimeout].compactMap { $0 }
        guard let shortest = timeouts.min(), timeoutCheck == nil else { return }
        lastActivity = context.eventLoop.now
        let every = TimeAmount.nanoseconds(max(shortest.nanoseconds / 4, 1_000_000))
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        timeoutCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            handler.value.checkTimeouts(boundContext.value)
        }
    }

    private func checkTimeouts(_ context: ChannelHandlerContext) {
        guard !isClosing, context.channel.isActive else { return }
        let now = context.eventLoop.now
        if meter.bufferedBytes > 0 {
            if let limit = configuration.progressTimeout, now - meter.lastProgress >= limit {
                close(context, "slow sender: a partial frame of \(meter.bufferedBytes) bytes got no byte for "
                    + "\(Self.milliseconds(now - meter.lastProgress)) ms, want progress within \(Self.milliseconds(limit)) ms")
            }
        } else if pending.isEmpty, let limit = configuration.idleTimeout, let last = lastActivity, now - last >= limit {
            close(context, "idle: no request for \(Self.milliseconds(now - last)) ms and none in flight, want one within "
                + "\(Self.milliseconds(limit)) ms", level: .info)
        }
    }

    private static func milliseconds(_ t: TimeAmount) -> Int64 { t.nanoseconds / 1_000_000 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing else { return }
        lastActivity = context.eventLoop.now
        let frame = unwrapInboundIn(data)
        let message: RPCMessage
        do {
            message = try RPCMessage(frame)
        } catch {
            // Broken framing was refused by the decoder already. A well-formed request frame on
            // the client port whose body is invalid (an empty key, a value over its limit, an
            // unknown proposal version...) is answered `invalidRequest` with the reason, and
            // the connection stays open: the client can tell a refused request from a crash.
            guard configuration.peerIdentity == nil, Self.isClientRequest(frame) else {
                return close(context, "bad \(frame.kind) body: \(error)")
            }
            let refusal = RPCErrorResponse(.invalidRequest, "\(frame.kind): \(error.reason)")
            context.writeAndFlush(wrapOutboundOut(Frame(.error(refusal), requestID: frame.requestID)), promise: nil)
            configuration.observer?.answered(frame.kind, error: .invalidRequest, nanoseconds: 0)
            return
        }
        if let identity = configuration.peerIdentity {
            guard let peer else { return handshake(context, frame, message, identity) }
            return peerFrame(context, frame, message, peer: peer, identity: identity)
        }
        switch message {
        case .peerHello, .raftMessages, .snapshotOffer, .snapshotChunk:
            return close(context, "got peer frame \(frame.kind) on a client port, want client requests")
        default:
            request(context, frame, message)
        }
    }

    private func handshake(_ context: ChannelHandlerContext, _ frame: Frame, _ message: RPCMessage, _ identity: PeerIdentity) {
        guard case .peerHello(let hello) = message else {
            return close(context, "got \(frame.kind) before peerHello, want peerHello first")
        }
        var problem: String?
        if hello.clusterName != identity.clusterName {
            problem = "cluster name: got \"\(hello.clusterName)\", want \"\(identity.clusterName)\""
        } else if hello.to != identity.nodeID {
            problem = "hello addressed to \(hello.to): want \(identity.nodeID) (check peer addresses)"
        } else if hello.from == identity.nodeID {
            problem = "hello from \(hello.from): want another node than myself"
        } else if configuration.tls != nil, let mismatch = TLSContexts.checkPeerName(context.channel, is: "\(hello.from)") {
            problem = "hello from \(hello.from): \(mismatch)"
        } else if let missing = PeerFeatures.problem(hello.features, of: "\(hello.from)") {
            problem = missing
        }
        var code = RPCErrorCode.peerRejected
        if problem == nil, let removed = configuration.removedPeer?(hello.from, hello.publicKey) {
            problem = removed
            code = .memberRemoved
        }
        if let problem {
            // Answer first, then close once the answer is written, so the dialler logs why.
            isClosing = true
            logger.warning("closing rpc connection", metadata: ["reason": "rejected peer: \(problem)"])
            let reply = Frame(.error(RPCErrorResponse(code, problem)), requestID: frame.requestID)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        peer = hello.from
        peerKey = hello.publicKey
        logger.debug("peer connected", metadata: ["peer": "\(hello.from)"])
        if !hello.publicKey.isEmpty { configuration.onPeerKey?(hello.from, hello.publicKey) }
        let welcome = RPCMessage.peerWelcome(
            PeerWelcome(clusterName: identity.clusterName, nodeID: identity.nodeID, publicKey: identity.publicKey))
        context.writeAndFlush(wrapOutboundOut(Frame(welcome, requestID: frame.requestID)), promise: nil)
    }

    private func peerFrame(_ context: ChannelHandlerContext, _ frame: Frame, _ message: RPCMessage, peer: NodeID, identity: PeerIdentity) {
        switch message {
        case .raftMessages(let messages):
            guard frame.requestID == .none else {
                return close(context, "raftMessages request ID: got \(frame.requestID), want 0 (one-way)")
            }
            for m in messages where m.from != peer || m.to != identity.nodeID {
                return close(context, "raft message \(m.type) from \(m.from) to \(m.to): want from \(peer) to \(identity.nodeID)")
            }
            if let removed = configuration.removedPeer?(peer, peerKey) {
                // Connected before this node applied its removal: it dials again, and its
                // hello is refused with the reason.
                return close(context, "raft messages from a removed member: \(removed)", level: .info)
            }
            handler(message, RPCRequestContext(requestID: .none, peer: peer, remoteAddress: context.channel.remoteAddress, reply: replyChannel(context)))
        case .snapshotOffer, .snapshotChunk:
            request(context, frame, message)
        default:
            close(context, "got \(frame.kind) on a peer connection, want raftMessages or snapshot frames")
        }
    }

    /// A request kind a client may send, with no flags and a request ID (what `request` would
    /// accept but for its body).
    static func isClientRequest(_ frame: Frame) -> Bool {
        switch frame.kind {
        case .peerHello, .raftMessages, .snapshotOffer, .snapshotChunk: return false
        default: return !frame.kind.isResponse && frame.flags.isEmpty && frame.requestID != .none
        }
    }

    private func request(_ context: ChannelHandlerContext, _ frame: Frame, _ message: RPCMessage) {
        guard !frame.kind.isResponse, frame.flags.isEmpty else {
            return close(context, "got response kind \(frame.kind) (flags 0x\(String(frame.flags.rawValue, radix: 16))), want a request")
        }
        guard frame.requestID != .none, pending[frame.requestID] == nil else {
            return close(context, "request ID: got \(frame.requestID) (0 or already in flight), want a fresh non-zero ID")
        }
        guard pending.count < configuration.requestsInFlightMax else {
            let busy = RPCErrorResponse(.overloaded, "requests in flight: got \(pending.count), want < \(configuration.requestsInFlightMax)")
            context.writeAndFlush(wrapOutboundOut(Frame(.error(busy), requestID: frame.requestID)), promise: nil)
            configuration.observer?.answered(frame.kind, error: .overloaded, nanoseconds: 0)
            return
        }
        pending[frame.requestID] = (frame.kind, configuration.observer == nil ? nil : NIODeadline.now())
        if identity == nil, configuration.peerIdentity == nil {
            // The first request comes after the TLS handshake: the certificate is known.
            identity = ConnectionIdentity.of(context.channel, tls: configuration.tls != nil)
        }
        // The channel's cached address: `context.remoteAddress` asks the socket (getpeername)
        // on every call, 11,000 system calls in 4 s on a leader at 16 clients.
        handler(message, RPCRequestContext(
            requestID: frame.requestID, peer: peer, remoteAddress: context.channel.remoteAddress, identity: identity, reply: replyChannel(context)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        let isFinal = !frame.flags.contains(.more)
        guard let request = pending[frame.requestID], !isClosing else {
            logger.debug("dropping answer to a request not in flight", metadata: ["request": "\(frame.requestID)", "kind": "\(frame.kind)"])
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if isFinal {
            pending[frame.requestID] = nil
            lastActivity = context.eventLoop.now
            if let observer = configuration.observer, let at = request.at {
                observer.answered(request.kind, error: Self.errorCode(of: frame), nanoseconds: (NIODeadline.now() - at).nanoseconds)
            }
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    /// Answers a TLS client on this plaintext port in its own terms, a fatal TLS alert
    /// (protocol_version), so that it reports a TLS failure at once rather than a dropped
    /// connection it would retry. Written below the frame encoder, which takes only frames.
    private static func answerTLSClient(_ context: ChannelHandlerContext) {
        guard let below = try? context.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<FrameDecoder>.self) else { return }
        var alert = context.channel.allocator.buffer(capacity: 7)
        alert.writeBytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])  // alert record, TLS 1.2 framing, fatal, protocol_version
        below.writeAndFlush(NIOAny(alert), promise: nil)
    }

    /// The code of an error answer (decoded only for the observer); nil for any other answer.
    private static func errorCode(of frame: Frame) -> RPCErrorCode? {
        guard frame.kind == .error else { return nil }
        guard case .error(let e)? = try? RPCMessage(frame) else { return .internalError }
        return e.code
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let decoding = error as? RPCDecodingError {
            if decoding.code == .tlsHandshake { Self.answerTLSClient(context) }
            return close(context, "\(error)")
        }
        if configuration.tls != nil, TLSContexts.isRemoteClose(error) {
            return close(context, "the remote closed the connection without a TLS goodbye (\(error))", level: .debug)
        }
        if error is NIOSSLError || error is BoringSSLError {
            return close(context, "TLS: \(error) (a certificate not issued by the cluster's CA, expired, or without a certificate on the peer port)")
        }
        // An IO error (reset, broken pipe): the remote went away; nothing to warn about.
        guard !isClosing else { return }
        isClosing = true
        logger.debug("rpc connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func close(_ context: ChannelHandlerContext, _ reason: String, level: Logger.Level = .warning) {
        guard !isClosing else { return }
        isClosing = true
        logger.log(level: level, "closing rpc connection", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }
}
