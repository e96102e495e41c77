import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

/// Users and roles end to end (docs/SECURITY.md "Users and roles"): a TLS cluster of real
/// faunad processes, administered with fctl as root (the client certificate's common name).
@Suite(.serialized) struct AuthClusterTests {
    static let names = ["n1", "n2", "n3"]
    typealias Run = ClientAndCLITests.Run

    @Test func aUserWithReadwriteOnAppCannotTouchOtherKeysAndARevocationActsAtOnce() async throws {
        let cluster = try ProcessCluster(names: Self.names, tls: true)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        let passwordFile = "\(cluster.root)/alice.password"
        try "s3cret-horse\n".write(toFile: passwordFile, atomically: false, encoding: .utf8)
        func root(_ arguments: [String], stdin: String? = nil) async throws -> Run {
            try await ClientAndCLITests.fctl(arguments, config: config, stdin: stdin)
        }
        // alice's fctl is bound by a certificate naming her: a password check is scrypt, 0.65 s
        // of CPU in a debug build, which starved the other end-to-end tests run beside this one.
        // Her password is checked once below (`expectEntryAccess`), and a wrong one once.
        let aliceConfig = "\(cluster.root)/alice.toml"
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "tls/client.", with: "alice/client.")
            .write(toFile: aliceConfig, atomically: false, encoding: .utf8)
        func alice(_ arguments: [String]) async throws -> Run {
            try await ClientAndCLITests.fctl(arguments, config: aliceConfig)
        }
        func expectOK(_ run: Run, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(run.status == 0, "\(what): \(run.stdout) \(run.stderr)", sourceLocation: sourceLocation)
        }

        // Set up as root (the shipped client certificate's common name), then enable.
        expectOK(try await root(["put", "other/y", "root's"]), "put other/y")
        var run = try await root(["auth", "enable"])
        #expect(run.status == 4 && run.stderr.contains("root"), "enable without a root user: \(run.stderr)")
        expectOK(try await root(["user", "add", "root", "--no-password"]), "user add root")
        expectOK(try await root(["user", "grant-role", "root", "root"]), "grant root")
        expectOK(try await root(["user", "add", "alice", "--password-stdin"], stdin: "s3cret-horse\n"), "user add alice")
        expectOK(try await root(["role", "add", "app-rw"]), "role add")
        expectOK(try await root(["role", "grant", "app-rw", "readwrite", "app/", "--prefix"]), "role grant")
        expectOK(try await root(["user", "grant-role", "alice", "app-rw"]), "grant app-rw")
        expectOK(try await root(["auth", "enable"]), "auth enable")
        run = try await root(["auth", "status"])
        #expect(run.stdout == "auth enabled\n", "\(run.stdout) \(run.stderr)")
        // Root's password may be removed only over a connection whose certificate names root:
        // otherwise nothing may be left to administer the cluster with.
        expectOK(try await root(["user", "passwd", "root", "--password-stdin"], stdin: "root-pass\n"), "root's password")
        let rootPasswordFile = "\(cluster.root)/root.password"
        try "root-pass\n".write(toFile: rootPasswordFile, atomically: false, encoding: .utf8)
        try Self.issueClientCertificate(cluster, commonName: "alice")
        let rootByPassword = ["--user", "root", "--password-file", rootPasswordFile, "--endpoints", "127.0.0.1:\(cluster.nodes["n1"]!.client)", "--ca", "\(cluster.root)/tls/ca.crt", "--cert", "\(cluster.root)/alice/client.crt", "--key", "\(cluster.root)/alice/client.key"]
        run = try await ClientAndCLITests.fctl(["user", "passwd", "root", "--no-password"] + rootByPassword, config: config)
        #expect(run.status == 4 && run.stderr.contains("whose common name is root"), "\(run.status) \(run.stderr)")
        expectOK(try await root(["user", "passwd", "root", "--no-password"]), "root's password removed by root's certificate")

