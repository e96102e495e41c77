import FaunaRaft
@testable import FaunaRPC
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

/// The server's bounds on what a connection may hold: a budget of buffered partial-frame bytes
/// over all connections, an idle timeout and a progress timeout (docs/PROTOCOL.md "Slow and
/// idle connections"). The timeouts on virtual time (an embedded channel), the budget on real
/// sockets on loopback.
@Suite(.timeLimit(.minutes(1))) struct ConnectionBoundsTests {
    /// The header of a `status` request declaring a body of `bodyBytes` (whose bytes then
    /// follow, or not).
    static func header(declaring bodyBytes: Int, requestID: UInt64 = 1) -> [UInt8] {
        var bytes = Frame(kind: .status, requestID: RequestID(requestID), body: []).encoded()
        let n = UInt32(bodyBytes)
        bytes.replaceSubrange(4..<8, with: [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)])
        return bytes
    }

    static func rawConnection(to server: RPCServer) async throws -> (any Channel, NIOLockedValueBox<Bool>) {
        let raw = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: try #require(server.port)).get()
        return (raw, raw.closeFuture.isFulfilledFlag())
    }

    /// One server connection on an embedded channel: its timeouts run on virtual time, so the
    /// test decides exactly how much time passes (no sleeps, no load to disturb it). The
    /// handler answers `leaderTransfer` at once and never answers `hashKV` (in flight for good).
    static func embeddedConnection(_ configuration: RPCServerConfiguration, logs: CapturedLogs) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try RPCServer.configureConnection(
            channel, configuration: configuration, frameBuffers: FrameBufferBudget(bytesMax: 1 << 20), logger: logs.logger
        ) { message, context in
            if case .leaderTransfer(let id) = message {
                context.respond(.statusResponse(NodeStatus(
                    nodeID: id, role: .leader, term: Term(1), leader: id, commitIndex: .zero, appliedIndex: .zero, treeSize: 0,
                    dbSizeBytes: 0)))
            }
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7000)).wait()  // active: timeouts start
        return channel
    }

    static func request(_ message: RPCMessage, id: UInt64) -> ByteBuffer {
        ByteBuffer(bytes: Frame(message, requestID: RequestID(id)).encoded())
    }

    @Test func idleConnectionIsClosedButOneWithARequestInFlightIsNot() throws {
        let logs = CapturedLogs()
        let configuration = RPCServerConfiguration(idleTimeout: .milliseconds(400), progressTimeout: nil)
        let idle = try Self.embeddedConnection(configuration, logs: logs)
        let busy = try Self.embeddedConnection(configuration, logs: logs)
        let chatty = try Self.embeddedConnection(configuration, logs: logs)
        try busy.writeInbound(Self.request(.hashKV, id: 1))  // never answered
        for step in 1...24 {  // 1.2 s in steps of 50 ms, three times the idle timeout
            try chatty.writeInbound(Self.request(.leaderTransfer(NodeID(UInt64(step))), id: UInt64(step)))
            for channel in [idle, busy, chatty] { channel.embeddedEventLoop.advanceTime(by: .milliseconds(50)) }
            if step == 7 { #expect(idle.isActive, "closed before its idle timeout (350 ms idle)") }
        }
        #expect(!idle.isActive, "idle connection still open after 1.2 s")
        #expect(logs.all.contains { $0.contains("closing rpc connection") && $0.contains("idle: no request") }, "\(logs.all)")
        #expect(busy.isActive, "closed while a request was in flight")
        #expect(chatty.isActive, "closed although it kept sending requests")
        var answers = 0
        while let _ = try chatty.readOutbound(as: ByteBuffer.self) { answers += 1 }
        #expect(answers == 24)
        _ = try? busy.finish()
        _ = try? chatty.finish()
    }

    @Test func partialFrameWithoutProgressIsClosedButATrickleIsNot() throws {
        let logs = CapturedLogs()
        let configuration = RPCServerConfiguration(idleTimeout: nil, progressTimeout: .milliseconds(500))
        // `stalled` sends a header declaring 1 000 body bytes and 3 of them, then nothing;
        // `trickle` sends a whole leaderTransfer(5) frame (23 bytes) one byte every 100 ms.
        let stalled = try Self.embeddedConnection(configuration, logs: logs)
        let trickle = try Self.embeddedConnection(configuration, logs: logs)
        try stalled.writeInbound(ByteBuffer(bytes: Self.header(declaring: 1000) + [1, 2, 3]))
        var frame = Self.request(.leaderTransfer(NodeID(5)), id: 1)
        var elapsedMs = 0
        while let byte = frame.readBytes(length: 1) {
            try trickle.writeInbound(ByteBuffer(bytes: byte))
            for channel in [stalled, trickle] { channel.embeddedEventLoop.advanceTime(by: .milliseconds(100)) }
            elapsedMs += 100
            if elapsedMs == 400 { #expect(stalled.isActive, "closed before its progress timeout") }
        }
        #expect(elapsedMs >= 2000, "the trickle lasted \(elapsedMs) ms, four times the progress timeout")
        #expect(!stalled.isActive, "stalled connection still open")
        #expect(logs.all.contains { $0.contains("closing rpc connection") && $0.contains("slow sender") }, "\(logs.all)")
        #expect(trickle.isActive, "a connection that made progress was closed")
        // The trickled frame completed and was answered like any other.
        let answer = try #require(try trickle.readOutbound(as: ByteBuffer.self))
        #expect((try? Frame.decode(Array(answer.readableBytesView)))??.frame.kind == .statusResponse)
        _ = try? trickle.finish()
    }

    @Test func bufferBudgetClosesTheConnectionThatWouldExceedIt() async throws {
        let logs = CapturedLogs()
        let budget = 1 << 20
        let free = FrameBufferBudget.freeBytesPerConnection
        let server = try await echoServer(
            logs: logs,
            configuration: RPCServerConfiguration(bufferedBytesMax: budget, idleTimeout: nil, progressTimeout: nil))
        let good = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)

        // A holds 900 KiB of a 2 MiB body: its buffer (900 KiB to 1 MiB, grown by doubling)
        // fits the budget beyond its free 64 KiB.
        let (a, aClosed) = try await Self.rawConnection(to: server)
        let aBytes = Self.header(declaring: 2 << 20) + [UInt8](repeating: 7, count: 900 << 10)
        try await a.writeAndFlush(ByteBuffer(bytes: aBytes))
        let aCharge = (aBytes.count - free)...((1 << 20) - free)
        #expect(await eventually { aCharge.contains(server.frameBuffers.chargedBytes) }, "charged \(server.frameBuffers.chargedBytes)")
        let charged = server.frameBuffers.chargedBytes
        // B's 300 KiB would take the total past 1 MiB: B is closed, A is not.
        let (b, bClosed) = try await Self.rawConnection(to: server)
        try await b.writeAndFlush(ByteBuffer(bytes: Self.header(declaring: 2 << 20) + [UInt8](repeating: 8, count: 300 << 10)))
        #expect(await eventually { bClosed.withLockedValue { $0 } }, "over-budget connection still open")
        #expect(logs.all.contains { $0.contains("closing rpc connection") && $0.contains("bufferBudgetExceeded") }, "\(logs.all)")
        #expect(!aClosed.withLockedValue { $0 })
        // B's charge came back; small requests never depend on the budget.
        #expect(await eventually { server.frameBuffers.chargedBytes == charged })
        #expect(try await good.call(.leaderTransfer(NodeID(3))).kind == .statusResponse)
        // A's charge comes back when it goes away.
        try await a.close()
        #expect(await eventually { server.frameBuffers.chargedBytes == 0 }, "charged \(server.frameBuffers.chargedBytes) after close")
        _ = b
        await good.close()
        try await server.close()
    }
}

/// Appends every inbound byte to a box (a raw test connection's view of the answers).
final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let sink: NIOLockedValueBox<[UInt8]>
    init(into sink: NIOLockedValueBox<[UInt8]>) { self.sink = sink }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        sink.withLockedValue { $0.append(contentsOf: bytes) }
    }
}
