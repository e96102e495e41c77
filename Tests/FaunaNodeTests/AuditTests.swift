import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Verified reads, proofs and audits (docs/AUDIT.md) against real faunad processes: honest
/// nodes pass; lying nodes, data changed at rest, and rolled-back history are caught.
@Suite(.serialized) struct AuditTests {
    static let names = ["n1", "n2", "n3"]
    typealias Run = ClientAndCLITests.Run

    /// fctl with the cluster's config and, for commands that verify, its own trusted state.
    static func fctl(_ cluster: ProcessCluster, _ arguments: [String]) throws -> Run {
        let verifies = ["verify", "proof", "verify-proof"].contains(arguments[0]) || arguments.contains("--verify")
        let trust = verifies ? ["--trust", "\(cluster.root)/trusted.json"] : []
        return try ClientAndCLITests.fctl(arguments + trust, config: "\(cluster.root)/cluster.toml")
    }

    static func started() async throws -> ProcessCluster {
        let cluster = try ProcessCluster(names: names)
        for n in names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: names)
        return cluster
    }

    /// Restarts `name` (SIGTERM, then start) with `environment`, and waits for a leader.
    static func restart(_ cluster: ProcessCluster, _ name: String, environment: [String: String] = [:]) async throws {
        await cluster.kill(name, signal: SIGTERM)
        try cluster.start(name, environment: environment)
        _ = try await cluster.waitForLeader(among: names)
        _ = try await cluster.waitConverged(names)
    }

    /// `ldb` (Debian rocksdb-tools) on `name`'s stopped database: flips the lowest bit of the
    /// last byte of the value under `key` (hex) in `columnFamily` — the last byte of a stored
    /// value or entry payload, so the record still decodes but says something else.
    static func tamper(_ cluster: ProcessCluster, _ name: String, columnFamily: String, keyHex: String) throws {
        let db = "\(cluster.dataDirectory(of: name))/db"
        let get = try ldb(["--db=\(db)", "--column_family=\(columnFamily)", "--hex", "get", "0x\(keyHex)"])
        let value = get.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(value.hasPrefix("0x") && value.count > 4, "ldb get: \(get)")
        var digits = Array(value.dropFirst(2))
        let last = UInt8(String(digits.suffix(2)), radix: 16)! ^ 0x01
        digits.removeLast(2)
        let changed = "0x" + String(digits) + String(format: "%02X", last)
        _ = try ldb(["--db=\(db)", "--column_family=\(columnFamily)", "--hex", "put", "0x\(keyHex)", changed])
    }

    static func ldb(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ldb"] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "ldb \(arguments): \(text)")
        return text
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02X", $0) }.joined() }

    @Test func verifiedReadProofOfflineCheckAndAudit() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        var run = try Self.fctl(cluster, ["put", "greeting", "hello"])
        #expect(run.status == 0, "\(run)")
        run = try Self.fctl(cluster, ["get", "greeting", "--verify"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.hasPrefix("hello\n"), "\(run)")
        #expect(run.stdout.contains("pinned the keys of n1, n2, n3"), "\(run)")
        #expect(run.stdout.contains("is a put of this key and value"), "\(run)")
        #expect(run.stdout.contains("members, 2 needed"), "\(run)")
        // A second verified read extends the trusted head; the file now exists.
        run = try Self.fctl(cluster, ["put", "greeting", "hello again"])
        run = try Self.fctl(cluster, ["get", "greeting", "--verify", "--node", "n3"])
        #expect(run.status == 0 && run.stdout.contains("extends the trusted head of size"), "\(run)")
        #expect(!run.stdout.contains("pinned"), "\(run)")

        // Export, check offline in Swift and in Python, and catch an edited file.
        let proofPath = "\(cluster.root)/greeting.proof.json"
        run = try Self.fctl(cluster, ["proof", "greeting", "--out", proofPath])
        #expect(run.status == 0, "\(run)")
        run = try Self.fctl(cluster, ["verify-proof", proofPath])
        #expect(run.status == 0 && run.stdout.hasPrefix("OK greeting = hello again at revision "), "\(run)")
        let members = try Self.fctl(cluster, ["members", "--json"])
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(members.stdout.utf8)) as? [[String: Any]]).compactMap { $0["publicKey"] as? String }
        #expect(keys.count == 3 && keys.allSatisfy { $0.count == 64 }, "\(members)")
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", ProcessCluster.repositoryRoot + "/tools/verify-proof"] + keys.flatMap { ["--member", $0] } + [proofPath]
        let pythonOut = Pipe()
        python.standardOutput = pythonOut
        try python.run()
        let pythonText = String(decoding: pythonOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        #expect(python.terminationStatus == 0 && pythonText.hasPrefix("OK "), "\(pythonText)")
        var text = try String(contentsOfFile: proofPath, encoding: .utf8)
        text = text.replacingOccurrences(of: Self.hex(Array("hello again".utf8)).lowercased(), with: Self.hex(Array("hello agaiN".utf8)).lowercased())
        try text.write(toFile: proofPath, atomically: false, encoding: .utf8)
        run = try Self.fctl(cluster, ["verify-proof", proofPath])
        #expect(run.status == 6 && run.stderr.contains("FAIL"), "an edited record: \(run)")

        // A verified read as of an earlier revision.
        let first = try Self.fctl(cluster, ["get", "greeting", "--json"])
        let created = try #require((try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])?["createRevision"] as? Int)
        run = try Self.fctl(cluster, ["get", "greeting", "--verify", "--rev", "\(created)"])
        #expect(run.status == 0 && run.stdout.hasPrefix("hello\n"), "\(run)")
        // Pinning on first use refuses a client that knows only part of the cluster.
        let lone = "127.0.0.1:\(cluster.nodes["n1"]!.client)"
        run = try ClientAndCLITests.fctl(
            ["get", "greeting", "--verify", "--endpoints", lone, "--trust", "\(cluster.root)/partial.json"], config: "\(cluster.root)/cluster.toml")
        #expect(run.status == 4 && run.stderr.contains("cannot pin on first use"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: "\(cluster.root)/partial.json"))

        // Absence is not proven; a verified read of a missing key says so.
        run = try Self.fctl(cluster, ["get", "nope", "--verify"])
        #expect(run.status == 1 && run.stderr.contains("absence is not proven"), "\(run)")

        _ = try await cluster.waitConverged(Self.names)
        run = try Self.fctl(cluster, ["audit"])
        #expect(run.status == 0 && run.stdout.contains("all nodes agree"), "\(run)")
        run = try Self.fctl(cluster, ["audit", "--journal"])
        #expect(run.status == 0 && run.stdout.contains("all nodes agree"), "\(run)")
        run = try Self.fctl(cluster, ["verify"])
        #expect(run.status == 0 && run.stdout.contains("signed by"), "\(run)")
    }

    @Test func lyingNodesAreRejected() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        var run = try Self.fctl(cluster, ["put", "k", "truth"])
        #expect(run.status == 0, "\(run)")
        run = try Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 0, "honest n2 first (pins the keys): \(run)")
        let lies: [(fault: String, message: String)] = [
            ("lie-value", "is not what its journal entry"),
            ("lie-proof", "record, entry or inclusion proof is false"),
            ("lie-forge", "only n2 signed the root it leads to"),
        ]
        for lie in lies {
            try await Self.restart(cluster, "n2", environment: ["FAUNA_TEST_FAULT": lie.fault])
            run = try Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
            #expect(run.status == 6, "\(lie.fault) must be rejected: \(run)")
            #expect(run.stderr.contains(lie.message), "\(lie.fault): \(run)")
            // The honest majority still proves the record.
            run = try Self.fctl(cluster, ["get", "k", "--verify", "--node", "n1"])
            #expect(run.status == 0 && run.stdout.hasPrefix("truth\n"), "\(lie.fault), via n1: \(run)")
        }
        try await Self.restart(cluster, "n2")
        run = try Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 0, "honest again: \(run)")
    }

    @Test func tamperingAtRestIsFound() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        for i in 0..<5 { _ = try Self.fctl(cluster, ["put", "key\(i)", "value\(i)"]) }
        var run = try Self.fctl(cluster, ["get", "key3", "--verify", "--json"])
        #expect(run.status == 0, "\(run)")
        let revision = try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        _ = try await cluster.waitConverged(Self.names)

        // A value changed in n2's kv column family.
        await cluster.kill("n2", signal: SIGTERM)
        try Self.tamper(cluster, "n2", columnFamily: "kv", keyHex: Self.hex(Array("key3".utf8)))
        try cluster.start("n2")
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try Self.fctl(cluster, ["audit"])
        #expect(run.status == 6, "\(run)")
        #expect(run.stdout.contains("n2: state digest at revision"), "\(run)")
        #expect(!run.stdout.contains("n1: ") && !run.stdout.contains("n3: "), "\(run)")
        run = try Self.fctl(cluster, ["get", "key3", "--verify", "--node", "n2"])
        #expect(run.status == 6 && run.stderr.contains("not what its journal entry"), "\(run)")
        run = try Self.fctl(cluster, ["get", "key3", "--verify", "--node", "n1"])
        #expect(run.status == 0 && run.stdout.hasPrefix("value3\n"), "\(run)")

        // The journal entry that wrote key1, changed in n2's journal (its tree untouched).
        let other = try Self.fctl(cluster, ["get", "key1", "--json"])
        let key1Revision = try #require((try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        await cluster.kill("n2", signal: SIGTERM)
        let indexHex = String(format: "%016X", key1Revision)
        try Self.tamper(cluster, "n2", columnFamily: "journal", keyHex: indexHex)
        try cluster.start("n2")
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try Self.fctl(cluster, ["audit", "--journal"])
        #expect(run.status == 6, "\(run)")
        #expect(run.stdout.contains("n2: journal re-hash: journal entry \(key1Revision) (leaf \(key1Revision - 1)) hashes to"), "\(run)")
        run = try Self.fctl(cluster, ["get", "key1", "--verify", "--node", "n2"])
        #expect(run.status == 6, "\(run)")
        run = try Self.fctl(cluster, ["get", "key1", "--verify", "--node", "n1"])
        #expect(run.status == 0, "\(run)")
        #expect(revision > 0)
    }

    @Test func rollbackAndForkAreReported() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        for i in 0..<3 { _ = try Self.fctl(cluster, ["put", "early\(i)", "x"]) }
        var run = try Self.fctl(cluster, ["verify"])
        #expect(run.status == 0, "\(run)")
        _ = try await cluster.waitConverged(Self.names)
        // Back up every node's data directory (stopped), then go on and trust a later head.
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        let backup = "\(cluster.root)/backup"
        try FileManager.default.copyItem(atPath: "\(cluster.root)/data", toPath: backup)
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        for i in 0..<10 { _ = try Self.fctl(cluster, ["put", "late\(i)", "y"]) }
        run = try Self.fctl(cluster, ["verify"])
        #expect(run.status == 0, "\(run)")
        // Restore the old backup: the cluster's history is shorter than what the client trusts.
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        try FileManager.default.removeItem(atPath: "\(cluster.root)/data")
        try FileManager.default.copyItem(atPath: backup, toPath: "\(cluster.root)/data")
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try Self.fctl(cluster, ["verify"])
        #expect(run.status == 6 && run.stderr.contains("rollback"), "\(run)")
        // New writes make it longer than the trusted tree, but a different history: a fork.
        for i in 0..<15 { _ = try Self.fctl(cluster, ["put", "other\(i)", "z"]) }
        run = try Self.fctl(cluster, ["verify"])
        #expect(run.status == 6 && run.stderr.contains("fork or rollback"), "\(run)")
        run = try Self.fctl(cluster, ["get", "other3", "--verify"])
        #expect(run.status == 6, "\(run)")
    }
}
