import Crypto
import FaunaAudit
import FaunaClient
import FaunaVerify
import Foundation
import Testing

/// The repository root, from this file's path (Tests/FaunaAuditTests/…).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs `tools/verify-proof` with `arguments`, its output in temporary files rather than pipes:
/// faunad processes that other suites start meanwhile inherit open descriptors, and a pipe one
/// of them inherited would keep its reader waiting until that node stops.
func verifyProofTool(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("fauna-verify-proof-\(UUID().uuidString.prefix(8))").path
    defer { for s in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + s) } }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    let quoted = (["python3", repositoryRoot.appendingPathComponent("tools/verify-proof").path] + arguments)
        .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    process.arguments = ["-c", "exec \(quoted) > '\(base).out' 2> '\(base).err' < /dev/null"]
    try process.run()
    process.waitUntilExit()
    let read = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
    return (process.terminationStatus, read(base + ".out"), read(base + ".err"))
}

/// Three members, a cluster, and a 300-entry tree to take proofs from.
enum InteropFixture {
    static let signers = (1...3).map { seed in
        TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: seed, count: 32)))
    }
    static let members = signers.map(\.publicKey)
    static let clusterID = ClusterID(bytes: (0..<16).map { UInt8($0 * 17) })!

    /// The proof file of entry `index` against the head of size `size`, signed by `signerCount` members.
    static func file(entry index: UInt64, size: UInt64, signerCount: Int = 2) throws -> [String: Any] {
        let tree = smallTree
        let head = TreeHead(clusterID: clusterID, treeSize: size, rootHash: try tree.rootHash(atSize: size))
        let proof = EntryProof(
            entry: syntheticEntry(index),
            inclusion: try tree.inclusionProof(for: LeafIndex(index - 1), treeSize: size),
            signedHead: SignedTreeHead(head: head, signatures: try signers.prefix(signerCount).map { try $0.sign(head) }))
        return ProofFile.object(proof, key: Array("k\(index)".utf8), value: Array("v\(index)".utf8), revision: index)
    }

    /// Leaf v2: entry `index` puts `v<index>` under `k<index>` among 1...6 keys, in a branch
    /// that varies with the index.
    static func v2Entry(_ index: UInt64) -> (entry: JournalEntry, effectProof: EffectProof) {
        var effects = (0..<(index % 6)).map { i in Effect.put(key: Array("e\(index)-\(i)".utf8), value: [UInt8(i)]) }
        effects.append(Effect.put(key: Array("k\(index)".utf8), value: Array("v\(index)".utf8)))
        effects.sort { $0.key.lexicographicallyPrecedes($1.key) }
        let branch: TxnBranch = [.none, .then, .else][Int(index % 3)]
        let summary = EffectsTree.summary(outcome: .success, branch: branch, effects: effects)
        var entry = syntheticEntry(index)
        entry.type = 0
        entry.effects = summary
        let at = effects.firstIndex { $0.key == Array("k\(index)".utf8) }!
        let path = EffectsTree.path(at, effects.map(\.leafHash)[...])
        return (entry, EffectProof(summary: summary, effectIndex: UInt64(at), path: path))
    }

    static let v2Tree = memoryTree((1...300).map { v2Entry($0).entry.leafHash })

    /// The v2 proof file of entry `index` in the all-v2 tree.
    static func fileV2(entry index: UInt64, size: UInt64, signerCount: Int = 2) throws -> [String: Any] {
        let head = TreeHead(clusterID: clusterID, treeSize: size, rootHash: try v2Tree.rootHash(atSize: size))
        let (entry, effectProof) = v2Entry(index)
        let proof = EntryProof(
            entry: entry, inclusion: try v2Tree.inclusionProof(for: LeafIndex(index - 1), treeSize: size),
            signedHead: SignedTreeHead(head: head, signatures: try signers.prefix(signerCount).map { try $0.sign(head) }))
        return ProofFile.object(
            proof, key: Array("k\(index)".utf8), value: Array("v\(index)".utf8), revision: index, effectProof: effectProof)
    }
}