        // alice: app/ yes, other/ no (read, write, nor its journal entry or proof).
        expectOK(try await alice(["put", "app/x", "1"]), "alice put app/x")
        run = try await alice(["get", "app/x"])
        #expect(run.status == 0 && run.stdout == "1\n", "\(run.stdout) \(run.stderr)")
        // The same user by password (as root's certificate, then authenticated): the same answers.
        let byPassword = ["--user", "alice", "--password-file", passwordFile, "--endpoints", "127.0.0.1:\(cluster.nodes["n1"]!.client)", "--ca", "\(cluster.root)/tls/ca.crt", "--cert", "\(cluster.root)/tls/client.crt", "--key", "\(cluster.root)/tls/client.key"]
        run = try await ClientAndCLITests.fctl(["get", "app/x"] + byPassword, config: config)
        #expect(run.status == 0 && run.stdout == "1\n", "\(run.stdout) \(run.stderr)")
        run = try await ClientAndCLITests.fctl(["get", "other/y"] + byPassword, config: config)
        #expect(run.status == 7 && run.stderr.contains("permission denied"), "\(run.stderr)")
        run = try await alice(["get", "other/y"])
        #expect(run.status == 7 && run.stderr.contains("permission denied"), "\(run.stderr)")
        run = try await alice(["put", "other/y", "alice's"])
        #expect(run.status == 7 && run.stderr.contains("permission denied"), "\(run.stderr)")
        run = try await root(["get", "other/y", "--json"])
        #expect(run.stdout.contains("\"value\":\"root's\""), "a refused write changed other/y: \(run.stdout)")
        run = try await alice(["user", "list"])
        #expect(run.status == 7, "a user without root listed users: \(run.stdout) \(run.stderr)")
        try await Self.expectEntryAccess(cluster, config: config)

