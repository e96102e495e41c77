import ArgumentParser
import Crypto
import FaunaBackup
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify
import FctlCore
import Foundation

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every node: role, term, leader, commit/applied index, tree and DB size, record cache, readiness.",
        discussion: """
            READY is the node's own readiness verdict, the one its /readyz answers (docs/METRICS.md): \
            "yes", or the checks that fail (loop, stopped, leader, applied, disk); --json has \
            each check's reason. Unreachable nodes are listed as such. Exit 3 if no node answered.
            """)
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let client = try global.makeClient()
        let all = await client.statusAll(withRecordCache: true, withHealth: true)
        await client.close()
        if global.json {
            global.printJSON(all.map { endpoint, result -> [String: Any] in
                switch result {
                case .success(let s):
                    return [
                        "endpoint": "\(endpoint)", "reachable": true, "id": "\(s.nodeID)", "role": "\(s.role)", "isLearner": s.isLearner,
                        "term": s.term.rawValue, "leader": s.leader.map { "\($0)" } ?? NSNull(), "commitIndex": s.commitIndex.rawValue,
                        "appliedIndex": s.appliedIndex.rawValue, "treeSize": s.treeSize, "dbSizeBytes": s.dbSizeBytes,
                        "recordCache": s.recordCache.map { c -> Any in
                            [
                                "budgetBytes": c.budgetBytes, "bytes": c.bytes, "entries": c.entries, "hits": c.hits,
                                "misses": c.misses,
                            ]
                        } ?? NSNull(),
                        "ready": s.health.map { checks -> Any in checks.allSatisfy(\.ok) } ?? NSNull(),
                        "health": s.health.map { checks -> Any in
                            checks.map { c -> [String: Any] in
                                ["name": c.name, "ok": c.ok, "failure": c.failure ?? NSNull()]
                            }
                        } ?? NSNull(),
                    ]
                case .failure(let e): return ["endpoint": "\(endpoint)", "reachable": false, "error": e.message]
                }
            })
        } else {
            var rows = [["ID", "ENDPOINT", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "TREE", "DB", "RECORD CACHE", "READY"]]
            for (endpoint, result) in all {
                switch result {
                case .success(let s):
                    rows.append([
                        "\(s.nodeID)", "\(endpoint)", "\(s.role)\(s.isLearner ? " (learner)" : "")", "\(s.term)",
                        s.leader.map { "\($0)" } ?? "-", "\(s.commitIndex)", "\(s.appliedIndex)", "\(s.treeSize)", formatBytes(s.dbSizeBytes),
                        s.recordCache.map(formatRecordCache) ?? "-", s.health.map(formatReadiness) ?? "-",
                    ])
                case .failure(let e):
                    rows.append(["?", "\(endpoint)", "unreachable (\(e.code))", "", "", "", "", "", "", "", ""])
                }
            }
            printTable(rows)
        }
        guard all.contains(where: { if case .success = $0.1 { true } else { false } }) else {
            throw FctlError(.unavailable, "status: no node reachable. Start the cluster (tools/cluster up) or check --endpoints/--config.")
        }
    }
}

/// "yes", or "no: " and the names of the failing checks.
func formatReadiness(_ checks: [HealthCheck]) -> String {
    let failing = checks.filter { !$0.ok }.map(\.name)
    return failing.isEmpty ? "yes" : "no: " + failing.joined(separator: ",")
}

struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the cluster's members (as the leader knows them).")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (members, keys) = try await withClient(global, doing: "members") { client throws(FaunaClientError) in
            (try await client.members(), await client.publicKeys())
        }
        printMembers(members, global, keys: keys)
    }
}

/// The member table; `keys` are the tree-head signing keys the nodes reported themselves in
/// signed heads; for a node that did not answer, the key the members response carries (the
/// one that node presented to its peers), if any.
func printMembers(_ members: [Member], _ global: GlobalOptions, keys: [NodeID: [UInt8]] = [:]) {
    func key(_ m: Member) -> String { hexString(keys[m.nodeID] ?? m.publicKey) }
    if global.json {
        global.printJSON(members.map {
            [
                "id": "\($0.nodeID)", "nodeID": "\($0.nodeID)", "peer": "\($0.peerAddress)", "client": "\($0.clientAddress)",
                "isLearner": $0.isLearner, "publicKey": key($0),
            ] as [String: Any]
        })
        return
    }
    var rows = [["ID", "PEER", "CLIENT", "VOTER", "PUBLIC KEY (tree heads)"]]
    for m in members { rows.append(["\(m.nodeID)", "\(m.peerAddress)", "\(m.clientAddress)", m.isLearner ? "learner" : "voter", key(m)]) }
    printTable(rows)
}

struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member", abstract: "Change membership, one server at a time.",
        subcommands: [AddLearner.self, Promote.self, Remove.self])

    struct AddLearner: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-learner", abstract: "Add node ID (e.g. n4) as a non-voting learner.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Option(help: "Its peer address host:port.") var peer: String
        @Option(help: "Its client address host:port.") var client: String

        func run() async throws {
            let nodeID = try parseNodeID(id)
            guard let peerAddress = Endpoint(parsing: peer) else { throw FctlError(.usage, "--peer \(peer): want host:port") }
            guard let clientAddress = Endpoint(parsing: client) else { throw FctlError(.usage, "--client \(client): want host:port") }
            let member = Member(nodeID: nodeID, peerAddress: peerAddress, clientAddress: clientAddress, isLearner: true)
            try await runMemberChange(.addLearner(member), doing: "member add-learner", global)
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make learner ID a voter.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() async throws {
            try await runMemberChange(.promote(try parseNodeID(id)), doing: "member promote", global)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove member ID.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() async throws {
            try await runMemberChange(.remove(try parseNodeID(id)), doing: "member remove", global)
        }
    }
}

/// Proposes `change` through the leader and prints the resulting member list.
func runMemberChange(_ change: MemberChange, doing action: String, _ global: GlobalOptions) async throws {
    let members = try await withClient(global, doing: action) { c throws(FaunaClientError) in
        try await c.changeMembership(change)
    }
    printMembers(members, global)
}

