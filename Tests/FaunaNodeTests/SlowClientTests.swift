import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import NIOCore
import NIOPosix
import Testing

/// End to end: clients that open every connection of the client port, each declaring a 16 MiB
/// frame and sending it slowly, must not exhaust the node's memory or stop it serving others
/// (docs/RELIABILITY.md "Bounds", docs/PROTOCOL.md "Slow and idle connections").
@Suite(.serialized) struct SlowClientTests {
    /// Resident and peak resident memory of process `pid` in bytes (/proc/<pid>/status).
    static func memory(of pid: Int32) -> (rss: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func kilobytes(_ field: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
        }
        guard let rss = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else { return nil }
        return (rss, peak)
    }

    static func mebibytes(_ bytes: Int) -> String { "\(bytes >> 20) MiB" }

    @Test func thousandSlowLargeFramesKeepMemoryBoundedAndTheNodeServing() async throws {
        let cluster = try ProcessCluster(names: ["n1"])
        defer { Task { await cluster.shutdown() } }
        try cluster.start("n1")
        _ = try await cluster.waitForLeader(among: ["n1"])
        let pid = try #require(cluster.processID(of: "n1"))
        let port = try #require(cluster.nodes["n1"]?.client)
        let client = try await RPCClient.connect(
            to: Endpoint(host: "127.0.0.1", port: UInt16(port)), group: cluster.group, logger: cluster.logger)
        let before = try #require(Self.memory(of: pid))

        // 1,024 connections (the port's limit; the two already open make the last ones be
        // refused), each declaring a 16 MiB body.
        var header = Frame(kind: .status, requestID: RequestID(1), body: []).encoded()
        header.replaceSubrange(4..<8, with: [0x01, 0x00, 0x00, 0x00])  // 16 MiB = 0x0100_0000
        var attackers: [any Channel] = []
        for _ in 0..<1024 {
            guard let channel = try? await ClientBootstrap(group: cluster.group).connect(host: "127.0.0.1", port: port).get() else { continue }
            attackers.append(channel)
            channel.writeAndFlush(ByteBuffer(bytes: header), promise: nil)
        }
        // Then the bodies, slowly: 256 KiB per connection per second for 8 s (2 MiB each,
        // 2 GiB in all, well within the 30 s progress timeout), while the other client puts
        // and reads a key every round and the node's memory is sampled.
        let chunk = ByteBuffer(bytes: [UInt8](repeating: 0x5A, count: 256 << 10))
        var maxRSS = before.rss
        var served = 0
        let rounds = 8
        for round in 0..<rounds {
            let writes = attackers.filter(\.isActive).map { $0.writeAndFlush(chunk) }
            for write in writes { try? await write.get() }
            // The test runs beside other process tests on two shared cores, and round 0 pushes
            // 256 MiB through loopback at once: the bound on an answer is 20 s, not the
            // client's 5 s default, and each answer's latency is printed.
            let key = [UInt8]("slow/\(round)")
            let started = ContinuousClock.now
            let put: Result<RPCMessage, RPCClientError>
            do throws(RPCClientError) {
                put = .success(try await client.call(.write(WriteRequest(KVProposal(command: .put(KVPut(key: key, value: [UInt8]("v\(round)")))))), timeout: .seconds(20)))
            } catch { put = .failure(error) }
            let putTook = ContinuousClock.now - started
            let get: Result<RPCMessage, RPCClientError>
            do throws(RPCClientError) {
                get = .success(try await client.call(.read(ReadRequest(KVRangeRequest(range: .single(key)))), timeout: .seconds(20)))
            } catch { get = .failure(error) }
            let bothTook = ContinuousClock.now - started
            if case .success(.writeResponse) = put, case .success(.readResponse(let r)) = get, r.records.first?.record.value == [UInt8]("v\(round)") {
                served += 1
            } else {
                Issue.record("round \(round): put answered \(put), get \(get)")
            }
            print("round \(round): put answered in \(putTook), put and get in \(bothTook)")
            try await Task.sleep(for: .seconds(1))
            guard let now = Self.memory(of: pid) else {
                Issue.record("node n1 is gone after round \(round)")
                break
            }
            maxRSS = max(maxRSS, now.rss)
            print("round \(round): \(attackers.filter(\.isActive).count) slow connections open, node RSS \(Self.mebibytes(now.rss))")
        }
        let after = Self.memory(of: pid)
        let open = attackers.filter(\.isActive).count
        let closedForBudget = cluster.log(of: "n1").components(separatedBy: "bufferBudgetExceeded").count - 1
        print("""
            slow connections: \(attackers.count) opened, \(open) still open, \(closedForBudget) closed for the buffer budget; \
            node RSS before \(Self.mebibytes(before.rss)), max sampled \(Self.mebibytes(maxRSS)), \
            peak (VmHWM) \(after.map { Self.mebibytes($0.peak) } ?? "?"); puts+gets served \(served)/\(rounds)
            """)
        #expect(maxRSS < 1 << 30, "node RSS reached \(Self.mebibytes(maxRSS))")
        #expect((after?.peak ?? Int.max) < 1 << 30, "node peak RSS \(after.map { Self.mebibytes($0.peak) } ?? "?")")
        #expect(served == rounds)
        #expect(attackers.count > 1000, "only \(attackers.count) connections opened")
        for channel in attackers { channel.close(promise: nil) }
        await client.close()
        // Awaited here: the deferred shutdown runs in a task the test process may not wait for,
        // which leaves the temporary directory behind.
        await cluster.shutdown()
    }
}
