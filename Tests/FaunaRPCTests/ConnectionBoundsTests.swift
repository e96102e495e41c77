import FaunaRaft
import FaunaRPC
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// The server's bounds on what a connection may hold: a budget of buffered partial-frame bytes
/// over all connections, an idle timeout and a progress timeout (docs/PROTOCOL.md "Slow and
/// idle connections"). Real sockets on loopback, timeouts of a few hundred milliseconds.
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

    @Test func idleConnectionIsClosedButOneWithARequestInFlightIsNot() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(
            logs: logs, configuration: RPCServerConfiguration(idleTimeout: .seconds(1), progressTimeout: nil))
        let start = ContinuousClock.now
        let (idle, idleClosed) = try await Self.rawConnection(to: server)
        // hashKV is never answered by the echo server: in flight for as long as we like.
        let busy = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)
        let waiting = Task { try await busy.call(.hashKV, timeout: .seconds(4)) }
        // One that keeps asking (every 50 ms for 2.4 s, from the start) stays open too: a twentyfold
        // margin on the idle timeout, for a loaded machine.
        let chatty = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)
        let asking = Task {
            var kinds: [FrameKind] = []
            for i in 0..<48 {
                kinds.append(try await chatty.call(.leaderTransfer(NodeID(UInt64(i + 1)))).kind)
                try await Task.sleep(for: .milliseconds(50))
            }
            return kinds
        }
        #expect(await eventually(seconds: 5) { idleClosed.withLockedValue { $0 } }, "idle connection still open")
        #expect(ContinuousClock.now - start >= .milliseconds(990), "closed before its idle timeout")
        #expect(logs.all.contains { $0.contains("closing rpc connection") && $0.contains("idle: no request") }, "\(logs.all)")
        #expect(try await asking.value == Array(repeating: .statusResponse, count: 48))
        #expect(busy.channel.isActive, "closed while a request was in flight")
        #expect(chatty.channel.isActive, "closed although it kept sending requests")
        waiting.cancel()
        _ = try? await waiting.value
        await busy.close()
        await chatty.close()
        _ = idle
        try await server.close()
    }

    @Test func partialFrameWithoutProgressIsClosedButATrickleIsNot() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(
            logs: logs, configuration: RPCServerConfiguration(idleTimeout: nil, progressTimeout: .seconds(1)))
        // `stalled` sends a header declaring 1 000 body bytes and 3 of them, then nothing;
        // `trickle` sends a whole leaderTransfer(5) frame (23 bytes) one byte at a time.
        let frame = Frame(kind: .leaderTransfer, requestID: RequestID(1), body: [0x05]).encoded()
        let (stalled, stalledClosed) = try await Self.rawConnection(to: server)
        try await stalled.writeAndFlush(ByteBuffer(bytes: Self.header(declaring: 1000) + [1, 2, 3]))
        let (trickle, trickleClosed) = try await Self.rawConnection(to: server)
        let start = ContinuousClock.now
        // One byte every 100 ms for 2 s: twice the progress timeout, never a second without a
        // byte (a tenfold margin, for a loaded machine).
        for byte in frame.prefix(20) {
            try await trickle.writeAndFlush(ByteBuffer(bytes: [byte]))
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await eventually(seconds: 5) { stalledClosed.withLockedValue { $0 } }, "stalled connection still open")
        #expect(ContinuousClock.now - start >= .milliseconds(990))
        #expect(logs.all.contains { $0.contains("closing rpc connection") && $0.contains("slow sender") }, "\(logs.all)")
        #expect(!trickleClosed.withLockedValue { $0 }, "a connection that made progress was closed")
        // The trickled frame completes and is answered like any other.
        let answer = NIOLockedValueBox<[UInt8]>([])
        try await trickle.pipeline.addHandler(ByteCollector(into: answer))
        try await trickle.writeAndFlush(ByteBuffer(bytes: Array(frame.dropFirst(20))))
        #expect(await eventually { answer.withLockedValue { $0.count } >= FrameHeader.sizeBytes }, "no answer to the trickled frame")
        #expect(answer.withLockedValue { (try? Frame.decode($0))??.frame.kind } == .statusResponse)
        await #expect(throws: Never.self) { try await trickle.close() }
        try await server.close()
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
