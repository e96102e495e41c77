import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A cluster with `[tls]` (docs/SECURITY.md), with real faunad and fctl processes.
@Suite(.serialized) struct TLSClusterTests {
    static let names = ["n1", "n2", "n3"]

    @Test func fctlWorksOverTLSAndPlaintextOrAnotherCAIsRefusedWithExitSeven() async throws {
        let cluster = try ProcessCluster(names: Self.names, tls: true)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        var run = try await ClientAndCLITests.fctl(["put", "greeting", "hello"], config: config)
        #expect(run.status == 0, "\(run.stderr)")
        run = try await ClientAndCLITests.fctl(["get", "greeting"], config: config)
        #expect(run.status == 0 && run.stdout == "hello\n", "\(run.stdout) \(run.stderr)")

        // The same cluster without [tls]: the node answers the plaintext frame `tlsRequired`.
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let plain = "\(cluster.root)/plain.toml"
        try text.replacingOccurrences(of: ProcessCluster.tlsSection, with: "").write(toFile: plain, atomically: false, encoding: .utf8)
        run = try await ClientAndCLITests.fctl(["get", "greeting"], config: plain)
        #expect(run.status == 7, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("TLS"), "\(run.stderr)")

        // A client of another CA: its certificate is refused, and it refuses the node's.
        try ProcessCluster.issueCertificates(in: "\(cluster.root)/other", for: [])
        let other = "\(cluster.root)/other.toml"
        try text.replacingOccurrences(of: "\"tls/", with: "\"other/").write(toFile: other, atomically: false, encoding: .utf8)
        run = try await ClientAndCLITests.fctl(["get", "greeting"], config: other)
        #expect(run.status == 7, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.lowercased().contains("certificate"), "\(run.stderr)")
        // Nothing reached the store from the refused clients, and the cluster still serves.
        run = try await ClientAndCLITests.fctl(["get", "greeting"], config: config)
        #expect(run.status == 0 && run.stdout == "hello\n")

        // The metrics port serves HTTPS with the node's certificate, and not plain HTTP.
        let port = try #require(cluster.nodes["n1"]?.metrics)
        let get = """
            from ssl import create_default_context
            from sys import argv
            from urllib.request import urlopen
            ca, url = argv[1], argv[2]
            c = create_default_context(cafile=ca) if ca != "-" else None
            if c: c.check_hostname = False
            try:
                r = urlopen(url, context=c, timeout=5)
                print(r.status, r.read().decode()[:40])
            except Exception as e:
                print("failed", type(e).__name__)
            """
        let https = try await runCommand("/usr/bin/python3", ["-c", get, "\(cluster.root)/tls/ca.crt", "https://127.0.0.1:\(port)/livez"])
        #expect(https.stdout.hasPrefix("200 "), "\(https.stdout) \(https.stderr)")
        let plainHTTP = try await runCommand("/usr/bin/python3", ["-c", get, "-", "http://127.0.0.1:\(port)/livez"])
        #expect(plainHTTP.stdout.hasPrefix("failed"), "\(plainHTTP.stdout) \(plainHTTP.stderr)")
    }

    /// A node whose certificate comes from another CA can neither send Raft messages nor receive
    /// them: it falls behind while the others commit. Its files put back and a SIGHUP (no
    /// restart) bring it back.
    @Test func aNodeWithAForeignCertificateIsCutOffUntilSIGHUPReloadsGoodFiles() async throws {
        let cluster = try ProcessCluster(names: Self.names, tls: true)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        var session = ClientSession(clientID: ClientID(0x715_0001), sequence: .first)
        _ = try await cluster.write(.put(KVPut(key: [UInt8]("before"), value: [UInt8]("1"))), session: &session, via: [leader])
        let outcast = Self.names.first { $0 != leader }!
        let others = Self.names.filter { $0 != outcast }
        _ = try await cluster.waitConverged(Self.names)

        await cluster.kill(outcast)
        let fm = FileManager.default
        let tls = "\(cluster.root)/tls"
        try ProcessCluster.issueCertificates(in: "\(cluster.root)/foreign", for: [outcast])
        for ext in ["crt", "key"] {
            try fm.moveItem(atPath: "\(tls)/\(outcast).\(ext)", toPath: "\(tls)/\(outcast).\(ext).good")
            try fm.copyItem(atPath: "\(cluster.root)/foreign/\(outcast).\(ext)", toPath: "\(tls)/\(outcast).\(ext)")
        }
        try cluster.start(outcast)
        for i in 0..<20 {
            _ = try await cluster.write(.put(KVPut(key: [UInt8]("during\(i)"), value: [UInt8]("x"))), session: &session, via: others)
        }
        // Several election timeouts (1 s here) and reconnect attempts: it has not caught up.
        try await Task.sleep(for: .seconds(3))
        let reference = try #require(await cluster.status(others[0]))
        // Its client port presents the foreign certificate too: ask it with a client that trusts
        // the foreign CA (and presents the cluster's client certificate, which it trusts).
        var probe = RPCClientConfiguration()
        probe.tls = try TLSContexts(files: TLSFiles(ca: "\(cluster.root)/foreign/ca.crt", certificate: "\(tls)/client.crt", key: "\(tls)/client.key"), role: .client)
        let client = try await RPCClient.connect(
            to: Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[outcast]!.client)), configuration: probe, group: cluster.group, logger: cluster.logger)
        guard case .statusResponse(let behind) = try await client.call(.status()) else {
            Issue.record("no status from \(outcast)")
            return
        }
        await client.close()
        #expect(behind.appliedIndex < reference.appliedIndex, "outcast at \(behind.appliedIndex), cluster at \(reference.appliedIndex)")
        let refusals = others.map { cluster.log(of: $0) }.joined().components(separatedBy: "TLS:").count - 1
        #expect(refusals > 0, "the others logged no TLS refusal")

        for ext in ["crt", "key"] {
            try fm.removeItem(atPath: "\(tls)/\(outcast).\(ext)")
            try fm.moveItem(atPath: "\(tls)/\(outcast).\(ext).good", toPath: "\(tls)/\(outcast).\(ext)")
        }
        let pid = try #require(cluster.processID(of: outcast))
        kill(pid, SIGHUP)
        let reports = try await cluster.waitConverged(Self.names)
        #expect(Set(reports.values.map(\.digest)).count == 1)
        #expect(cluster.isRunning(outcast), "SIGHUP must reload, not stop the node")
        #expect(cluster.log(of: outcast).contains("TLS certificates reloaded"))
    }
}
