import FaunaRaft
import FaunaRPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A peer-port server of node 2 in cluster "test" that records the Raft messages it gets.
func peerServer(logs: CapturedLogs, port: Int = 0) async throws -> (RPCServer, NIOLockedValueBox<[Message]>, NIOLockedValueBox<Int>) {
    let received = NIOLockedValueBox<[Message]>([])
    let frames = NIOLockedValueBox(0)
    let configuration = RPCServerConfiguration(port: port, peerIdentity: PeerIdentity(clusterName: "test", nodeID: NodeID(2)))
    let server = try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { message, context in
        switch message {
        case .raftMessages(let messages):
            #expect(context.peer == NodeID(1))
            frames.withLockedValue { $0 += 1 }
            received.withLockedValue { $0.append(contentsOf: messages) }
        case .snapshotOffer(let offer):
            context.respond(.snapshotAck(SnapshotAck(index: offer.metadata.index, term: offer.metadata.term, isAccepted: true)))
        default:
            context.respond(.error(RPCErrorResponse(.unsupported, "\(message.kind)")))
        }
    }
    return (server, received, frames)
}

func heartbeat(_ i: Int) -> Message {
    Message(type: .heartbeat, from: NodeID(1), to: NodeID(2), term: Term(3), commit: LogIndex(UInt64(i)))
}

