@testable import FaunaClient
import FaunaKV
import FaunaRPC
import Foundation
import Testing

/// Locks and elections on leases (docs/KV-COMMANDS.md "Locks and elections"), against real
/// faunad processes.
@Suite(.serialized) struct RecipeTests {
    static func withCluster(_ body: (ProcessCluster, FaunaClient) async throws -> Void) async throws {
        let names = ["n1", "n2", "n3"]
        let cluster = try ProcessCluster(names: names)
        defer { Task { await cluster.shutdown() } }
        for n in names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: names)
        let client = FaunaClient(
            endpoints: names.map { Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[$0]!.client)) },
            configuration: FaunaClientConfiguration(deadline: .seconds(20)))
        defer { Task { await client.close() } }
        try await body(cluster, client)
    }

    @Test func aLockIsHeldByOneAtATimeInArrivalOrderAndPassesOnWhenItsHolderDies() async throws {
        try await Self.withCluster { _, client in
            let name = Array("locks/job".utf8)
            let spans = try await withThrowingTaskGroup(of: (who: Int, start: ContinuousClock.Instant, end: ContinuousClock.Instant).self) { group in
                for who in 0..<4 {
                    group.addTask {
                        let held = try await client.lock(name, ttlSeconds: 10)
                        let start = ContinuousClock.now
                        try await Task.sleep(for: .milliseconds(300))
                        let end = ContinuousClock.now
                        await held.release()
                        return (who, start, end)
                    }
                }
                var all: [(who: Int, start: ContinuousClock.Instant, end: ContinuousClock.Instant)] = []
                for try await span in group { all.append(span) }
                return all
            }
            let sorted = spans.sorted { $0.start < $1.start }
            #expect(sorted.count == 4)
            for (a, b) in zip(sorted, sorted.dropFirst()) {
                #expect(a.end <= b.start, "holders \(a.who) and \(b.who) overlapped")
            }
            // A holder that dies (stops its keep-alives without releasing): the next one gets
            // the lock once the lease expires.
            let dead = try await client.lock(name, ttlSeconds: 3)
            dead.keeper.cancel()
            let waitStarted = ContinuousClock.now
            let next = try await client.lock(name, ttlSeconds: 10, deadline: .seconds(30))
            let waited = ContinuousClock.now - waitStarted
            #expect(waited < .seconds(3 + 1 + 3), "took \(waited) after a 3 s holder died (TTL + election timeout + apply slack)")
            #expect(next.revision > dead.revision)
            await next.release()
            #expect(try await client.range(KVRangeRequest(range: .prefix(name + [UInt8(ascii: "/")]))).records.isEmpty)
        }
    }

    @Test func anElectionIsLedByTheEarliestLiveCandidate() async throws {
        try await Self.withCluster { _, client in
            let name = Array("elections/primary".utf8)
            #expect(try await client.electionLeader(name) == nil)
            let a = try await client.campaign(name, value: Array("a".utf8), ttlSeconds: 10)
            #expect(try await client.electionLeader(name)?.record.value == Array("a".utf8))
            let bTask = Task { try await client.campaign(name, value: Array("b".utf8), ttlSeconds: 10) }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await client.electionLeader(name)?.record.value == Array("a".utf8))
            await a.release()
            let b = try await bTask.value
            #expect(try await client.electionLeader(name)?.record.value == Array("b".utf8))
            await b.release()
            #expect(try await client.electionLeader(name) == nil)
        }
    }

    @Test func fctlLockRunsTheCommandAndPassesItsStatusAndElectLeadsThenResigns() async throws {
        try await Self.withCluster { cluster, _ in
            let config = "\(cluster.root)/cluster.toml"
            func fctl(_ arguments: [String]) async throws -> ClientAndCLITests.Run { try await ClientAndCLITests.fctl(arguments, config: config) }
            let ran = try await fctl(["lock", "L", "--", "sh", "-c", "echo inside"])
            #expect(ran.status == 0 && ran.stdout == "inside\n" && ran.stderr.contains("locked L"), "\(ran)")
            #expect(try await fctl(["lock", "L", "--", "sh", "-c", "exit 3"]).status == 3)
            #expect(try await fctl(["lock", "L"]).status == 2)
            let elected = try await fctl(["elect", "E", "one", "--for", "1"])
            #expect(elected.status == 0 && elected.stdout == "elected E = one\nresigned E\n", "\(elected)")
            let listen = try await fctl(["elect", "E", "--listen", "--count", "1"])
            #expect(listen.stdout == "(no leader)\n", "\(listen)")
            #expect(try await fctl(["range", "E/", "--prefix"]).stdout.isEmpty)
        }
    }
}
