import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// The PEM files of one party of a secured cluster (docs/SECURITY.md): the cluster's own
/// certificate authority, the only issuer it trusts, and this party's certificate and key
/// (a node must have them; a client without them presents no certificate).
public struct TLSFiles: Sendable, Hashable {
    public var ca: String
    public var certificate: String?
    public var key: String?

    public init(ca: String, certificate: String?, key: String?) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }
}

/// Why TLS could not be set up: one line naming the file and what to do.
public struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The TLS contexts of a node or a client, built from its files. TLS 1.3 only. Nodes and
/// clients trust only the cluster's CA; a node's certificate names the node (`n1`) among its
/// DNS subject alternative names, which binds a peer's hello to its certificate.
///
/// `reload()` reads the files again (certificate rotation, faunad's SIGHUP): connections made
/// afterwards use the new contexts, open ones keep theirs.
public final class TLSContexts: Sendable {
    /// A node has all three contexts; a client only the dialer.
    public enum Role: Sendable { case node, client }

    /// How long a close we start waits for the peer's close_notify before it closes the socket
    /// anyway (swift-nio-ssl's default is 5 s). Our frames carry their own lengths, so a cut
    /// stream is seen without it; waiting only held a stopping node up: a client that had
    /// stopped reading (an idle Python client does) kept a removed node alive for 5 s per
    /// connection (docs/RELIABILITY.md "Membership").
    public static let closeNotifyWait: TimeAmount = .milliseconds(500)

    struct Contexts {
        /// The client port's: a client certificate verified when presented, or required.
        var clientPort: NIOSSLContext?
        /// The HTTP metrics and status port's: a client certificate verified when presented,
        /// never required (it serves figures, never keys or values; docs/METRICS.md).
        var httpPort: NIOSSLContext?
        /// The peer port's: a certificate of the cluster's CA is required.
        var peerPort: NIOSSLContext?
        /// For connections this party makes: verifies the node's certificate against the CA
        /// and presents this party's own.
        var dialer: NIOSSLContext
    }

    public let files: TLSFiles
    public let role: Role
    /// A node's client port accepts only clients that present a certificate of the CA
    /// (`client_auth = "require"`); false: verified when presented.
    public let requireClientCertificate: Bool
    private let current: NIOLockedValueBox<Contexts>

    public init(files: TLSFiles, role: Role, requireClientCertificate: Bool = false) throws(TLSSetupError) {
        self.files = files
        self.role = role
        self.requireClientCertificate = requireClientCertificate
        current = NIOLockedValueBox(try Self.load(files, role: role, requireClientCertificate: requireClientCertificate))
    }

    /// Reads the files again; on an error the contexts in use stay.
    public func reload() throws(TLSSetupError) {
        let fresh = try Self.load(files, role: role, requireClientCertificate: requireClientCertificate)
        current.withLockedValue { $0 = fresh }
    }

    var clientPort: NIOSSLContext? { current.withLockedValue { $0.clientPort } }

    /// Whether a TLS error only says the other side went away (closed, or closed without
    /// close_notify, e.g. a stopped process or a client that gave up on a handshake) rather
    /// than refusing anything. A plaintext Fauna node answers a TLS client with an alert, so a
    /// bare close never means that. BoringSSL reports a close during the handshake as an
    /// error whose only trace is its text.
    static func isRemoteClose(_ error: any Error) -> Bool {
        if let e = error as? ChannelError, e == .ioOnClosedChannel || e == .eof { return true }
        if let e = error as? IOError, e.errnoCode == ECONNRESET || e.errnoCode == EPIPE { return true }
        // The pipeline was already torn down when the handshake's waiter was looked up.
        if let e = error as? ChannelPipelineError, e == .notFound { return true }
        if let e = error as? NIOSSLError, case .uncleanShutdown = e { return true }
        return "\(error)".contains("EOF during handshake")
    }

    /// Puts the HTTP port's TLS (the node's certificate; a client certificate optional,
    /// verified when presented) at the front of `pipeline`: the metrics and status port.
    public func addHTTPPortTLS(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        guard let context = current.withLockedValue({ $0.httpPort }) else { throw TLSSetupError("TLS: only a node serves TLS") }
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
    }
    var peerPort: NIOSSLContext? { current.withLockedValue { $0.peerPort } }
    var dialer: NIOSSLContext { current.withLockedValue { $0.dialer } }

