import NIOCore

// docs/PROTOCOL.md "Frame": a fixed 22-byte header, big-endian, then the body.
//
//   u32 magic+version | u32 bodyLength | u8 kind | u8 flags | u64 requestID | u32 crc32c(body)
//
// The magic is "FNA" (0x464E41) in the top three bytes, the protocol version in the low byte.

/// The identifier a client gives a request; every response frame to it carries the same one.
/// One-way frames (batched Raft messages) use `.none` (0).
public struct RequestID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number itself.
    public var rawValue: UInt64
    /// Wraps `rawValue`.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    /// The ID of one-way frames that expect no response.
    public static let none = RequestID(0)
    /// Numeric order.
    @inlinable public static func < (a: RequestID, b: RequestID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// The flag bits of a frame header. Bits other than `more` are reserved and must be zero.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// On a response: more response frames with the same request ID follow (a streamed
    /// response, e.g. `snapshotSave`). The last frame of a response has it clear.
    public static let more = FrameFlags(rawValue: 0x01)
    /// Every bit that has a meaning; the others are reserved.
    public static let known: FrameFlags = [.more]
}

/// The fixed header of a frame and its rules. Shared by the NIO decoder and the pure
/// `Frame.decode(_:bodyBytesMax:)`, so both reject exactly the same inputs.
public enum FrameHeader {
    /// The header size in bytes.
    public static let sizeBytes = 22
    /// "FNA" in the three high bytes of the first word.
    public static let magic: UInt32 = 0x464E_4100
    /// The protocol version this build speaks, the low byte of the first word.
    public static let version: UInt8 = 1
    /// The first header word: magic | version.
    public static let magicAndVersion: UInt32 = magic | UInt32(version)
    /// The default largest body accepted: room for a 1 MiB snapshot chunk or a 2 MiB proposal
    /// many times over, small enough that 16 connections at the limit cost 256 MiB.
    public static let bodyBytesMaxDefault = 16 * 1024 * 1024

    /// Checks the fields of a header in wire order; throws on the first broken rule. The body
    /// length is checked against `bodyBytesMax` here, before any buffer for it exists.
    public static func validate(
        magicAndVersion word: UInt32, bodyLength: UInt32, kind: UInt8, flags: UInt8, bodyBytesMax: Int
    ) throws(RPCDecodingError) -> (FrameKind, FrameFlags) {
        guard word & 0xFFFF_FF00 == magic else {
            // 0x16 0x03: a TLS record of type handshake, i.e. a TLS client on a plaintext port.
            if word >> 16 == 0x1603 {
                throw RPCDecodingError(
                    .tlsHandshake,
                    "frame magic: got 0x\(hex(word >> 8, width: 6)), want 0x464e41 (\"FNA\") (a TLS handshake: this port is plaintext, or the client has TLS set and the node not)")
            }
            throw RPCDecodingError(.badMagic, "frame magic: got 0x\(hex(word >> 8, width: 6)), want 0x464e41 (\"FNA\")")
        }
        guard UInt8(truncatingIfNeeded: word) == version else {
            throw RPCDecodingError(.unsupportedVersion, "frame version: got \(word & 0xFF), want \(version)")
        }
        guard let length = Int(exactly: bodyLength), length <= bodyBytesMax else {
            throw RPCDecodingError(.frameTooLarge, "frame body length: got \(bodyLength) bytes, want <= \(bodyBytesMax)")
        }
        guard let frameKind = FrameKind(rawValue: kind) else {
            throw RPCDecodingError(.unknownKind, "frame kind: got 0x\(hex(UInt32(kind), width: 2)), want a kind of docs/PROTOCOL.md")
        }
        guard flags & ~FrameFlags.known.rawValue == 0 else {
            throw RPCDecodingError(.reservedBits, "frame flags: got 0x\(hex(UInt32(flags), width: 2)), want only bits of 0x01")
        }
        return (frameKind, FrameFlags(rawValue: flags))
    }

