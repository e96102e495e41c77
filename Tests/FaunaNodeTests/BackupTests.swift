import FaunaClient
import FaunaRPC
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Backups you can verify (docs/AUDIT.md "Backups"): `fctl snapshot save` from a cluster under
/// load writes an archive with a quorum-signed tree head; `fctl snapshot verify` checks it
/// offline against pinned keys, replaying its journal; damage and tampering are named.
@Suite(.serialized) struct BackupTests {
    typealias Run = ClientAndCLITests.Run
    static let names = AuditTests.names

    static func fctl(_ cluster: ProcessCluster, _ arguments: [String]) async throws -> Run {
        try await ClientAndCLITests.fctl(arguments, config: "\(cluster.root)/cluster.toml")
    }

    /// Flips the lowest bit of the byte at `offset` (negative: from the end) of `path`.
    static func flip(_ path: String, at offset: Int) throws {
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let i = offset >= 0 ? offset : bytes.count + offset
        bytes[i] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Puts through `client` until stopped (at most 20,000), counting the acknowledged ones.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var task: Task<Void, Never>?
        var written: Int { lock.withLock { count } }
        func add() { lock.withLock { count += 1 } }

        func waitForWrites(_ n: Int) async throws {
            // Bounded, and generous: in a full run the machine runs dozens of clusters at once.
            let deadline = ContinuousClock.now + .seconds(120)
            while written < n {
                try #require(ContinuousClock.now < deadline, "the load made \(written) writes in 120 s, want \(n)")
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        func stop() async {
            task?.cancel()
            await task?.value
        }
    }

    static func load(_ client: FaunaClient) -> Load {
        let load = Load()
        load.task = Task {
            var n = 0
            while !Task.isCancelled && n < 20_000 {
                if (try? await client.put(Array("load/\(n % 300)".utf8), Array("v\(n)".utf8))) != nil { load.add() }
                n += 1
            }
        }
        return load
    }

    @Test func aBackupSavedUnderLoadVerifiesOfflineAndDamageIsNamed() async throws {
        let cluster = try await AuditTests.started()
        defer { Task { await cluster.shutdown() } }
        let endpoints = try Self.names.map { Endpoint(host: "127.0.0.1", port: UInt16(try #require(cluster.nodes[$0]?.client))) }
        let client = FaunaClient(endpoints: endpoints)
        for i in 0..<200 { _ = try await client.put(Array("backup/\(i)".utf8), Array("value \(i)".utf8)) }
        // Writes go on while the snapshot streams and its head is signed.
        let load = Self.load(client)
        try await load.waitForWrites(50)
        let before = load.written
        let archive = "\(cluster.root)/backup.fsnap"
        var run = try await Self.fctl(cluster, ["snapshot", "save", archive])
        try await load.waitForWrites(before + 20)  // the load went on through the save
        await load.stop()
        #expect(run.status == 0 && run.stdout.contains("tree head: size"), "\(run)")
        await client.close()

        // Offline from here: the nodes are stopped before the archive is checked.
        let trust = "\(cluster.root)/trusted.json"
        run = try await Self.fctl(cluster, ["trust", "init", "--trust", trust])
        #expect(run.status == 0, "\(run)")
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        run = try await Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust, "--json"])
        #expect(run.status == 0, "\(run)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let index = try #require(report["index"] as? Int)
        #expect(index > 200 && report["version"] as? Int == 2, "\(report)")
        #expect(report["journalEntries"] as? Int == index && report["replayedEntries"] as? Int == index, "\(report)")
        #expect(report["validSigners"] as? Int ?? 0 >= 2, "\(report)")
        #expect(!FileManager.default.fileExists(atPath: archive + ".verify"), "the work directory is removed")

        // Keys that are not the members': no quorum.
        run = try await Self.fctl(cluster, ["snapshot", "verify", archive, "--member", String(repeating: "ab", count: 32)])
        #expect(run.status == 6 && run.stderr.contains("is not signed by a majority of the pinned members"), "\(run)")

        // One flipped byte in a file's data: named by file.
        let damaged = "\(cluster.root)/damaged.fsnap"
        try FileManager.default.copyItem(atPath: archive, toPath: damaged)
        let size = try #require((try FileManager.default.attributesOfItem(atPath: damaged)[.size] as? NSNumber)?.intValue)
        try Self.flip(damaged, at: size / 2)
        run = try await Self.fctl(cluster, ["snapshot", "verify", damaged, "--trust", trust])
        #expect(run.status == 6 && run.stderr.contains("SHA-256 differs from the recorded one"), "\(run)")

        // One flipped bit of the signed root (the trailer is 21 bytes; 3 signatures of 96 follow
        // the head, whose last 32 bytes are the root): the signatures no longer hold.
        let forged = "\(cluster.root)/forged.fsnap"
        try FileManager.default.copyItem(atPath: archive, toPath: forged)
        let signatures = try #require((report["treeHead"] as? [String: Any])?["signatures"] as? Int)
        try Self.flip(forged, at: -(21 + 96 * signatures + 32))
        run = try await Self.fctl(cluster, ["snapshot", "verify", forged, "--trust", trust])
        #expect(run.status == 6 && run.stderr.contains("is not signed by a majority of the pinned members"), "\(run)")

        // The same archive as version 1 (before proofs): its checksums verify, it says it
        // proves nothing, and it is not restored.
        let v1Path = "\(cluster.root)/v1.fsnap"
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: archive)))
        bytes = Array(bytes[..<(bytes.count - 21 - (1 + 2 + 72 + 96 * signatures))]) + Array(bytes[(bytes.count - 21)...])
        bytes.replaceSubrange(0..<8, with: Array("FNASNAP1".utf8))
        bytes.replaceSubrange((bytes.count - 8)..., with: Array("FNASNAP1".utf8))
        try Data(bytes).write(to: URL(fileURLWithPath: v1Path))
        run = try await Self.fctl(cluster, ["snapshot", "verify", v1Path, "--trust", trust])
        #expect(run.status == 0 && run.stdout.contains("carries no signed tree head"), "\(run)")
        run = try await Self.fctl(cluster, ["snapshot", "restore", v1Path, "--trust", trust, "--data-dir", "\(cluster.root)/restored"])
        #expect(run.status == 6 && run.stderr.contains("it is not restored"), "\(run)")
    }