/// Flips one bit of the hex string at `path` in a JSON object (keys and array indexes).
func flipHexBit(_ object: [String: Any], _ path: [Any], bit: Int) -> [String: Any] {
    func flip(_ value: Any, _ rest: ArraySlice<Any>) -> Any {
        guard let step = rest.first else {
            var bytes = hexBytes(value as! String)
            bytes[bit / 8] ^= 0x80 >> UInt8(bit % 8)
            return hex(bytes)
        }
        if let key = step as? String, var dict = value as? [String: Any] {
            dict[key] = flip(dict[key]!, rest.dropFirst())
            return dict
        }
        var array = value as! [Any]
        let i = step as! Int
        array[i] = flip(array[i], rest.dropFirst())
        return array
    }
    return flip(object, path[...]) as! [String: Any]
}

@Suite struct ProofFileInteropTests {
    /// Valid files, and adversarial ones derived from a valid base by one change each.
    static func cases() throws -> [(name: String, object: [String: Any], isValid: Bool)] {
        var cases: [(String, [String: Any], Bool)] = []
        for (index, size, signers) in [(1, 1, 2), (3, 5, 3), (1, 300, 2), (151, 300, 2), (300, 300, 3), (256, 256, 2), (129, 200, 2)] as [(UInt64, UInt64, Int)] {
            cases.append(("valid-\(index)-of-\(size)", try InteropFixture.file(entry: index, size: size, signerCount: signers), true))
        }
        let base = try InteropFixture.file(entry: 151, size: 300)
        func with(_ name: String, _ change: (inout [String: Any]) -> Void) {
            var object = base
            change(&object)
            cases.append((name, object, false))
        }
        let pathCount = (base["inclusionPath"] as! [Any]).count
        for i in 0..<pathCount {
            for bit in [0, 1, 7, 8, 63, 100, 128, 200, 254, 255] {
                cases.append(("path\(i)-bit\(bit)", flipHexBit(base, ["inclusionPath", i], bit: bit), false))
            }
        }
        for bit in 0..<256 { cases.append(("root-bit\(bit)", flipHexBit(base, ["rootHash"], bit: bit), false)) }
        for bit in 0..<512 { cases.append(("sig1-bit\(bit)", flipHexBit(base, ["signatures", 1, "signature"], bit: bit), false)) }
        for bit in stride(from: 0, to: 256, by: 5) { cases.append(("key0-bit\(bit)", flipHexBit(base, ["signatures", 0, "publicKey"], bit: bit), false)) }
        for bit in 0..<128 { cases.append(("cluster-bit\(bit)", flipHexBit(base, ["clusterID"], bit: bit), false)) }
        let payloadBits = (hexBytes(((base["entry"] as! [String: Any])["payload"] as! String))).count * 8
        for bit in 0..<payloadBits { cases.append(("payload-bit\(bit)", flipHexBit(base, ["entry", "payload"], bit: bit), false)) }
        func setEntry(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { o in var e = o["entry"] as! [String: Any]; e[key] = value; o["entry"] = e }
        }
        with("entry-index-plus-1", setEntry("index", "152"))
        with("entry-index-0", setEntry("index", "0"))
        with("entry-term-plus-1", setEntry("term", String(syntheticEntry(151).term + 1)))
        with("entry-type-1", setEntry("type", 1))
        with("entry-type-256", setEntry("type", 256))
        with("entry-payload-extended", setEntry("payload", (((base["entry"] as! [String: Any])["payload"] as! String) + "00")))
        with("entry-payload-empty", setEntry("payload", ""))
        with("leaf-index-plus-1") { $0["leafIndex"] = "151" }
        with("leaf-index-minus-1") { $0["leafIndex"] = "149" }
        with("tree-size-plus-1") { $0["treeSize"] = "301" }
        with("tree-size-minus-1") { $0["treeSize"] = "299" }
        with("tree-size-0") { $0["treeSize"] = "0" }
        with("tree-size-index") { $0["treeSize"] = "150" }
        with("tree-size-max") { $0["treeSize"] = String(UInt64.max) }
        with("tree-size-overflow") { $0["treeSize"] = "18446744073709551616" }
        with("tree-size-leading-zero") { $0["treeSize"] = "0300" }
        with("tree-size-number") { $0["treeSize"] = 300 }
        with("path-short") { $0["inclusionPath"] = Array(($0["inclusionPath"] as! [Any]).dropLast()) }
        with("path-headless") { $0["inclusionPath"] = Array(($0["inclusionPath"] as! [Any]).dropFirst()) }
        with("path-long") { $0["inclusionPath"] = ($0["inclusionPath"] as! [Any]) + [$0["rootHash"]!] }
        with("path-prefixed") { $0["inclusionPath"] = [$0["rootHash"]!] + ($0["inclusionPath"] as! [Any]) }
        with("path-empty") { $0["inclusionPath"] = [Any]() }
        with("path-hash-short") { o in var p = o["inclusionPath"] as! [String]; p[0].removeLast(2); o["inclusionPath"] = p }
        with("revision-mismatch") { o in var r = o["record"] as! [String: Any]; r["revision"] = "150"; o["record"] = r }
        with("minority") { o in o["signatures"] = Array((o["signatures"] as! [Any]).prefix(1)) }
        with("repeated-signer") { o in let s = o["signatures"] as! [Any]; o["signatures"] = [s[0], s[0]] }
        with("unknown-signer") { o in
            let stranger = TreeHeadSigner(privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 9, count: 32)))
            let head = TreeHead(clusterID: InteropFixture.clusterID, treeSize: 300, rootHash: h(o["rootHash"] as! String))
            let sig = try! stranger.sign(head)
            o["signatures"] = Array((o["signatures"] as! [Any]).prefix(1)) + [["publicKey": hex(sig.publicKey), "signature": hex(sig.signature)]]
        }
        with("no-signatures") { $0["signatures"] = [Any]() }
        with("member-first-signature-invalid") { o in
            // Only a member's first signature counts: a valid second one does not rescue it.
            let s = o["signatures"] as! [[String: Any]]
            var bad = s[0]
            bad["signature"] = String(repeating: "00", count: 64)
            o["signatures"] = [bad, s[0], s[1]]
        }
        cases.append(("valid-padded-with-copies", {
            var o = base
            let s = o["signatures"] as! [Any]
            o["signatures"] = s + s + s
            return o
        }(), true))
        cases.append(("valid-v1-leaf-in-format-v2", { var o = base; o["format"] = "fauna-proof-v2"; return o }(), true))
        with("format-v3") { $0["format"] = "fauna-proof-v3" }
        cases += try v2Cases()
        with("missing-root") { $0["rootHash"] = nil }
        with("unknown-field") { $0["extra"] = "x" }
        with("uppercase-hex") { $0["rootHash"] = ($0["rootHash"] as! String).uppercased() }
        with("odd-hex") { o in var r = o["record"] as! [String: Any]; r["key"] = "abc"; o["record"] = r }
        return cases
    }

    /// Leaf v2 files: valid ones, and the lies a v1 leaf could not expose (a record the entry
    /// did not write, an outcome that wrote nothing) plus damage to every new field.
    static func v2Cases() throws -> [(name: String, object: [String: Any], isValid: Bool)] {
        var cases: [(String, [String: Any], Bool)] = []
        for (index, size) in [(1, 1), (5, 9), (151, 300), (300, 300), (256, 256)] as [(UInt64, UInt64)] {
            cases.append(("v2-valid-\(index)-of-\(size)", try InteropFixture.fileV2(entry: index, size: size), true))
        }
        let base = try InteropFixture.fileV2(entry: 155, size: 300)  // 155 % 6 = 5: six effects, a path of 3
        func with(_ name: String, _ change: (inout [String: Any]) -> Void) {
            var object = base
            change(&object)
            cases.append(("v2-" + name, object, false))
        }
        func setEffects(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { o in
                var e = o["entry"] as! [String: Any]
                var f = e["effects"] as! [String: Any]
                f[key] = value
                e["effects"] = f
                o["entry"] = e
            }
        }
        func setRecord(_ key: String, _ value: String) -> (inout [String: Any]) -> Void {
            { o in var r = o["record"] as! [String: Any]; r[key] = value; o["record"] = r }
        }
        with("record-value-never-written", setRecord("value", hex(Array("never-written".utf8))))
        with("record-key-other", setRecord("key", hex(Array("e155-0".utf8))))
        with("outcome-already-exists", setEffects("outcome", 1))
        with("outcome-session-expired", setEffects("outcome", 5))
        with("outcome-256", setEffects("outcome", 256))
        with("branch-other", setEffects("branch", 1))
        with("branch-3", setEffects("branch", 3))
        with("count-plus-1", setEffects("count", "7"))
        with("count-0", setEffects("count", "0"))
        for bit in stride(from: 0, to: 256, by: 3) { cases.append(("v2-effects-root-bit\(bit)", flipHexBit(base, ["entry", "effects", "root"], bit: bit), false)) }
        let pathCount = ((base["effectProof"] as! [String: Any])["path"] as! [Any]).count
        for i in 0..<pathCount {
            for bit in [0, 9, 255] { cases.append(("v2-effect-path\(i)-bit\(bit)", flipHexBit(base, ["effectProof", "path", i], bit: bit), false)) }
        }
        with("effect-index-plus-1") { o in var p = o["effectProof"] as! [String: Any]; p["index"] = String(UInt64(p["index"] as! String)! + 1); o["effectProof"] = p }
        with("effect-path-short") { o in var p = o["effectProof"] as! [String: Any]; p["path"] = Array((p["path"] as! [Any]).dropLast()); o["effectProof"] = p }
        with("effect-proof-missing") { $0["effectProof"] = nil }
        with("effects-missing") { o in var e = o["entry"] as! [String: Any]; e["effects"] = nil; o["entry"] = e }
        with("format-v1-with-effects") { $0["format"] = "fauna-proof-v1" }
        with("effects-unknown-field", setEffects("extra", "x"))
        return cases
    }

    @Test func pythonVerifierAgreesWithFaunaVerify() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fauna-proofs-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases = try Self.cases()
        var files: [String] = []
        for (name, object, _) in cases {
            let url = directory.appendingPathComponent(name + ".json")
            try ProofFile.json(object).write(to: url)
            files.append(url.path)
        }

        let memberArgs = InteropFixture.members.flatMap { ["--member", hex($0.rawRepresentation)] }
        let run = try verifyProofTool(memberArgs + ["--cluster", hex(InteropFixture.clusterID.bytes)] + files)
        try #require(run.status != 2 && run.status != 127,
                     "tools/verify-proof did not run (python3 and its cryptography package: run tools/setup): \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == cases.count)
        #expect(run.status == 1, "some files are adversarial")

        var pythonVerdicts: [String: Bool] = [:]
        for line in lines {
            guard let colon = line.range(of: ".json: ") else { continue }
            let name = URL(fileURLWithPath: String(line[..<colon.lowerBound])).lastPathComponent
            pythonVerdicts[name] = line[colon.upperBound...].hasPrefix("OK ")
        }
        for (name, object, isValid) in cases {
            let swiftValid: Bool
            do {
                let contents = try ProofFile.parse(try ProofFile.json(object))
                let proof = contents.proof
                try proof.verify(clusterID: InteropFixture.clusterID, members: InteropFixture.members)
                // A v1 leaf's synthetic payload is no KV command: the record check is for v2 only.
                let written = proof.entry.effects == nil
                    || (try? EntryPayload.check(proof.entry, effectProof: contents.effectProof, writes: contents.key, value: contents.value).get()) != nil
                swiftValid = contents.revision == proof.entry.index && written
            } catch {
                swiftValid = false
            }
            #expect(swiftValid == isValid, "Swift verdict on \(name)")
            #expect(pythonVerdicts[name] == isValid, "Python verdict on \(name): \(lines.first { $0.contains("/\(name).json") } ?? "no line")")
        }
    }

    @Test func pythonVerifierPrintsOneOKLineForOneValidFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fauna-proof-one-\(ProcessInfo.processInfo.processIdentifier).json")
        try ProofFile.json(try InteropFixture.file(entry: 3, size: 5)).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let run = try verifyProofTool(InteropFixture.members.flatMap { ["--member", hex($0.rawRepresentation)] } + [url.path])
        let text = run.stdout
        #expect(run.status == 0)
        #expect(text.hasPrefix("OK entry 3 (term 1) is leaf 2 of tree size 5 root "))
        #expect(text.split(separator: "\n").count == 1)
    }
}
