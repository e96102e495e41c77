/// A half-open interval of keys `[start, end)` in byte-wise lexicographic order; `end == nil`
/// means "to the end of the key space". `[k, k ‖ 0x00)` holds exactly `k`.
///
/// Unlike etcd's `range_end`, no special byte values: an empty `start` is the smallest key and
/// "no end" is explicit. A range whose `end` is not above `start` is empty.
public struct KeyRange: Hashable, Sendable {
    /// The smallest key in the range (inclusive); at most `KVLimits.keyBytesMax` bytes.
    public var start: [UInt8]
    /// The first key after the range (exclusive); nil: no upper bound.
    public var end: [UInt8]?

    /// The range `[start, end)`.
    public init(start: [UInt8], end: [UInt8]?) {
        self.start = start
        self.end = end
    }

    /// The range holding exactly `key`.
    public static func single(_ key: [UInt8]) -> KeyRange { KeyRange(start: key, end: key + [0]) }

    /// Every key that begins with `prefix` (all keys for an empty prefix).
    public static func prefix(_ prefix: [UInt8]) -> KeyRange {
        KeyRange(start: prefix, end: prefixEnd(prefix))
    }

    /// The whole key space.
    public static let all = KeyRange(start: [], end: nil)

    /// The smallest key greater than every key starting with `prefix`, or nil if there is none
    /// (the prefix is empty or all 0xFF): the last byte below 0xFF incremented, the rest cut.
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8]? {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return nil
    }

    /// Whether `key` lies in the range.
    public func contains(_ key: [UInt8]) -> Bool {
        guard !key.lexicographicallyPrecedes(start) else { return false }
        guard let end else { return true }
        return key.lexicographicallyPrecedes(end)
    }

    /// Whether the range holds exactly one key (`end == start ‖ 0x00`).
    public var isSingleKey: Bool {
        guard let end, end.count == start.count + 1, end.last == 0 else { return false }
        return end.prefix(start.count).elementsEqual(start)
    }

    /// Whether no key can lie in the range.
    public var isEmpty: Bool {
        guard let end else { return false }
        return !start.lexicographicallyPrecedes(end)
    }
}
