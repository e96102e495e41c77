import CCRC32C
import FaunaKV
import FaunaRaft
@testable import FaunaRPC
import NIOCore
import Testing

#if os(Linux) && arch(x86_64)
import Glibc
#endif

@Suite struct CRC32CTests {
    static let vectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ([], 0),
    ]

    /// RFC 3720 §B.4 and the classic "123456789" check value.
    @Test(arguments: CRC32CTests.vectors)
    func knownVectors(input: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(input) == expected)
        #expect(CRC32C.Software.checksum(input) == expected)
        #expect(~input.withUnsafeBytes { fauna_crc32c_update_portable(0xFFFF_FFFF, $0.baseAddress, $0.count) } == expected)
    }

    /// The C code (the `crc32` instruction here, if the CPU has it, and the portable tables)
    /// against the Swift tables: lengths 0...1000 at every start offset 0...7 into a larger
    /// buffer, from the initial state and from arbitrary running states.
    @Test func cMatchesSwiftTables() {
        var gen = Gen(seed: 3720)
        var buffer = [UInt8](repeating: 0, count: 1008)
        for round in 0..<4000 {
            for i in buffer.indices { buffer[i] = UInt8.random(in: 0...255, using: &gen.rng) }
            let length = round < 1001 ? round : gen.int(0...1000)
            let offset = gen.int(0...7)
            let state = round % 2 == 0 ? 0xFFFF_FFFF : UInt32.random(in: 0...UInt32.max, using: &gen.rng)
            buffer.withUnsafeBytes { all in
                let slice = UnsafeRawBufferPointer(rebasing: all[offset..<offset + length])
                let want = CRC32C.Software.update(state, slice)
                #expect(fauna_crc32c_update(state, slice.baseAddress, slice.count) == want, "length \(length) offset \(offset)")
                #expect(fauna_crc32c_update_portable(state, slice.baseAddress, slice.count) == want, "length \(length) offset \(offset)")
                if state == 0xFFFF_FFFF {
                    var crc = CRC32C.Update()
                    crc.update(slice)
                    #expect(crc.value == ~want, "length \(length) offset \(offset)")
                }
            }
        }
        // No bytes, no address: the state is unchanged.
        #expect(fauna_crc32c_update(0x1234_5678, nil, 0) == 0x1234_5678)
        #expect(fauna_crc32c_update_portable(0x1234_5678, nil, 0) == 0x1234_5678)
        var empty = CRC32C.Update()
        empty.update(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(empty.value == 0)
    }

    /// A running checksum fed in up to 6 pieces cut at random points (pieces of any length and
    /// alignment) equals the Swift tables' checksum of the whole.
    @Test func runningUpdatesSplitAtRandomPoints() {
        var gen = Gen(seed: 3721)
        for _ in 0..<2000 {
            let data = gen.bytes(1000)
            let want = CRC32C.Software.checksum(data)
            var cuts = (0..<gen.int(1...5)).map { _ in gen.int(0...data.count) }.sorted()
            cuts = [0] + cuts + [data.count]
            var running = CRC32C.Update()
            var portable: UInt32 = 0xFFFF_FFFF
            for (from, to) in zip(cuts, cuts.dropFirst()) {
                running.update(data[from..<to])
                data[from..<to].withUnsafeBytes { portable = fauna_crc32c_update_portable(portable, $0.baseAddress, $0.count) }
            }
            #expect(running.value == want, "\(data.count) bytes cut at \(cuts)")
            #expect(~portable == want, "\(data.count) bytes cut at \(cuts)")
        }
    }

    /// The dispatch takes the `crc32` instruction exactly when the CPU has SSE4.2 (else the
    /// tests above would compare the tables with themselves), and never off x86-64.
    @Test func usesTheInstructionWhereTheCPUHasIt() throws {
        #if os(Linux) && arch(x86_64)
        let fd = open("/proc/cpuinfo", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var info = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            info += chunk[..<n]
        }
        let flags = String(decoding: info, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("flags") }
        let sse42 = try #require(flags).split(separator: " ").contains("sse4_2")
        #expect(fauna_crc32c_hardware() == (sse42 ? 1 : 0))
        #elseif !arch(x86_64)
        #expect(fauna_crc32c_hardware() == 0)
        #endif
    }

    /// Slicing-by-8 against the bit-at-a-time definition, at every alignment and split.
    @Test func matchesBitwiseReference() {
        var gen = Gen(seed: 7)
        for _ in 0..<200 {
            let data = gen.bytes(300)
            var crc: UInt32 = 0xFFFF_FFFF
            for b in data {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            #expect(CRC32C.checksum(data) == ~crc)
            let cut = gen.int(0...data.count)
            var running = CRC32C.Update()
            running.update(data[..<cut])
            running.update(data[cut...])
            #expect(running.value == ~crc)
        }
    }
}

@Suite struct WireCodingTests {
    @Test func varintRoundTripsAtEveryLength() throws {
        for shift in 0..<64 {
            for v in [UInt64(1) << UInt64(shift), (UInt64(1) << UInt64(shift)) - 1, UInt64.max >> UInt64(shift)] {
                var w = WireWriter()
                w.varint(v)
                var r = WireReader(w.bytes, context: "test")
                #expect(try r.varint("v") == v)
                try r.finish()
            }
        }
    }

    @Test(arguments: [
        [0x80, 0x00],  // 0 in two bytes
        [0xFF, 0x80, 0x00],  // trailing zero group
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],  // 2^64
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00],  // 11 bytes
    ] as [[UInt8]])
    func nonCanonicalVarintsAreRejected(bytes: [UInt8]) {
        var r = WireReader(bytes, context: "test")
        #expect(throws: RPCDecodingError.self) { try r.varint("v") }
    }

    @Test func truncatedVarintIsRejected() {
        var r = WireReader([0x80, 0x80], context: "test")
        #expect { try r.varint("v") } throws: { ($0 as? RPCDecodingError)?.code == .truncated }
    }

    @Test func lengthAboveRemainingIsRejectedBeforeAllocating() {
        var w = WireWriter()
        w.varint(UInt64(Int.max))
        var r = WireReader(w.bytes, context: "test")
        #expect { try r.lengthPrefixed("b", max: Int.max) } throws: { ($0 as? RPCDecodingError)?.code == .truncated }
        var r2 = WireReader(w.bytes, context: "test")
        #expect { try r2.lengthPrefixed("b", max: 10) } throws: { ($0 as? RPCDecodingError)?.code == .limitExceeded }
    }
}