    /// The round trip of issue 23: save under load, verify offline, restore into a new
    /// 3-node cluster on other ports, read the data back, and verify a record of the backup
    /// against a head the new cluster signs, once the client accepted its keys.
    @Test func aRestoredClusterContinuesTheHistoryAndClientsAcceptItsKeys() async throws {
        let old = try await AuditTests.started()
        defer { Task { await old.shutdown() } }
        let endpoints = try Self.names.map { Endpoint(host: "127.0.0.1", port: UInt16(try #require(old.nodes[$0]?.client))) }
        let client = FaunaClient(endpoints: endpoints)
        for i in 0..<100 { _ = try await client.put(Array("backup/\(i)".utf8), Array("value \(i)".utf8)) }
        let trust = "\(old.root)/trusted.json"
        #expect(try await Self.fctl(old, ["trust", "init", "--trust", trust]).status == 0)
        // The client trusts a head of the old cluster (size > 0) before the backup.
        var run = try await Self.fctl(old, ["get", "backup/7", "--verify", "--trust", trust])
        #expect(run.status == 0, "\(run)")
        let load = Self.load(client)
        try await load.waitForWrites(50)
        let archive = "\(old.root)/backup.fsnap"
        run = try await Self.fctl(old, ["snapshot", "save", archive])
        await load.stop()
        #expect(run.status == 0, "\(run)")
        // A second client trusts a head beyond the backup: the restore loses what came after.
        _ = try await client.put(Array("after-backup".utf8), Array("lost".utf8))
        let ahead = "\(old.root)/ahead.json"
        try FileManager.default.copyItem(atPath: trust, toPath: ahead)
        #expect(try await Self.fctl(old, ["get", "after-backup", "--verify", "--trust", ahead]).status == 0)
        await client.close()
        for n in Self.names { await old.kill(n, signal: SIGTERM) }

        run = try await Self.fctl(old, ["snapshot", "verify", archive, "--trust", trust])
        #expect(run.status == 0, "\(run)")

        // A new cluster: other ports, other data directories, new keys.
        let new = try ProcessCluster(names: Self.names)
        defer { Task { await new.shutdown() } }
        run = try await Self.fctl(new, ["snapshot", "restore", archive, "--trust", trust, "--json"])
        #expect(run.status == 0, "\(run)")
        let restored = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let index = try #require(restored["index"] as? Int)
        #expect(restored["lastIndex"] as? Int == index + 3, "one addVoter per new member: \(restored)")
        // Restoring again over the directories is refused.
        run = try await Self.fctl(new, ["snapshot", "restore", archive, "--trust", trust])
        #expect(run.status == 4 && run.stderr.contains("is not empty"), "\(run)")

        for n in Self.names { try new.start(n) }
        _ = try await new.waitForLeader(among: Self.names)
        run = try await Self.fctl(new, ["get", "backup/7"])
        #expect(run.status == 0 && run.stdout == "value 7\n", "\(run)")
        run = try await Self.fctl(new, ["get", "after-backup"])
        #expect(run.status == 1, "written after the backup: not in it: \(run)")
        #expect(try await Self.fctl(new, ["put", "after-restore", "yes"]).status == 0)

        // The old trust does not accept the new keys by itself...
        let carried = "\(new.root)/trusted.json"
        try FileManager.default.copyItem(atPath: trust, toPath: carried)
        run = try await Self.fctl(new, ["get", "backup/7", "--verify", "--trust", carried])
        #expect(run.status == 6 && run.stderr.contains("untrusted key"), "\(run)")
        // ...only through the explicit step, which checks the history extends the trusted head.
        run = try await Self.fctl(new, ["trust", "accept-restore", "--trust", carried])
        #expect(run.status == 0 && run.stdout.contains("keys declared in entries \(index + 1), \(index + 2), \(index + 3)"), "\(run)")
        for key in ["backup/7", "after-restore"] {
            run = try await Self.fctl(new, ["get", key, "--verify", "--trust", carried])
            #expect(run.status == 0 && run.stdout.contains("that head is signed by n1, n2, n3"), "\(key): \(run)")
        }
        // A client that trusted a head beyond the backup sees the history was cut.
        run = try await Self.fctl(new, ["trust", "accept-restore", "--trust", ahead])
        // (Shorter than the trusted tree: "rolled back"; as long or longer: "fork or rollback".)
        #expect(run.status == 6 && (run.stderr.contains("rolled back") || run.stderr.contains("fork or rollback")), "\(run)")
        await new.shutdown()
    }

    @Test func aBackupOfANodeChangedAtRestFailsNamingWhatDiffers() async throws {
        let cluster = try await AuditTests.started()
        defer { Task { await cluster.shutdown() } }
        for i in 1...5 { #expect(try await Self.fctl(cluster, ["put", "key\(i)", "value\(i)"]).status == 0) }
        let key1 = try await Self.fctl(cluster, ["get", "key1", "--json"])
        let key1Revision = try #require((try JSONSerialization.jsonObject(with: Data(key1.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        _ = try await cluster.waitConverged(Self.names)
        let trust = "\(cluster.root)/trusted.json"
        #expect(try await Self.fctl(cluster, ["trust", "init", "--trust", trust]).status == 0)

        // n2's state is changed (a value in kv), n3's journal (the entry that wrote key1).
        await cluster.kill("n2", signal: SIGTERM)
        try await AuditTests.tamper(cluster, "n2", columnFamily: "kv", keyHex: AuditTests.dataGroup + AuditTests.hex(Array("key3".utf8)))
        try cluster.start("n2")
        await cluster.kill("n3", signal: SIGTERM)
        try await AuditTests.tamper(cluster, "n3", columnFamily: "log", keyHex: AuditTests.dataGroup + "45" + String(format: "%016X", key1Revision))
        try cluster.start("n3")
        _ = try await cluster.waitForLeader(among: Self.names)

        // Their trees are intact, so the members sign their heads and the saves succeed; the
        // offline check replays and re-hashes.
        for (node, finding) in [
            ("n2", "is not what its journal produces"),
            ("n3", "the archive's journal ("),
        ] {
            let archive = "\(cluster.root)/\(node).fsnap"
            var run = try await Self.fctl(cluster, ["snapshot", "save", archive, "--node", node])
            #expect(run.status == 0, "\(run)")
            run = try await Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust])
            #expect(run.status == 6 && run.stderr.contains(finding), "\(node): \(run)")
        }
        let archive = "\(cluster.root)/n1.fsnap"
        #expect(try await Self.fctl(cluster, ["snapshot", "save", archive, "--node", "n1"]).status == 0)
        #expect(try await Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust]).status == 0)
    }
}