struct Leader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Leadership.", subcommands: [Transfer.self])

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hand leadership to node ID (e.g. n2).")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() async throws {
            let nodeID = try parseNodeID(id)
            try await withClient(global, doing: "leader transfer") { c throws(FaunaClientError) in try await c.transferLeadership(to: nodeID) }
            if global.json { global.printJSON(["leader": "\(nodeID)"]) } else { print("leadership transferred to \(nodeID)") }
        }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save, check or restore snapshot archives.", subcommands: [Save.self, Verify.self, Restore.self])

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the data directories of a new cluster from an archive, continuing its history.",
            discussion: """
                --config names the NEW cluster (its nodes, addresses and data_dir). The archive is \
                first verified as `snapshot verify` does, against the OLD cluster's pinned keys \
                (--member, else --trust, else the trusted-state file of the new config's cluster \
                name). Then every node of the new config gets a data directory (<data_dir>/<id>, or \
                --data-dir ROOT/<id>) holding the archive's state, journal and tree, a new signing \
                key, and the same committed entries after the archive's index: one addVoter per new \
                member naming its addresses and new key, one remove per old member not in the new \
                config. The cluster ID and the tree are kept. Copy each directory to its machine and \
                start faunad there. Clients that trusted the old cluster accept the new keys with \
                `fctl trust accept-restore`. Existing non-empty directories are refused. Reference: \
                docs/AUDIT.md §13.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument var file: String
        @Option(name: .long, help: "An old member's public key in hex (repeat for each member). Default: the trusted-state file's keys.")
        var member: [String] = []
        @Option(name: .long, help: "The old cluster's trusted-state file (default: ~/.config/fauna/<cluster name>/trusted.json).")
        var trust: String?
        @Option(name: .long, help: "Make the node directories under ROOT (default: the new config's data_dir).")
        var dataDir: String?
        @Option(name: .long, help: "Where to unpack and replay while verifying (default: FILE.verify, removed afterwards).")
        var workDir: String?
        @Option(name: .long, help: "The master key file of an archive from an encrypted cluster (default: [encryption] master_key of --config, if any).")
        var masterKey: String?

        func run() async throws {
            guard let config = try global.clusterConfig() else {
                throw FctlError(.usage, "snapshot restore: --config NEW.toml is required (it names the new cluster's nodes)")
            }
            let base = URL(fileURLWithPath: global.config).deletingLastPathComponent().path
            let root = dataDir ?? (config.dataDirectory.hasPrefix("/") ? config.dataDirectory : "\(base)/\(config.dataDirectory)")
            let members = config.nodes.map { node in
                BackupRestorer.Member(
                    name: node.name, nodeID: node.nodeID, peer: "\(node.peer)", client: "\(node.client)", dataDirectory: "\(root)/\(node.name)")
            }
            let (clusterID, keys) = try pinnedKeys(global, member: member, trust: trust, doing: "snapshot restore")
            var verifier = BackupVerifier(archivePath: file, workDirectory: workDir ?? file + ".verify", clusterID: clusterID, memberKeys: keys)
            verifier.masterKeyFile = masterKeyFile(masterKey, global)
            let line = ProgressLine("snapshot restore", quiet: global.json)
            defer { line.finish() }
            let result: BackupRestorer.Result
            do {
                result = try BackupRestorer(verifier: verifier, members: members).restore(progress: showSteps(line))
            } catch {
                throw FctlError(error, doing: "snapshot restore")
            }
            line.finish()
            func key(_ m: BackupRestorer.Member) -> [UInt8] { result.keys.first { $0.name == m.name }?.publicKey ?? [] }
            if global.json {
                global.printJSON([
                    "index": result.index, "lastIndex": result.lastIndex, "term": result.term,
                    "removed": result.removed.map { "\($0)" },
                    "members": members.map { m in
                        ["id": m.name, "dataDir": m.dataDirectory, "publicKey": ByteEncoding.hexString(key(m))] as [String: Any]
                    },
                ])
                return
            }
            print("verified: history of \(result.index) entries signed by \(result.verification.signers) of \(result.verification.members) pinned members; state replayed")
            for m in members { print("\(m.name): \(m.dataDirectory)  key \(ByteEncoding.hexString(key(m)))") }
            print("entries \(result.index + 1)…\(result.lastIndex) (term \(result.term)) make these the members"
                + (result.removed.isEmpty ? "" : " and remove \(result.removed.map { "\($0)" }.joined(separator: ", "))")
                + ". Start each node (faunad --config \(global.config) --id ID); clients that trusted the old cluster run `fctl trust accept-restore`.")
        }
    }

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stream a node's snapshot into one archive FILE (default: from the leader).")
        @OptionGroup var global: GlobalOptions
        @Argument var file: String
        @Option(help: "The node to save (e.g. n1).") var node: String?

        func run() async throws {
            var endpoint: Endpoint?
            if let node { endpoint = try await resolveNode(node, global) }
            let line = ProgressLine("snapshot save", quiet: global.json)
            defer { line.finish() }
            let summary = try await withClient(global, doing: "snapshot save") { c throws(FaunaClientError) in
                try await c.saveSnapshot(to: file, from: endpoint) { written in line.bytes(written, of: nil) }
            }
            line.finish()
            printSummary(summary, file, global)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an archive offline: checksums, its signed tree head, its journal, tree and state.",
            discussion: """
                Without any node. Checks every file's SHA-256; that the tree head the archive \
                carries is signed by a majority of the pinned member keys (--member, else the \
                trusted-state file of the cluster in --config); that the archive's journal \
                re-hashes to that head's root and agrees with its stored tree; and that replaying \
                the journal from entry 1 reproduces its key-value state and tree. The files are \
                unpacked to --work-dir (default: next to FILE), which needs about twice the \
                archive's size, and removed afterwards. An FNASNAP1 archive carries no head: only \
                its checksums are checked. Exit 0 if every check passed, 6 naming the one that \
                failed. Reference: docs/AUDIT.md "Backups".
                """)
        @OptionGroup var global: GlobalOptions
        @Argument var file: String
        @Option(name: .long, help: "A member's public key in hex (repeat for each member). Default: the trusted-state file's keys.")
        var member: [String] = []
        @Option(name: .long, help: "The trusted-state file (default: ~/.config/fauna/<cluster name>/trusted.json).")
        var trust: String?
        @Option(name: .long, help: "Where to unpack and replay (default: FILE.verify, removed afterwards).")
        var workDir: String?
        @Option(name: .long, help: "The master key file of an archive from an encrypted cluster (default: [encryption] master_key of --config, if any).")
        var masterKey: String?
        @Flag(name: .long, help: "Only the structure and the files' SHA-256s: no keys needed, nothing unpacked or replayed.")
        var checksumsOnly = false

        func run() async throws {
            let line = ProgressLine("snapshot verify", quiet: global.json)
            defer { line.finish() }
            if checksumsOnly {
                let summary: SnapshotArchive.Summary
                do {
                    summary = try SnapshotArchive.verify(path: file) { hashed, total in line.bytes(hashed, of: total) }
                } catch {
                    throw FctlError(error, doing: "snapshot verify")
                }
                line.finish()
                printSummary(summary, file, global)
                if !global.json && summary.signedHead != nil {
                    print("checksums OK; the head's signatures, journal and state were not checked (--checksums-only)")
                }
                return
            }
            let (clusterID, keys) = try pinnedKeys(global, member: member, trust: trust, doing: "snapshot verify")
            var verifier = BackupVerifier(archivePath: file, workDirectory: workDir ?? file + ".verify", clusterID: clusterID, memberKeys: keys)
            verifier.masterKeyFile = masterKeyFile(masterKey, global)
            let report: BackupVerifier.Report
            do {
                report = try verifier.verify(progress: showSteps(line))
            } catch {
                throw FctlError(error, doing: "snapshot verify")
            }
            line.finish()
            printSummary(report.summary, file, global, signers: report.signers, deep: report)
        }
    }
}

/// The master key file for an archive: `option`, else `[encryption] master_key` of the config
/// (relative to its directory), else none.
func masterKeyFile(_ option: String?, _ global: GlobalOptions) -> String? {
    if let option { return option }
    guard let path = (try? global.clusterConfig())??.encryption?.masterKey else { return nil }
    return path.hasPrefix("/") ? path : URL(fileURLWithPath: global.config).deletingLastPathComponent().path + "/" + path
}

/// Draws a backup check's steps on `line`.
func showSteps(_ line: ProgressLine) -> (BackupVerifier.Step) -> Void {
    { step in
        switch step {
        case .hashing(let done, let total): line.bytes(done, of: total)
        case .rehashingJournal: line.status("re-hashing the journal")
        case .replaying(let done, let total): line.status("replaying entry \(done) of \(total)")
        case .comparingState: line.status("comparing the replayed state")
        }
    }
}

/// The cluster ID and member keys to check signatures against: `--member` keys, else the
/// trusted-state file (`--trust`, else the default one of the cluster in --config).
func pinnedKeys(_ global: GlobalOptions, member: [String], trust: String?, doing: String) throws -> (ClusterID?, [[UInt8]]) {
    guard member.isEmpty else {
        var keys: [[UInt8]] = []
        for text in member {
            guard let raw = TrustStore.hexBytes(text.lowercased()), raw.count == 32,
                (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil
            else { throw FctlError(.usage, "--member \(text): want 64 hex digits (an Ed25519 public key)") }
            keys.append(raw)
        }
        return (nil, keys)
    }
    let name = try global.clusterConfig()?.name ?? "default"
    let store = trust.map(TrustStore.init(path:)) ?? TrustStore(path: TrustStore.defaultPath(cluster: name))
    let loaded: TrustedCluster?
    do { loaded = try store.load() } catch { throw FctlError(error, doing: doing) }
    guard let loaded else {
        throw FctlError(.usage, "\(doing): no member keys: pass --member HEX for each member, or --trust FILE (\(store.path) does not exist; `fctl trust init` makes it)")
    }
    return (loaded.clusterID, loaded.members.map { Array($0.publicKey.rawRepresentation) })
}

func printSummary(
    _ s: SnapshotArchive.Summary, _ file: String, _ global: GlobalOptions, signers: Int? = nil, deep: BackupVerifier.Report? = nil
) {
    let head = s.signedHead?.head
    if global.json {
        var object: [String: Any] = [
            "file": file, "index": s.index.rawValue, "term": s.term.rawValue, "dataBytes": s.dataBytes, "version": s.version,
            "files": s.files.map { ["name": $0.name, "sizeBytes": $0.sizeBytes, "sha256": ByteEncoding.hexString($0.sha256)] as [String: Any] },
        ]
        if let signed = s.signedHead {
            object["treeHead"] = [
                "clusterID": "\(signed.head.clusterID)", "treeSize": signed.head.treeSize, "rootHash": "\(signed.head.rootHash)",
                "signatures": signed.signatures.count,
            ] as [String: Any]
        }
        if let signers { object["validSigners"] = signers }
        if let deep {
            object["journalEntries"] = deep.journalEntries
            object["replayedEntries"] = deep.replayedEntries
            object["stateDigest"] = ByteEncoding.hexString(deep.stateDigest)
        }
        global.printJSON(object)
        return
    }
    print("snapshot index \(s.index) term \(s.term): \(s.files.count) files, \(s.dataBytes) bytes → \(file)")
    guard let head else {
        print("FNASNAP1 archive: checksums OK; it carries no signed tree head, so its history cannot be proven (save a new one)")
        return
    }
    print("tree head: size \(head.treeSize), root \(head.rootHash), \(s.signedHead!.signatures.count) signatures"
        + (signers.map { " (\($0) valid from pinned members)" } ?? ""))
    if let deep {
        print("OK: the journal's \(deep.journalEntries) entries rebuild the signed root; replaying them reproduces the state "
            + "(digest \(ByteEncoding.hexString(deep.stateDigest))) and the tree")
    }
}

/// The client address of node `name`: from the config file, else from the member list.
func resolveNode(_ name: String, _ global: GlobalOptions) async throws(FctlError) -> Endpoint {
    let nodeID = try parseNodeID(name)
    if let config = try global.clusterConfig(), let node = config.node(id: nodeID) {
        return Endpoint(host: node.client.host, port: UInt16(node.client.port))
    }
    let members = try await withClient(global, doing: "members") { c throws(FaunaClientError) in try await c.members() }
    guard let member = members.first(where: { $0.nodeID == nodeID }) else {
        throw FctlError(.usage, "node \(name) is not a member (members: \(members.map { "\($0.nodeID)" }.joined(separator: ", ")))")
    }
    return member.clientAddress
}

struct HashKV: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hashkv", abstract: "Show every node's state digest and whether they are equal.",
        discussion: "Exit 1 if reachable nodes at the same applied index differ; 3 if none is reachable.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let client = try global.makeClient()
        let results = await client.hashKVAll()
        await client.close()
        let reached = results.compactMap { try? $0.1.get() }
        let groups = Dictionary(grouping: reached, by: \.appliedIndex)
        // Equal applied index ⇒ equal state digest and equal audit tree root.
        let isConsistent = groups.values.allSatisfy { Set($0.map(\.digest)).count == 1 && Set($0.map(\.treeRoot)).count == 1 }
        if global.json {
            global.printJSON([
                "consistent": isConsistent,
                "nodes": results.map { endpoint, result -> [String: Any] in
                    switch result {
                    case .success(let h):
                        return ["endpoint": "\(endpoint)", "id": "\(h.nodeID)", "appliedIndex": h.appliedIndex.rawValue,
                                "compactRevision": h.compactRevision.rawValue, "digest": ByteEncoding.hexString(h.digest),
                                "treeSize": h.treeSize, "treeRoot": ByteEncoding.hexString(h.treeRoot)]
                    case .failure(let e): return ["endpoint": "\(endpoint)", "error": e.message]
                    }
                },
            ])
        } else {
            var rows = [["ID", "ENDPOINT", "APPLIED", "COMPACT", "DIGEST", "TREE ROOT"]]
            for (endpoint, result) in results {
                switch result {
                case .success(let h):
                    rows.append([
                        "\(h.nodeID)", "\(endpoint)", "\(h.appliedIndex)", "\(h.compactRevision)",
                        String(ByteEncoding.hexString(h.digest).prefix(16)), String(ByteEncoding.hexString(h.treeRoot).prefix(16)),
                    ])
                case .failure(let e): rows.append(["?", "\(endpoint)", "unreachable (\(e.code))", "", "", ""])
                }
            }
            printTable(rows)
            if reached.isEmpty {
                print("no node reachable")
            } else {
                print(isConsistent ? "state digests and tree roots equal at each applied index (first 16 hex digits shown; --json for all)"
                      : "DIGESTS OR TREE ROOTS DIFFER at the same applied index")
            }
        }
        guard !reached.isEmpty else { throw FctlError(.unavailable, "hashkv: no node reachable. Check that the cluster runs (fctl status).") }
        guard isConsistent else { throw FctlError(.notFound, "hashkv: replicas at the same applied index have different digests or tree roots; stop writes and compare the nodes (fctl hashkv --json)") }
    }
}

/// Prints rows as left-aligned columns separated by two spaces.
func printTable(_ rows: [[String]]) {
    let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        let line = row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        print(String(line.reversed().drop { $0 == " " }.reversed()))
    }
}

/// `12 MiB of 64 MiB, 93.1% hits`, or `off`.
func formatRecordCache(_ c: RecordCacheStatus) -> String {
    guard c.budgetBytes > 0 else { return "off" }
    let reads = c.hits + c.misses
    let rate = reads == 0 ? "no reads" : String(format: "%.1f%% hits", Double(c.hits) * 100 / Double(reads))
    return "\(formatBytes(c.bytes)) of \(formatBytes(c.budgetBytes)), \(rate)"
}

func formatBytes(_ n: UInt64) -> String {
    n >= 1 << 20 ? "\(n >> 20) MiB" : n >= 1 << 10 ? "\(n >> 10) KiB" : "\(n) B"
}