@Suite struct MessageCodecTests {
    /// encode ∘ decode = identity for every kind, through both frame decoders.
    @Test(arguments: 0..<20)
    func roundTripEveryKind(seed: Int) throws {
        var gen = Gen(seed: UInt64(seed))
        for i in 0..<(48 * 10) {
            let message = gen.message(i)
            let requestID = RequestID(gen.u64())
            let frame = Frame(message, requestID: requestID)
            let bytes = frame.encoded()
            let decoded = try #require(try Frame.decode(bytes))
            #expect(decoded.consumed == bytes.count)
            #expect(decoded.frame == frame)
            #expect(try RPCMessage(decoded.frame) == message, "seed \(seed) message \(i)")

            var buffer = ByteBuffer(bytes: bytes)
            let viaNIO = try #require(try FrameDecoder.decodeFrame(&buffer, bodyBytesMax: FrameHeader.bodyBytesMaxDefault))
            #expect(viaNIO == frame)
            #expect(buffer.readableBytes == 0)
            var direct = ByteBuffer()
            frame.encode(into: &direct)
            #expect(Array(direct.readableBytesView) == bytes)
        }
    }

    /// A body that decodes re-encodes to the same bytes (one encoding per message), for the
    /// kinds whose codecs are FaunaRPC's own; random bodies never trap.
    @Test func decodedGarbageIsCanonicalOrRejected() {
        var gen = Gen(seed: 99)
        var decodedCount = 0
        for i in 0..<20_000 {
            let kind = FrameKind.allCases[i % FrameKind.allCases.count]
            var body = gen.bytes(24)
            if gen.bool(), case let valid = gen.message(i).encodedBody(), !valid.isEmpty {
                body = valid
                body[gen.int(0...body.count - 1)] ^= UInt8(1 << gen.int(0...7))
            }
            guard let message = try? RPCMessage(kind: kind, body: body) else { continue }
            decodedCount += 1
            switch kind {
            case .write, .writeResponse, .read, .readResponse: continue  // FaunaKV's codecs
            default: #expect(message.encodedBody() == body, "kind \(kind) body \(body)")
            }
        }
        #expect(decodedCount > 100)
    }