    private static func load(_ files: TLSFiles, role: Role, requireClientCertificate: Bool) throws(TLSSetupError) -> Contexts {
        let ca = try certificates(files.ca, what: "CA certificate")
        var chain: [NIOSSLCertificate] = []
        var key: NIOSSLPrivateKey?
        switch (files.certificate, files.key) {
        case (let certificatePath?, let keyPath?):
            chain = try certificates(certificatePath, what: "certificate")
            do {
                key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            } catch {
                throw TLSSetupError("\(keyPath): cannot read a PEM private key (\(error))\(Self.missingHint(keyPath))")
            }
        case (nil, nil) where role == .client:
            break
        default:
            throw TLSSetupError("TLS: want both a certificate and its key\(role == .node ? " for a node" : ", or neither")")
        }
        let now = time(nil)
        for (cert, path) in chain.prefix(1).map({ ($0, files.certificate ?? "") }) + ca.map({ ($0, files.ca) }) {
            if cert.notValidAfter < now {
                throw TLSSetupError("\(path): the certificate expired at \(Self.date(cert.notValidAfter)); issue a new one (tools/cluster certs --renew)")
            }
            if cert.notValidBefore > now {
                throw TLSSetupError("\(path): the certificate is valid only from \(Self.date(cert.notValidBefore)); check the clock")
            }
        }
        func context(_ configuration: TLSConfiguration, _ what: String) throws(TLSSetupError) -> NIOSSLContext {
            do {
                return try NIOSSLContext(configuration: configuration)
            } catch {
                throw TLSSetupError("\(files.certificate ?? "-"), \(files.key ?? "-"): cannot make the \(what) TLS context (\(error)); does the key match the certificate?")
            }
        }
        var dialer = TLSConfiguration.makeClientConfiguration()
        dialer.minimumTLSVersion = .tlsv13
        dialer.shutdownTimeout = Self.closeNotifyWait
        dialer.trustRoots = .certificates(ca)
        // The node's identity is checked by name after the handshake (peer links) or by the CA
        // and the certificate's purpose (clients), not by host name: nodes are often reached
        // by address.
        dialer.certificateVerification = .noHostnameVerification
        dialer.certificateChain = chain.map { .certificate($0) }
        dialer.privateKey = key.map { .privateKey($0) }
        var contexts = Contexts(dialer: try context(dialer, "client"))
        if role == .node, let key {
            var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            server.minimumTLSVersion = .tlsv13
            server.shutdownTimeout = Self.closeNotifyWait
            server.trustRoots = .certificates(ca)
            // A server's `.noHostnameVerification` requires the peer's certificate.
            server.certificateVerification = .optionalVerification
            contexts.httpPort = try context(server, "metrics port")
            server.certificateVerification = requireClientCertificate ? .noHostnameVerification : .optionalVerification
            contexts.clientPort = try context(server, "client port")
            server.certificateVerification = .noHostnameVerification
            contexts.peerPort = try context(server, "peer port")
        }
        return contexts
    }

    private static func certificates(_ path: String, what: String) throws(TLSSetupError) -> [NIOSSLCertificate] {
        let certs: [NIOSSLCertificate]
        do {
            certs = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw TLSSetupError("\(path): cannot read a PEM \(what) (\(error))\(missingHint(path))")
        }
        guard !certs.isEmpty else { throw TLSSetupError("\(path): no PEM \(what) in the file") }
        return certs
    }

    private static func missingHint(_ path: String) -> String {
        access(path, F_OK) == 0 ? "" : "; the file does not exist (tools/cluster up creates a local CA and certificates)"
    }

    /// `t` as "2026-12-04 06:30:00 UTC".
    static func date(_ t: time_t) -> String {
        var seconds = t
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "\(t) s after 1970" }
        var text = [CChar](repeating: 0, count: 32)
        let n = strftime(&text, text.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        return String(decoding: text.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The DNS names a certificate carries (subject alternative names).
    static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .dnsName else { return nil }
            return String(decoding: name.contents, as: UTF8.self)
        }
    }

    /// Nil if `channel`'s verified peer certificate names node `name`, else why not.
    static func checkPeerName(_ channel: any Channel, is name: String) -> String? {
        guard let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate() else {
            return "no certificate from the peer (mutual TLS on the peer port)"
        }
        let names = dnsNames(of: certificate)
        return names.contains(name) ? nil : "its certificate names \(names), want \"\(name)\" (a node's certificate carries its ID)"
    }
}

/// Placed before the TLS handler of a port that takes TLS only: a connection whose first bytes
/// are a Fauna frame (a client without TLS) gets one plaintext `tlsRequired` error frame, so it
/// can say why, and is closed; anything else goes on to TLS, and this handler leaves.
final class PlaintextRefuser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let logger: Logger?

    init(logger: Logger?) { self.logger = logger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        // A TLS record starts with its content type, 22 (handshake) for a ClientHello; a frame
        // with "FNA", 0x46.
        if first == UInt8(truncatingIfNeeded: FrameHeader.magic >> 24) {
            logger?.warning("closing rpc connection", metadata: ["reason": "a plaintext client on a TLS port: answered tlsRequired"])
            // Answered under the request's own ID (header bytes 10..<18), so its caller gets it.
            let id = buffer.readableBytes >= 18 ? buffer.getInteger(at: buffer.readerIndex + 10, as: UInt64.self) ?? 1 : 1
            let frame = Frame(
                .error(RPCErrorResponse(.tlsRequired, "this port takes TLS only: connect with the cluster's CA and certificates (cluster.toml [tls])")),
                requestID: RequestID(rawValue: id))
            var out = context.channel.allocator.buffer(capacity: frame.sizeBytes)
            frame.encode(into: &out)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
