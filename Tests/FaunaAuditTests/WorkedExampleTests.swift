import Crypto
import FaunaAudit
import FaunaClient
import FaunaVerify
import Foundation
import Testing

/// Generates the worked example of docs/AUDIT.md from the code, and fails if the document
/// shows anything else. To refresh the document, run this test and copy the file it names.
@Suite struct WorkedExampleTests {
    static let clusterID = ClusterID(bytes: (0..<16).map { UInt8($0) })!
    /// RFC 8032 §7.1 TEST 1 secret key, so anyone can check the key derivation too.
    static let seed = hexBytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    /// Entry 3's one effect: a put of "hello" under "greeting".
    static let greeting = Effect.put(key: Array("greeting".utf8), value: Array("hello".utf8))
    /// Leaves 0 and 1 are v1 (before the leaf v2 boundary, entry 3); from leaf 2 on, v2.
    static let entries = [
        JournalEntry(index: 1, term: 1, type: 0, payload: []),  // the first leader's no-op
        JournalEntry(index: 2, term: 1, type: 1, payload: hexBytes("0a0b0c")),  // a conf change (opaque here)
        JournalEntry(
            index: 3, term: 1, type: 0, payload: Array("hello".utf8),
            effects: EffectsTree.summary(outcome: .success, branch: .none, effects: [greeting])),
        JournalEntry(index: 4, term: 2, type: 0, payload: [], effects: .nothingWritten(.noCommand)),  // the next leader's no-op
        JournalEntry(index: 5, term: 2, type: 0, payload: Array("world".utf8), effects: .nothingWritten(.alreadyExists)),
    ]

    /// Leaf v2 data as docs/AUDIT.md §1 spells it, built by hand (checked against `leafHash`).
    static func leafDataV2(_ e: JournalEntry) -> [UInt8] {
        let s = e.effects!
        return bigEndian(e.index) + bigEndian(e.term) + [e.type, s.outcome.rawValue, s.branch.rawValue] + bigEndian(s.count)
            + s.root.bytes + e.payload
    }

