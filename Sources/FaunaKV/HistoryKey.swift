/// The key of one history entry: a user key and the revision of the write.
///
/// Storage encoding (`history` CF key, docs/adr/0003): `escaped(key) ‖ 0x00 0x01 ‖ u64 BE
/// revision`, where `escaped` replaces every 0x00 byte with 0x00 0xFF. Plain `key ‖ revision`
/// (the first sketch of the layout) is ambiguous in order: the entries of `a` and `a\0…` interleave,
/// so "the newest entry of `a` at or before R" could not be one seek. The escaped form is
/// prefix-free and sorts exactly like (key, revision), so the entries of a key are contiguous
/// and byte order equals tuple order (FoundationDB's tuple layer uses the same escape).
public struct HistoryKey: Hashable, Comparable, Sendable {
    /// The user key.
    public var key: [UInt8]
    /// The revision of the write this entry records.
    public var revision: Revision

    /// The history entry of `key` at `revision`.
    public init(key: [UInt8], revision: Revision) {
        self.key = key
        self.revision = revision
    }

    public static func == (a: HistoryKey, b: HistoryKey) -> Bool {
        a.revision == b.revision && a.key.count == b.key.count && compareBytes(a.key, b.key) == 0
    }

    /// Hashes the key bytes in one call (see `HashedBytes`), then the revision.
    public func hash(into hasher: inout Hasher) {
        hashBytes(key, into: &hasher)
        hasher.combine(revision)
    }

    /// Orders by key (byte-wise), then revision: the same order as `encoded` byte-wise.
    public static func < (a: HistoryKey, b: HistoryKey) -> Bool {
        let c = compareBytes(a.key, b.key)
        return c != 0 ? c < 0 : a.revision < b.revision
    }

    /// The storage encoding.
    public var encoded: [UInt8] {
        var out = HistoryKey.escaped(key, spare: 10)
        out.append(0x00)
        out.append(0x01)
        appendUInt64(revision.rawValue, to: &out)
        return out
    }

    /// The byte string below every encoded entry of keys `>= userKey` and above every entry of
    /// keys `< userKey`: the bound to use for scanning history of a `KeyRange`'s start or end.
    public static func bound(for userKey: [UInt8]) -> [UInt8] { escaped(userKey) }

    /// The encoded prefix shared by every entry of exactly `userKey`.
    public static func prefix(for userKey: [UInt8]) -> [UInt8] { escaped(userKey) + [0x00, 0x01] }

    /// Decodes `encoded`; throws on anything `encoded` cannot produce (never traps).
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var key: [UInt8] = []
        var i = 0
        while true {
            guard i < bytes.count else {
                throw KVDecodingError(.truncated, "history key: got \(bytes.count) bytes and no terminator, want 0x00 0x01")
            }
            let byte = bytes[i]
            if byte != 0x00 {
                key.append(byte)
                i += 1
                continue
            }
            guard i + 1 < bytes.count else {
                throw KVDecodingError(.truncated, "history key: got 0x00 at the end, want 0x00 0xFF or 0x00 0x01")
            }
            let next = bytes[i + 1]
            i += 2
            if next == 0xFF {
                key.append(0x00)
            } else if next == 0x01 {
                break
            } else {
                throw KVDecodingError(.invalidValue, "history key: got 0x00 \(next) at \(i - 2), want 0x00 0xFF or 0x00 0x01")
            }
        }
        guard key.count <= KVLimits.keyBytesMax else {
            throw KVDecodingError(.limitExceeded, "history key: got \(key.count) key bytes, want <= \(KVLimits.keyBytesMax)")
        }
        let rest = bytes.count - i
        guard rest == 8 else {
            throw KVDecodingError(
                rest < 8 ? .truncated : .trailingBytes, "history key: got \(rest) revision bytes, want 8")
        }
        var revision: UInt64 = 0
        for j in i..<bytes.count { revision = revision << 8 | UInt64(bytes[j]) }
        self.init(key: key, revision: Revision(revision))
    }

    /// `key` with every 0x00 written as 0x00 0xFF, with room for `spare` more bytes.
    static func escaped(_ key: [UInt8], spare: Int = 2) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(key.count + spare + 2)
        for byte in key {
            out.append(byte)
            if byte == 0x00 { out.append(0xFF) }
        }
        return out
    }
}
