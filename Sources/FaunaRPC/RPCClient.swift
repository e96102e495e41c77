import FaunaRaft
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Why a client call failed. A struct with a code so that new cases do not break callers.
public struct RPCClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public var code: Code
    /// Detail in "got X, want Y" form where it applies.
    public var reason: String
    /// The server's answer, for `handshakeRejected`.
    public var response: RPCErrorResponse?

    /// An error of kind `code`.
    public init(_ code: Code, _ reason: String, response: RPCErrorResponse? = nil) {
        self.code = code
        self.reason = reason
        self.response = response
    }

    /// The kinds of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }
        /// TCP connect failed or timed out.
        public static let connectFailed = Code("connectFailed")
        /// The connection closed before the answer arrived (the request may have been run).
        public static let connectionClosed = Code("connectionClosed")
        /// No (complete) answer within the timeout (the request may still run).
        public static let timeout = Code("timeout")
        /// `requestsInFlightMax` requests are already waiting; nothing was sent.
        public static let tooManyInFlight = Code("tooManyInFlight")
        /// The server broke the protocol (bad frame, unexpected kind); the connection is closed.
        public static let protocolViolation = Code("protocolViolation")
        /// The peer port refused our hello (wrong cluster or node).
        public static let handshakeRejected = Code("handshakeRejected")
        /// The TLS handshake failed (a plaintext port, a certificate of another CA, expired),
        /// or the node answered `tlsRequired` to a plaintext request.
        public static let tlsFailed = Code("tlsFailed")
        /// The node refused the connection's user name and password (`authFailed`).
        public static let authFailed = Code("authFailed")
        public var description: String { name }
    }

    public var description: String { "\(code): \(reason)" }
}

/// Settings of an `RPCClient`.
public struct RPCClientConfiguration: Sendable {
    /// The largest frame body accepted from the server.
    public var bodyBytesMax: Int
    /// Calls waiting for an answer at once; more fail at once with `tooManyInFlight`.
    public var requestsInFlightMax: Int
    /// Default time a call waits for its (whole) answer.
    public var requestTimeout: TimeAmount
    /// Time allowed for the TCP connect.
    public var connectTimeout: TimeAmount
    /// Sent first when connecting to a peer port; the connect succeeds only after the matching
    /// `peerWelcome`.
    public var hello: PeerHello?
    /// Called on the event loop when the connection can take output again after it could not
    /// (`PeerLink` resumes draining its queue).
    public var onWritable: (@Sendable () -> Void)?
    /// Called with the peer's node and key when its `peerWelcome` carries a public key.
    public var onPeerKey: (@Sendable (NodeID, [UInt8]) -> Void)?
    /// TLS (docs/SECURITY.md): the connect completes only after the handshake, which verifies
    /// the node's certificate against the cluster's CA; with `hello`, the certificate must also
    /// name the node dialled. Nil: plaintext.
    public var tls: TLSContexts?

    /// A configuration with defaults for a client on loopback or a LAN.
    public init(
        bodyBytesMax: Int = FrameHeader.bodyBytesMaxDefault, requestsInFlightMax: Int = 256,
        requestTimeout: TimeAmount = .seconds(5), connectTimeout: TimeAmount = .seconds(2), hello: PeerHello? = nil
    ) {
        self.bodyBytesMax = bodyBytesMax
        self.requestsInFlightMax = requestsInFlightMax
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.hello = hello
    }
}

/// One connection to a Fauna server with pipelined requests: any number of tasks may call
/// concurrently; answers are matched to calls by request ID, in whatever order they come.
public final class RPCClient: Sendable {
    /// The connection.
    public let channel: any Channel
    let configuration: RPCClientConfiguration

    /// Why the connection ended, as its handler saw it: a call written after the end fails
    /// with this error (a TLS refusal stays a TLS error), not a bare "closed channel".
    private let end: ConnectionEnd

    private init(channel: any Channel, configuration: RPCClientConfiguration, end: ConnectionEnd) {
        self.channel = channel
        self.configuration = configuration
        self.end = end
    }