    @Test func writeCarriesTheExactProposalBytes() throws {
        let proposal = KVProposal(
            session: ClientSession(clientID: ClientID(7), sequence: .first),
            command: .put(KVPut(key: Array("k1".utf8), value: Array("v1".utf8))))
        let frame = Frame(.write(WriteRequest(proposal)), requestID: RequestID(1))
        #expect(frame.body == proposal.encoded())
        guard case .write(let request) = try RPCMessage(frame) else { Issue.record("not a write"); return }
        #expect(request.proposal == proposal)
        #expect(request.proposalBytes == proposal.encoded())
    }

    @Test func invalidProposalIsRejected() {
        let empty = KVProposal(command: .put(KVPut(key: [], value: [])))  // empty key breaks a rule
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .write, body: empty.encoded()) }
    }

    @Test(arguments: ["", ".", "..", "a/b", "/etc", "x\u{0}y"])
    func unsafeFileNamesAreRejected(name: String) {
        var w = WireWriter()
        w.varint(5)  // index
        w.varint(1)  // term
        w.string(name)
        w.varint(0)  // offset
        w.u8(0)  // flags
        w.lengthPrefixed([])  // checksum
        w.lengthPrefixed([1, 2, 3])
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .snapshotChunk, body: w.bytes) }
    }

    @Test func raftMessageRulesAreChecked() {
        // A message from node 0.
        var w = WireWriter()
        w.varint(1)
        w.u8(MessageType.heartbeat.rawValue)
        w.varint(0)
        w.varint(2)
        w.varint(3)
        w.u8(0)
        #expect { try RPCMessage(kind: .raftMessages, body: w.bytes) } throws: { ($0 as? RPCDecodingError)?.code == .invalidValue }
        // A presence bit with a zero value.
        var z = WireWriter()
        z.varint(1)
        z.u8(MessageType.heartbeat.rawValue)
        z.varint(1)
        z.varint(2)
        z.varint(3)
        z.u8(0x08)
        z.varint(0)
        #expect { try RPCMessage(kind: .raftMessages, body: z.bytes) } throws: { ($0 as? RPCDecodingError)?.code == .invalidValue }
        // An empty batch.
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .raftMessages, body: [0]) }
        // Unsorted conf state.
        #expect(throws: RPCDecodingError.self) {
            var r = WireReader([2, 5, 3, 0], context: "conf")
            _ = try ConfState(from: &r)
        }
    }

    @Test func proofPathsAreBounded() {
        var w = WireWriter()
        w.varint(1)
        w.varint(2)
        w.varint(UInt64(RPCLimits.proofHashesMax + 1))
        w.raw([UInt8](repeating: 0, count: 32 * (RPCLimits.proofHashesMax + 1)))
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .inclusionProofResponse, body: w.bytes) }
        // A cluster ID or hash cut short.
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .signedTreeHeadResponse, body: [1, 5] + [UInt8](repeating: 0, count: 20)) }
    }

    @Test func errorMessagesAreCutAtTheLimit() throws {
        let long = String(repeating: "é", count: RPCLimits.messageBytesMax)
        let error = RPCErrorResponse(.internalError, long)
        #expect(error.message.utf8.count <= RPCLimits.messageBytesMax)
        #expect(try RPCMessage(kind: .error, body: RPCMessage.error(error).encodedBody()) == .error(error))
    }
}

