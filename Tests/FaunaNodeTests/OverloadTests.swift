import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// End to end: what one client can do to a node must not depose the leader or starve other
/// clients (docs/RELIABILITY.md "Bounds").
@Suite(.serialized) struct OverloadTests {
    static let names = ["n1", "n2", "n3"]

    /// Counts of one flood or load worker.
    struct Tally: Sendable {
        var ok = 0
        var overloaded = 0
        var other: [String: Int] = [:]

        mutating func add(_ other: Tally) {
            ok += other.ok
            overloaded += other.overloaded
            self.other.merge(other.other, uniquingKeysWith: +)
        }

        mutating func count(_ answer: Result<RPCMessage, RPCClientError>, success: (RPCMessage) -> Bool) {
            switch answer {
            case .success(let m) where success(m): ok += 1
            case .success(.error(let e)) where e.code == .overloaded: overloaded += 1
            case .success(.error(let e)): other["error \(e.code)", default: 0] += 1
            case .success(let m): other["answer \(m.kind)", default: 0] += 1
            case .failure(let e): other["client \(e.code)", default: 0] += 1
            }
        }
    }

    static func connect(_ cluster: ProcessCluster, _ name: String, inFlight: Int = 256) async throws -> RPCClient {
        let port = try #require(cluster.nodes[name]?.client)
        return try await RPCClient.connect(
            to: Endpoint(host: "127.0.0.1", port: UInt16(port)),
            configuration: RPCClientConfiguration(requestsInFlightMax: inFlight, requestTimeout: .seconds(5)),
            group: cluster.group, logger: cluster.logger)
    }

    static func put(_ client: RPCClient, _ session: ClientSession, key: [UInt8], value: [UInt8]) async -> Result<RPCMessage, RPCClientError> {
        let proposal = KVProposal(session: session, command: .put(KVPut(key: key, value: value)))
        do throws(RPCClientError) { return .success(try await client.call(.write(WriteRequest(proposal)))) } catch { return .failure(error) }
    }

