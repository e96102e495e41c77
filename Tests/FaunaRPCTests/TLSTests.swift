import FaunaRaft
import FaunaRPC
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Testing

/// Certificates made by `tools/tls-certs` (the openssl command) in a temporary directory.
struct TestPKI {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../tools/tls-certs").standardized.path
    let root: String

    /// A CA and certificates for `nodes` and a client in `root/name`; `environment` is added
    /// to the script's (libfaketime's, for certificates issued in the past).
    @discardableResult
    static func issue(_ root: String, _ name: String, nodes: [String], days: Int = 825, environment: [String: String] = [:]) async throws -> String {
        let dir = "\(root)/\(name)"
        var (status, errors) = try await runOffPool("/bin/bash", [script, dir, "--days", "\(days)"] + nodes, environment: environment)
        if status != 0 {
            // Making the fixture is not what is tested: one more try, its first failure printed
            // (CI, 2026-12-04: the run under libfaketime exited 1 once, its errors unseen).
            print("tools/tls-certs \(dir) exited \(status), trying again: \(errors)")
            (status, errors) = try await runOffPool("/bin/bash", [script, dir, "--days", "\(days)"] + nodes, environment: environment)
        }
        try #require(status == 0, "tools/tls-certs \(dir) exited \(status): \(errors)")
        return dir
    }

    static func node(_ dir: String, _ name: String) -> TLSFiles {
        TLSFiles(ca: "\(dir)/ca.crt", certificate: "\(dir)/\(name).crt", key: "\(dir)/\(name).key")
    }

    static func client(_ dir: String, trusting caDir: String? = nil) -> TLSFiles {
        TLSFiles(ca: "\(caDir ?? dir)/ca.crt", certificate: "\(dir)/client.crt", key: "\(dir)/client.key")
    }

