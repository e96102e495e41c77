import ArgumentParser
import Crypto
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify
import FctlCore
import Foundation

/// Options of the commands that verify: where the trusted state is, which node answers.
struct AuditOptions: ParsableArguments {
    @Option(name: .long, help: "The trusted-state file (default: ~/.config/fauna/<cluster name>/trusted.json).")
    var trust: String?

    @Option(name: .long, help: "The node that serves the record and proofs: a node ID of the config (n2) or host:port. Default: the leader.")
    var node: String?

    func trustStore(_ global: GlobalOptions) throws(FctlError) -> TrustStore {
        if let trust { return TrustStore(path: trust) }
        let name = try global.clusterConfig()?.name ?? "default"
        return TrustStore(path: TrustStore.defaultPath(cluster: name))
    }

    func servingNode(_ global: GlobalOptions) throws(FctlError) -> Endpoint? {
        guard let node else { return nil }
        if let endpoint = Endpoint(parsing: node) { return endpoint }
        guard let config = try global.clusterConfig() else {
            throw FctlError(.usage, "--node \(node): with --endpoints, give host:port")
        }
        do {
            let found = try config.node(named: node)
            return Endpoint(host: found.client.host, port: UInt16(found.client.port))
        } catch {
            throw FctlError(.usage, "--node: \(error.message)")
        }
    }

    /// The trusted state, pinning every member's key on first use.
    func loadOrPin(_ client: FaunaClient, _ global: GlobalOptions) async throws(FctlError) -> (TrustStore, TrustedCluster, pinned: Bool) {
        let store = try trustStore(global)
        let name = try global.clusterConfig()?.name ?? "default"
        do {
            if let trust = try store.load() { return (store, trust, false) }
            return (store, try await client.pinMembers(cluster: name), true)
        } catch {
            throw FctlError(error, doing: "loading the trusted state")
        }
    }
}

func short(_ hash: MerkleHash) -> String { String("\(hash)".prefix(16)) }