    /// Connects to `endpoint` (and, with `configuration.hello`, completes the peer handshake).
    public static func connect(
        to endpoint: Endpoint, configuration: RPCClientConfiguration = RPCClientConfiguration(),
        group: any EventLoopGroup, logger: Logger
    ) async throws(RPCClientError) -> RPCClient {
        var connectionLogger = logger
        connectionLogger[metadataKey: "remote"] = "\(endpoint)"
        let handlerLogger = connectionLogger
        let end = ConnectionEnd()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls = configuration.tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.dialer, serverHostname: nil))
                            try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(channel.eventLoop.makePromise()))
                        }
                        try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
                        try channel.pipeline.syncOperations.addFrameCodec(bodyBytesMax: configuration.bodyBytesMax)
                        try channel.pipeline.syncOperations.addHandler(
                            ClientConnectionHandler(configuration: configuration, logger: handlerLogger, end: end))
                    }
                }
                .connect(host: endpoint.host, port: Int(endpoint.port))
                .get()
        } catch {
            throw RPCClientError(.connectFailed, "connect to \(endpoint): \(error)")
        }
        if configuration.tls != nil {
            try await waitForTLS(
                channel, endpoint: endpoint, hello: configuration.hello, timeout: configuration.connectTimeout + configuration.requestTimeout, end: end)
        }
        let client = RPCClient(channel: channel, configuration: configuration, end: end)
        if let hello = configuration.hello {
            do {
                try await client.handshake(hello)
            } catch {
                await client.close()
                throw error
            }
        }
        return client
    }

    /// Waits (bounded) for the TLS handshake of a new connection; closes it on failure.
    /// A handshake the node refused or could not speak is `tlsFailed` (final); one that got no
    /// answer, or a connection that closed before any TLS answer (a paused or killed node), is
    /// `connectFailed`, which callers retry elsewhere.
    /// `end`: a TLS refusal the connection's handler saw first (the pipeline may be gone by the
    /// time the waiter is looked up) still counts as one.
    private static func waitForTLS(
        _ channel: any Channel, endpoint: Endpoint, hello: PeerHello?, timeout: TimeAmount, end: ConnectionEnd
    ) async throws(RPCClientError) {
        let failure: String?
        var code = RPCClientError.Code.tlsFailed
        do {
            let waiter = try await channel.eventLoop.submit { try channel.pipeline.syncOperations.handler(type: TLSHandshakeWaiter.self) }.get()
            let timer = channel.eventLoop.scheduleTask(in: timeout) { waiter.promise.fail(TLSHandshakeWaiter.TimedOut()) }
            defer { timer.cancel() }
            try await waiter.promise.futureResult.get()
            if let hello {
                failure = try await channel.eventLoop.submit { TLSContexts.checkPeerName(channel, is: "\(hello.to)") }.get()
                    .map { "node \(hello.to) at \(endpoint): \($0)" }
            } else {
                failure = nil
            }
        } catch is TLSHandshakeWaiter.TimedOut {
            failure = "TLS handshake with \(endpoint): no answer within \(timeout.nanoseconds / 1_000_000) ms"
            code = .connectFailed
        } catch let error where TLSContexts.isRemoteClose(error) {
            if let refusal = end.error, refusal.code == .tlsFailed {
                failure = "TLS handshake with \(endpoint) failed: \(refusal.reason)"
            } else {
                failure = "TLS handshake with \(endpoint): the connection closed before the node answered (\(error))"
                code = .connectFailed
            }
        } catch {
            failure = "TLS handshake with \(endpoint) failed: \(error) (is the node's port plaintext, or its certificate from another CA or expired?)"
        }
        if let failure {
            try? await channel.close()
            throw RPCClientError(code, failure)
        }
    }

    private func handshake(_ hello: PeerHello) async throws(RPCClientError) {
        switch try await call(.peerHello(hello)) {
        case .peerWelcome(let welcome) where welcome.nodeID == hello.to && welcome.clusterName == hello.clusterName:
            if let missing = PeerFeatures.problem(welcome.features, of: "\(welcome.nodeID)") {
                throw RPCClientError(.handshakeRejected, "peer welcome: \(missing)")
            }
            if !welcome.publicKey.isEmpty { configuration.onPeerKey?(welcome.nodeID, welcome.publicKey) }
        case .error(let response):
            throw RPCClientError(.handshakeRejected, "peer hello: \(response)", response: response)
        case let other:
            throw RPCClientError(.protocolViolation, "peer hello: got \(other.kind), want peerWelcome from \(hello.to) of \"\(hello.clusterName)\"")
        }
    }

    /// Sends `request` and waits for its answer (an `.error` answer is returned, not thrown).
    public func call(_ request: RPCMessage, timeout: TimeAmount? = nil) async throws(RPCClientError) -> RPCMessage {
        try await send(request, timeout: timeout ?? configuration.requestTimeout, onPartial: nil)
    }

    /// Sends a request whose answer is streamed (`snapshotSave`): `onPartial` gets every frame
    /// flagged `more`, on the event loop, in order; the final answer is returned. `timeout`
    /// covers the whole stream.
    /// `timeout` nil: the stream may last for ever (a watch); `onStart` gets the request ID the
    /// stream was sent with (a watch is cancelled by it), on the event loop, before any frame.
    public func stream(
        _ request: RPCMessage, timeout: TimeAmount?, onStart: (@Sendable (RequestID) -> Void)? = nil,
        onPartial: @escaping @Sendable (RPCMessage) -> Void
    ) async throws(RPCClientError) -> RPCMessage {
        try await send(request, timeout: timeout, onStart: onStart, onPartial: onPartial)
    }

    private func send(
        _ request: RPCMessage, timeout: TimeAmount?, onStart: (@Sendable (RequestID) -> Void)? = nil,
        onPartial: (@Sendable (RPCMessage) -> Void)?
    ) async throws(RPCClientError) -> RPCMessage {
        let promise = channel.eventLoop.makePromise(of: RPCMessage.self)
        let call = ClientCall.request(
            kind: request.kind, body: request.encodedBody(), timeout: timeout, onStart: onStart, onPartial: onPartial, promise: promise)
        // A write to a closed channel never reaches the handler: fail the call here (a second
        // completion of the promise is ignored by NIO).
        channel.writeAndFlush(call).whenFailure { [end] error in
            promise.fail(end.error ?? RPCClientError(.connectionClosed, "write failed: \(error)"))
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as RPCClientError {
            throw error
        } catch {
            throw RPCClientError(.connectionClosed, "\(error)")
        }
    }

    /// Writes a one-way frame (request ID 0) without flushing; `flush()` sends what was
    /// written. Used by `PeerLink` to batch.
    public func writeOneWay(_ frame: Frame) {
        channel.write(ClientCall.oneWay(frame), promise: nil)
    }

    /// Sends what `writeOneWay` wrote.
    public func flush() { channel.flush() }

    /// Completes when the connection is closed, by either side.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Closes the connection; calls in flight fail with `connectionClosed`.
    public func close() async {
        try? await channel.close()
    }
}

