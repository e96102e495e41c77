/// Where the hash of one complete subtree lives: `level` 0 holds the leaf hashes, and node
/// `index` at `level` covers leaves `[index·2^level, (index+1)·2^level)`.
public struct NodeAddress: Hashable, Sendable, CustomStringConvertible {
    /// The height of the subtree, 0...63.
    public var level: UInt8
    /// The position of the subtree among those of its level.
    public var index: UInt64

    public init(level: UInt8, index: UInt64) {
        precondition(level < 64, "node level \(level) ≥ 64")
        self.level = level
        self.index = index
    }

    /// The size of `storageKey`.
    public static let storageKeySizeBytes = 8

    /// The size of `legacyStorageKey` (schema 4 and earlier).
    public static let legacyStorageKeySizeBytes = 9

    /// The node's position in post-order, counting from 0: the order in which nodes complete
    /// as leaves are appended left to right (leaf 0, leaf 1, their parent, leaf 2, ...). Every
    /// node a tree gains when it grows comes after every node it already had, so keys made from
    /// it are append-only. A node of a tree of `n` leaves has a position below `2n`. For
    /// `(level, index)` whose subtree would reach past leaf 2^63 (no stored tree can) the value
    /// wraps instead of trapping.
    public var postOrderPosition: UInt64 {
        // Nodes of the complete subtrees left of this one (2m − popcount(m) for m leaves),
        // then this subtree's own nodes, its root last.
        return Self.nodeCount(leaves: index &<< UInt64(level)) &+ Self.subtreeNodes(level) &- 1
    }

    /// The nodes of a tree of `leaves` leaves, `2n − popcount(n)`: also the post-order
    /// position of the next node it gains.
    public static func nodeCount(leaves: UInt64) -> UInt64 {
        2 &* leaves &- UInt64(leaves.nonzeroBitCount)
    }

    /// Nodes in a complete subtree of height `level` (2^(level+1) − 1; UInt64.max for 63).
    private static func subtreeNodes(_ level: UInt8) -> UInt64 {
        level >= 63 ? .max : (UInt64(1) << UInt64(level + 1)) - 1
    }

    /// The node at post-order position `position` (the inverse of `postOrderPosition`; every
    /// u64 is the position of exactly one node).
    public init(postOrderPosition position: UInt64) {
        // Position UInt64.max is the first leaf after the complete tree of height 63.
        guard position != .max else {
            self.init(level: 0, index: UInt64(1) << 63)
            return
        }
        // Descend from the complete tree of height 63 (positions 0 ... 2^64 − 2).
        var level: UInt8 = 63
        var rest = position
        var leaves: UInt64 = 0
        while rest != Self.subtreeNodes(level) - 1 {
            let left = Self.subtreeNodes(level - 1)
            if rest >= left {
                rest -= left
                leaves += UInt64(1) << UInt64(level - 1)
            }
            level -= 1
        }
        self.init(level: level, index: leaves >> UInt64(level))
    }

    /// The key schema 5 stored this node under in the store's `merkle` column family:
    /// `u64BE(postOrderPosition)`, ascending as the tree grows. Schema 6 keeps 32 nodes of
    /// consecutive positions in one record (FaunaStore's `MerkleTile`); only the upgrades write
    /// and read this key now.
    public var storageKey: [UInt8] {
        let position = postOrderPosition
        return (0..<8).map { UInt8(truncatingIfNeeded: position >> UInt64(56 - 8 * $0)) }
    }

    /// Decodes `storageKey`.
    /// - Throws: `AuditError.malformedKey` for a wrong length.
    public init(storageKey key: [UInt8]) throws(AuditError) {
        guard key.count == Self.storageKeySizeBytes else {
            throw AuditError(.malformedKey, "got node key \(key) (\(key.count) bytes), want 8")
        }
        self.init(postOrderPosition: key.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// The key schema 4 and earlier stored this node under: `u8(level) ‖ u64BE(index)`, level
    /// by level. A growing tree wrote into every level's key range, so each flushed file
    /// overlapped the others and compaction rewrote the family again and again. Read only by
    /// the upgrade to schema 5.
    public var legacyStorageKey: [UInt8] {
        var key: [UInt8] = [level]
        key.reserveCapacity(Self.legacyStorageKeySizeBytes)
        for shift in stride(from: 56, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: index >> UInt64(shift))) }
        return key
    }

    /// Decodes `legacyStorageKey`.
    /// - Throws: `AuditError.malformedKey` for a wrong length or a level ≥ 64.
    public init(legacyStorageKey key: [UInt8]) throws(AuditError) {
        guard key.count == Self.legacyStorageKeySizeBytes, let level = key.first, level < 64 else {
            throw AuditError(.malformedKey, "got node key \(key) (\(key.count) bytes), want 9 bytes with level < 64")
        }
        self.init(level: level, index: key.dropFirst().reduce(0) { $0 << 8 | UInt64($1) })
    }

    public var description: String { "(\(level), \(index))" }
}
