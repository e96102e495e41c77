import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Encryption at rest on real faunad processes (docs/SECURITY.md "Encryption at rest"): a value
/// written with a unique marker is found in no file under any node's data directory (SSTs,
/// WALs, MANIFEST, checkpoints) nor in a snapshot archive, it reads back after a restart, its
/// proof verifies in Swift and in Python, and a key file others may read stops the node.
@Suite(.serialized, .timeLimit(.minutes(4))) struct EncryptionClusterTests {
    static let names = ["n1", "n2", "n3"]

    /// The files under `root` (every depth) whose bytes contain `needle`.
    static func filesContaining(_ needle: [UInt8], under root: String) -> [String] {
        var found: [String] = []
        let walker = FileManager.default.enumerator(atPath: root)
        while let name = walker?.nextObject() as? String {
            let path = "\(root)/\(name)"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: Data(needle)) != nil { found.append(name) }
        }
        return found
    }

    @Test func aMarkedValueIsInNoFileAndItsProofStillVerifies() async throws {
        let cluster = try ProcessCluster(names: Self.names, encryption: true)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let marker = "MARKER" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        var run = try await AuditTests.fctl(cluster, ["put", "secret", marker])
        #expect(run.status == 0, "\(run)")
        for i in 0..<20 { _ = try await AuditTests.fctl(cluster, ["put", "other\(i)", "\(marker)-\(i)"]) }
        run = try await AuditTests.fctl(cluster, ["get", "secret", "--verify"])
        #expect(run.status == 0 && run.stdout.hasPrefix(marker + "\n"), "\(run)")
        _ = try await cluster.waitConverged(Self.names)
        #expect(cluster.log(of: "n1").contains("values encrypted at rest"))

        // The proof of the value verifies offline, in Swift and in Python (leaves hash plaintext).
        let proofPath = "\(cluster.root)/secret.proof.json"
        run = try await AuditTests.fctl(cluster, ["proof", "secret", "--out", proofPath])
        #expect(run.status == 0, "\(run)")
        run = try await AuditTests.fctl(cluster, ["verify-proof", proofPath])
        #expect(run.status == 0 && run.stdout.hasPrefix("OK secret = \(marker) at revision "), "\(run)")
        let members = try await AuditTests.fctl(cluster, ["members", "--json"])
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(members.stdout.utf8)) as? [[String: Any]])
            .compactMap { $0["publicKey"] as? String }
        let python = try await AuditTests.pythonVerifyProof(keys, proofPath)
        #expect(python.status == 0 && python.text.hasPrefix("OK "), "\(python.text)")

        // A snapshot archive (a node's checkpoint: SSTs, MANIFEST, the WAL) carries the values
        // sealed, and verifies with the master key from cluster.toml's [encryption].
        let archive = "\(cluster.root)/backup.fsnap"
        run = try await AuditTests.fctl(cluster, ["snapshot", "save", archive])
        #expect(run.status == 0, "\(run)")
        run = try await AuditTests.fctl(cluster, ["snapshot", "verify", archive, "--trust", "\(cluster.root)/trusted.json"])
        #expect(run.status == 0, "snapshot verify with the key: \(run)")
        let wrongKey = "\(cluster.root)/keys/wrong.key"
        #expect(FileManager.default.createFile(
            atPath: wrongKey, contents: Data((String(repeating: "5a", count: 32) + "\n").utf8), attributes: [.posixPermissions: 0o600]))
        run = try await AuditTests.fctl(cluster, ["snapshot", "verify", archive, "--trust", "\(cluster.root)/trusted.json", "--master-key", wrongKey])
        #expect(run.status == 7 && run.stderr.contains("fingerprint"), "snapshot verify with another key: \(run)")

        // Stopped (SIGTERM: the state is flushed to SSTs), no file holds the marker's bytes.
        for n in Self.names { await cluster.kill(n, signal: SIGTERM) }
        let needle = Array(marker.utf8)
        let dataRoot = "\(cluster.root)/data"
        let files = (FileManager.default.enumerator(atPath: dataRoot)?.allObjects as? [String]) ?? []
        #expect(files.contains { $0.hasSuffix(".sst") } && files.contains { $0.hasSuffix(".log") } && files.contains { $0.contains("MANIFEST") }, "\(files)")
        #expect(Self.filesContaining(needle, under: dataRoot) == [])
        // Each node's signing key is sealed by the master key too (NodeKeyTests has the rest).
        for n in Self.names {
            let key = [UInt8](FileManager.default.contents(atPath: "\(cluster.dataDirectory(of: n))/node.key") ?? Data())
            #expect(key.starts(with: Array("FNS1".utf8)), "\(n)/node.key is sealed")
        }
        #expect(Self.filesContaining(needle, under: archive).isEmpty && (try? Data(contentsOf: URL(fileURLWithPath: archive)))?.range(of: Data(needle)) == nil)

        // Restarted, the value reads back from the sealed SSTs.
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        run = try await AuditTests.fctl(cluster, ["get", "secret"])
        #expect(run.status == 0 && run.stdout == marker + "\n", "\(run)")

        // A master key file others may read stops the node at start, naming the file.
        await cluster.kill("n3", signal: SIGTERM)
        let keyPath = try #require(cluster.masterKeyPath)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyPath)
        try cluster.start("n3")
        let exit = await cluster.waitForExit("n3", seconds: 30)
        #expect(exit?.status == 1, "\(String(describing: exit))")
        #expect(cluster.log(of: "n3").contains("mode 644 lets others read it"), "\(cluster.log(of: "n3").suffix(500))")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
    }
}