@Suite(.timeLimit(.minutes(1))) struct PeerTests {
    @Test func handshakeRejectsAnotherClusterOrNode() async throws {
        let logs = CapturedLogs()
        let (server, _, _) = try await peerServer(logs: logs)
        let target = try endpoint(of: server)
        for hello in [
            PeerHello(clusterName: "other", from: NodeID(1), to: NodeID(2)),
            PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(3)),
            PeerHello(clusterName: "test", from: NodeID(2), to: NodeID(2)),
        ] {
            await #expect {
                try await RPCClient.connect(to: target, configuration: RPCClientConfiguration(hello: hello), group: group, logger: logs.logger)
            } throws: { error in
                guard let error = error as? RPCClientError else { return false }
                return error.code == .handshakeRejected && error.response?.code == .peerRejected
            }
        }
        // A frame other than hello first closes the connection.
        let plain = try await RPCClient.connect(to: target, group: group, logger: logs.logger)
        await #expect { try await plain.call(.status()) } throws: { ($0 as? RPCClientError)?.code == .connectionClosed }
        // The right hello works, and snapshot offers are answered.
        let good = try await RPCClient.connect(
            to: target, configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(2))),
            group: group, logger: logs.logger)
        let ack = try await good.call(.snapshotOffer(SnapshotOffer(metadata: SnapshotMetadata(index: LogIndex(9), term: Term(2)), files: [])))
        #expect(ack == .snapshotAck(SnapshotAck(index: LogIndex(9), term: Term(2), isAccepted: true)))
        await good.close()
        try await server.close()
    }

    @Test func handshakeExchangesPublicKeys() async throws {
        let logs = CapturedLogs()
        let serverKey = [UInt8](repeating: 0xA2, count: 32), clientKey = [UInt8](repeating: 0xC1, count: 32)
        let heardByServer = NIOLockedValueBox<[NodeID: [UInt8]]>([:])
        var configuration = RPCServerConfiguration(
            peerIdentity: PeerIdentity(clusterName: "test", nodeID: NodeID(2), publicKey: serverKey))
        configuration.onPeerKey = { node, key in heardByServer.withLockedValue { $0[node] = key } }
        let server = try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { _, _ in }
        let heardByClient = NIOLockedValueBox<[NodeID: [UInt8]]>([:])
        var link = PeerLinkConfiguration()
        link.client.onPeerKey = { node, key in heardByClient.withLockedValue { $0[node] = key } }
        let peer = PeerLink(
            to: NodeID(2), at: try endpoint(of: server),
            identity: PeerIdentity(clusterName: "test", nodeID: NodeID(1), publicKey: clientKey), group: group,
            configuration: link, logger: logs.logger)
        peer.start()
        #expect(await eventually { peer.stats.isConnected })
        #expect(heardByServer.withLockedValue { $0 } == [NodeID(1): clientKey])
        #expect(heardByClient.withLockedValue { $0 } == [NodeID(2): serverKey])
        await peer.shutdown()

        // A hello without a key but with the features is welcomed; the server hears no key.
        let keyless = try await RPCClient.connect(
            to: try endpoint(of: server), configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(3), to: NodeID(2))),
            group: group, logger: logs.logger)
        await keyless.close()
        #expect(heardByServer.withLockedValue { $0[NodeID(3)] } == nil)
        // A node of a version before users and roles (no features) is refused: its entries
        // would not apply the same (KVProposal principals).
        await #expect {
            try await RPCClient.connect(
                to: try endpoint(of: server),
                configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(3), to: NodeID(2), publicKey: clientKey, features: [])),
                group: group, logger: logs.logger)
        } throws: { error in
            guard let error = error as? RPCClientError else { return false }
            return error.code == .handshakeRejected && error.response?.code == .peerRejected && error.reason.contains("upgrade it")
        }
        // Nor is one of the version before state levels (users and roles only): its nodes
        // would apply an `upgradeState` entry as malformed.
        await #expect {
            try await RPCClient.connect(
                to: try endpoint(of: server),
                configuration: RPCClientConfiguration(
                    hello: PeerHello(clusterName: "test", from: NodeID(3), to: NodeID(2), publicKey: clientKey, features: [.principals])),
                group: group, logger: logs.logger)
        } throws: { error in
            guard let error = error as? RPCClientError else { return false }
            return error.response?.code == .peerRejected && error.reason.contains("without state levels")
        }
        try await server.close()

        // Encoded: `[bytes key [varint features]]`, the key left out when empty and without
        // features; an empty key without features, or zero features, is refused.
        let plain = try RPCMessage(Frame(.peerHello(PeerHello(clusterName: "t", from: NodeID(1), to: NodeID(2), features: [])), requestID: RequestID(1)))
        #expect(plain == .peerHello(PeerHello(clusterName: "t", from: NodeID(1), to: NodeID(2), features: [])))
        let withKey = Frame(.peerWelcome(PeerWelcome(clusterName: "t", nodeID: NodeID(2), publicKey: serverKey)), requestID: RequestID(1))
        #expect(withKey.body.suffix(34) == [32] + serverKey + [3], "key, then features principals | stateLevels")
        var emptyKey = Frame(.peerWelcome(PeerWelcome(clusterName: "t", nodeID: NodeID(2), features: [])), requestID: RequestID(1)).body
        emptyKey.append(0)
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .peerWelcome, body: emptyKey) }
        var zeroFeatures = Frame(.peerWelcome(PeerWelcome(clusterName: "t", nodeID: NodeID(2), publicKey: serverKey, features: [])), requestID: RequestID(1)).body
        zeroFeatures.append(0)
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .peerWelcome, body: zeroFeatures) }
    }

    /// A node that has applied a peer's removal refuses that peer's hello (same key) with
    /// `memberRemoved`, and closes a connection the peer opened before, so that the peer's
    /// link dials again and hears it. Another key under the same ID is still welcomed.
    @Test func removedPeerIsRefusedAndTold() async throws {
        let logs = CapturedLogs()
        let oldKey = [UInt8](repeating: 0x31, count: 32), newKey = [UInt8](repeating: 0x32, count: 32)
        let removed = NIOLockedValueBox(false)
        let received = NIOLockedValueBox(0)
        var configuration = RPCServerConfiguration(peerIdentity: PeerIdentity(clusterName: "test", nodeID: NodeID(2)))
        configuration.removedPeer = { node, key in
            removed.withLockedValue { $0 } && node == NodeID(1) && key == oldKey ? "node 1 was removed" : nil
        }
        let server = try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { message, _ in
            if case .raftMessages(let messages) = message { received.withLockedValue { $0 += messages.count } }
        }
        let told = NIOLockedValueBox<[String]>([])
        var link = PeerLinkConfiguration(backoffInitial: .milliseconds(10), backoffMax: .milliseconds(50))
        link.onRemoved = { peer, reason in told.withLockedValue { $0.append("\(peer): \(reason)") } }
        let peer = PeerLink(
            to: NodeID(2), at: try endpoint(of: server),
            identity: PeerIdentity(clusterName: "test", nodeID: NodeID(1), publicKey: oldKey), group: group,
            configuration: link, logger: logs.logger)
        peer.start()
        #expect(await eventually { peer.stats.isConnected })
        peer.send([heartbeat(1)])
        #expect(await eventually { received.withLockedValue { $0 } == 1 })
        // The server applies the removal; the open connection's next frame closes it, and the
        // hello on the next connect is refused with the reason.
        removed.withLockedValue { $0 = true }
        peer.send([heartbeat(2)])
        #expect(await eventually { !told.withLockedValue { $0 }.isEmpty })
        #expect(told.withLockedValue { $0 }.first == "n2: node 1 was removed")
        #expect(received.withLockedValue { $0 } == 1)
        #expect(!peer.stats.isConnected)
        await peer.shutdown()

        await #expect {
            try await RPCClient.connect(
                to: try endpoint(of: server),
                configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(2), publicKey: oldKey)),
                group: group, logger: logs.logger)
        } throws: { error in
            guard let error = error as? RPCClientError else { return false }
            return error.code == .handshakeRejected && error.response?.code == .memberRemoved
                && error.response?.message == "node 1 was removed"
        }
        // Node 1 added again with a new data directory presents a new key: welcomed.
        let readded = try await RPCClient.connect(
            to: try endpoint(of: server),
            configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(2), publicKey: newKey)),
            group: group, logger: logs.logger)
        await readded.close()
        try await server.close()
    }

    @Test func linkBatchesMessagesPerFlush() async throws {
        let logs = CapturedLogs()
        let (server, received, frames) = try await peerServer(logs: logs)
        let link = PeerLink(
            to: NodeID(2), at: try endpoint(of: server), identity: PeerIdentity(clusterName: "test", nodeID: NodeID(1)),
            group: group, logger: logs.logger)
        link.start()
        #expect(await eventually { link.stats.isConnected })
        for round in 0..<10 {
            #expect(link.send((0..<100).map { heartbeat(round * 100 + $0) }) == 100)
        }
        #expect(await eventually { received.withLockedValue { $0.count } == 1000 })
        #expect(received.withLockedValue { $0 } == (0..<1000).map(heartbeat))
        let stats = link.stats
        #expect(stats.sentMessages == 1000)
        #expect(stats.droppedMessages == 0)
        #expect(frames.withLockedValue { $0 } <= 10, "100 messages per send must go out in one frame")
        await link.shutdown()
        try await server.close()
    }

    @Test func queueBoundDropsAndCounts() async throws {
        let logs = CapturedLogs()
        let (server, received, _) = try await peerServer(logs: logs)
        let link = PeerLink(
            to: NodeID(2), at: try endpoint(of: server), identity: PeerIdentity(clusterName: "test", nodeID: NodeID(1)),
            group: group, configuration: PeerLinkConfiguration(queueMessagesMax: 10), logger: logs.logger)
        link.start()
        #expect(await eventually { link.stats.isConnected })
        let accepted = link.send((0..<25).map(heartbeat))
        #expect(accepted == 10)
        #expect(link.stats.droppedMessages == 15)
        #expect(await eventually { received.withLockedValue { $0.count } == 10 })
        await link.shutdown()
        try await server.close()
    }

    @Test func linkReconnectsWithBackoff() async throws {
        let logs = CapturedLogs()
        // Find a free port, then leave it closed: the link starts with nobody listening.
        let probe = try await RPCServer.start(configuration: RPCServerConfiguration(), group: group, logger: logs.logger) { _, _ in }
        let port = try #require(probe.port)
        try await probe.close()
        let link = PeerLink(
            to: NodeID(2), at: Endpoint(host: "127.0.0.1", port: UInt16(port)),
            identity: PeerIdentity(clusterName: "test", nodeID: NodeID(1)), group: group,
            configuration: PeerLinkConfiguration(backoffInitial: .milliseconds(10), backoffMax: .milliseconds(100)), logger: logs.logger)
        link.start()
        try await Task.sleep(for: .milliseconds(100))
        #expect(link.send([heartbeat(1)]) == 0)
        #expect(link.stats.droppedMessages == 1)
        let (server, received, _) = try await peerServer(logs: logs, port: port)
        #expect(await eventually { link.stats.isConnected })
        #expect(link.send([heartbeat(2)]) == 1)
        #expect(await eventually { received.withLockedValue { $0 } == [heartbeat(2)] })
        await link.shutdown()
        try await server.close()
    }

    @Test func silentConnectionIsClosedAfterTheHandshakeTimeout() async throws {
        let logs = CapturedLogs()
        var configuration = RPCServerConfiguration(peerIdentity: PeerIdentity(clusterName: "test", nodeID: NodeID(2)))
        configuration.handshakeTimeout = .milliseconds(100)
        let server = try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { _, _ in }
        let silent = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: try #require(server.port)).get()
        let closed = silent.closeFuture.isFulfilledFlag()
        #expect(await eventually { closed.withLockedValue { $0 } })
        #expect(logs.all.contains { $0.contains("no peerHello within 100 ms") }, "\(logs.all)")
        try await server.close()
    }

    @Test func connectionsBeyondTheLimitAreClosed() async throws {
        let logs = CapturedLogs()
        let server = try await RPCServer.start(
            configuration: RPCServerConfiguration(connectionsMax: 1), group: group, logger: logs.logger
        ) { _, context in context.respond(.leaderTransferResponse) }
        let first = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)
        #expect(await eventually { server.connectionCount == 1 })
        let excess = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: try #require(server.port)).get()
        let closed = excess.closeFuture.isFulfilledFlag()
        #expect(await eventually { closed.withLockedValue { $0 } })
        #expect(logs.all.contains { $0.contains("open connections: got 1") }, "\(logs.all)")
        #expect(try await first.call(.leaderTransfer(NodeID(1))) == .leaderTransferResponse)
        await first.close()
        try await server.close()
    }

    @Test func spoofedSenderClosesTheConnection() async throws {
        let logs = CapturedLogs()
        let (server, received, _) = try await peerServer(logs: logs)
        let client = try await RPCClient.connect(
            to: try endpoint(of: server),
            configuration: RPCClientConfiguration(hello: PeerHello(clusterName: "test", from: NodeID(1), to: NodeID(2))),
            group: group, logger: logs.logger)
        let closed = client.closeFuture.isFulfilledFlag()
        let spoofed = Message(type: .heartbeat, from: NodeID(3), to: NodeID(2), term: Term(3))
        client.writeOneWay(Frame(.raftMessages([spoofed]), requestID: .none))
        client.flush()
        #expect(await eventually { closed.withLockedValue { $0 } })
        #expect(received.withLockedValue { $0 }.isEmpty)
        #expect(logs.all.contains { $0.contains("want from n1 to n2") })
        try await server.close()
    }
}

/// Salted scrypt hashes (ADR 0012): a fresh salt each time, the right password matches, any
/// other does not, and empty input is refused instead of reaching the C code.
@Suite struct PasswordHashingTests {
    @Test func hashesMatchOnlyTheirPassword() throws {
        let started = ContinuousClock.now
        let a = try PasswordHashing.hash(password: Array("correct horse".utf8))
        let b = try PasswordHashing.hash(password: Array("correct horse".utf8))
        #expect(a.salt != b.salt && a.hash != b.hash, "two hashes of one password must differ by their salt")
        #expect(a.logN == 15 && a.r == 8 && a.p == 1 && a.salt.count == 16 && a.hash.count == 32)
        #expect(try PasswordHashing.matches(Array("correct horse".utf8), a))
        #expect(try !PasswordHashing.matches(Array("correct horsf".utf8), a))
        #expect(throws: (any Error).self) { try PasswordHashing.hash(password: []) }
        #expect(throws: (any Error).self) { try PasswordHashing.matches([], a) }
        print("4 scrypt hashes (N=2^15, r=8) took \(ContinuousClock.now - started)")
    }
}
