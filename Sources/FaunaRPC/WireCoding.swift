// The primitive field encodings of message bodies (docs/PROTOCOL.md "Field encodings"):
// unsigned LEB128 varints (canonical: shortest form only), fixed big-endian integers,
// varint-length-prefixed bytes and UTF-8 strings.

/// Appends the fields of a message body.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// An empty writer with room for `capacity` bytes.
    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// One byte.
    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    /// Four bytes, big-endian.
    public mutating func u32(_ v: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    /// Eight bytes, big-endian.
    public mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    /// An unsigned LEB128 varint: 7 bits per byte, low bits first, high bit = more follows.
    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// `varint(count) ‖ bytes`.
    public mutating func lengthPrefixed(_ b: [UInt8]) {
        varint(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    /// `varint(count) ‖ UTF-8 bytes`.
    public mutating func string(_ s: String) { lengthPrefixed(Array(s.utf8)) }

    /// A byte 0 or 1.
    public mutating func flag(_ b: Bool) { bytes.append(b ? 1 : 0) }

    /// Raw bytes without a length.
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
}

/// Reads the fields `WireWriter` writes. Every read checks the remaining length first, every
/// length and count is checked against its limit and the remaining bytes before anything is
/// allocated, and nothing traps on any input.
public struct WireReader {
    let bytes: [UInt8]
    /// The position of the next byte to read.
    public private(set) var offset: Int
    /// Names the structure being decoded in error reasons: the frame kind's name, or a label.
    private let kind: FrameKind?
    private let label: String
    var context: String { kind.map { "\($0)" } ?? label }

    /// A reader of `bytes` from the start; `context` prefixes error reasons.
    public init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.offset = 0
        self.kind = nil
        self.label = context
    }

    /// A reader of the body of a frame of `kind`; the kind's name prefixes error reasons. The
    /// name is made only when an error is: describing an enum case reflects on its type, which
    /// cost a percent of a node's event loops when every request paid for it.
    public init(_ bytes: [UInt8], kind: FrameKind) {
        self.bytes = bytes
        self.offset = 0
        self.kind = kind
        self.label = ""
    }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - offset }

    private func truncated(_ field: String, want n: Int) -> RPCDecodingError {
        RPCDecodingError(.truncated, "\(context) \(field): got \(remaining) bytes, want \(n)")
    }

    /// One byte.
    public mutating func u8(_ field: String) throws(RPCDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw truncated(field, want: 1) }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Four bytes, big-endian.
    public mutating func u32(_ field: String) throws(RPCDecodingError) -> UInt32 {
        guard remaining >= 4 else { throw truncated(field, want: 4) }
        var v: UInt32 = 0
        for i in offset..<offset + 4 { v = v << 8 | UInt32(bytes[i]) }
        offset += 4
        return v
    }

    /// Eight bytes, big-endian.
    public mutating func u64(_ field: String) throws(RPCDecodingError) -> UInt64 {
        guard remaining >= 8 else { throw truncated(field, want: 8) }
        var v: UInt64 = 0
        for i in offset..<offset + 8 { v = v << 8 | UInt64(bytes[i]) }
        offset += 8
        return v
    }

    /// A canonical unsigned LEB128 varint of at most 10 bytes. A non-shortest encoding (a
    /// final 0x00 byte after the first) or a value above 2^64 - 1 is rejected, so every value
    /// has exactly one encoding.
    public mutating func varint(_ field: String) throws(RPCDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var i = 0
        while true {
            guard remaining >= 1 else {
                throw RPCDecodingError(.truncated, "\(context) \(field): varint ends after \(i) bytes, want a final byte < 0x80")
            }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 {
                throw RPCDecodingError(.badVarint, "\(context) \(field): varint byte 10 is 0x\(String(byte, radix: 16)), want <= 0x01")
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    throw RPCDecodingError(.badVarint, "\(context) \(field): varint of \(i + 1) bytes ends in 0x00, want the shortest form")
                }
                return value
            }
            shift += 7
            i += 1
        }
    }

    /// A varint that must fit `0...max` as an `Int`.
    public mutating func count(_ field: String, max: Int) throws(RPCDecodingError) -> Int {
        let raw = try varint(field)
        guard let n = Int(exactly: raw), n <= max else {
            throw RPCDecodingError(.limitExceeded, "\(context) \(field): got \(raw), want <= \(max)")
        }
        return n
    }

    /// A count of items that each take at least `minBytes` bytes: at most `max` and at most
    /// what the remaining bytes can hold, so reserving capacity for it is safe.
    public mutating func itemCount(_ field: String, max: Int, minBytes: Int) throws(RPCDecodingError) -> Int {
        let n = try count(field, max: max)
        let fit = remaining / Swift.max(minBytes, 1)
        guard n <= fit else {
            throw RPCDecodingError(.truncated, "\(context) \(field): got \(n) items, want <= \(fit) for \(remaining) remaining bytes")
        }
        return n
    }

    /// `varint(count) ‖ bytes` with at most `max` bytes.
    public mutating func lengthPrefixed(_ field: String, max: Int) throws(RPCDecodingError) -> [UInt8] {
        let n = try count("\(field) length", max: max)
        guard n <= remaining else { throw truncated(field, want: n) }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// Exactly `n` raw bytes.
    public mutating func raw(_ field: String, count n: Int) throws(RPCDecodingError) -> [UInt8] {
        guard n >= 0, n <= remaining else { throw truncated(field, want: n) }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// `varint(count) ‖ UTF-8` with at most `max` bytes; invalid UTF-8 is rejected.
    public mutating func string(_ field: String, max: Int) throws(RPCDecodingError) -> String {
        let b = try lengthPrefixed(field, max: max)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw RPCDecodingError(.invalidValue, "\(context) \(field): got \(b.count) bytes of invalid UTF-8, want UTF-8")
        }
        return s
    }

    /// A byte that must be 0 or 1.
    public mutating func flag(_ field: String) throws(RPCDecodingError) -> Bool {
        let v = try u8(field)
        guard v <= 1 else { throw RPCDecodingError(.invalidValue, "\(context) \(field): got \(v), want 0 or 1") }
        return v == 1
    }

    /// A byte of flag bits of which only `allowed` may be set.
    public mutating func flags(_ field: String, allowed: UInt8) throws(RPCDecodingError) -> UInt8 {
        let v = try u8(field)
        guard v & ~allowed == 0 else {
            throw RPCDecodingError(.reservedBits, "\(context) \(field): got 0x\(String(v, radix: 16)), want only bits of 0x\(String(allowed, radix: 16))")
        }
        return v
    }

    /// Throws unless every byte was consumed.
    public func finish() throws(RPCDecodingError) {
        guard remaining == 0 else {
            throw RPCDecodingError(.trailingBytes, "\(context): got \(remaining) bytes after the end, want 0")
        }
    }
}