/// The record cache figures were added to `status` so that older clients and nodes keep
/// working: they appear only in answers to a request that asks for them.
@Suite struct StatusCompatibilityTests {
    let plain = NodeStatus(
        nodeID: NodeID(1), role: .leader, term: Term(3), leader: NodeID(1), commitIndex: LogIndex(40),
        appliedIndex: LogIndex(39), treeSize: 39, dbSizeBytes: 1 << 20)

    @Test func aPlainAnswerIsTheEarlierFormat() throws {
        // nodeID 1 | role 3 | flags 0x02 | term 3 | leader 1 | commit 40 | applied 39 | tree 39 | db 2^20
        #expect(RPCMessage.statusResponse(plain).encodedBody() == [1, 3, 0x02, 3, 1, 40, 39, 39, 0x80, 0x80, 0x40])
        #expect(RPCMessage.status().encodedBody().isEmpty)
        #expect(try RPCMessage(kind: .status, body: []) == .status(StatusRequest(withRecordCache: false)))
    }

    @Test func recordCacheFiguresAreOptionalAndLast() throws {
        var full = plain
        full.recordCache = RecordCacheStatus(budgetBytes: 64 << 20, bytes: 300, entries: 2, hits: 5, misses: 1)
        let body = RPCMessage.statusResponse(full).encodedBody()
        #expect(Array(body.prefix(11)) == RPCMessage.statusResponse(plain).encodedBody())
        #expect(try RPCMessage(kind: .statusResponse, body: body) == .statusResponse(full))
        #expect(try RPCMessage(kind: .statusResponse, body: Array(body.prefix(11))) == .statusResponse(plain))
        // Cut inside the figures: refused, not read as absent.
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .statusResponse, body: Array(body.dropLast())) }
    }

    @Test func healthChecksFollowTheRecordCache() throws {
        var full = plain
        full.recordCache = RecordCacheStatus(budgetBytes: 64 << 20, bytes: 300, entries: 2, hits: 5, misses: 1)
        let withCache = RPCMessage.statusResponse(full).encodedBody()
        full.health = [HealthCheck(name: "loop", failure: nil), HealthCheck(name: "leader", failure: "no leader known in term 3")]
        let body = RPCMessage.statusResponse(full).encodedBody()
        #expect(Array(body.prefix(withCache.count)) == withCache, "appended after the record cache")
        // count 2 | "loop" ok | "leader" failed "no leader..."
        #expect(Array(body.dropFirst(withCache.count).prefix(7)) == [2, 4] + Array("loop".utf8) + [0])
        #expect(try RPCMessage(kind: .statusResponse, body: body) == .statusResponse(full))
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .statusResponse, body: Array(body.dropLast())) }
        // More checks than the bound: refused.
        var many = withCache
        many.append(17)
        for _ in 0..<17 { many += [1, UInt8(ascii: "x"), 0] }
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .statusResponse, body: many) }
        // A very long reason is cut at a character boundary to the bound, so the answer decodes.
        full.health = [HealthCheck(name: "disk", failure: String(repeating: "é", count: 700))]
        guard case .statusResponse(let cut) = try RPCMessage(kind: .statusResponse, body: RPCMessage.statusResponse(full).encodedBody()) else {
            Issue.record("not a status answer")
            return
        }
        #expect(cut.health?.first?.failure == String(repeating: "é", count: 512))
        // Health asked: bits 0 and 1 (the record cache comes with it).
        #expect(RPCMessage.status(StatusRequest(withHealth: true)).encodedBody() == [0x03])
        #expect(try RPCMessage(kind: .status, body: [0x03]) == .status(StatusRequest(withRecordCache: true, withHealth: true)))
    }

    @Test func theRequestFlagIsOneByteOnlyWhenSet() throws {
        #expect(RPCMessage.status(StatusRequest(withRecordCache: true)).encodedBody() == [0x01])
        #expect(try RPCMessage(kind: .status, body: [0x01]) == .status(StatusRequest(withRecordCache: true)))
        // One encoding per request: a zero byte is the empty body's job; unknown bits are refused.
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .status, body: [0x00]) }
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .status, body: [0x02]) }
        #expect(throws: RPCDecodingError.self) { try RPCMessage(kind: .status, body: [0x01, 0x00]) }
    }
}
