import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify
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
    static func fctl(_ cluster: ProcessCluster, _ arguments: [String]) async throws -> Run {
        let verifies = ["verify", "proof", "verify-proof"].contains(arguments[0]) || arguments.contains("--verify")
        let trust = verifies ? ["--trust", "\(cluster.root)/trusted.json"] : []
        return try await ClientAndCLITests.fctl(arguments + trust, config: "\(cluster.root)/cluster.toml")
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
    static func tamper(_ cluster: ProcessCluster, _ name: String, columnFamily: String, keyHex: String) async throws {
        let db = "\(cluster.dataDirectory(of: name))/db"
        let get = try await ldb(["--db=\(db)", "--column_family=\(columnFamily)", "--hex", "get", "0x\(keyHex)"])
        let value = get.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(value.hasPrefix("0x") && value.count > 4, "ldb get: \(get)")
        var digits = Array(value.dropFirst(2))
        let last = UInt8(String(digits.suffix(2)), radix: 16)! ^ 0x01
        digits.removeLast(2)
        let changed = "0x" + String(digits) + String(format: "%02X", last)
        _ = try await ldb(["--db=\(db)", "--column_family=\(columnFamily)", "--hex", "put", "0x\(keyHex)", changed])
    }

    static func ldb(_ arguments: [String]) async throws -> String {
        let r = try await runCommand("/usr/bin/env", ["ldb"] + arguments)
        try #require(r.status == 0, "ldb \(arguments): \(r.stdout)\(r.stderr)")
        return r.stdout + r.stderr
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02X", $0) }.joined() }

    /// The key prefix of the data group (u64 BE 1) in every column family (docs/STORAGE.md).
    static let dataGroup = "0000000000000001"

    @Test func verifiedReadProofOfflineCheckAndAudit() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        var run = try await Self.fctl(cluster, ["put", "greeting", "hello"])
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(cluster, ["get", "greeting", "--verify"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.hasPrefix("hello\n"), "\(run)")
        #expect(run.stdout.contains("pinned the keys of n1, n2, n3"), "\(run)")
        #expect(run.stdout.contains("is a put of this key and value"), "\(run)")
        #expect(run.stdout.contains("members, 2 needed"), "\(run)")
        // A second verified read extends the trusted head; the file now exists.
        run = try await Self.fctl(cluster, ["put", "greeting", "hello again"])
        run = try await Self.fctl(cluster, ["get", "greeting", "--verify", "--node", "n3"])
        #expect(run.status == 0 && run.stdout.contains("extends the trusted head of size"), "\(run)")
        #expect(!run.stdout.contains("pinned"), "\(run)")

        // Export, check offline in Swift and in Python, and catch an edited file.
        let proofPath = "\(cluster.root)/greeting.proof.json"
        run = try await Self.fctl(cluster, ["proof", "greeting", "--out", proofPath])
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(cluster, ["verify-proof", proofPath])
        #expect(run.status == 0 && run.stdout.hasPrefix("OK greeting = hello again at revision "), "\(run)")
        let members = try await Self.fctl(cluster, ["members", "--json"])
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(members.stdout.utf8)) as? [[String: Any]]).compactMap { $0["publicKey"] as? String }
        #expect(keys.count == 3 && keys.allSatisfy { $0.count == 64 }, "\(members)")
        // Every node's members response carries every member's key (learned in the peer
        // handshake), the same keys the nodes sign with, followers included.
        let signing = try #require(try JSONSerialization.jsonObject(with: Data(members.stdout.utf8)) as? [[String: Any]])
            .reduce(into: [String: String]()) { $0[$1["nodeID"] as? String ?? ""] = $1["publicKey"] as? String }
        for name in Self.names {
            let rpc = try await RPCClient.connect(
                to: Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[name]!.client)), group: cluster.group, logger: cluster.logger)
            var reported: [String: String] = [:]
            for _ in 0..<50 {
                guard case .membersResponse(let list) = try await rpc.call(.members) else { break }
                reported = list.reduce(into: [:]) { $0["\($1.nodeID)"] = $1.publicKey.map { String(format: "%02x", $0) }.joined() }
                if reported == signing { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            await rpc.close()
            #expect(reported == signing, "members as \(name) reports them")
        }
        let python = try await Self.pythonVerifyProof(keys, proofPath)
        #expect(python.status == 0 && python.text.hasPrefix("OK ") && python.text.contains("proven by its committed effects"), "\(python.text)")
        var text = try String(contentsOfFile: proofPath, encoding: .utf8)
        text = text.replacingOccurrences(of: Self.hex(Array("hello again".utf8)).lowercased(), with: Self.hex(Array("hello agaiN".utf8)).lowercased())
        try text.write(toFile: proofPath, atomically: false, encoding: .utf8)
        run = try await Self.fctl(cluster, ["verify-proof", proofPath])
        #expect(run.status == 6 && run.stderr.contains("FAIL"), "an edited record: \(run)")

        // A verified read as of an earlier revision.
        let first = try await Self.fctl(cluster, ["get", "greeting", "--json"])
        let created = try #require((try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])?["createRevision"] as? Int)
        run = try await Self.fctl(cluster, ["get", "greeting", "--verify", "--rev", "\(created)"])
        #expect(run.status == 0 && run.stdout.hasPrefix("hello\n"), "\(run)")
        // Pinning on first use refuses a client that knows only part of the cluster.
        let lone = "127.0.0.1:\(cluster.nodes["n1"]!.client)"
        run = try await ClientAndCLITests.fctl(
            ["get", "greeting", "--verify", "--endpoints", lone, "--trust", "\(cluster.root)/partial.json"], config: "\(cluster.root)/cluster.toml")
        #expect(run.status == 4 && run.stderr.contains("cannot pin on first use"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: "\(cluster.root)/partial.json"))

        // Absence is not proven; a verified read of a missing key says so.
        run = try await Self.fctl(cluster, ["get", "nope", "--verify"])
        #expect(run.status == 1 && run.stderr.contains("absence is not proven"), "\(run)")

        _ = try await cluster.waitConverged(Self.names)
        run = try await Self.fctl(cluster, ["audit"])
        #expect(run.status == 0 && run.stdout.contains("all nodes agree"), "\(run)")
        run = try await Self.fctl(cluster, ["audit", "--journal"])
        #expect(run.status == 0 && run.stdout.contains("all nodes agree"), "\(run)")
        run = try await Self.fctl(cluster, ["verify"])
        #expect(run.status == 0 && run.stdout.contains("signed by"), "\(run)")
    }

    @Test func lyingNodesAreRejected() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        var run = try await Self.fctl(cluster, ["put", "k", "truth"])
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 0, "honest n2 first (pins the keys): \(run)")
        let lies: [(fault: String, message: String)] = [
            ("lie-value", "is not what its journal entry"),
            ("lie-proof", "record, entry or inclusion proof is false"),
            ("lie-forge", "only n2 signed the root it leads to"),
        ]
        for lie in lies {
            try await Self.restart(cluster, "n2", environment: ["FAUNA_TEST_FAULT": lie.fault])
            run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
            #expect(run.status == 6, "\(lie.fault) must be rejected: \(run)")
            #expect(run.stderr.contains(lie.message), "\(lie.fault): \(run)")
            // The honest majority still proves the record.
            run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n1"])
            #expect(run.status == 0 && run.stdout.hasPrefix("truth\n"), "\(lie.fault), via n1: \(run)")
        }
        try await Self.restart(cluster, "n2")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 0, "honest again: \(run)")
    }

    /// Issue: a committed put that wrote nothing (a put-if-absent that found the key, a write
    /// of an expired session) used to verify as a write of its value. With leaf v2 the tree
    /// commits to what each entry did: a lying node serving such a value, and proof files
    /// built from such an entry with genuine paths and heads, are refused by `get --verify`,
    /// `fctl verify-proof` and `tools/verify-proof`.
    @Test func unwrittenValuesAreNotProven() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        let k = Array("k".utf8)
        var run = try await Self.fctl(cluster, ["put", "k", "real"])
        #expect(run.status == 0, "\(run)")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 0 && run.stdout.contains("is a put of this key and value"), "honest n2 first: \(run)")
        var session = ClientSession(clientID: ClientID(0xFA_0017), sequence: .first)
        let ifAbsent = try await cluster.write(.put(KVPut(key: k, value: Array("never-written".utf8), ifAbsent: true)), session: &session, via: Self.names)
        #expect(ifAbsent.outcome == .alreadyExists(key: k))
        // A session the cluster never saw, at sequence 7: committed, applied as sessionExpired.
        var stale = ClientSession(clientID: ClientID(0xFA_0018), sequence: SequenceNumber(7))
        let expired = try await cluster.write(.put(KVPut(key: k, value: Array("stale-session".utf8))), session: &stale, via: Self.names)
        guard case .sessionExpired = expired.outcome else { Issue.record("got \(expired.outcome)"); return }
        _ = try await cluster.waitConverged(Self.names)

        for (entry, value, outcome) in [(ifAbsent.revision, "never-written", "alreadyExists"), (expired.revision, "stale-session", "sessionExpired")] {
            let file = "\(cluster.root)/unwritten-\(entry.rawValue).json"
            let (v2, v1, keys) = try await Self.unwrittenProofFiles(cluster, entry: entry, key: k, value: Array(value.utf8))
            try ProofFile.json(v2).write(to: URL(fileURLWithPath: file))
            run = try await Self.fctl(cluster, ["verify-proof", file])
            #expect(run.status == 6 && run.stderr.contains("wrote nothing: its committed outcome is \(outcome)"), "\(value): \(run)")
            var python = try await Self.pythonVerifyProof(keys, file)
            #expect(python.status == 1 && python.text.contains("FAIL: entry.effects.outcome: got"), "\(value): \(python.text)")
            // Presented as a v1 leaf (what a verifier before leaf v2 checked), it no longer
            // leads to the signed root: the tree holds the entry's v2 leaf.
            try ProofFile.json(v1).write(to: URL(fileURLWithPath: file))
            run = try await Self.fctl(cluster, ["verify-proof", file])
            #expect(run.status == 6 && run.stderr.contains("rootMismatch"), "\(value) as v1: \(run)")
            python = try await Self.pythonVerifyProof(keys, file)
            #expect(python.status == 1 && python.text.contains("FAIL: rootHash"), "\(value) as v1: \(python.text)")
        }

        // A lying node serves the newest unwritten value with genuine proofs of its entry.
        try await Self.restart(cluster, "n2", environment: ["FAUNA_TEST_FAULT": "lie-unwritten"])
        let lie = await cluster.read("n2", key: k)
        #expect(lie?.records.first?.record.value == Array("stale-session".utf8), "the lie is served: \(String(describing: lie))")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n2"])
        #expect(run.status == 6 && run.stderr.contains("wrote nothing: its committed outcome is sessionExpired"), "\(run)")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n1"])
        #expect(run.status == 0 && run.stdout.hasPrefix("real\n"), "via n1: \(run)")
        try await Self.restart(cluster, "n2")
    }

    /// Removals are leaves: a verified read after a member's removal proves the removal and
    /// stops counting that member's key. Concurrent `fctl` runs share trusted.json without
    /// ever moving its head back.
    @Test func trustFollowsRemovalsAndConcurrentRuns() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        var run = try await Self.fctl(cluster, ["put", "k", "v"])
        run = try await Self.fctl(cluster, ["get", "k", "--verify"])
        #expect(run.status == 0 && run.stdout.contains("pinned the keys of n1, n2, n3"), "\(run)")
        let trustFile = "\(cluster.root)/trusted.json"
        func trusted() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trustFile))) as? [String: Any])
        }
        for round in 0..<4 {
            _ = try await Self.fctl(cluster, ["put", "k", "v\(round)"])
            async let a = Task.detached { try await Self.fctl(cluster, ["get", "k", "--verify", "--node", "n1"]) }.value
            async let b = Task.detached { _ = try await Self.fctl(cluster, ["put", "other", "x\(round)"]); return try await Self.fctl(cluster, ["verify", "--node", "n3"]) }.value
            let (runA, runB) = try await (a, b)
            #expect(runA.status == 0 && runB.status == 0, "round \(round): \(runA) \(runB)")
            func size(_ r: ClientAndCLITests.Run) -> Int {
                // get --verify: "trusted size now N"; verify: "tree size T → N, root …".
                let marker = r.stdout.contains("trusted size now ") ? "trusted size now " : " → "
                guard let text = r.stdout.components(separatedBy: marker).dropFirst().last else { return -1 }
                return Int(text.prefix { $0.isNumber }) ?? -1
            }
            let file = Int(try trusted()["treeSize"] as? String ?? "") ?? -2
            #expect(file == max(size(runA), size(runB)), "round \(round): the file holds \(file), the runs reached \(size(runA)) and \(size(runB))")
        }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let removed = leader == "n3" ? "n2" : "n3"
        let kept = Self.names.filter { $0 != removed }
        _ = try #require(await cluster.changeMembership(.remove(cluster.nodes[removed]!.id), via: leader))
        _ = try await Self.fctl(cluster, ["put", "k", "after-removal"])
        _ = try await cluster.waitConverged(kept)
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", kept[0]])
        #expect(run.status == 0 && run.stdout.contains("trust: \(removed) left the cluster"), "\(run)")
        #expect(run.stdout.contains("2 pinned keys, 2 needed"), "\(run)")
        let members = try #require(try trusted()["members"] as? [[String: Any]])
        #expect(members.compactMap { $0["nodeID"] as? String }.sorted() == kept, "\(members)")
        run = try await Self.fctl(cluster, ["get", "k", "--verify", "--node", kept[1]])
        #expect(run.status == 0 && !run.stdout.contains("left the cluster"), "the removal is checked once: \(run)")
    }

    /// Proof files for `entry`, an entry that wrote nothing, claiming it wrote `value` under
    /// `key`, built from what any client can fetch: the entry from n1, its inclusion path,
    /// and every node's signature on the head. As v2 (the committed effects, no effect proof)
    /// and as v1 (the effects left out). Also checks that the proposal-only check of a v1
    /// leaf is fooled by it — the bug leaf v2 fixes.
    static func unwrittenProofFiles(
        _ cluster: ProcessCluster, entry: Revision, key: [UInt8], value: [UInt8]
    ) async throws -> (v2: [String: Any], v1: [String: Any], keys: [String]) {
        guard case .entryProofResponse(let answer)? = await cluster.call("n1", .entryProof(EntryProofRequest(index: LogIndex(entry.rawValue), key: key))) else {
            throw CancellationError()
        }
        let summary = try #require(answer.entry.effects, "entry \(entry) has a v2 leaf")
        #expect(summary.count == 0 && answer.effect == nil)
        var proposalOnly = answer.entry
        proposalOnly.effects = nil
        #expect((try? EntryPayload.check(proposalOnly, writes: key, value: value).get()) != nil, "a v1 check takes the proposal for a write")
        guard case .statusResponse(let status)? = await cluster.call("n1", .status()) else { throw CancellationError() }
        let size = status.treeSize
        guard case .inclusionProofResponse(let inclusion)? = await cluster.call("n1", .inclusionProof(InclusionProofRequest(leafIndex: entry.rawValue - 1, treeSize: size))) else {
            throw CancellationError()
        }
        var signatures: [TreeHeadSignature] = []
        var head: TreeHead?
        for name in names {
            guard case .signedTreeHeadResponse(let signed)? = await cluster.call(name, .signedTreeHead(TreeHeadRequest(treeSize: size))) else {
                throw CancellationError()
            }
            head = signed.head
            signatures.append(signed.signature)
        }
        let signedHead = SignedTreeHead(head: try #require(head), signatures: signatures)
        let v2 = ProofFile.object(EntryProof(entry: answer.entry, inclusion: inclusion, signedHead: signedHead), key: key, value: value, revision: entry.rawValue)
        var v1 = ProofFile.object(EntryProof(entry: proposalOnly, inclusion: inclusion, signedHead: signedHead), key: key, value: value, revision: entry.rawValue)
        v1["format"] = "fauna-proof-v1"
        return (v2, v1, signatures.map { hex($0.publicKey).lowercased() })
    }

    /// tools/verify-proof with `keys` as the members.
    static func pythonVerifyProof(_ keys: [String], _ file: String) async throws -> (status: Int32, text: String) {
        let r = try await runCommand("/usr/bin/env", ["python3", ProcessCluster.repositoryRoot + "/tools/verify-proof"] + keys.flatMap { ["--member", $0] } + [file])
        return (r.status, r.stdout)
    }

    @Test func tamperingAtRestIsFound() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        for i in 0..<5 { _ = try await Self.fctl(cluster, ["put", "key\(i)", "value\(i)"]) }
        var run = try await Self.fctl(cluster, ["get", "key3", "--verify", "--json"])
        #expect(run.status == 0, "\(run)")
        let revision = try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        _ = try await cluster.waitConverged(Self.names)

        // A value changed in n2's kv column family.
        await cluster.kill("n2", signal: SIGTERM)
        try await Self.tamper(cluster, "n2", columnFamily: "kv", keyHex: Self.dataGroup + Self.hex(Array("key3".utf8)))
        try cluster.start("n2")
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try await Self.fctl(cluster, ["audit"])
        #expect(run.status == 6, "\(run)")
        #expect(run.stdout.contains("n2: state digest at revision"), "\(run)")
        #expect(!run.stdout.contains("n1: ") && !run.stdout.contains("n3: "), "\(run)")
        run = try await Self.fctl(cluster, ["get", "key3", "--verify", "--node", "n2"])
        #expect(run.status == 6 && run.stderr.contains("not what its journal entry"), "\(run)")
        run = try await Self.fctl(cluster, ["get", "key3", "--verify", "--node", "n1"])
        #expect(run.status == 0 && run.stdout.hasPrefix("value3\n"), "\(run)")

        // The journal entry that wrote key1, changed in n2's entry log (its tree untouched).
        let other = try await Self.fctl(cluster, ["get", "key1", "--json"])
        let key1Revision = try #require((try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        await cluster.kill("n2", signal: SIGTERM)
        // The journal is the entry log: group 1 ‖ `E` ‖ u64 BE index.
        let entryKey = Self.dataGroup + "45" + String(format: "%016X", key1Revision)
        try await Self.tamper(cluster, "n2", columnFamily: "log", keyHex: entryKey)
        try cluster.start("n2")
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try await Self.fctl(cluster, ["audit", "--journal"])
        #expect(run.status == 6, "\(run)")
        #expect(run.stdout.contains("n2: journal re-hash: journal entry \(key1Revision) (leaf \(key1Revision - 1)) hashes to"), "\(run)")
        run = try await Self.fctl(cluster, ["get", "key1", "--verify", "--node", "n2"])
        #expect(run.status == 6, "\(run)")
        run = try await Self.fctl(cluster, ["get", "key1", "--verify", "--node", "n1"])
        #expect(run.status == 0, "\(run)")
        #expect(revision > 0)
    }

    @Test func rollbackAndForkAreReported() async throws {
        let cluster = try await Self.started()
        defer { Task { await cluster.shutdown() } }
        for i in 0..<3 { _ = try await Self.fctl(cluster, ["put", "early\(i)", "x"]) }
        var run = try await Self.fctl(cluster, ["verify"])
        #expect(run.status == 0, "\(run)")
        _ = try await cluster.waitConverged(Self.names)
        // Back up every node's data directory (stopped), then go on and trust a later head.
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        let backup = "\(cluster.root)/backup"
        try FileManager.default.copyItem(atPath: "\(cluster.root)/data", toPath: backup)
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        for i in 0..<10 { _ = try await Self.fctl(cluster, ["put", "late\(i)", "y"]) }
        run = try await Self.fctl(cluster, ["verify"])
        #expect(run.status == 0, "\(run)")
        // Restore the old backup: the cluster's history is shorter than what the client trusts.
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        try FileManager.default.removeItem(atPath: "\(cluster.root)/data")
        try FileManager.default.copyItem(atPath: backup, toPath: "\(cluster.root)/data")
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try await Self.fctl(cluster, ["verify"])
        #expect(run.status == 6 && run.stderr.contains("rollback"), "\(run)")
        // New writes make it longer than the trusted tree, but a different history: a fork.
        for i in 0..<15 { _ = try await Self.fctl(cluster, ["put", "other\(i)", "z"]) }
        run = try await Self.fctl(cluster, ["verify"])
        #expect(run.status == 6 && run.stderr.contains("fork or rollback"), "\(run)")
        run = try await Self.fctl(cluster, ["get", "other3", "--verify"])
        #expect(run.status == 6, "\(run)")
    }
}
