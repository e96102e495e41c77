/// Appends fixed-width big-endian integers and raw bytes (every on-disk format of FaunaStore,
/// docs/STORAGE.md).
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 32) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }
    /// Overwrites the four bytes at `offset` (written before, e.g. as a placeholder) with `v`.
    mutating func setU32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> UInt32(24 - 8 * i)) }
    }
}

/// Why a record did not decode ("got X, want Y").
struct DecodeError: Error { let reason: String }

/// Reads what `ByteWriter` wrote; every read is bounds-checked and throws on short input.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u8() throws(DecodeError) -> UInt8 {
        guard remaining >= 1 else { throw DecodeError(reason: "truncated: got \(remaining) bytes, want 1") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u32() throws(DecodeError) -> UInt32 {
        guard remaining >= 4 else { throw DecodeError(reason: "truncated: got \(remaining) bytes, want 4") }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    mutating func u64() throws(DecodeError) -> UInt64 {
        guard remaining >= 8 else { throw DecodeError(reason: "truncated: got \(remaining) bytes, want 8") }
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    mutating func raw(_ count: Int) throws(DecodeError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw DecodeError(reason: "truncated: got \(remaining) bytes, want \(count)") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func skip(_ count: Int) throws(DecodeError) {
        guard count >= 0, remaining >= count else { throw DecodeError(reason: "truncated: got \(remaining) bytes, want \(count)") }
        offset += count
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    mutating func version(_ want: UInt8) throws(DecodeError) {
        let got = try u8()
        guard got == want else { throw DecodeError(reason: "unknown format version: got \(got), want \(want)") }
    }

    func end() throws(DecodeError) {
        guard remaining == 0 else { throw DecodeError(reason: "trailing bytes: got \(remaining), want 0") }
    }
}

/// `v` as 8 big-endian bytes: keys built from it sort numerically.
@inline(__always)
func bigEndianBytes(_ v: UInt64) -> [UInt8] {
    var w = ByteWriter(capacity: 8)
    w.u64(v)
    return w.bytes
}

/// The big-endian integer in `b`, or nil unless `b` has exactly 8 bytes.
@inline(__always)
func uint64(bigEndian b: ArraySlice<UInt8>) -> UInt64? {
    guard b.count == 8 else { return nil }
    var v: UInt64 = 0
    for x in b { v = v << 8 | UInt64(x) }
    return v
}

/// `v` as 4 big-endian bytes.
@inline(__always)
func bigEndianBytes32(_ v: UInt32) -> [UInt8] {
    var w = ByteWriter(capacity: 4)
    w.u32(v)
    return w.bytes
}
