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
    public static let storageKeySizeBytes = 9

    /// The key of this node in the store's `merkle` column family: `u8(level) ‖ u64BE(index)`.
    /// Keys of one level sort by index, so a level is one contiguous key range.
    public var storageKey: [UInt8] {
        var key: [UInt8] = [level]
        key.reserveCapacity(Self.storageKeySizeBytes)
        for shift in stride(from: 56, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: index >> UInt64(shift))) }
        return key
    }

    /// Decodes `storageKey`.
    /// - Throws: `AuditError.malformedKey` for a wrong length or a level ≥ 64.
    public init(storageKey key: [UInt8]) throws(AuditError) {
        guard key.count == Self.storageKeySizeBytes, let level = key.first, level < 64 else {
            throw AuditError(.malformedKey, "got node key \(key) (\(key.count) bytes), want 9 bytes with level < 64")
        }
        self.init(level: level, index: key.dropFirst().reduce(0) { $0 << 8 | UInt64($1) })
    }

    public var description: String { "(\(level), \(index))" }
}
