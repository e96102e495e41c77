/// Leaf v2 (docs/AUDIT.md §1, ADR 0009): what applying an entry did, as the leaf commits to it.
///
/// A v1 leaf commits to the entry as proposed, so a committed put that wrote nothing (a
/// put-if-absent on an existing key, an expired session) could be shown as a write. A v2 leaf
/// also commits to the entry's effects: its outcome, the transaction branch taken, and a
/// Merkle root over every key it wrote or deleted. However many keys an entry touches, the
/// leaf stays fixed-size and a proof that one key was written stays O(log n).
public struct EffectsSummary: Hashable, Sendable {
    /// What the entry's command did (`EntryOutcome`): only `success` writes anything.
    public var outcome: EntryOutcome
    /// The transaction branch that ran; `.none` for everything but a transaction.
    public var branch: TxnBranch
    /// How many keys the entry wrote or deleted (leaves of the effects tree).
    public var count: UInt64
    /// RFC 9162 root over the effect leaves in key order (`MerkleHasher.emptyRoot` for none).
    public var root: MerkleHash

    public init(outcome: EntryOutcome, branch: TxnBranch, count: UInt64, root: MerkleHash) {
        self.outcome = outcome
        self.branch = branch
        self.count = count
        self.root = root
    }

    /// The summary of an entry that wrote nothing.
    public static func nothingWritten(_ outcome: EntryOutcome, branch: TxnBranch = .none) -> EffectsSummary {
        EffectsSummary(outcome: outcome, branch: branch, count: 0, root: MerkleHasher.emptyRoot)
    }

    /// Bytes of the summary inside the leaf: outcome, branch, u64BE count, root.
    public static let sizeBytes = 1 + 1 + 8 + 32
}

/// The outcome code of an entry in a v2 leaf (one byte). Codes are fixed forever: they are
/// hashed into the tree. A verifier treats an unknown code as "not a write".
public struct EntryOutcome: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The command ran; its writes are the effects.
    public static let success = EntryOutcome(rawValue: 0)
    /// A put-if-absent found the key: nothing written.
    public static let alreadyExists = EntryOutcome(rawValue: 1)
    /// A read or compaction below the compacted revision: nothing written.
    public static let compacted = EntryOutcome(rawValue: 2)
    /// A read or compaction above the current revision: nothing written.
    public static let futureRevision = EntryOutcome(rawValue: 3)
    /// The command broke a limit or did not decode: nothing written.
    public static let invalid = EntryOutcome(rawValue: 4)
    /// The session was unknown or its sequence stale: nothing written.
    public static let sessionExpired = EntryOutcome(rawValue: 5)
    /// A retry of a proposal already applied: nothing written (the original entry wrote).
    public static let replay = EntryOutcome(rawValue: 6)
    /// No key-value command: a leader's no-op or a membership change.
    public static let noCommand = EntryOutcome(rawValue: 7)

    public var description: String {
        switch rawValue {
        case 0: "success"
        case 1: "alreadyExists"
        case 2: "compacted"
        case 3: "futureRevision"
        case 4: "invalid"
        case 5: "sessionExpired"
        case 6: "replay"
        case 7: "noCommand"
        default: "unknown(\(rawValue))"
        }
    }
}

/// The transaction branch a v2 leaf records (one byte).
public enum TxnBranch: UInt8, Hashable, Sendable {
    /// Not a transaction (or a transaction that did not run).
    case none = 0
    /// Every compare held: the success ("then") operations ran.
    case then = 1
    /// A compare failed: the failure ("else") operations ran.
    case `else` = 2
}

/// One key an entry wrote (put) or deleted: a leaf of the entry's effects tree.
public struct Effect: Hashable, Sendable {
    /// The key, 1...4,096 bytes in practice (the verifier bounds it by the u32 length only).
    public var key: [UInt8]
    /// SHA-256 of the new value for a put; nil for a delete.
    public var valueHash: MerkleHash?

    public init(key: [UInt8], valueHash: MerkleHash?) {
        self.key = key
        self.valueHash = valueHash
    }

    /// A put of `value` under `key`.
    public static func put(key: [UInt8], value: [UInt8]) -> Effect {
        Effect(key: key, valueHash: valueHash(value))
    }

    /// SHA-256 of a value, as a put's effect holds it.
    public static func valueHash(_ value: [UInt8], using sha: SHA256Parts = .swiftCrypto) -> MerkleHash {
        value.withUnsafeBytes { sha($0) }
    }

