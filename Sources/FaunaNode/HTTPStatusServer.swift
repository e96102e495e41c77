import FaunaRPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// What the HTTP port answers for a path: status, content type, body.
struct HTTPAnswer: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    /// More headers (`WWW-Authenticate`, `Retry-After`).
    var headers: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ body: String) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "text/plain; charset=utf-8", body: Array(body.utf8))
    }
}

/// One request of the HTTP port, as the router sees it.
struct HTTPStatusRequest: Sendable {
    /// The path, without the query.
    var path: String
    /// The connection's TLS identity (its client certificate's names; empty without one).
    var identity: ConnectionIdentity
    /// The `Authorization` header, if any.
    var authorization: String?
}

/// Answers a request: calls its second argument once, on any thread (a password check runs
/// off the event loop).
typealias HTTPRoute = @Sendable (HTTPStatusRequest, @escaping @Sendable (HTTPAnswer) -> Void) -> Void

/// The node's HTTP/1.1 port (`metrics` in cluster.toml): `/metrics`, `/livez`, `/readyz`
/// (docs/METRICS.md). GET and HEAD only, no request bodies; SwiftNIO's HTTP/1 codec, no web
/// framework. Bounded: connections (beyond `connectionsMax` one is closed at once), the
/// request head (the codec's limit of 80 KiB), idle connections (closed after
/// `idleTimeout` without a request).
final class HTTPStatusServer: Sendable {
    let channel: any Channel
    var port: Int? { channel.localAddress?.port }

    static let connectionsMax = 64
    static let idleTimeout = TimeAmount.seconds(60)

    private init(channel: any Channel) { self.channel = channel }

    /// Binds `host:port` and serves `route` (called on an event loop: must not block). With
    /// `tls`, HTTPS with the node's certificate; a client certificate is optional, verified
    /// against the CA when presented.
    static func start(
        host: String, port: Int, tls: TLSContexts? = nil, group: any EventLoopGroup, logger: Logger, route: @escaping HTTPRoute
    ) async throws -> HTTPStatusServer {
        let open = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = open.withLockedValue { n in
                    guard n < connectionsMax else { return false }
                    n += 1
                    return true
                }
                guard admitted else {
                    logger.info("metrics port: too many connections; closing one", metadata: ["max": "\(connectionsMax)"])
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try tls.addHTTPPortTLS(to: sync) }
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try sync.addHandler(HTTPStatusHandler(tls: tls != nil, route: route))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port)
            .get()
        return HTTPStatusServer(channel: channel)
    }

    func close() async throws {
        try await channel.close()
    }
}

/// One HTTP connection: answers each request once its end arrives (NIO's pipelining handler
/// holds the next request until the answer's end is written).
final class HTTPStatusHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: HTTPRoute
    private let tls: Bool
    private var head: HTTPRequestHead?
    private var sawBody = false
    /// Read at the first request, after the TLS handshake.
    private var identity: ConnectionIdentity?

    init(tls: Bool, route: @escaping HTTPRoute) {
        self.tls = tls
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            sawBody = false
        case .body:
            sawBody = true  // dropped: nothing here takes a body
        case .end:
            guard let h = head else { return }
            head = nil
            let keepAlive = h.isKeepAlive && !sawBody
            if h.method != .GET && h.method != .HEAD {
                return respond(context, h, .text(.methodNotAllowed, "\(h.method) \(h.uri): want GET or HEAD\n"), keepAlive: keepAlive)
            }
            if sawBody {
                return respond(context, h, .text(.badRequest, "\(h.uri): a request body is not accepted\n"), keepAlive: keepAlive)
            }
            let path = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? h.uri
            let identity = identity ?? ConnectionIdentity.of(context.channel, tls: tls)
            self.identity = identity
            let request = HTTPStatusRequest(path: path, identity: identity, authorization: h.headers.first(name: "Authorization"))
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            route(request) { answer in
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(context, h, answer, keepAlive: keepAlive)
                }
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ answer: HTTPAnswer, keepAlive: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: "\(answer.body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: answer.status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