    /// Runs a command to its end on a thread of its own (not the concurrency pool's): its exit
    /// status and the last 2,000 characters of its standard error (its output goes to /dev/null).
    static func runOffPool(_ path: String, _ arguments: [String], environment: [String: String]) async throws -> (Int32, String) {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = arguments
                p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                p.standardOutput = FileHandle.nullDevice
                let errors = Pipe()
                p.standardError = errors
                do {
                    try p.run()
                    // Read to the end before waiting: a full pipe would block the command.
                    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    p.waitUntilExit()
                    continuation.resume(returning: (p.terminationStatus, String(text.suffix(2000))))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }
}

/// TLS on both ports (docs/SECURITY.md): what works, and the clear error of each mistake.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSTests {
    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "fauna-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func server(_ logs: CapturedLogs, tls: TLSContexts?, peer: PeerIdentity? = nil) async throws -> RPCServer {
        var configuration = RPCServerConfiguration(peerIdentity: peer)
        configuration.tls = tls
        return try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { message, context in
            switch message {
            case .status: context.respond(.statusResponse(NodeStatus(
                nodeID: NodeID(2), role: .leader, term: Term(1), leader: NodeID(2), commitIndex: LogIndex(1),
                appliedIndex: LogIndex(1), treeSize: 1, dbSizeBytes: 0)))
            case .raftMessages: break
            default: context.respond(.error(RPCErrorResponse(.unsupported, "\(message.kind)")))
            }
        }
    }

    static func client(_ files: TLSFiles?, hello: PeerHello? = nil) throws -> RPCClientConfiguration {
        var configuration = RPCClientConfiguration(requestTimeout: .seconds(30), connectTimeout: .seconds(10), hello: hello)
        configuration.tls = try files.map { try TLSContexts(files: $0, role: .client) }
        return configuration
    }

    @Test func theClientPortAnswersTLSAndRefusesEachMistakeClearly() async throws {
        let root = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pki = try await TestPKI.issue(root, "pki", nodes: ["n2"])
        let other = try await TestPKI.issue(root, "other", nodes: ["n2"])
        let logs = CapturedLogs()
        let server = try await Self.server(logs, tls: try TLSContexts(files: TestPKI.node(pki, "n2"), role: .node))
        let target = try endpoint(of: server)

        // The cluster's client certificate, and no certificate at all: both answered.
        for files in [TestPKI.client(pki), TLSFiles(ca: "\(pki)/ca.crt", certificate: nil, key: nil)] {
            let c = try await RPCClient.connect(to: target, configuration: try Self.client(files), group: group, logger: logs.logger)
            guard case .statusResponse(let s) = try await c.call(.status()) else { Issue.record("no status over TLS"); return }
            #expect(s.nodeID == NodeID(2))
            await c.close()
        }

        // `client_auth = "require"`: the cluster's client certificate is answered; no
        // certificate is refused (TLS 1.3: after the client's side of the handshake, as an
        // alert on the first call at the latest), final, not a dropped connection.
        let strict = try await Self.server(
            logs, tls: try TLSContexts(files: TestPKI.node(pki, "n2"), role: .node, requireClientCertificate: true))
        let strictTarget = try endpoint(of: strict)
        let allowed = try await RPCClient.connect(to: strictTarget, configuration: try Self.client(TestPKI.client(pki)), group: group, logger: logs.logger)
        if case .statusResponse = try await allowed.call(.status()) {} else { Issue.record("no status with a client certificate") }
        await allowed.close()
        await #expect {
            let c = try await RPCClient.connect(
                to: strictTarget, configuration: try Self.client(TLSFiles(ca: "\(pki)/ca.crt", certificate: nil, key: nil)), group: group,
                logger: logs.logger)
            _ = try await c.call(.status())
            await c.close()
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed && "\($0)".contains("CERTIFICATE_REQUIRED") }
        try await strict.close()
        // Plaintext on the TLS port: one plaintext tlsRequired answer, then the close.
        let plain = try await RPCClient.connect(to: target, configuration: try Self.client(nil), group: group, logger: logs.logger)
        let answer = try await plain.call(.status())
        #expect(answer == .error(RPCErrorResponse(.tlsRequired, "this port takes TLS only: connect with the cluster's CA and certificates (cluster.toml [tls])")))
        await plain.close()
        #expect(await eventually { logs.all.contains { $0.contains("a plaintext client on a TLS port") } })
        // A client trusting another CA refuses the node's certificate at connect.
        await #expect {
            try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.client(other)), group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed && "\($0)".contains("CERTIFICATE_VERIFY_FAILED") }
        // A client certificate of another CA: the node refuses it (TLS 1.3: after the client's
        // side of the handshake), and the call fails as TLS, not as a lost connection. The
        // node's alert may arrive before the connect completes (CI, 2026-12-04): at connect or
        // at the first call, it is the same TLS failure.
        await #expect {
            let stranger = try await RPCClient.connect(
                to: target, configuration: try Self.client(TestPKI.client(other, trusting: pki)), group: group, logger: logs.logger)
            defer { Task { await stranger.close() } }
            _ = try await stranger.call(.status())
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed && "\($0)".contains("UNKNOWN_CA") }
        #expect(await eventually { logs.all.contains { $0.contains("TLS: handshakeFailed") } })
        try await server.close()

        // A TLS client on a plaintext port: a clear error on both sides.
        let plainServer = try await Self.server(logs, tls: nil)
        await #expect {
            try await RPCClient.connect(to: try endpoint(of: plainServer), configuration: try Self.client(TestPKI.client(pki)), group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed && "\($0)".contains("PROTOCOL_VERSION") }
        #expect(await eventually { logs.all.contains { $0.contains("a TLS handshake: this port is plaintext") } })
        try await plainServer.close()

        // A connection dropped during the handshake (a node stopping) is not a TLS refusal: it
        // is `connectFailed`, which clients retry at another node.
        let dropper = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.close() }
            .bind(host: "127.0.0.1", port: 0).get()
        await #expect {
            try await RPCClient.connect(
                to: Endpoint(host: "127.0.0.1", port: UInt16(dropper.localAddress!.port!)), configuration: try Self.client(TestPKI.client(pki)),
                group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .connectFailed }
        try await dropper.close()
    }

    /// Closing the server closes its connections without waiting long for TLS clients that
    /// never answer its close_notify (they stopped reading, as an idle client of another
    /// library does). With swift-nio-ssl's default (5 s each, one after another) three such
    /// clients held a stopping node for 15 s; a removed member outlived the chaos harness's
    /// 5 s wait (docs/RELIABILITY.md "Membership").
    @Test func closingDoesNotWaitForClientsThatStoppedReading() async throws {
        let root = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pki = try await TestPKI.issue(root, "pki", nodes: ["n2"])
        let logs = CapturedLogs()
        let server = try await Self.server(logs, tls: try TLSContexts(files: TestPKI.node(pki, "n2"), role: .node))
        let target = try endpoint(of: server)
        var clients: [any Channel] = []
        for _ in 0..<3 { clients.append(try await Self.idleTLSClient(to: target, ca: "\(pki)/ca.crt")) }
        #expect(await eventually { server.connectionCount == 3 })
        let start = ContinuousClock.now
        try await server.close()
        let took = ContinuousClock.now - start
        #expect(took < .seconds(4), "closing took \(took) with 3 idle TLS clients")
        for c in clients { try? await c.close() }
    }

    /// A TLS client that completes its handshake and then stops reading.
    static func idleTLSClient(to target: Endpoint, ca: String) async throws -> any Channel {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .file(ca)
        tls.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: tls)
        let handshake = group.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(done: handshake))
            }
        }.connect(host: target.host, port: Int(target.port)).get()
        try await handshake.futureResult.get()
        try await channel.setOption(ChannelOptions.autoRead, value: false).get()
        return channel
    }

    /// Completes `done` when the TLS handshake completes.
    final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<Void>
        init(done: EventLoopPromise<Void>) { self.done = done }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent { done.succeed(()) }
            context.fireUserInboundEventTriggered(event)
        }
        func handlerRemoved(context: ChannelHandlerContext) { done.fail(ChannelError.ioOnClosedChannel) }
    }

    @Test func thePeerPortBindsTheHelloToTheCertificate() async throws {
        let root = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pki = try await TestPKI.issue(root, "pki", nodes: ["n1", "n2", "n3"])
        let logs = CapturedLogs()
        let server = try await Self.server(
            logs, tls: try TLSContexts(files: TestPKI.node(pki, "n2"), role: .node), peer: PeerIdentity(clusterName: "test", nodeID: NodeID(2)))
        let target = try endpoint(of: server)
        let hello = PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(2))
        // n1 with n1's certificate: welcome.
        let good = try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.node(pki, "n1"), hello: hello), group: group, logger: logs.logger)
        await good.close()
        // n3's certificate claiming to be n1: refused, naming the mismatch.
        await #expect {
            try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.node(pki, "n3"), hello: hello), group: group, logger: logs.logger)
        } throws: { error in
            guard let e = error as? RPCClientError else { return false }
            return e.code == .handshakeRejected && e.response?.code == .peerRejected && e.reason.contains("want \"n1\"")
        }
        // A client certificate (no node name): refused the same way.
        await #expect {
            try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.client(pki), hello: hello), group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .handshakeRejected }
        // No certificate at all: the peer port requires one.
        await #expect {
            let c = try await RPCClient.connect(
                to: target, configuration: try Self.client(TLSFiles(ca: "\(pki)/ca.crt", certificate: nil, key: nil), hello: hello),
                group: group, logger: logs.logger)
            await c.close()
        } throws: { [RPCClientError.Code.tlsFailed, .handshakeRejected].contains(($0 as? RPCClientError)?.code) }
        // The dialler checks the other way too: n1 dialling "n3" at n2's address refuses n2's certificate.
        await #expect {
            try await RPCClient.connect(
                to: target, configuration: try Self.client(TestPKI.node(pki, "n1"), hello: PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(3))),
                group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed && "\($0)".contains("want \"n3\"") }
        try await server.close()
    }

    @Test func expiredOrMissingFilesAreOneLineAndReloadRotatesTheCertificate() async throws {
        let root = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Issued 800 days ago for 1 day (libfaketime moves the openssl command's clock).
        let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
        try #require(FileManager.default.fileExists(atPath: faketime), "libfaketime is missing: run tools/setup")
        let old = try await TestPKI.issue(root, "old", nodes: ["n2"], days: 1, environment: ["LD_PRELOAD": faketime, "FAKETIME": "-800d"])
        #expect {
            try TLSContexts(files: TestPKI.node(old, "n2"), role: .node)
        } throws: { "\($0)".contains("n2.crt: the certificate expired at") }
        #expect {
            try TLSContexts(files: TLSFiles(ca: "\(root)/nowhere/ca.crt", certificate: nil, key: nil), role: .client)
        } throws: { "\($0)".contains("the file does not exist") }
        #expect {
            try TLSContexts(files: TLSFiles(ca: "\(old)/ca.crt", certificate: nil, key: nil), role: .node)
        } throws: { "\($0)".contains("want both a certificate and its key for a node") }

        // Rotation: the files are replaced by a new CA's, `reload()` makes new connections use
        // them; a client of the old CA is then refused, one of the new accepted.
        let first = try await TestPKI.issue(root, "first", nodes: ["n2"])
        let second = try await TestPKI.issue(root, "second", nodes: ["n2"])
        let live = "\(root)/live"
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        func install(_ dir: String) throws {
            for f in ["ca.crt", "n2.crt", "n2.key"] {
                try? FileManager.default.removeItem(atPath: "\(live)/\(f)")
                try FileManager.default.copyItem(atPath: "\(dir)/\(f)", toPath: "\(live)/\(f)")
            }
        }
        try install(first)
        let tls = try TLSContexts(files: TestPKI.node(live, "n2"), role: .node)
        let logs = CapturedLogs()
        let server = try await Self.server(logs, tls: tls)
        let target = try endpoint(of: server)
        let before = try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.client(first)), group: group, logger: logs.logger)
        try install(second)
        try tls.reload()
        await #expect {
            try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.client(first)), group: group, logger: logs.logger)
        } throws: { ($0 as? RPCClientError)?.code == .tlsFailed }
        let after = try await RPCClient.connect(to: target, configuration: try Self.client(TestPKI.client(second)), group: group, logger: logs.logger)
        if case .statusResponse = try await after.call(.status()) {} else { Issue.record("no answer after the reload") }
        // The connection made before the reload keeps its session.
        if case .statusResponse = try await before.call(.status()) {} else { Issue.record("the open connection lost its session") }
        await before.close()
        await after.close()
        try await server.close()
    }
}