    /// `u8(kind: 1 put, 2 delete) ‖ u32BE(len(key)) ‖ key ‖ valueHash (puts only)`.
    public var leafData: [UInt8] {
        var out: [UInt8] = [valueHash == nil ? 2 : 1]
        out.reserveCapacity(5 + key.count + 32)
        let n = UInt32(truncatingIfNeeded: key.count)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: n >> UInt32(shift))) }
        out.append(contentsOf: key)
        if let valueHash { valueHash.withUnsafeBytes { out.append(contentsOf: $0) } }
        return out
    }

    /// RFC 9162 leaf hash of `leafData`: the effects tree is an RFC 9162 tree of its own.
    /// Hashed without building `leafData` (one per put on the apply path).
    public var leafHash: MerkleHash { leafHash(using: .swiftCrypto) }

    /// `leafHash` computed by `sha`.
    public func leafHash(using sha: SHA256Parts) -> MerkleHash {
        withUnsafeTemporaryAllocation(byteCount: 6, alignment: 8) { header in
            header[0] = 0x00
            header[1] = valueHash == nil ? 2 : 1
            header.storeBytes(of: UInt32(truncatingIfNeeded: key.count).bigEndian, toByteOffset: 2, as: UInt32.self)
            return key.withUnsafeBytes { key in
                guard let valueHash else { return sha.hash(UnsafeRawBufferPointer(header), key, SHA256Parts.nothing) }
                return valueHash.withUnsafeBytes { sha.hash(UnsafeRawBufferPointer(header), key, $0) }
            }
        }
    }
}

/// Proof that one effect is among an entry's committed effects: its position in the effects
/// tree (keys in order) and the RFC 9162 inclusion path to the summary's root.
public struct EffectProof: Hashable, Sendable {
    /// The entry's summary (part of its v2 leaf).
    public var summary: EffectsSummary
    /// The effect's position in key order, below `summary.count`.
    public var effectIndex: UInt64
    /// Sibling hashes from the effect leaf up to `summary.root`.
    public var path: [MerkleHash]

    public init(summary: EffectsSummary, effectIndex: UInt64, path: [MerkleHash]) {
        self.summary = summary
        self.effectIndex = effectIndex
        self.path = path
    }

    /// Checks that the entry succeeded and that `effect` is leaf `effectIndex` of its effects tree.
    /// - Throws: `effectNotProven` if the outcome is not success; as `InclusionProof.verify`
    ///   (`leafIndexOutOfRange`, `pathLengthMismatch`, `rootMismatch`) for the path.
    public func verify(_ effect: Effect) throws(VerificationError) {
        guard summary.outcome == .success else {
            throw VerificationError(.effectNotProven, "got outcome \(summary.outcome), want success: the entry wrote nothing")
        }
        let inclusion = InclusionProof(leafIndex: LeafIndex(effectIndex), treeSize: summary.count, path: path)
        do {
            try inclusion.verify(leafHash: effect.leafHash, rootHash: summary.root)
        } catch {
            throw VerificationError(.effectNotProven, "the effect is not in the entry's effects tree: \(error)")
        }
    }
}

extension JournalEntry {
    /// Leaf v2 data: `u64BE(index) ‖ u64BE(term) ‖ u8(type) ‖ u8(outcome) ‖ u8(branch) ‖
    /// u64BE(count) ‖ effectsRoot ‖ payload`, hashed as `SHA256(0x02 ‖ leafData)`.
    /// The 0x02 prefix keeps v2 leaves apart from v1 leaves (0x00) and interior nodes (0x01),
    /// so a leaf's version is fixed by its hash: no v1 reading of a v2 leaf can verify.
    static func leafHashV2(
        index: UInt64, term: UInt64, type: UInt8, payload: [UInt8], effects: EffectsSummary, using sha: SHA256Parts
    ) -> MerkleHash {
        MerkleHasher.hash(headerBytes: 1 + 17 + EffectsSummary.sizeBytes, { header in
            header[0] = 0x02
            storeBigEndian(index, into: header, at: 1)
            storeBigEndian(term, into: header, at: 9)
            header[17] = type
            header[18] = effects.outcome.rawValue
            header[19] = effects.branch.rawValue
            storeBigEndian(effects.count, into: header, at: 20)
            effects.root.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: header[28..<60]).copyMemory(from: $0) }
        }, then: payload, using: sha)
    }
}