        // No user, a wrong password, a certificate whose name is no user: refused, exit 7.
        run = try await ClientAndCLITests.fctl(["get", "app/x", "--user", "alice", "--password-file", config], config: config)
        #expect(run.status == 7 && run.stderr.contains("authentication failed"), "\(run.stderr)")
        try Self.issueClientCertificate(cluster, commonName: "nobody")
        let nobody = "\(cluster.root)/nobody.toml"
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "tls/client.", with: "nobody/client.")
            .write(toFile: nobody, atomically: false, encoding: .utf8)
        run = try await ClientAndCLITests.fctl(["get", "app/x"], config: nobody)
        #expect(run.status == 7 && run.stderr.contains("no user nobody"), "\(run.stderr)")

        // A revocation holds from the next request on, on every node.
        expectOK(try await root(["role", "revoke", "app-rw", "app/", "--prefix"]), "role revoke")
        run = try await alice(["put", "app/z", "2"])
        #expect(run.status == 7, "a write right after the revocation: \(run.stdout) \(run.stderr)")
        run = try await alice(["get", "app/x"])
        #expect(run.status == 7, "a read right after the revocation: \(run.stdout) \(run.stderr)")

        // The auth log: who changed what, at which revision; each line proven like a record.
        run = try await root(["auth", "log"])
        let lines = run.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(lines.map { $0.count > 2 ? $0[2] : "?" } == [
            "user add root (no password)", "user grant-role root root", "user add alice (password)", "role add app-rw",
            "role grant app-rw readwrite [app/, app0)", "user grant-role alice app-rw", "auth enable", "user passwd root",
            "user passwd root (removed)", "role revoke app-rw [app/, app0)",
        ], "\(run.stdout) \(run.stderr)")
        // Even before the user root existed, the changes were made by a connection whose
        // certificate names root: that is who the log names.
        #expect(lines.allSatisfy { $0.count > 1 && $0[1] == "root" }, "\(run.stdout)")
        let grantLine: [String]? = lines.first { $0.count == 4 && $0[2].hasPrefix("role grant") }
        let grantKey: String = try #require(grantLine?[3])
        run = try await AuditTests.fctl(cluster, ["get", "--hex", "--verify", grantKey])
        #expect(run.status == 0 && run.stdout.contains("is a put of this key and value"), "\(run.stdout) \(run.stderr)")
        // Every node holds the same auth state.
        let reports = try await cluster.waitConverged(Self.names)
        #expect(Set(reports.values.map(\.digest)).count == 1)
    }

    /// alice's connection may fetch the journal entry of her own write, not of root's.
    static func expectEntryAccess(_ cluster: ProcessCluster, config: String) async throws {
        var configuration = RPCClientConfiguration()
        let tls = "\(cluster.root)/tls"
        configuration.tls = try TLSContexts(files: TLSFiles(ca: "\(tls)/ca.crt", certificate: "\(tls)/client.crt", key: "\(tls)/client.key"), role: .client)
        let client = try await RPCClient.connect(
            to: Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes["n1"]!.client)), configuration: configuration, group: cluster.group,
            logger: cluster.logger)
        defer { Task { await client.close() } }
        func modRevision(_ key: String) async throws -> UInt64 {
            guard case .readResponse(let r) = try await client.call(.read(ReadRequest(KVRangeRequest(range: .single([UInt8](key.utf8))))))
            else { throw CancellationError() }
            return try #require(r.records.first).record.modRevision.rawValue
        }
        // As root (the certificate) first: then bound to alice.
        let mine = try await modRevision("app/x")
        let theirs = try await modRevision("other/y")
        // scrypt takes 0.65 s in a debug build on an idle machine, more than 5 s on a loaded CI.
        let bound = try await client.call(
            .authenticate(AuthenticateRequest(user: [UInt8]("alice".utf8), password: [UInt8]("s3cret-horse".utf8))), timeout: .seconds(30))
        #expect(bound == .authenticateResponse(user: [UInt8]("alice".utf8)))
        if case .error(let e) = try await client.call(.journalEntry(LogIndex(mine))) { Issue.record("alice's own entry: \(e)") }
        guard case .error(let refused) = try await client.call(.journalEntry(LogIndex(theirs))) else {
            Issue.record("alice got root's journal entry")
            return
        }
        #expect(refused.code == .permissionDenied)
        guard case .error(let proof) = try await client.call(.inclusionProof(InclusionProofRequest(leafIndex: theirs - 1, treeSize: theirs))) else {
            Issue.record("alice got an inclusion proof of root's entry")
            return
        }
        #expect(proof.code == .permissionDenied)
        guard case .error(let digest) = try await client.call(.hashKV) else { Issue.record("alice got hashKV"); return }
        #expect(digest.code == .permissionDenied)
    }

    /// The metrics and status port with auth on (docs/SECURITY.md "The metrics and status
    /// port"): the probes stay open; `/metrics` takes any user, by certificate or HTTP Basic;
    /// the status page takes root; and the page's own requests to the members, made with the
    /// node's certificate, still compare roots and audit the state.
    @Test func theMetricsAndStatusPortFollowTheAuthRules() async throws {
        let cluster = try ProcessCluster(names: Self.names, settings: "audit_interval_s = 5", tls: true)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        func root(_ arguments: [String], stdin: String? = nil) async throws -> Run {
            try await ClientAndCLITests.fctl(arguments, config: config, stdin: stdin)
        }
        for step in [["user", "add", "root", "--no-password"], ["user", "grant-role", "root", "root"], ["auth", "enable"]] {
            let run = try await root(step)
            #expect(run.status == 0, "\(step): \(run.stdout) \(run.stderr)")
        }
        let run = try await root(["user", "add", "mon", "--password-stdin"], stdin: "mon-pass\n")
        #expect(run.status == 0, "user add mon: \(run.stdout) \(run.stderr)")
        let enabledAt = try #require(run.stdout.split(whereSeparator: \.isWhitespace).last.flatMap { UInt64($0) }, "\(run.stdout)")

        // GET with python's TLS (no curl on a bare machine): prints the status, then the body.
        let script = """
            from base64 import b64encode
            from ssl import create_default_context
            from sys import argv
            from urllib.error import HTTPError
            from urllib.request import Request, urlopen
            url, ca, cert, user = argv[1:5]
            c = create_default_context(cafile=ca)
            c.check_hostname = False
            if cert != "-": c.load_cert_chain(cert + ".crt", cert + ".key")
            r = Request(url)
            if user != "-": r.add_header("Authorization", "Basic " + b64encode(user.encode()).decode())
            try:
                with urlopen(r, context=c, timeout=10) as a: print(a.status); print(a.read().decode())
            except HTTPError as e:
                print(e.code, e.headers.get("WWW-Authenticate", "")); print(e.read().decode())
            """
        let port = try #require(cluster.nodes["n3"]?.metrics)
        func get(_ path: String, cert: String = "-", user: String = "-") async throws -> (code: String, body: String) {
            let out = try await runCommand(
                "/usr/bin/python3", ["-c", script, "https://127.0.0.1:\(port)\(path)", "\(cluster.root)/tls/ca.crt", cert, user])
            let lines = out.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(lines.first ?? ""), lines.count > 1 ? String(lines[1]) : out.stderr)
        }
        let rootCert = "\(cluster.root)/tls/client"
        var answer = try await get("/readyz")
        #expect(answer.code == "200", "\(answer)")
        answer = try await get("/metrics")
        #expect(answer.code.hasPrefix("401 Basic realm=\"Fauna e2e\""), "\(answer)")
        answer = try await get("/metrics", cert: rootCert)
        #expect(answer.code == "200" && answer.body.contains("fauna_raft_term"), "\(answer)")
        answer = try await get("/metrics", user: "mon:mon-pass")
        #expect(answer.code == "200", "\(answer)")
        answer = try await get("/metrics", user: "mon:wrong")
        #expect(answer.code.hasPrefix("401"), "\(answer)")
        answer = try await get("/status.json", user: "mon:mon-pass")
        #expect(answer.code.hasPrefix("403") && answer.body.contains("root role"), "\(answer)")
        answer = try await get("/", cert: rootCert)
        #expect(answer.code == "200" && answer.body.contains("<html"), "\(answer)")

        // The page's requests to the members run as the node (its certificate names a member):
        // every root at the common size agrees, and an audit made after auth was enabled is
        // clean (n3 audits first, 5 s after its start).
        var page: [String: Any] = [:]
        let deadline = ContinuousClock.now + .seconds(40)
        while ContinuousClock.now < deadline {
            answer = try await get("/status.json", cert: rootCert)
            if answer.code == "200", let data = answer.body.data(using: .utf8),
                let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            {
                page = json
                let audit = json["audit"] as? [String: Any]
                if let revision = audit?["revision"] as? NSNumber, revision.uint64Value >= enabledAt { break }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        let nodes = page["nodes"] as? [[String: Any]] ?? []
        #expect(nodes.count == 3 && nodes.allSatisfy { ($0["rootAgrees"] as? Bool) == true }, "\(page)")
        let audit = page["audit"] as? [String: Any]
        #expect((audit?["clean"] as? Bool) == true && ((audit?["revision"] as? NSNumber)?.uint64Value ?? 0) >= enabledAt, "\(page)")

        // A node's certificate on the client port reads as the node, and changes nothing.
        let nodeConfig = "\(cluster.root)/as-n1.toml"
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "tls/client.", with: "tls/n1.")
            .write(toFile: nodeConfig, atomically: false, encoding: .utf8)
        var asNode = try await ClientAndCLITests.fctl(["members"], config: nodeConfig)
        #expect(asNode.status == 0 && asNode.stdout.contains("n3"), "\(asNode.stdout) \(asNode.stderr)")
        asNode = try await ClientAndCLITests.fctl(["put", "by-node", "x"], config: nodeConfig)
        #expect(asNode.status != 0 && asNode.stderr.contains("n1"), "\(asNode.stdout) \(asNode.stderr)")
        asNode = try await ClientAndCLITests.fctl(["member", "remove", "n2"], config: nodeConfig)
        #expect(asNode.status != 0, "\(asNode.stdout) \(asNode.stderr)")
        let members = try await root(["members"])
        #expect(members.stdout.contains("n2"), "\(members.stdout)")
    }

    /// A client certificate of the cluster's CA with another common name, in `<root>/<commonName>`.
    static func issueClientCertificate(_ cluster: ProcessCluster, commonName: String) throws {
        let dir = "\(cluster.root)/\(commonName)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for file in ["ca.crt", "ca.key"] { try FileManager.default.copyItem(atPath: "\(cluster.root)/tls/\(file)", toPath: "\(dir)/\(file)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["\(ProcessCluster.repositoryRoot)/tools/tls-certs", dir, "--client", commonName]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
    }
}