func hexString(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// What a check found about removed members, if anything.
func removalNote(_ removed: [NodeID], _ trust: TrustedCluster) -> String? {
    guard !removed.isEmpty else { return nil }
    return "trust: \(removed.map { "\($0)" }.joined(separator: ", ")) left the cluster (a committed membership change, proven); "
        + "its key no longer counts: \(trust.members.count) pinned keys, \(trust.quorum) needed"
}

func pinNote(_ trust: TrustedCluster, _ store: TrustStore) -> String {
    "pinned the keys of \(trust.members.map { "\($0.nodeID)" }.joined(separator: ", ")) on first use (cluster \(trust.clusterID)) in \(store.path)"
}

/// A verified read through a fresh client (keys pinned on first use), the trusted state saved
/// after it passed. `action` names the command in errors.
func verifiedRecord(
    _ key: [UInt8], revision: UInt64?, _ global: GlobalOptions, _ options: AuditOptions, doing action: String
) async throws(FctlError) -> (record: VerifiedRecord, store: TrustStore, pinned: Bool) {
    let node = try options.servingNode(global)
    let client = try global.makeClient()
    defer { Task { await client.close() } }
    let (store, trust, pinned) = try await options.loadOrPin(client, global)
    let verified: VerifiedRecord?
    do {
        verified = try await client.verifiedGet(key, revision: revision.map { Revision($0) }, servedBy: node, trust: trust)
    } catch {
        throw FctlError(error, doing: action)
    }
    guard let verified else {
        throw FctlError(.notFound, "\(action): key \(global.show(key)) not found (absence is not proven: the tree commits to entries, not to keys)")
    }
    do { try store.save(verified.trust) } catch { throw FctlError(error, doing: "saving the trusted state") }
    return (verified, store, pinned)
}

/// `fctl get KEY --verify`.
func verifiedGet(_ key: [UInt8], revision: UInt64?, _ global: GlobalOptions, _ options: AuditOptions) async throws(FctlError) {
    let (verified, store, pinned) = try await verifiedRecord(key, revision: revision, global, options, doing: "get --verify")
    let proof = verified.proof
    let head = proof.signedHead.head
    if global.json {
        var object = global.recordJSON(verified.record)
        object["verified"] = [
            "revision": proof.entry.index, "entryTerm": proof.entry.term, "writtenBy": verified.writtenBy,
            "leafIndex": proof.inclusion.leafIndex.rawValue, "treeSize": head.treeSize, "rootHash": "\(head.rootHash)",
            "clusterID": "\(head.clusterID)", "signers": verified.signers.map { "\($0)" }, "servedBy": "\(verified.servedBy)",
            "trustedSizeBefore": verified.trustedBefore.treeSize, "trustedSize": verified.trust.head.treeSize, "pinnedKeys": pinned,
        ] as [String: Any]
        global.printJSON(object)
        return
    }
    print(global.show(verified.record.record.value))
    if pinned { print(pinNote(verified.trust, store)) }
    print("verified: entry \(proof.entry.index) (term \(proof.entry.term)) is a \(verified.writtenBy) of this key and value, served by \(verified.servedBy)")
    print("verified: it is leaf \(proof.inclusion.leafIndex) of tree size \(head.treeSize), root \(head.rootHash)")
    let pinnedBefore = verified.trust.members.count + verified.removedMembers.count
    print("verified: that head is signed by \(verified.signers.map { "\($0)" }.joined(separator: ", ")) (\(verified.signers.count) of \(pinnedBefore) members, \(pinnedBefore / 2 + 1) needed)")
    print("verified: it extends the trusted head of size \(verified.trustedBefore.treeSize); trusted size now \(verified.trust.head.treeSize)")
    if let note = removalNote(verified.removedMembers, verified.trust) { print(note) }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Advance the trusted state to the cluster's current signed tree head.",
        discussion: "Checks a quorum of member signatures and a consistency proof from the trusted head. Exit 6 if the cluster's history forked or was rolled back.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var audit: AuditOptions

    func run() async throws {
        let node = try audit.servingNode(global)
        let client = try global.makeClient()
        defer { Task { await client.close() } }
        let (store, trust, pinned) = try await audit.loadOrPin(client, global)
        let verified: VerifiedHead
        do { verified = try await client.verifyHead(servedBy: node, trust: trust) } catch { throw FctlError(error, doing: "verify") }
        do { try store.save(verified.trust) } catch { throw FctlError(error, doing: "saving the trusted state") }
        let head = verified.head.head
        if global.json {
            global.printJSON([
                "treeSize": head.treeSize, "rootHash": "\(head.rootHash)", "signers": verified.signers.map { "\($0)" },
                "trustedSizeBefore": verified.trustedBefore.treeSize, "pinnedKeys": pinned, "trust": store.path,
            ])
            return
        }
        if pinned { print(pinNote(verified.trust, store)) }
        print("verified: tree size \(verified.trustedBefore.treeSize) → \(head.treeSize), root \(head.rootHash)")
        if let note = removalNote(verified.removedMembers, verified.trust) { print(note) }
        print("verified: signed by \(verified.signers.map { "\($0)" }.joined(separator: ", ")) (\(verified.signers.count) of \(verified.trust.members.count) members); consistent with the trusted head")
    }
}

struct Proof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a self-contained proof of KEY (fauna-proof-v2 JSON, docs/AUDIT.md §7).",
        discussion: "Verifies it first, like get --verify. Check it offline with `fctl verify-proof FILE` or `tools/verify-proof`.")
    @OptionGroup var global: GlobalOptions
    @Argument var key: String
    @Option(name: .customLong("rev"), help: "The record as of this revision.") var revision: UInt64?
    @Option(name: .long, help: "Where to write the proof.") var out: String
    @OptionGroup var audit: AuditOptions

    func run() async throws {
        let keyBytes = try global.bytes(key, "key")
        let (verified, store, pinned) = try await verifiedRecord(keyBytes, revision: revision, global, audit, doing: "proof")
        let object = ProofFile.object(
            verified.proof, key: keyBytes, value: verified.record.record.value, revision: verified.record.record.modRevision.rawValue,
            effectProof: verified.effectProof)
        do {
            try ProofFile.json(object).write(to: URL(fileURLWithPath: out))
        } catch {
            throw FctlError(.internalError, "proof: cannot write \(out): \(error.localizedDescription)")
        }
        if pinned { print(pinNote(verified.trust, store)) }
        let head = verified.proof.signedHead.head
        print("proof of \(global.show(keyBytes)) at revision \(verified.proof.entry.index) in tree size \(head.treeSize), signed by \(verified.signers.map { "\($0)" }.joined(separator: ", ")) → \(out)")
        print("check it offline: fctl verify-proof \(out)   or   tools/verify-proof \(verified.trust.members.map { "--member \(hexString($0.publicKey.rawRepresentation))" }.joined(separator: " ")) \(out)")
    }
}