    static func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    static func generate() throws -> String {
        var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
        var out = "```text\n"
        func line(_ s: String = "") { out += s + "\n" }
        line("clusterID     \(hex(clusterID.bytes))")
        line("signing seed  \(hex(seed))")
        let signer = TreeHeadSigner(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        line("public key    \(hex(signer.publicKey.rawRepresentation))")
        line()
        for (i, entry) in entries.enumerated() {
            line("leaf \(i): entry index \(entry.index), term \(entry.term), type \(entry.type), payload \"\(hex(entry.payload))\", leaf v\(entry.leafVersion)")
            guard let s = entry.effects else {
                line("  leafData = \(hex(entry.leafData))")
                line("  leafHash = SHA256(00 ‖ leafData) = \(entry.leafHash)")
                tree.append(entry.leafHash)
                continue
            }
            if s.count == 1 {
                line("  effect 0: put key \"greeting\" (\(hex(greeting.key))), value \"hello\"")
                line("    SHA256(value)  = \(greeting.valueHash!)")
                line("    effectLeafData = \(hex(greeting.leafData))")
                line("    effectLeafHash = SHA256(00 ‖ effectLeafData) = \(greeting.leafHash)")
                line("  effects: outcome \(s.outcome.rawValue) (\(s.outcome)), branch \(s.branch.rawValue), count 1, root = effectLeafHash")
            } else {
                line("  effects: outcome \(s.outcome.rawValue) (\(s.outcome)), branch \(s.branch.rawValue), count 0, root = SHA256() = \(s.root)")
            }
            precondition(MerkleHasher.leafHashV2(leafDataV2(entry)) == entry.leafHash, "documented v2 leaf does not hash as the code does")
            line("  leafData = \(hex(leafDataV2(entry)))")
            line("  leafHash = SHA256(02 ‖ leafData) = \(entry.leafHash)")
            tree.append(entry.leafHash)
        }
        line()
        for (level, index, children) in [(1, 0, "leaf 0 ‖ leaf 1"), (1, 1, "leaf 2 ‖ leaf 3"), (2, 0, "node (1,0) ‖ node (1,1)")] {
            let hash = tree.store.hash(at: NodeAddress(level: UInt8(level), index: UInt64(index)))!
            line("node (\(level),\(index)) = SHA256(01 ‖ \(children)) = \(hash)")
        }
        for size in 1...5 {
            line("root at size \(size) = \(try tree.rootHash(atSize: UInt64(size)))")
        }
        line("  (size 5: SHA256(01 ‖ node (2,0) ‖ leaf 4); size 3: SHA256(01 ‖ node (1,0) ‖ leaf 2))")
        line()
        let inclusion = try tree.inclusionProof(for: LeafIndex(2), treeSize: 5)
        line("inclusion proof, leaf 2 (entry 3) in tree size 5:")
        for (i, hash) in inclusion.path.enumerated() { line("  path[\(i)] = \(hash)") }
        line("  check: r = leafHash 2; r = SHA256(01 ‖ r ‖ path[0]); r = SHA256(01 ‖ path[1] ‖ r);")
        line("         r = SHA256(01 ‖ r ‖ path[2]); r == root at size 5")
        line()
        let consistency = try tree.consistencyProof(from: 3, to: 5)
        line("consistency proof, tree size 3 to 5:")
        for (i, hash) in consistency.path.enumerated() { line("  path[\(i)] = \(hash)") }
        line("  check: old root = SHA256(01 ‖ path[2] ‖ path[0]);")
        line("         new root = SHA256(01 ‖ SHA256(01 ‖ path[2] ‖ SHA256(01 ‖ path[0] ‖ path[1])) ‖ path[3])")
        line()
        let head = TreeHead(clusterID: clusterID, treeSize: 5, rootHash: tree.rootHash)
        let signature = try signer.sign(head)
        line("tree head, canonical bytes (72):")
        let bytes = head.canonicalBytes
        line("  prefix    \(hex(bytes[0..<16]))  (\"fauna tree head\", version 01)")
        line("  clusterID \(hex(bytes[16..<32]))")
        line("  treeSize  \(hex(bytes[32..<40]))")
        line("  rootHash  \(hex(bytes[40..<72]))")
        line("Ed25519 signature = \(hex(signature.signature))")
        out += "```\n"

        let proof = EntryProof(entry: entries[2], inclusion: inclusion, signedHead: SignedTreeHead(head: head, signatures: [signature]))
        let effectProof = EffectProof(summary: entries[2].effects!, effectIndex: 0, path: [])
        try effectProof.verify(greeting)
        let file = ProofFile.object(
            proof, key: Array("greeting".utf8), value: Array("hello".utf8), revision: 3, effectProof: effectProof)
        out += "\nThe proof file of entry 3 (a one-member cluster whose member is the key above):\n\n```json\n"
        out += String(decoding: try ProofFile.json(file), as: UTF8.self) + "\n```\n"

        // Consistency with the checks the document spells out.
        let p = inclusion.path
        var r = MerkleHasher.nodeHash(entries[2].leafHash, p[0])
        r = MerkleHasher.nodeHash(p[1], r)
        r = MerkleHasher.nodeHash(r, p[2])
        precondition(r == tree.rootHash, "documented inclusion check does not hold")
        let c = consistency.path
        let rootAtThree = try tree.rootHash(atSize: 3)
        precondition(MerkleHasher.nodeHash(c[2], c[0]) == rootAtThree, "documented old-root check does not hold")
        precondition(
            MerkleHasher.nodeHash(MerkleHasher.nodeHash(c[2], MerkleHasher.nodeHash(c[0], c[1])), c[3]) == tree.rootHash,
            "documented new-root check does not hold")
        try consistency.verify(oldRoot: rootAtThree, newRoot: tree.rootHash)
        try proof.verify(clusterID: clusterID, members: [signer.publicKey])
        return out
    }

    /// docs/examples: the worked example's proof file as `fctl proof` writes it now (v2), and the
    /// one written before leaf v2 (v1, kept as it was): both verifiers accept both.
    @Test func exampleProofFilesVerify() throws {
        let generated = try Self.generate()
        let start = try #require(generated.range(of: "```json\n")), end = try #require(generated.range(of: "\n```\n", range: start.upperBound..<generated.endIndex))
        let json = String(generated[start.upperBound..<end.lowerBound]) + "\n"
        let v2URL = repositoryRoot.appendingPathComponent("docs/examples/worked-example.proof.json")
        let v1URL = repositoryRoot.appendingPathComponent("docs/examples/worked-example-v1.proof.json")
        #expect((try? String(contentsOf: v2URL, encoding: .utf8)) == json, "docs/examples/worked-example.proof.json differs from the generated file")
        let signer = TreeHeadSigner(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: Self.seed))
        for (url, format) in [(v2URL, "fauna-proof-v2"), (v1URL, "fauna-proof-v1")] {
            let contents = try ProofFile.parse(try Data(contentsOf: url))
            #expect(contents.format == format)
            try contents.proof.verify(clusterID: Self.clusterID, members: [signer.publicKey])
            let run = try verifyProofTool(["--member", hex(signer.publicKey.rawRepresentation), url.path])
            let text = run.stdout
            #expect(run.status == 0 && text.hasPrefix("OK entry 3 "), "\(url.lastPathComponent): \(text)")
            #expect(text.contains(format == "fauna-proof-v2" ? "proven by its committed effects" : "effect not proven (leaf v1)"), "\(text)")
        }
        let v2 = try ProofFile.parse(try Data(contentsOf: v2URL))
        #expect(
            (try? EntryPayload.check(v2.proof.entry, effectProof: v2.effectProof, writes: v2.key, value: v2.value).get()) == "put")
    }

    @Test func auditDocShowsTheGeneratedExample() throws {
        let generated = try Self.generate()
        let docURL = repositoryRoot.appendingPathComponent("docs/AUDIT.md")
        let doc = (try? String(contentsOf: docURL, encoding: .utf8)) ?? ""
        if !doc.contains(generated) {
            let out = repositoryRoot.appendingPathComponent(".build/audit-worked-example.md")
            try generated.write(to: out, atomically: false, encoding: .utf8)
            Issue.record("docs/AUDIT.md does not contain the generated worked example; see \(out.path)")
        }
    }
}
