import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The client library and fctl against real faunad processes.
@Suite(.serialized) struct ClientAndCLITests {
    static let names = ["n1", "n2", "n3"]

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs fctl with `arguments` (bounded: killed after 30 s).
    static func fctl(_ arguments: [String], config: String, stdin: String? = nil) async throws -> Run {
        let binary = try #require(ProcessCluster.faunadPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("fctl").path })
        // Options go before a `--` (after it come the arguments of `fctl lock`'s command).
        var full = arguments
        full.insert(contentsOf: ["--config", config], at: arguments.firstIndex(of: "--") ?? arguments.count)
        let r = try await runCommand(binary, full, stdin: stdin)
        return Run(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    @Test func clientLibraryFindsTheLeaderAndSurvivesItsLoss() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        // Endpoints in an order that puts a follower first: the client must follow the hint.
        let ordered = Self.names.sorted { a, _ in a != leader }
        let endpoints = ordered.map { Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[$0]!.client)) }
        let client = FaunaClient(endpoints: endpoints, configuration: FaunaClientConfiguration(deadline: .seconds(20)))
        let put = try await client.put([UInt8]("lib"), [UInt8]("one"))
        #expect(!put.isReplay)
        #expect(try await client.get([UInt8]("lib"))?.record.value == [UInt8]("one"))
        #expect(try await client.get([UInt8]("missing")) == nil)
        let txn = KVTxn(
            compares: [KVCompare(key: [UInt8]("lib"), .value([UInt8]("one")), .equal)],
            success: [.put(KVPut(key: [UInt8]("lib"), value: [UInt8]("two")))])
        guard case .success(let succeeded, _) = try await client.txn(txn).outcome else {
            Issue.record("txn failed")
            return
        }
        #expect(succeeded)
        // Kill the leader: the same client keeps working against the new one.
        await cluster.kill(leader)
        for i in 0..<10 { _ = try await client.put([UInt8]("after\(i)"), [UInt8]("x")) }
        #expect(try await client.get([UInt8]("lib"))?.record.value == [UInt8]("two"))
        let statuses = await client.statusAll()
        #expect(statuses.filter { (try? $0.1.get()) != nil }.count == 2)
        await client.close()
    }

    @Test func fctlDataAndAdminCommandsWithDocumentedExitCodes() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        var run = try await Self.fctl(["put", "greeting", "hello"], config: config)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("revision"))
        run = try await Self.fctl(["get", "greeting"], config: config)
        #expect(run.status == 0 && run.stdout == "hello\n", "\(run)")
        run = try await Self.fctl(["get", "nope"], config: config)
        #expect(run.status == 1, "not found is exit 1: \(run)")
        run = try await Self.fctl(["put", "blob", "-"], config: config, stdin: "from stdin")
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(["put", "--hex", "00ff", "0102"], config: config)
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(["get", "--hex", "00ff"], config: config)
        #expect(run.stdout == "0102\n", "\(run)")
        run = try await Self.fctl(["range", "--prefix", "b"], config: config)
        #expect(run.stdout == "blob\tfrom stdin\n", "\(run)")
        run = try await Self.fctl(["txn", "--if", "value(greeting) = nothello", "--then", "put greeting x", "--else", "get greeting"], config: config)
        #expect(run.status == 1, "compare failed is exit 1: \(run)")
        run = try await Self.fctl(["del", "greeting"], config: config)
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(["get", "greeting", "--serializable"], config: config)
        #expect(run.status == 1, "\(run)")
        run = try await Self.fctl(["put"], config: config)
        #expect(run.status == 2, "usage error is exit 2: \(run)")
        run = try await Self.fctl(["status"], config: config)
        #expect(run.status == 0 && run.stdout.contains("leader"), "\(run)")
        // Every node reports its record cache (64 MiB by default) and that it was read.
        run = try await Self.fctl(["status", "--json"], config: config)
        #expect(run.status == 0 && run.stdout.contains("\"budgetBytes\":67108864"), "\(run)")
        #expect(run.stdout.components(separatedBy: "\"recordCache\":{").count - 1 == 3, "\(run)")
        run = try await Self.fctl(["hashkv", "--json"], config: config)
        #expect(run.status == 0 && run.stdout.contains("\"consistent\":true"), "\(run)")
        run = try await Self.fctl(["members"], config: config)
        #expect(run.stdout.components(separatedBy: "voter").count - 1 >= 3, "\(run)")
        let target = Self.names.first { $0 != leader }!
        run = try await Self.fctl(["leader", "transfer", target], config: config)
        #expect(run.status == 0, "\(run)")
        #expect(try await cluster.waitForLeader(among: Self.names) == target)
        let archive = "\(cluster.root)/snap.fauna"
        run = try await Self.fctl(["snapshot", "save", archive], config: config)
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(["snapshot", "verify", archive, "--checksums-only"], config: config)
        #expect(run.status == 0 && run.stdout.contains("checksums OK"), "\(run)")
        // fctl bench parses and runs (its options once clashed with the global TLS ones).
        run = try await Self.fctl(["bench", "put", "--total", "20", "--clients", "2", "--values", "4", "--json"], config: config)
        #expect(run.status == 0 && run.stdout.range(of: #""values" ?: ?4\b"#, options: .regularExpression) != nil, "\(run)")
        run = try await Self.fctl(["bench", "get", "--one-key", "greeting", "--total", "20", "--clients", "2", "--json"], config: config)
        #expect(run.status == 0 && run.stdout.contains("greeting"), "\(run)")
        // Unavailable: every node down is exit 3.
        for n in Self.names { await cluster.kill(n) }
        run = try await Self.fctl(["get", "blob", "--timeout", "1"], config: config)
        #expect(run.status == 3, "\(run)")
    }
}
