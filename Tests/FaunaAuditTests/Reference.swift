import FaunaAudit
import FaunaVerify
import Testing

/// RFC 9162 §2.1 written as the RFC writes it: MTH, PATH and SUBPROOF by recursion on the
/// split at the largest power of 2 below n. The only liberty is a memo of MTH by range, which
/// keeps the debug-build property tests fast without changing what is computed.
final class NaiveMerkle {
    let leaves: [MerkleHash]
    private var memo: [Int: MerkleHash] = [:]

    init(leaves: [MerkleHash]) { self.leaves = leaves }

    /// The largest power of 2 smaller than n (n > 1).
    private func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// MTH(D[lo:hi]).
    func mth(_ lo: Int, _ hi: Int) -> MerkleHash {
        let n = hi - lo
        if n == 0 { return MerkleHasher.emptyRoot }
        if n == 1 { return leaves[lo] }
        if let hash = memo[lo << 32 | hi] { return hash }
        let k = split(n)
        let hash = MerkleHasher.nodeHash(mth(lo, lo + k), mth(lo + k, hi))
        memo[lo << 32 | hi] = hash
        return hash
    }

    /// PATH(m, D[lo:hi]) (RFC 9162 §2.1.3.1).
    func path(_ m: Int, _ lo: Int, _ hi: Int) -> [MerkleHash] {
        let n = hi - lo
        if n == 1 { return [] }
        let k = split(n)
        if m < k { return path(m, lo, lo + k) + [mth(lo + k, hi)] }
        return path(m - k, lo + k, hi) + [mth(lo, lo + k)]
    }

    /// PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) (RFC 9162 §2.1.4.1).
    func consistency(_ m: Int, _ n: Int) -> [MerkleHash] {
        m == 0 || m == n ? [] : subproof(m, 0, n, true)
    }

    private func subproof(_ m: Int, _ lo: Int, _ hi: Int, _ b: Bool) -> [MerkleHash] {
        let n = hi - lo
        if m == n { return b ? [] : [mth(lo, hi)] }
        let k = split(n)
        if m <= k { return subproof(m, lo, lo + k, b) + [mth(lo + k, hi)] }
        return subproof(m - k, lo + k, hi, false) + [mth(lo, lo + k)]
    }
}

/// SplitMix64: a seeded generator, so a failing random case replays from its printed seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The leaf hash of a synthetic journal entry `index` (≥ 1): terms change every 97 entries,
/// every 50th entry is a conf change, payloads vary in length.
func syntheticEntry(_ index: UInt64) -> JournalEntry {
    JournalEntry(
        index: index, term: 1 + index / 97, type: index % 50 == 0 ? 1 : 0,
        payload: (0..<(index % 23)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
}

/// Leaf hashes of synthetic entries 1...count.
func syntheticLeaves(_ count: Int) -> [MerkleHash] {
    (0..<UInt64(count)).map { syntheticEntry($0 + 1).leafHash }
}

/// A tree of the given leaves in memory.
func memoryTree(_ leaves: [MerkleHash]) -> MerkleTree<InMemoryMerkleNodeStore> {
    var tree = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
    tree.append(contentsOf: leaves)
    return tree
}

/// Decodes hex (test constants only).
func hexBytes(_ hex: String) -> [UInt8] {
    let chars = Array(hex.utf8)
    func nibble(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10 }
    return stride(from: 0, to: chars.count, by: 2).map { nibble(chars[$0]) << 4 | nibble(chars[$0 + 1]) }
}

/// A hash from 64 hex digits (test constants only).
func h(_ hex: String) -> MerkleHash { MerkleHash(bytes: hexBytes(hex))! }

/// Lowercase hex.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String($0 >> 4, radix: 16) + String($0 & 0xf, radix: 16) }.joined()
}

/// The hash with bit `bit` flipped (0 = top bit of byte 0).
func flipped(_ hash: MerkleHash, bit: Int) -> MerkleHash {
    var bytes = hash.bytes
    bytes[bit / 8] ^= 0x80 >> UInt8(bit % 8)
    return MerkleHash(bytes: bytes)!
}

/// The `AuditError` that `body` throws; records an issue for any other error.
func auditError(_ body: () throws -> Void) -> AuditError? {
    do {
        try body()
        return nil
    } catch let error as AuditError {
        return error
    } catch {
        Issue.record("got \(error), want an AuditError")
        return nil
    }
}
