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

    static func fctl(_ cluster: ProcessCluster, _ arguments: [String]) throws -> Run {
        try ClientAndCLITests.fctl(arguments, config: "\(cluster.root)/cluster.toml")
    }

    /// Flips the lowest bit of the byte at `offset` (negative: from the end) of `path`.
    static func flip(_ path: String, at offset: Int) throws {
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let i = offset >= 0 ? offset : bytes.count + offset
        bytes[i] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func aBackupSavedUnderLoadVerifiesOfflineAndDamageIsNamed() async throws {
        let cluster = try await AuditTests.started()
        defer { Task { await cluster.shutdown() } }
        let endpoints = try Self.names.map { Endpoint(host: "127.0.0.1", port: UInt16(try #require(cluster.nodes[$0]?.client))) }
        let client = FaunaClient(endpoints: endpoints)
        for i in 0..<200 { _ = try await client.put(Array("backup/\(i)".utf8), Array("value \(i)".utf8)) }
        // Writes go on while the snapshot streams and its head is signed.
        let load = Task {
            var n = 0
            while !Task.isCancelled && n < 5_000 {
                _ = try? await client.put(Array("load/\(n % 300)".utf8), Array("v\(n)".utf8))
                n += 1
            }
            return n
        }
        let archive = "\(cluster.root)/backup.fsnap"
        var run = try Self.fctl(cluster, ["snapshot", "save", archive])
        load.cancel()
        let written = await load.value
        #expect(run.status == 0 && run.stdout.contains("tree head: size"), "\(run)")
        #expect(written > 0)
        await client.close()

        // Offline from here: the nodes are stopped before the archive is checked.
        let trust = "\(cluster.root)/trusted.json"
        run = try Self.fctl(cluster, ["trust", "init", "--trust", trust])
        #expect(run.status == 0, "\(run)")
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        run = try Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust, "--json"])
        #expect(run.status == 0, "\(run)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let index = try #require(report["index"] as? Int)
        #expect(index > 200 && report["version"] as? Int == 2, "\(report)")
        #expect(report["journalEntries"] as? Int == index && report["replayedEntries"] as? Int == index, "\(report)")
        #expect(report["validSigners"] as? Int ?? 0 >= 2, "\(report)")
        #expect(!FileManager.default.fileExists(atPath: archive + ".verify"), "the work directory is removed")

        // Keys that are not the members': no quorum.
        run = try Self.fctl(cluster, ["snapshot", "verify", archive, "--member", String(repeating: "ab", count: 32)])
        #expect(run.status == 6 && run.stderr.contains("is not signed by a majority of the pinned members"), "\(run)")

        // One flipped byte in a file's data: named by file.
        let damaged = "\(cluster.root)/damaged.fsnap"
        try FileManager.default.copyItem(atPath: archive, toPath: damaged)
        let size = try #require((try FileManager.default.attributesOfItem(atPath: damaged)[.size] as? NSNumber)?.intValue)
        try Self.flip(damaged, at: size / 2)
        run = try Self.fctl(cluster, ["snapshot", "verify", damaged, "--trust", trust])
        #expect(run.status == 6 && run.stderr.contains("SHA-256 differs from the recorded one"), "\(run)")

        // One flipped bit of the signed root (the trailer is 21 bytes; 3 signatures of 96 follow
        // the head, whose last 32 bytes are the root): the signatures no longer hold.
        let forged = "\(cluster.root)/forged.fsnap"
        try FileManager.default.copyItem(atPath: archive, toPath: forged)
        let signatures = try #require((report["treeHead"] as? [String: Any])?["signatures"] as? Int)
        try Self.flip(forged, at: -(21 + 96 * signatures + 32))
        run = try Self.fctl(cluster, ["snapshot", "verify", forged, "--trust", trust])
        #expect(run.status == 6 && run.stderr.contains("is not signed by a majority of the pinned members"), "\(run)")
    }

    @Test func aBackupOfANodeChangedAtRestFailsNamingWhatDiffers() async throws {
        let cluster = try await AuditTests.started()
        defer { Task { await cluster.shutdown() } }
        for i in 1...5 { #expect(try Self.fctl(cluster, ["put", "key\(i)", "value\(i)"]).status == 0) }
        let key1 = try Self.fctl(cluster, ["get", "key1", "--json"])
        let key1Revision = try #require((try JSONSerialization.jsonObject(with: Data(key1.stdout.utf8)) as? [String: Any])?["modRevision"] as? Int)
        _ = try await cluster.waitConverged(Self.names)
        let trust = "\(cluster.root)/trusted.json"
        #expect(try Self.fctl(cluster, ["trust", "init", "--trust", trust]).status == 0)

        // n2's state is changed (a value in kv), n3's journal (the entry that wrote key1).
        await cluster.kill("n2", signal: SIGTERM)
        try AuditTests.tamper(cluster, "n2", columnFamily: "kv", keyHex: AuditTests.dataGroup + AuditTests.hex(Array("key3".utf8)))
        try cluster.start("n2")
        await cluster.kill("n3", signal: SIGTERM)
        try AuditTests.tamper(cluster, "n3", columnFamily: "log", keyHex: AuditTests.dataGroup + "45" + String(format: "%016X", key1Revision))
        try cluster.start("n3")
        _ = try await cluster.waitForLeader(among: Self.names)

        // Their trees are intact, so the members sign their heads and the saves succeed; the
        // offline check replays and re-hashes.
        for (node, finding) in [
            ("n2", "is not what its journal produces"),
            ("n3", "the archive's journal ("),
        ] {
            let archive = "\(cluster.root)/\(node).fsnap"
            var run = try Self.fctl(cluster, ["snapshot", "save", archive, "--node", node])
            #expect(run.status == 0, "\(run)")
            run = try Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust])
            #expect(run.status == 6 && run.stderr.contains(finding), "\(node): \(run)")
        }
        let archive = "\(cluster.root)/n1.fsnap"
        #expect(try Self.fctl(cluster, ["snapshot", "save", archive, "--node", "n1"]).status == 0)
        #expect(try Self.fctl(cluster, ["snapshot", "verify", archive, "--trust", trust]).status == 0)
    }
}