/// The first reason a connection ended, shared by its handler and its `RPCClient`.
final class ConnectionEnd: Sendable {
    private let box = NIOLockedValueBox<RPCClientError?>(nil)

    var error: RPCClientError? { box.withLockedValue { $0 } }

    /// Records `error` unless an earlier end was recorded.
    func record(_ error: RPCClientError) {
        box.withLockedValue { if $0 == nil { $0 = error } }
    }
}

/// What `RPCClient` writes into its pipeline.
enum ClientCall {
    /// A request awaiting an answer; the handler assigns its request ID.
    case request(
        kind: FrameKind, body: [UInt8], timeout: TimeAmount?, onStart: (@Sendable (RequestID) -> Void)?,
        onPartial: (@Sendable (RPCMessage) -> Void)?, promise: EventLoopPromise<RPCMessage>)
    /// A frame that gets no answer.
    case oneWay(Frame)
}

/// Client side of one connection: assigns request IDs, bounds and times out calls, matches
/// answers. Closes the connection on any protocol violation.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = ClientCall
    typealias OutboundOut = Frame

    private struct Pending {
        var promise: EventLoopPromise<RPCMessage>
        var onPartial: (@Sendable (RPCMessage) -> Void)?
        var timeout: Scheduled<Void>?
    }

    private let configuration: RPCClientConfiguration
    private let logger: Logger
    private var nextID: UInt64 = 1
    private var pending: [RequestID: Pending] = [:]
    private var closedReason: String?
    private var closedCode = RPCClientError.Code.connectionClosed
    private let end: ConnectionEnd

    init(configuration: RPCClientConfiguration, logger: Logger, end: ConnectionEnd) {
        self.configuration = configuration
        self.logger = logger
        self.end = end
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .oneWay(let frame):
            context.write(wrapOutboundOut(frame), promise: promise)
        case .request(let kind, let body, let timeout, let onStart, let onPartial, let callPromise):
            if let closedReason {
                callPromise.fail(RPCClientError(closedCode, closedReason))
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            guard pending.count < configuration.requestsInFlightMax else {
                callPromise.fail(RPCClientError(.tooManyInFlight, "requests in flight: got \(pending.count), want < \(configuration.requestsInFlightMax)"))
                promise?.succeed()
                return
            }
            let id = RequestID(nextID)
            nextID += 1
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let scheduled = timeout.map { timeout in
                context.eventLoop.scheduleTask(in: timeout) { loopBound.value.timedOut(id, after: timeout) }
            }
            pending[id] = Pending(promise: callPromise, onPartial: onPartial, timeout: scheduled)
            onStart?(id)
            context.write(wrapOutboundOut(Frame(kind: kind, requestID: id, body: body)), promise: promise)
        }
    }

    private func timedOut(_ id: RequestID, after timeout: TimeAmount) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.promise.fail(RPCClientError(.timeout, "request \(id): no answer after \(timeout.nanoseconds / 1_000_000) ms"))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.kind.isResponse, frame.requestID != .none, frame.requestID.rawValue < nextID else {
            return violation(context, "got \(frame.kind) with request ID \(frame.requestID), want an answer to a request sent")
        }
        guard let call = pending[frame.requestID] else {
            logger.debug("answer after timeout dropped", metadata: ["request": "\(frame.requestID)"])
            return
        }
        let message: RPCMessage
        do {
            message = try RPCMessage(frame)
        } catch {
            return violation(context, "bad \(frame.kind) body: \(error)")
        }
        if frame.flags.contains(.more) {
            guard let onPartial = call.onPartial else {
                return violation(context, "got a streamed \(frame.kind) to request \(frame.requestID), want one answer")
            }
            onPartial(message)
            return
        }
        pending.removeValue(forKey: frame.requestID)
        call.timeout?.cancel()
        call.promise.succeed(message)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is RPCDecodingError { return violation(context, "\(error)") }
        // An IO error (reset, broken pipe): the connection is gone, not misbehaving.
        guard closedReason == nil else { return }
        logger.debug("rpc connection failed", metadata: ["error": "\(error)"])
        if (error is NIOSSLError || error is BoringSSLError) && !TLSContexts.isRemoteClose(error) {
            // With TLS 1.3 the node checks a client certificate after the client has finished
            // its side of the handshake: its refusal arrives here, as an alert.
            let hint = "\(error)".contains("CERTIFICATE_REQUIRED")
                ? "the node takes only clients with a certificate of its CA (client_auth = \"require\"): give this client one"
                : "the node refused this client's certificate: another CA, or expired?"
            failAll("TLS: \(error) (\(hint))", code: .tlsFailed)
        } else {
            failAll("connection failed: \(error)")
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { configuration.onWritable?() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closedReason ?? "connection closed by the server")
        context.fireChannelInactive()
    }

    private func violation(_ context: ChannelHandlerContext, _ reason: String) {
        guard closedReason == nil else { return }
        logger.warning("closing rpc connection", metadata: ["reason": "\(reason)"])
        closedReason = reason
        failAll(reason, code: .protocolViolation)
        context.close(promise: nil)
    }

    private func failAll(_ reason: String, code: RPCClientError.Code = .connectionClosed) {
        if closedReason == nil {
            closedReason = reason
            closedCode = code
            end.record(RPCClientError(code, reason))
        }
        let calls = pending
        pending.removeAll()
        for (_, call) in calls {
            call.timeout?.cancel()
            call.promise.fail(RPCClientError(code, reason))
        }
    }
}

/// Completes its promise when the TLS handshake of its channel completes, or fails it with the
/// first error or the close that comes first. Stays in the pipeline, passing everything on.
final class TLSHandshakeWaiter: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    struct TimedOut: Error {}

    let promise: EventLoopPromise<Void>

    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// A connect that failed never made the channel active: the promise still ends.
    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
    }
}
