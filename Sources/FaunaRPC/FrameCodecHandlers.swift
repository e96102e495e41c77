import NIOCore

/// Splits the inbound byte stream into `Frame`s (NIO `ByteToMessageDecoder`).
///
/// It peeks the 22-byte header without consuming it, checks magic, version, length, kind and
/// flags as soon as the header is complete — so an oversized length is refused before a byte
/// of its body is buffered — waits for the whole frame, then reads it and checks the CRC32C.
/// It never consumes a partial frame, and its buffer never holds more than one frame of at
/// most `bodyBytesMax` plus whatever the read that completed it brought.
///
/// A broken rule is an `RPCDecodingError` fired through the pipeline; the connection handlers
/// log it and close the channel (ByteToMessageHandler stops decoding after an error).
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The largest body accepted.
    public let bodyBytesMax: Int
    /// On a server connection: charges what this decoder buffers to the server's budget and
    /// notes when its partial frame last grew. Nil on clients.
    let meter: InboundFrameMeter?

    /// A decoder accepting bodies of at most `bodyBytesMax` bytes.
    public init(bodyBytesMax: Int = FrameHeader.bodyBytesMaxDefault) {
        self.init(bodyBytesMax: bodyBytesMax, meter: nil)
    }

    init(bodyBytesMax: Int, meter: InboundFrameMeter?) {
        precondition(bodyBytesMax >= 0 && bodyBytesMax <= Int(UInt32.max), "bodyBytesMax \(bodyBytesMax) outside 0...2^32-1")
        self.bodyBytesMax = bodyBytesMax
        self.meter = meter
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let frame = try Self.decodeFrame(&buffer, bodyBytesMax: bodyBytesMax)
        // Checked after ByteToMessageHandler appended the read: a connection overshoots the
        // budget by at most one read before it is closed. What is charged is the buffer's
        // allocation, which grows by doubling (up to twice the bytes held); ByteToMessageHandler
        // drops the buffer when no byte is left, so a connection between frames holds nothing.
        if let meter {
            let held = buffer.readableBytes
            try meter.update(
                bufferedBytes: held, allocatedBytes: held > 0 ? max(held, buffer.storageCapacity) : 0,
                frameCompleted: frame != nil, now: context.eventLoop.now)
        }
        guard let frame else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Deliver complete frames that arrived with the close; a partial frame left over is
        // a truncated stream, reported so the reason is logged.
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let have = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: have)
            throw RPCDecodingError(.truncated, "frame: connection closed with \(have) bytes of an incomplete frame, want whole frames")
        }
        return .needMoreData
    }

    /// Reads one whole frame from `buffer`, or returns nil (consuming nothing) while it holds
    /// less. Throws as soon as the header breaks a rule.
    public static func decodeFrame(_ buffer: inout ByteBuffer, bodyBytesMax: Int) throws(RPCDecodingError) -> Frame? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= FrameHeader.sizeBytes,
            let word = buffer.getInteger(at: start, as: UInt32.self),
            let length = buffer.getInteger(at: start + 4, as: UInt32.self),
            let rawKind = buffer.getInteger(at: start + 8, as: UInt8.self),
            let rawFlags = buffer.getInteger(at: start + 9, as: UInt8.self),
            let rawID = buffer.getInteger(at: start + 10, as: UInt64.self),
            let checksum = buffer.getInteger(at: start + 18, as: UInt32.self)
        else { return nil }
        let (kind, flags) = try FrameHeader.validate(
            magicAndVersion: word, bodyLength: length, kind: rawKind, flags: rawFlags, bodyBytesMax: bodyBytesMax)
        let bodyCount = Int(length)  // validated <= bodyBytesMax
        guard buffer.readableBytes - FrameHeader.sizeBytes >= bodyCount else { return nil }
        guard let body = buffer.getBytes(at: start + FrameHeader.sizeBytes, length: bodyCount) else { return nil }
        let actual = CRC32C.checksum(body)
        guard actual == checksum else { throw FrameHeader.checksumError(got: actual, want: checksum) }
        buffer.moveReaderIndex(forwardBy: FrameHeader.sizeBytes + bodyCount)
        return Frame(kind: kind, flags: flags, requestID: RequestID(rawID), body: body)
    }
}

/// Writes outbound `Frame`s as bytes (NIO `MessageToByteEncoder`).
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    /// An encoder.
    public init() {}

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        data.encode(into: &out)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the frame decoder and encoder (call inside `eventLoop.makeCompletedFuture`).
    public func addFrameCodec(bodyBytesMax: Int) throws {
        try addFrameCodec(bodyBytesMax: bodyBytesMax, meter: nil)
    }

    /// The same, with a server connection's meter on the decoder.
    func addFrameCodec(bodyBytesMax: Int, meter: InboundFrameMeter?) throws {
        try addHandler(ByteToMessageHandler(FrameDecoder(bodyBytesMax: bodyBytesMax, meter: meter)))
        try addHandler(MessageToByteHandler(FrameEncoder()))
    }
}