    static func checksumError(got: UInt32, want: UInt32) -> RPCDecodingError {
        RPCDecodingError(.checksumMismatch, "frame body crc32c: got 0x\(hex(got, width: 8)), want 0x\(hex(want, width: 8)) from the header")
    }
}

/// One frame: a kind, flags, the request ID and the encoded body of one `RPCMessage`.
public struct Frame: Hashable, Sendable {
    /// What the body holds.
    public var kind: FrameKind
    /// Header flags (only `more` is defined).
    public var flags: FrameFlags
    /// Matches responses to requests; `.none` on one-way frames.
    public var requestID: RequestID
    /// The message body (docs/PROTOCOL.md, per kind).
    public var body: [UInt8]

    /// A frame of `kind` carrying `body`.
    public init(kind: FrameKind, flags: FrameFlags = [], requestID: RequestID, body: [UInt8]) {
        self.kind = kind
        self.flags = flags
        self.requestID = requestID
        self.body = body
    }

    /// The frame of `message`.
    public init(_ message: RPCMessage, requestID: RequestID, flags: FrameFlags = []) {
        self.init(kind: message.kind, flags: flags, requestID: requestID, body: message.encodedBody())
    }

    /// The size of the whole frame on the wire.
    public var sizeBytes: Int { FrameHeader.sizeBytes + body.count }

    /// Writes header and body to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        precondition(body.count <= UInt32.max, "frame body of \(body.count) bytes does not fit a u32 length")
        buffer.reserveCapacity(minimumWritableBytes: sizeBytes)
        buffer.writeInteger(FrameHeader.magicAndVersion)
        buffer.writeInteger(UInt32(body.count))
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(requestID.rawValue)
        buffer.writeInteger(CRC32C.checksum(body))
        buffer.writeBytes(body)
    }

    /// The frame as bytes.
    public func encoded() -> [UInt8] {
        var w = WireWriter(capacity: sizeBytes)
        w.u32(FrameHeader.magicAndVersion)
        w.u32(UInt32(body.count))
        w.u8(kind.rawValue)
        w.u8(flags.rawValue)
        w.u64(requestID.rawValue)
        w.u32(CRC32C.checksum(body))
        w.raw(body)
        return w.bytes
    }

    /// Decodes the first frame of `bytes` without NIO (tests, fuzzing, other transports).
    /// Returns nil while `bytes` holds less than a whole frame — but throws as soon as the
    /// header is complete and breaks a rule, so an oversized length is rejected before its
    /// body is waited for. `consumed` is the size of the frame.
    public static func decode(
        _ bytes: [UInt8], bodyBytesMax: Int = FrameHeader.bodyBytesMaxDefault
    ) throws(RPCDecodingError) -> (frame: Frame, consumed: Int)? {
        guard bytes.count >= FrameHeader.sizeBytes else { return nil }
        var r = WireReader(bytes, context: "frame header")
        let word = try r.u32("magic")
        let length = try r.u32("body length")
        let rawKind = try r.u8("kind")
        let rawFlags = try r.u8("flags")
        let requestID = RequestID(try r.u64("request ID"))
        let checksum = try r.u32("crc32c")
        let (kind, flags) = try FrameHeader.validate(
            magicAndVersion: word, bodyLength: length, kind: rawKind, flags: rawFlags, bodyBytesMax: bodyBytesMax)
        let bodyCount = Int(length)  // validated <= bodyBytesMax above
        guard r.remaining >= bodyCount else { return nil }
        let body = try r.raw("body", count: bodyCount)
        let actual = CRC32C.checksum(body)
        guard actual == checksum else { throw FrameHeader.checksumError(got: actual, want: checksum) }
        return (Frame(kind: kind, flags: flags, requestID: requestID, body: body), FrameHeader.sizeBytes + bodyCount)
    }
}

func hex(_ v: UInt32, width: Int) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}

/// Lower-case hex of `bytes` (log messages).
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    var s = ""
    for b in bytes { s += hex(UInt32(b), width: 2) }
    return s
}
