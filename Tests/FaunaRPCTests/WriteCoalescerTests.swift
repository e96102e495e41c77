import FaunaRaft
import NIOCore
import NIOEmbedded
import Testing

@testable import FaunaRPC

/// The handler that gathers a connection's writes between flushes into one buffer, and
/// flushes once per round of the event loop (`WriteCoalescer`).
@Suite struct WriteCoalescerTests {
    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
        return channel
    }

    private func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer {
        ByteBuffer(repeating: value, count: count)
    }

    @Test func writesBetweenFlushesLeaveAsOneBufferAfterTheLoopRuns() throws {
        let channel = try channel()
        var written: [EventLoopFuture<Void>] = []
        for i in 0..<3 {
            written.append(channel.writeAndFlush(bytes(10, UInt8(i))))
        }
        // The flush waits for the loop's next round: nothing is out yet.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()
        let out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(out.readableBytesView) == [UInt8](repeating: 0, count: 10) + [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 10))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        // Every write's promise completes with the one write that carried it.
        for future in written { #expect(throws: Never.self) { try future.wait() } }
        _ = try channel.finish()
    }

    @Test func aRecordSizedWriteGoesAloneAndEndsTheGathering() throws {
        let channel = try channel()
        channel.write(bytes(100, 1), promise: nil)
        channel.write(bytes(WriteCoalescer.bytesMax, 2), promise: nil)
        channel.write(bytes(100, 3), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        let sizes = try (0..<3).map { _ in try #require(try channel.readOutbound(as: ByteBuffer.self)).readableBytes }
        #expect(sizes == [100, WriteCoalescer.bytesMax, 100])
        _ = try channel.finish()
    }

    @Test func gatheringStopsBeforeARecordFillsUp() throws {
        let channel = try channel()
        let half = WriteCoalescer.bytesMax / 2
        for i in 0..<3 { channel.write(bytes(half, UInt8(i)), promise: nil) }
        channel.flush()
        channel.embeddedEventLoop.run()
        let sizes = try (0..<2).map { _ in try #require(try channel.readOutbound(as: ByteBuffer.self)).readableBytes }
        #expect(sizes == [2 * half, half])
        _ = try channel.finish()
    }

    @Test func aCloseSendsWhatWasWrittenFirst() throws {
        let channel = try channel()
        channel.write(bytes(5, 7), promise: nil)
        channel.close(promise: nil)
        let out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(out.readableBytes == 5)
    }

    /// Plaintext server connections have it too: the answers to requests that arrived in one
    /// read leave in one buffer (one `write`), not one each.
    @Test func aPlaintextServerConnectionSendsItsAnswersTogether() throws {
        let logs = CapturedLogs()
        let channel = try ConnectionBoundsTests.embeddedConnection(
            RPCServerConfiguration(idleTimeout: nil, progressTimeout: nil), logs: logs)
        var requests = ConnectionBoundsTests.request(.leaderTransfer(NodeID(1)), id: 1)
        var second = ConnectionBoundsTests.request(.leaderTransfer(NodeID(2)), id: 2)
        requests.writeBuffer(&second)
        try channel.writeInbound(requests)
        channel.embeddedEventLoop.run()
        let out = Array(try #require(try channel.readOutbound(as: ByteBuffer.self)).readableBytesView)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "the second answer left on its own")
        let first = try #require(try Frame.decode(out))
        let rest = try #require(try Frame.decode(Array(out[first.consumed...])))
        #expect([first.frame.requestID, rest.frame.requestID] == [RequestID(1), RequestID(2)])
        #expect(first.consumed + rest.consumed == out.count)
        _ = try? channel.finish()
    }
}