struct VerifyProof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-proof",
        abstract: "Check a proof file offline (no network): the record, the entry, the inclusion path, the member signatures.",
        discussion: "Member keys come from --member (repeat) or the trusted-state file, never from the proof. Exit 0 and one OK line if valid; 6 and the reason if not.")
    @OptionGroup var global: GlobalOptions
    @Argument var file: String
    @Option(name: .long, help: "A member's public key in hex (repeat for each member). Default: the trusted-state file's keys.")
    var member: [String] = []
    @Option(name: .long, help: "The trusted-state file (default: ~/.config/fauna/<cluster name>/trusted.json).")
    var trust: String?

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw FctlError(.usage, "verify-proof: cannot read \(file)") }
        let contents: ProofFile.Contents
        do { contents = try ProofFile.parse(data) } catch {
            throw FctlError(.verificationFailed, "verify-proof: \(file) is not a valid fauna-proof-v1 or fauna-proof-v2 file: \(error)")
        }
        let (expectedCluster, raw) = try pinnedKeys(global, member: member, trust: trust, doing: "verify-proof")
        let keys = raw.compactMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
        let proof = contents.proof
        func fail(_ why: String) -> FctlError { FctlError(.verificationFailed, "verify-proof: FAIL: \(why)") }
        if let expectedCluster, proof.signedHead.head.clusterID != expectedCluster {
            throw fail("the proof is for cluster \(proof.signedHead.head.clusterID), the trusted cluster is \(expectedCluster)")
        }
        guard contents.revision == proof.entry.index else { throw fail("record revision \(contents.revision) != entry index \(proof.entry.index)") }
        do { try proof.verify(clusterID: proof.signedHead.head.clusterID, members: keys) } catch { throw fail("\(error)") }
        let how: String
        switch EntryPayload.check(proof.entry, effectProof: contents.effectProof, writes: contents.key, value: contents.value) {
        case .success(let h): how = h
        case .failure(let why): throw fail("\(why)")
        }
        let head = proof.signedHead.head
        print("OK \(global.show(contents.key)) = \(global.show(contents.value)) at revision \(contents.revision): entry \(proof.entry.index) (term \(proof.entry.term), a \(how)) is leaf \(proof.inclusion.leafIndex) of tree size \(head.treeSize) root \(head.rootHash); signed by a quorum of \(keys.count) members")
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare every node's state digest and tree root at a common revision; name any node that differs.",
        discussion: "For a differing tree root, finds the entry where that node's history departs (binary search). --journal also has each node re-hash its whole journal against its stored tree (slow: reads every entry). Exit 6 if any node differs, 3 if a node does not answer.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Also re-hash every node's journal and compare it with its stored tree.") var journal = false

    func run() async throws {
        // Re-hashing a journal takes a while and the nodes report only at the end: on a
        // terminal, a line says how long it has been.
        let line = ProgressLine("audit --journal", quiet: global.json || !journal)
        let ticker = Task {
            while !Task.isCancelled {
                line.status("the nodes are re-hashing their journals")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let report: ClusterAudit
        do {
            report = try await withClient(global, doing: "audit") { client throws(FaunaClientError) in
                try await client.audit(checkJournal: journal)
            }
        } catch {
            ticker.cancel()
            line.finish()
            throw error
        }
        ticker.cancel()
        line.finish()
        if global.json {
            global.printJSON([
                "revision": report.revision.rawValue, "clean": report.isClean, "problems": report.problems,
                "nodes": report.nodes.map { node -> [String: Any] in
                    var o: [String: Any] = ["endpoint": "\(node.endpoint)", "problems": node.problems]
                    if case .success(let d) = node.result {
                        o["id"] = "\(d.nodeID)"
                        o["digest"] = hexString(d.digest)
                        o["treeRoot"] = "\(d.treeRoot)"
                        if let checked = d.journalChecked { o["journalChecked"] = checked }
                    }
                    return o
                },
            ])
        } else {
            print("audit at revision \(report.revision) (tree size \(report.revision))\(journal ? ", journals re-hashed" : "")")
            var rows = [["ID", "ENDPOINT", "STATE DIGEST", "TREE ROOT"] + (journal ? ["JOURNAL"] : []) + ["VERDICT"]]
            for node in report.nodes {
                switch node.result {
                case .success(let d):
                    let journalColumn = d.journalChecked.map { d.journalProblem.isEmpty ? "\($0) ok" : "DIFFERS" } ?? ""
                    rows.append(
                        ["\(d.nodeID)", "\(node.endpoint)", String(hexString(d.digest).prefix(16)), short(d.treeRoot)]
                            + (journal ? [journalColumn] : []) + [node.problems.isEmpty ? "ok" : "DIFFERS"])
                case .failure(let error):
                    rows.append(["?", "\(node.endpoint)", "", ""] + (journal ? [""] : []) + ["unreachable (\(error.code))"])
                }
            }
            printTable(rows)
            for node in report.nodes {
                guard case .success(let d) = node.result else { continue }
                for problem in node.problems { print("\(d.nodeID): \(problem)") }
            }
            for problem in report.problems { print(problem) }
            print(report.isClean ? "all nodes agree" : "AUDIT FAILED")
        }
        if report.nodes.contains(where: { !$0.problems.isEmpty }) || report.problems.contains(where: { $0.hasPrefix("no majority") }) {
            throw ExitCode(ExitStatus.verificationFailed.rawValue)
        }
        if !report.isClean { throw ExitCode(ExitStatus.unavailable.rawValue) }
    }
}

struct Trust: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the trusted state: member keys and the last verified tree head.",
        subcommands: [Init.self, Show.self, AcceptRestore.self])

    struct AcceptRestore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "accept-restore",
            abstract: "Trust the keys of a cluster restored from a backup of the trusted one.",
            discussion: """
                The explicit step after `fctl snapshot restore`. Reads the membership changes \
                committed after the trusted head; the keys their addVoter entries declare become \
                the pinned keys, and the old members' keys are dropped, but only if the cluster's \
                current head is signed by a majority of those keys, is consistent with the trusted \
                head (which a majority of the old members signed), and includes every declaring \
                entry. Prints the keys it accepts. Exit 6 naming the check that failed; 4 if the \
                cluster declares no keys (not a restore). Reference: docs/AUDIT.md §13.
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var audit: AuditOptions

        func run() async throws {
            let store = try audit.trustStore(global)
            let loaded: TrustedCluster?
            do { loaded = try store.load() } catch { throw FctlError(error, doing: "trust accept-restore") }
            guard let trust = loaded else {
                throw FctlError(.notFound, "trust accept-restore: no trusted state at \(store.path): there is nothing to carry over (use `fctl trust init`)")
            }
            let client = try global.makeClient()
            defer { Task { await client.close() } }
            let accepted: (head: VerifiedHead, declaredAt: [UInt64])
            do throws(FaunaClientError) {
                accepted = try await client.acceptRestore(trust: trust)
                _ = try store.save(accepted.head.trust, replacing: true)
            } catch {
                throw FctlError(error, doing: "trust accept-restore")
            }
            let head = accepted.head.head.head
            print("the restored cluster's head of size \(head.treeSize) extends the trusted head of size \(accepted.head.trustedBefore.treeSize) and is signed by \(accepted.head.signers.map { "\($0)" }.joined(separator: ", "))")
            print("keys declared in entries \(accepted.declaredAt.map { "\($0)" }.joined(separator: ", ")), now trusted instead of the old members':")
            for m in accepted.head.trust.members { print("  \(m.nodeID) \(hexString(m.publicKey.rawRepresentation))") }
            print("→ \(store.path)")
        }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the trusted state: member keys from --keys FILE, or pinned from the nodes now.",
            discussion: "FILE: JSON [{\"nodeID\": \"n1\", \"publicKey\": \"<64 hex>\"}, ...] (e.g. from `fctl members --json` on a machine you trust). Refuses to replace an existing file without --force.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var audit: AuditOptions
        @Option(name: .long, help: "Member keys to trust (JSON).") var keys: String?
        @Flag(help: "Replace an existing trusted state.") var force = false

        func run() async throws {
            let store = try audit.trustStore(global)
            if !force, FileManager.default.fileExists(atPath: store.path) {
                throw FctlError(.usage, "trust init: \(store.path) exists; pass --force to replace it (you lose the trusted head)")
            }
            let client = try global.makeClient()
            defer { Task { await client.close() } }
            var trust: TrustedCluster
            let name = try global.clusterConfig()?.name ?? "default"
            do throws(FaunaClientError) {
                // With a key file, the file is the authority: the nodes that answer must
                // present exactly its keys, and a node that is down does not block.
                trust = try await client.pinMembers(cluster: name, requireAll: keys == nil)
                if let keys {
                    guard let data = FileManager.default.contents(atPath: keys) else { throw FaunaClientError(.io, "cannot read \(keys)") }
                    let given = try TrustStore.memberKeys(json: data)
                    // The nodes' keys must be exactly the given ones: the file is the authority.
                    for member in trust.members where !given.contains(member) {
                        throw FaunaClientError(.verificationFailed, "\(member.nodeID) presents key \(hexString(member.publicKey.rawRepresentation)), which \(keys) does not list for it")
                    }
                    trust.members = given
                }
                try store.save(trust, replacing: true)
            } catch {
                throw FctlError(error, doing: "trust init")
            }
            print("trusting cluster \(trust.clusterID): \(trust.members.map { "\($0.nodeID) \(hexString($0.publicKey.rawRepresentation))" }.joined(separator: ", ")) → \(store.path)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the trusted state.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var audit: AuditOptions

        func run() async throws {
            let store = try audit.trustStore(global)
            let loaded: TrustedCluster?
            do { loaded = try store.load() } catch { throw FctlError(error, doing: "trust show") }
            guard let trust = loaded else { throw FctlError(.notFound, "no trusted state at \(store.path) (created by the first verify, or `fctl trust init`)") }
            print("file        \(store.path)")
            print("cluster     \(trust.name) \(trust.clusterID)")
            for m in trust.members { print("member      \(m.nodeID) \(hexString(m.publicKey.rawRepresentation))") }
            print("tree size   \(trust.head.treeSize)")
            print("root        \(trust.head.rootHash)")
        }
    }
}
