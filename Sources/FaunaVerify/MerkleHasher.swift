import Crypto

/// RFC 9162 §2.1 hashing with SHA-256: domain-separated leaf and node hashes.
///
/// The 0x00/0x01 prefixes make a leaf hash never equal an interior node hash, so a proof
/// cannot pass an interior node off as a leaf (second-preimage attack, RFC 9162 §2.1.1).
public enum MerkleHasher {
    /// The root hash of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
    public static let emptyRoot = MerkleHash(SHA256.hash(data: [UInt8]()))

    /// `SHA256(0x00 ‖ leafData)`.
    public static func leafHash(_ leafData: [UInt8]) -> MerkleHash {
        prefixedHash(0x00, leafData)
    }

    /// `SHA256(0x02 ‖ leafData)`: a leaf v2 (docs/AUDIT.md §1), kept apart from v1 leaves
    /// (0x00) and interior nodes (0x01). `JournalEntry.leafHash` hashes without building the data.
    public static func leafHashV2(_ leafData: [UInt8]) -> MerkleHash {
        prefixedHash(0x02, leafData)
    }

    /// `SHA256(prefix ‖ data)`, each part hashed in place: the generic `update(data:)` (and
    /// the array a literal prefix makes) cost as much as the hashing of short leaves.
    static func prefixedHash(_ prefix: UInt8, _ data: [UInt8], using sha: SHA256Parts = .swiftCrypto) -> MerkleHash {
        withUnsafeBytes(of: prefix) { p in data.withUnsafeBytes { sha(p, $0) } }
    }

    /// `SHA256(header ‖ payload)`, the header (at most 64 bytes) written by `fill` into a
    /// buffer on the stack: a leaf's fixed fields are hashed without an array of their own.
    static func hash(
        headerBytes: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void, then payload: [UInt8],
        using sha: SHA256Parts = .swiftCrypto
    ) -> MerkleHash {
        precondition(headerBytes <= 64, "leaf header of \(headerBytes) bytes")
        return withUnsafeTemporaryAllocation(byteCount: headerBytes, alignment: 8) { header in
            fill(header)
            return payload.withUnsafeBytes { sha(UnsafeRawBufferPointer(header), $0) }
        }
    }

    /// `SHA256(0x01 ‖ left ‖ right)`. The hot path of appends and proofs: one contiguous
    /// 65-byte buffer on the stack, one part.
    public static func nodeHash(_ left: MerkleHash, _ right: MerkleHash, using sha: SHA256Parts = .swiftCrypto) -> MerkleHash {
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 8) { buffer in
            buffer[0] = 0x01
            left.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[1..<33]).copyMemory(from: $0) }
            right.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[33..<65]).copyMemory(from: $0) }
            return sha(UnsafeRawBufferPointer(buffer))
        }
    }
}

/// A position among the leaves, 0-based. Leaf `i` is the committed Raft entry with index
/// `i + 1`: the type exists so that the two numbering schemes are never mixed up.
public struct LeafIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (a: LeafIndex, b: LeafIndex) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A committed Raft entry as it enters the audit tree (docs/AUDIT.md §1).
public struct JournalEntry: Hashable, Sendable {
    /// The Raft log index, ≥ 1.
    public var index: UInt64
    /// The Raft term the entry was created in.
    public var term: UInt64
    /// The entry type byte: 0 = normal (an empty normal entry is a leader's no-op), 1 = conf change.
    public var type: UInt8
    /// The entry payload, opaque here.
    public var payload: [UInt8]
    /// What applying the entry did, for a v2 leaf (docs/AUDIT.md §1); nil for a v1 leaf (an
    /// entry applied before the cluster's leaf v2 boundary), whose effects are not proven.
    public var effects: EffectsSummary?

    public init(index: UInt64, term: UInt64, type: UInt8, payload: [UInt8], effects: EffectsSummary? = nil) {
        self.index = index
        self.term = term
        self.type = type
        self.payload = payload
        self.effects = effects
    }

    /// 1 for a leaf over the entry alone, 2 for a leaf that also commits to its effects.
    public var leafVersion: Int { effects == nil ? 1 : 2 }

    /// The leaf this entry occupies (`index - 1`); nil for index 0, which no entry has.
    public var leafIndex: LeafIndex? { index == 0 ? nil : LeafIndex(index - 1) }

    /// The v1 leaf data `u64BE(index) ‖ u64BE(term) ‖ u8(type) ‖ payload` (whatever `effects` holds).
    public var leafData: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(17 + payload.count)
        appendBigEndian(index, to: &out)
        appendBigEndian(term, to: &out)
        out.append(type)
        out.append(contentsOf: payload)
        return out
    }

    /// The leaf hash: v2 (`SHA256(0x02 ‖ …)`, see `leafHashV2`) when `effects` is set, else
    /// v1 `SHA256(0x00 ‖ leafData)`, hashed without building `leafData`.
    public var leafHash: MerkleHash { leafHash(using: .swiftCrypto) }

    /// `leafHash` computed by `sha`.
    public func leafHash(using sha: SHA256Parts) -> MerkleHash {
        if let effects {
            return Self.leafHashV2(index: index, term: term, type: type, payload: payload, effects: effects, using: sha)
        }
        return MerkleHasher.hash(headerBytes: 18, { header in
            header[0] = 0x00
            storeBigEndian(index, into: header, at: 1)
            storeBigEndian(term, into: header, at: 9)
            header[17] = type
        }, then: payload, using: sha)
    }
}

func appendBigEndian(_ value: UInt64, to out: inout [UInt8]) {
    for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
}

/// Writes `value` big-endian into `buffer[offset ..< offset + 8]`.
func storeBigEndian(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
    buffer.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
}
