import FaunaVerify
import Foundation

/// The proof file JSON of docs/AUDIT.md §7: "fauna-proof-v2" written by `fctl proof`; both it
/// and "fauna-proof-v1" read by `fctl verify-proof` and the tests. Reading is as strict as
/// tools/verify-proof: unknown fields, non-canonical numbers and upper-case hex are errors.
public enum ProofFile {
    /// Why a proof file does not parse; names the field.
    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
    }

    /// A parsed proof file.
    public struct Contents: Sendable, Hashable {
        /// The entry (`proof.entry.effects` set for a v2 leaf).
        public var proof: EntryProof
        public var key: [UInt8]
        public var value: [UInt8]
        public var revision: UInt64
        /// For a v2 leaf: the path of the record's put among the entry's effects.
        public var effectProof: EffectProof?
        /// "fauna-proof-v1" or "fauna-proof-v2".
        public var format: String
    }

    /// The proof file of `proof` for a record (key, value) written at revision `revision`;
    /// `effectProof` is required for a v2 leaf (`proof.entry.effects` set).
    public static func object(
        _ proof: EntryProof, key: [UInt8], value: [UInt8], revision: UInt64, effectProof: EffectProof? = nil
    ) -> [String: Any] {
        var entry: [String: Any] = [
            "index": String(proof.entry.index), "term": String(proof.entry.term), "type": Int(proof.entry.type),
            "payload": hex(proof.entry.payload),
        ]
        var object: [String: Any] = [
            "format": "fauna-proof-v2",
            "clusterID": hex(proof.signedHead.head.clusterID.bytes),
            "record": ["key": hex(key), "value": hex(value), "revision": String(revision)],
            "leafIndex": String(proof.inclusion.leafIndex.rawValue),
            "treeSize": String(proof.inclusion.treeSize),
            "inclusionPath": proof.inclusion.path.map { hex($0.bytes) },
            "rootHash": hex(proof.signedHead.head.rootHash.bytes),
            "signatures": proof.signedHead.signatures.map { ["publicKey": hex($0.publicKey), "signature": hex($0.signature)] },
        ]
        if let s = proof.entry.effects {
            entry["effects"] = [
                "outcome": Int(s.outcome.rawValue), "branch": Int(s.branch.rawValue), "count": String(s.count), "root": hex(s.root.bytes),
            ]
            if let effectProof {
                object["effectProof"] = ["index": String(effectProof.effectIndex), "path": effectProof.path.map { hex($0.bytes) }]
            }
        }
        object["entry"] = entry
        return object
    }

    public static func json(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    /// Reads a proof file into what FaunaVerify checks, plus the record revision.
    public static func decode(_ data: Data) throws -> (proof: EntryProof, revision: UInt64) {
        let contents = try parse(data)
        return (contents.proof, contents.revision)
    }

    /// Reads a proof file: the proof and the record it is about.
    public static func parse(_ data: Data) throws -> Contents {
        guard let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Malformed(description: "not an object") }
        let common: Set = ["format", "clusterID", "record", "entry", "leafIndex", "treeSize", "inclusionPath", "rootHash", "signatures"]
        let format = doc["format"] as? String
        switch format {
        case "fauna-proof-v1": try only(doc, common)
        case "fauna-proof-v2": try only(doc, common.union(["effectProof"]))
        default: throw Malformed(description: "format: want fauna-proof-v1 or fauna-proof-v2")
        }
        guard let clusterID = ClusterID(bytes: try bytes(doc["clusterID"])) else { throw Malformed(description: "clusterID") }
        guard let record = doc["record"] as? [String: Any], let entry = doc["entry"] as? [String: Any] else {
            throw Malformed(description: "record/entry")
        }
        try only(record, ["key", "value", "revision"])
        try only(entry, format == "fauna-proof-v1" ? ["index", "term", "type", "payload"] : ["index", "term", "type", "payload", "effects"])
        let key = try bytes(record["key"])
        let value = try bytes(record["value"])
        guard let type = entry["type"] as? Int, (0...255).contains(type) else { throw Malformed(description: "type") }
        var journalEntry = JournalEntry(
            index: try u64(entry["index"]), term: try u64(entry["term"]), type: UInt8(type), payload: try bytes(entry["payload"]))
        var effectProof: EffectProof?
        if let effects = entry["effects"] {
            guard let e = effects as? [String: Any] else { throw Malformed(description: "entry.effects") }
            try only(e, ["outcome", "branch", "count", "root"])
            guard let outcome = e["outcome"] as? Int, (0...255).contains(outcome) else { throw Malformed(description: "effects.outcome") }
            guard let rawBranch = e["branch"] as? Int, let branch = TxnBranch(rawValue: UInt8(clamping: rawBranch)), rawBranch >= 0 else {
                throw Malformed(description: "effects.branch")
            }
            let summary = EffectsSummary(outcome: EntryOutcome(rawValue: UInt8(outcome)), branch: branch, count: try u64(e["count"]), root: try hash(e["root"]))
            journalEntry.effects = summary
            if let p = doc["effectProof"] {
                guard let p = p as? [String: Any], let path = p["path"] as? [Any] else { throw Malformed(description: "effectProof") }
                try only(p, ["index", "path"])
                effectProof = EffectProof(summary: summary, effectIndex: try u64(p["index"]), path: try path.map { try hash($0) })
            }
        } else if doc["effectProof"] != nil {
            throw Malformed(description: "effectProof without entry.effects")
        }
        guard let pathHex = doc["inclusionPath"] as? [Any], let signatures = doc["signatures"] as? [Any] else {
            throw Malformed(description: "path/signatures")
        }
        let path = try pathHex.map { try hash($0) }
        let head = TreeHead(clusterID: clusterID, treeSize: try u64(doc["treeSize"]), rootHash: try hash(doc["rootHash"]))
        let sigs = try signatures.map { s -> TreeHeadSignature in
            guard let s = s as? [String: Any] else { throw Malformed(description: "signature") }
            try only(s, ["publicKey", "signature"])
            return TreeHeadSignature(publicKey: try bytes(s["publicKey"]), signature: try bytes(s["signature"]))
        }
        let inclusion = InclusionProof(leafIndex: LeafIndex(try u64(doc["leafIndex"])), treeSize: head.treeSize, path: path)
        let proof = EntryProof(entry: journalEntry, inclusion: inclusion, signedHead: SignedTreeHead(head: head, signatures: sigs))
        return Contents(
            proof: proof, key: key, value: value, revision: try u64(record["revision"]), effectProof: effectProof,
            format: format ?? "")
    }

    private static func only(_ object: [String: Any], _ names: Set<String>) throws {
        let unknown = Set(object.keys).subtracting(names)
        guard unknown.isEmpty else { throw Malformed(description: "unknown field \(unknown.sorted().joined(separator: ", "))") }
    }

    private static func bytes(_ value: Any?) throws -> [UInt8] {
        guard let text = value as? String, text.utf8.count % 2 == 0,
            text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { throw Malformed(description: "hex") }
        return hexDecoded(text)
    }

    private static func hash(_ value: Any?) throws -> MerkleHash {
        guard let hash = MerkleHash(bytes: try bytes(value)) else { throw Malformed(description: "hash length") }
        return hash
    }

    private static func u64(_ value: Any?) throws -> UInt64 {
        guard let text = value as? String, let n = UInt64(text), text == String(n) else { throw Malformed(description: "u64") }
        return n
    }
}

/// Lower-case hex of whole bytes.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The bytes of lower-case hex already checked to be well-formed.
func hexDecoded(_ text: String) -> [UInt8] {
    func nibble(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : c - 0x61 + 10 }
    let u = Array(text.utf8)
    return stride(from: 0, to: u.count - 1, by: 2).map { nibble(u[$0]) << 4 | nibble(u[$0 + 1]) }
}