    /// Puts `count` keys through `client`, `parallel` at a time (state for the digests to hash).
    static func preload(_ client: RPCClient, count: Int, parallel: Int) async -> Tally {
        await withTaskGroup(of: Tally.self) { group in
            for worker in 0..<parallel {
                group.addTask {
                    var tally = Tally()
                    var session = ClientSession(clientID: ClientID(UInt64(1000 + worker)), sequence: .first)
                    for i in stride(from: worker, to: count, by: parallel) {
                        let value = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 512)
                        tally.count(await put(client, session, key: [UInt8]("pre/\(i)"), value: value)) {
                            if case .writeResponse = $0 { true } else { false }
                        }
                        session.sequence = SequenceNumber(session.sequence.rawValue + 1)
                    }
                    return tally
                }
            }
            var all = Tally()
            for await t in group { all.add(t) }
            return all
        }
    }

    /// Pipelined hashKV: `inFlightPerConnection` calls outstanding on each connection, each
    /// sent again as soon as it is answered, until `end`.
    static func flood(_ clients: [RPCClient], inFlightPerConnection: Int, until end: ContinuousClock.Instant) async -> Tally {
        await withTaskGroup(of: Tally.self) { group in
            for client in clients {
                for _ in 0..<inFlightPerConnection {
                    group.addTask {
                        var tally = Tally()
                        while ContinuousClock.now < end {
                            let answer: Result<RPCMessage, RPCClientError>
                            do throws(RPCClientError) { answer = .success(try await client.call(.hashKV)) } catch { answer = .failure(error) }
                            tally.count(answer) { if case .hashKVResponse = $0 { true } else { false } }
                        }
                        return tally
                    }
                }
            }
            var all = Tally()
            for await t in group { all.add(t) }
            return all
        }
    }

    /// Put load: each writer keeps `parallel` puts in flight, each waiting at most `timeout`
    /// (a stuck put is given up and another sent, as an impatient client does), until `end`.
    static func putLoad(
        _ writers: [RPCClient], parallel: Int, timeout: TimeAmount, until end: ContinuousClock.Instant
    ) async -> [Tally] {
        await withTaskGroup(of: (Int, Tally).self) { group in
            for (w, client) in writers.enumerated() {
                for p in 0..<parallel {
                    group.addTask {
                        var tally = Tally()
                        var session = ClientSession(clientID: ClientID(UInt64(2000 + w * parallel + p)), sequence: .first)
                        var i = 0
                        while ContinuousClock.now < end {
                            let proposal = KVProposal(session: session, command: .put(KVPut(key: [UInt8]("load/\(w)/\(p)/\(i)"), value: [UInt8]("v\(i)"))))
                            let answer: Result<RPCMessage, RPCClientError>
                            do throws(RPCClientError) {
                                answer = .success(try await client.call(.write(WriteRequest(proposal)), timeout: timeout))
                            } catch {
                                answer = .failure(error)
                            }
                            tally.count(answer) { if case .writeResponse = $0 { true } else { false } }
                            // A new session for every put: a given-up put is not retried.
                            session = ClientSession(clientID: session.clientID, sequence: SequenceNumber(session.sequence.rawValue + 1))
                            i += 1
                        }
                        return (w, tally)
                    }
                }
            }
            var all = Array(repeating: Tally(), count: writers.count)
            for await (w, t) in group { all[w].add(t) }
            return all
        }
    }

    /// Every node's term and leader, every 100 ms until `end`: each view that differs from
    /// `expected`'s, and how many status requests each node answered and did not answer in 2 s
    /// (a slow answer on a loaded machine is not a change of leader).
    static func watch(
        _ watchers: [String: RPCClient], expecting expected: NodeStatus, since start: ContinuousClock.Instant,
        until end: ContinuousClock.Instant
    ) async -> (changes: [String], answered: [String: Int], unanswered: [String: Int]) {
        var changes: [String] = []
        var answered: [String: Int] = [:]
        var unanswered: [String: Int] = [:]
        while ContinuousClock.now < end {
            for (n, client) in watchers.sorted(by: { $0.key < $1.key }) {
                switch try? await client.call(.status(), timeout: .seconds(2)) {
                case .statusResponse(let s)?:
                    answered[n, default: 0] += 1
                    if s.term != expected.term || s.leader != expected.leader {
                        changes.append("\(n): term \(s.term) leader \(s.leader.map { "\($0)" } ?? "none") at \(ContinuousClock.now - start)")
                    }
                default:
                    unanswered[n, default: 0] += 1
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (changes, answered, unanswered)
    }

    @Test func hashKVFloodLeavesTheLeaderInPlaceAndPutsFlowing() async throws {
        // An election timeout of 3 s (300 ticks of 10 ms), not the default 1 s: three debug
        // nodes, this process's flood and 192 puts in flight share two cores, and even alone
        // the leader was deposed once in a 60 s flood (CI, 2026-12-04), a scheduling stall, not
        // the flood's bound failing. A flood that were not bounded would hold the leader far
        // longer than 3 s; that is what this test is for.
        let cluster = try ProcessCluster(names: Self.names, settings: "election_ticks = 300")
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let before = try #require(await cluster.status(leader))

        // State worth hashing: every digest reads all of it.
        let loader = try await Self.connect(cluster, leader)
        let preloaded = await Self.preload(loader, count: 8_000, parallel: 64)
        await loader.close()
        #expect(preloaded.ok == 8_000, "preload: \(preloaded)")

        let floodSeconds = 60.0
        let connections = 4
        let inFlightPerConnection = 1_000
        // The flood has an event loop of its own: answering it must not delay the writers'
        // and watchers' connections in this process.
        let floodLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { floodLoop.shutdownGracefully { _ in } }
        var clients: [RPCClient] = []
        for _ in 0..<connections {
            clients.append(try await RPCClient.connect(
                to: Endpoint(host: "127.0.0.1", port: UInt16(try #require(cluster.nodes[leader]?.client))),
                configuration: RPCClientConfiguration(requestsInFlightMax: inFlightPerConnection + 10, requestTimeout: .seconds(5)),
                group: floodLoop, logger: cluster.logger))
        }
        let flooders = clients
        clients = []
        for _ in 0..<4 { clients.append(try await Self.connect(cluster, leader)) }
        let writers = clients
        var byName: [String: RPCClient] = [:]
        for n in Self.names { byName[n] = try await Self.connect(cluster, n) }
        let watchers = byName

        let start = ContinuousClock.now
        let floodEnd = start + .seconds(floodSeconds)
        let watchEnd = floodEnd + .seconds(2)
        async let flood = Self.flood(flooders, inFlightPerConnection: inFlightPerConnection, until: floodEnd)
        async let load = Self.putLoad(writers, parallel: 48, timeout: .milliseconds(500), until: watchEnd)
        async let views = Self.watch(watchers, expecting: before, since: start, until: watchEnd)
        let (floodTally, loadTallies, (changes, answered, unanswered)) = await (flood, load, views)
        let after = try #require(await cluster.status(leader))
        print("hashKV flood: \(floodTally.ok) answered, \(floodTally.overloaded) overloaded, other \(floodTally.other)")
        print("puts during the flood (4 writers x 48 in flight): \(loadTallies.map { "\($0.ok) ok, other \($0.other)" })")
        print("leader commit \(before.commitIndex) -> \(after.commitIndex), applied \(before.appliedIndex) -> \(after.appliedIndex)")
        print("term before \(before.term) after \(after.term); leader before \(before.leader.map { "\($0)" } ?? "none") after \(after.leader.map { "\($0)" } ?? "none")")
        print("term/leader changes seen: \(changes.count) \(changes.prefix(10)); status answers \(answered), not answered in 2 s \(unanswered)")

        #expect(changes.isEmpty, "term or leader changed during the flood: \(changes.prefix(10))")
        for n in Self.names { #expect(answered[n, default: 0] > 0, "\(n) answered no status during the flood") }
        #expect(after.term == before.term && after.leader == before.leader && after.role == .leader)
        #expect(floodTally.overloaded > 0, "the flood was never refused: \(floodTally)")
        #expect(floodTally.ok > 0, "no hashKV was answered during the flood: \(floodTally)")
        for (w, tally) in loadTallies.enumerated() {
            #expect(tally.ok > 0, "writer \(w) made no put during the flood: \(tally)")
            // Puts given up after 0.5 s are tolerated (a loaded debug build); a refusal is not.
            #expect(tally.other.keys.allSatisfy { $0 == "client timeout" }, "writer \(w) had refused puts: \(tally)")
        }
        for client in flooders + writers + Array(watchers.values) { await client.close() }
        // Awaited here: the deferred shutdown runs in a task the test process may not wait for,
        // which leaves the temporary directory behind.
        await cluster.shutdown()
    }
}
