import FaunaRaft
import FaunaRPC
import NIOCore
import NIOEmbedded
import Testing

@Suite struct FrameDecoderTests {
    static func sampleFrames(seed: UInt64, count: Int) -> [Frame] {
        var gen = Gen(seed: seed)
        return (0..<count).map { Frame(gen.message($0), requestID: RequestID(UInt64($0 + 1))) }
    }

    static func decoderChannel(bodyBytesMax: Int = FrameHeader.bodyBytesMaxDefault) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(bodyBytesMax: bodyBytesMax)))
        return channel
    }

    /// Every frame delivered one byte at a time comes out once, whole, after its last byte.
    @Test func dripFeed() throws {
        let channel = try Self.decoderChannel()
        for frame in Self.sampleFrames(seed: 1, count: 44) {
            let bytes = frame.encoded()
            for (i, byte) in bytes.enumerated() {
                try channel.writeInbound(ByteBuffer(bytes: [byte]))
                let out = try channel.readInbound(as: Frame.self)
                if i < bytes.count - 1 {
                    #expect(out == nil, "frame emitted after \(i + 1) of \(bytes.count) bytes")
                } else {
                    #expect(out == frame)
                }
            }
        }
        #expect(try channel.finish().isClean)
    }

    /// Many frames in one read, and frames split at random points, come out in order.
    @Test func coalescedAndSplitReads() throws {
        let frames = Self.sampleFrames(seed: 2, count: 100)
        let stream = frames.flatMap { $0.encoded() }
        var gen = Gen(seed: 3)
        let channel = try Self.decoderChannel()
        var offset = 0
        var received: [Frame] = []
        while offset < stream.count {
            let n = min(stream.count - offset, gen.int(1...700))
            try channel.writeInbound(ByteBuffer(bytes: stream[offset..<offset + n]))
            offset += n
            while let frame = try channel.readInbound(as: Frame.self) { received.append(frame) }
        }
        #expect(received == frames)
        #expect(try channel.finish().isClean)
    }

    /// Every proper prefix of a frame is incomplete, and a close after it is an error.
    @Test func truncation() throws {
        let bytes = Self.sampleFrames(seed: 4, count: 3)[2].encoded()
        for cut in 0..<bytes.count {
            #expect(try Frame.decode(Array(bytes[..<cut])) == nil)
        }
        let channel = try Self.decoderChannel()
        try channel.writeInbound(ByteBuffer(bytes: bytes.dropLast()))
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect { try channel.finish() } throws: { ($0 as? RPCDecodingError)?.code == .truncated }
    }

    /// A length above the limit is refused from the header alone, before any body arrives.
    @Test func oversizedLengthRejectedFromTheHeader() throws {
        var header = Frame(kind: .status, requestID: RequestID(1), body: []).encoded()
        let length = UInt32(1024 + 1)
        header.replaceSubrange(4..<8, with: [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)])
        #expect { try Frame.decode(header, bodyBytesMax: 1024) } throws: { ($0 as? RPCDecodingError)?.code == .frameTooLarge }
        header.replaceSubrange(4..<8, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let channel = try Self.decoderChannel()
        #expect { try channel.writeInbound(ByteBuffer(bytes: header)) } throws: { ($0 as? RPCDecodingError)?.code == .frameTooLarge }
    }

    @Test func unknownKindReservedFlagsBadMagicAndVersion() throws {
        let good = Frame(kind: .status, requestID: RequestID(9), body: []).encoded()
        func mutated(_ index: Int, _ value: UInt8) -> [UInt8] {
            var b = good
            b[index] = value
            return b
        }
        let cases: [([UInt8], RPCDecodingError.Code)] = [
            (mutated(8, 0x55), .unknownKind),
            (mutated(9, 0x02), .reservedBits),
            (mutated(0, 0x00), .badMagic),
            (mutated(3, 0x02), .unsupportedVersion),
            (mutated(21, good[21] ^ 1), .checksumMismatch),
        ]
        for (bytes, code) in cases {
            #expect { try Frame.decode(bytes) } throws: { ($0 as? RPCDecodingError)?.code == code }
            let channel = try Self.decoderChannel()
            #expect { try channel.writeInbound(ByteBuffer(bytes: bytes)) } throws: { ($0 as? RPCDecodingError)?.code == code }
        }
    }

    /// Every single-bit flip of a frame: a body or checksum flip is always rejected (CRC32C
    /// detects all 1-bit errors); a flip in magic or version is rejected; a length flip is
    /// rejected or leaves the frame incomplete; kind, `more` and request ID are not covered
    /// by the checksum (docs/PROTOCOL.md), so a flip there may decode — but only to the same
    /// frame with exactly that field changed.
    @Test(arguments: 0..<22)
    func everySingleBitFlip(kindIndex: Int) throws {
        var gen = Gen(seed: UInt64(100 + kindIndex))
        let frame = Frame(gen.message(kindIndex), requestID: RequestID(gen.nonZero()))
        let bytes = frame.encoded()
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            let offset = bit / 8
            let result: Frame?
            do {
                result = try Frame.decode(flipped)?.frame
            } catch {
                #expect(!(10..<18).contains(offset), "request ID flip at bit \(bit) rejected: \(error)")
                continue
            }
            guard let decoded = result else {
                #expect((4..<8).contains(offset), "flip at bit \(bit) left an incomplete frame")
                continue
            }
            var expected = frame
            switch offset {
            case 8: expected.kind = decoded.kind
            case 9: expected.flags = decoded.flags
            case 10..<18: expected.requestID = decoded.requestID
            default: Issue.record("flip at byte \(offset) bit \(bit) accepted")
            }
            #expect(decoded == expected)
            #expect(decoded != frame)
        }
    }
}
