import Testing

@testable import FaunaKV

/// Random valid proposals from a seed: keys over a small alphabet that includes 0x00 and 0xFF.
struct ProposalGenerator {
    var rng: SeededGenerator

    mutating func bytes(_ lengths: ClosedRange<Int>) -> [UInt8] {
        let alphabet: [UInt8] = [0x00, 0x01, 0x61, 0x62, 0x7F, 0xFE, 0xFF]
        return (0..<Int.random(in: lengths, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
    }

    mutating func flag() -> Bool { Bool.random(using: &rng) }
    mutating func revision() -> Revision { Revision(UInt64.random(in: 0...UInt64.max, using: &rng)) }

    mutating func keyRange() -> KeyRange {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return .single(bytes(1...6))
        case 1: return .prefix(bytes(0...3))
        default: return KeyRange(start: bytes(0...4), end: flag() ? bytes(0...4) : nil)
        }
    }

    mutating func put() -> KVPut {
        KVPut(key: bytes(1...8), value: bytes(0...12), ifAbsent: flag(), returnsPrevious: flag())
    }

    mutating func rangeRequest() -> KVRangeRequest {
        KVRangeRequest(
            range: keyRange(), limit: flag() ? Int.random(in: 1...1000, using: &rng) : nil,
            revision: flag() ? revision() : nil, isReversed: flag(), isKeysOnly: flag(), isCountOnly: flag())
    }

    mutating func operation() -> KVOperation {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return .put(put())
        case 1: return .deleteRange(KVDeleteRange(range: keyRange(), returnsPrevious: flag()))
        default: return .range(rangeRequest())
        }
    }

    mutating func compare() -> KVCompare {
        let target: KVCompare.Target
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: target = .value(bytes(0...6))
        case 1: target = .version(UInt64.random(in: 0...UInt64.max, using: &rng))
        case 2: target = .createRevision(revision())
        default: target = .modRevision(revision())
        }
        return KVCompare(range: keyRange(), target, KVCompare.Operator.allCases.randomElement(using: &rng)!)
    }

    mutating func command() -> KVCommand {
        switch Int.random(in: 0..<5, using: &rng) {
        case 4: return .auth(authCommand())
        case 0: return .put(put())
        case 1: return .deleteRange(KVDeleteRange(range: keyRange(), returnsPrevious: flag()))
        case 2:
            return .txn(
                KVTxn(
                    compares: (0..<Int.random(in: 0...3, using: &rng)).map { _ in compare() },
                    success: (0..<Int.random(in: 0...4, using: &rng)).map { _ in operation() },
                    failure: (0..<Int.random(in: 0...4, using: &rng)).map { _ in operation() }))
        default: return .compact(Revision(UInt64.random(in: 1...UInt64.max, using: &rng)))
        }
    }

    mutating func authCommand() -> KVAuthCommand {
        let name = Array("u\(Int.random(in: 0...99, using: &rng))".utf8)
        let role = Array("r-\(Int.random(in: 0...9, using: &rng))".utf8)
        let hash = flag() ? KVPasswordHash(logN: 15, r: 8, p: 1, salt: bytes(16...16), hash: bytes(32...32)) : nil
        let range = KeyRange.prefix(Array("app\(Int.random(in: 0...9, using: &rng))/".utf8))
        let access = KVPermission.Access.allCases.randomElement(using: &rng)!
        let all: [KVAuthCommand] = [
            .enable, .disable, .userAdd(name: name, password: hash), .userDelete(name: name), .userPassword(name: name, password: hash),
            .userGrantRole(user: name, role: role), .userRevokeRole(user: name, role: role), .roleAdd(name: role),
            .roleDelete(name: role), .roleGrant(role: role, permission: KVPermission(access, range)), .roleRevoke(role: role, range: range),
        ]
        return all.randomElement(using: &rng)!
    }

    /// A proposal that passes `validate()` (random txns that write a key twice are redrawn).
    mutating func proposal() -> KVProposal {
        while true {
            let session = flag()
                ? ClientSession(
                    clientID: ClientID(UInt64.random(in: 0...UInt64.max, using: &rng)),
                    sequence: SequenceNumber(UInt64.random(in: 1...UInt64.max, using: &rng))) : nil
            let principal: [UInt8]? = flag() ? nil : (flag() ? [] : Array("alice".utf8))
            let proposal = KVProposal(session: session, command: command(), principal: principal)
            if (try? proposal.validate()) != nil { return proposal }
        }
    }
}

@Suite("Proposal codec")
struct ProposalCodecTests {
    @Test("decode ∘ encode = identity over random proposals", arguments: [UInt64(1), 2, 3])
    func roundTrip(seed: UInt64) throws {
        var gen = ProposalGenerator(rng: SeededGenerator(seed: seed))
        for _ in 0..<300 {
            let proposal = gen.proposal()
            let bytes = proposal.encoded()
            #expect(bytes.first == KVProposal.formatVersion)
            let decoded = try KVProposal(decoding: bytes)
            #expect(decoded == proposal, "seed \(seed)")
        }
    }

    @Test("every strict prefix is rejected as truncated (drip feed)")
    func dripFeed() throws {
        var gen = ProposalGenerator(rng: SeededGenerator(seed: 7))
        for _ in 0..<40 {
            let bytes = gen.proposal().encoded()
            for n in 0..<bytes.count {
                #expect(throws: KVDecodingError.self) { try KVProposal(decoding: Array(bytes[..<n])) }
            }
        }
    }

    /// The encoding is canonical: whatever a flipped input decodes to encodes back to exactly
    /// that input; everything else throws. Never traps.
    @Test("bit flips are rejected or decode canonically")
    func bitFlips() throws {
        var gen = ProposalGenerator(rng: SeededGenerator(seed: 11))
        var rejected = 0
        for _ in 0..<25 {
            let bytes = gen.proposal().encoded()
            for bit in 0..<(bytes.count * 8) {
                var flipped = bytes
                flipped[bit / 8] ^= 1 << UInt8(bit % 8)
                if let decoded = try? KVProposal(decoding: flipped) {
                    #expect(decoded.encoded() == flipped)
                } else {
                    rejected += 1
                }
            }
        }
        #expect(rejected > 0)
    }

    @Test("trailing bytes are rejected")
    func trailing() {
        let bytes = KVProposal(command: .put(KVPut(key: b("k"), value: b("v")))).encoded() + [0]
        #expect(throws: KVDecodingError(.trailingBytes, "proposal: got 1 bytes after the end, want 0")) {
            try KVProposal(decoding: bytes)
        }
    }

    struct BadInput: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        let code: KVDecodingError.Code
        var testDescription: String { name }
    }

    static let putPrefix: [UInt8] = [1, 0, 1, 0]  // version, no session, put, no flags

    static func u32(_ n: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: n >> (24 - 8 * $0)) } }

    static let badInputs: [BadInput] = [
        BadInput(name: "empty", bytes: [], code: .truncated),
        BadInput(name: "unknown version", bytes: [2, 0, 4] + [UInt8](repeating: 0, count: 8), code: .unsupportedVersion),
        BadInput(name: "reserved proposal flag", bytes: [1, 4, 4] + [UInt8](repeating: 0, count: 7) + [1], code: .reservedBits),
        BadInput(name: "unknown command", bytes: [1, 0, 12], code: .unknownTag),
        BadInput(name: "state level truncated", bytes: [1, 0, 11, 0, 0, 2], code: .truncated),
        BadInput(name: "reserved put flag", bytes: [1, 0, 1, 8] + u32(1) + [0x61] + u32(0), code: .reservedBits),
        BadInput(name: "put lease flag with lease 0", bytes: [1, 0, 1, 4] + u32(1) + [0x61] + u32(0) + [0, 0, 0, 0, 0, 0, 0, 0], code: .invalidValue),
        BadInput(name: "key length 2^32-1", bytes: putPrefix + [0xFF, 0xFF, 0xFF, 0xFF], code: .limitExceeded),
        BadInput(
            name: "key over limit", bytes: putPrefix + u32(KVLimits.keyBytesMax + 1)
                + [UInt8](repeating: 0x61, count: KVLimits.keyBytesMax + 1) + u32(0), code: .limitExceeded),
        BadInput(name: "value over limit", bytes: putPrefix + u32(1) + [0x61] + u32(KVLimits.valueBytesMax + 1), code: .limitExceeded),
        BadInput(name: "empty key", bytes: putPrefix + u32(0) + u32(0), code: .invalidValue),
        BadInput(name: "session sequence 0", bytes: [1, 1] + [UInt8](repeating: 0, count: 16) + [4, 0, 0, 0, 0, 0, 0, 0, 1], code: .invalidValue),
        BadInput(name: "compact to 0", bytes: [1, 0, 4] + [UInt8](repeating: 0, count: 8), code: .invalidValue),
        BadInput(name: "txn compares over limit", bytes: [1, 0, 3, 0, 129], code: .limitExceeded),
        BadInput(name: "txn operations over limit", bytes: [1, 0, 3, 0, 0, 0xFF, 0xFF], code: .limitExceeded),
        BadInput(name: "range flag not 0/1", bytes: [1, 0, 2, 0] + u32(0) + [2], code: .invalidValue),
        BadInput(name: "over proposalBytesMax", bytes: [UInt8](repeating: 1, count: KVLimits.proposalBytesMax + 1), code: .limitExceeded),
    ]

    @Test("malformed and oversized inputs give typed errors", arguments: badInputs)
    func rejects(input: BadInput) {
        do {
            _ = try KVProposal(decoding: input.bytes)
            Issue.record("decoded \(input.name)")
        } catch {
            #expect(error.code == input.code, "\(error)")
        }
    }

    @Test("a txn writing a key twice in a branch is invalid (etcd's duplicate key rule)")
    func duplicateWrites() {
        let twice = KVTxn(compares: [], success: [.put(KVPut(key: b("a"), value: [])), .put(KVPut(key: b("a"), value: []))])
        let putInDeleted = KVTxn(
            compares: [], success: [], failure: [.deleteRange(KVDeleteRange(range: .prefix(b("a")))), .put(KVPut(key: b("ab"), value: []))])
        let fine = KVTxn(compares: [], success: [.put(KVPut(key: b("a"), value: []))], failure: [.put(KVPut(key: b("a"), value: []))])
        for txn in [twice, putInDeleted] {
            #expect(throws: KVCommandError.self) { try KVProposal(command: .txn(txn)).validate() }
            #expect(throws: KVDecodingError.self) { try KVProposal(decoding: KVProposal(command: .txn(txn)).encoded()) }
        }
        #expect(throws: Never.self) { try KVProposal(command: .txn(fine)).validate() }
    }

    @Test("limits: exactly at the limit is valid, one over is not")
    func limits() throws {
        let maxKey = [UInt8](repeating: 0x61, count: KVLimits.keyBytesMax)
        let maxValue = [UInt8](repeating: 0x62, count: KVLimits.valueBytesMax)
        let atLimit = KVProposal(command: .put(KVPut(key: maxKey, value: maxValue)))
        #expect(try KVProposal(decoding: atLimit.encoded()) == atLimit)
        #expect(throws: KVCommandError.self) { try KVProposal(command: .put(KVPut(key: maxKey + [0], value: []))).validate() }
        #expect(throws: KVCommandError.self) { try KVProposal(command: .put(KVPut(key: [1], value: maxValue + [0]))).validate() }
        let ops = [KVOperation](repeating: .range(KVRangeRequest(range: .all)), count: KVLimits.txnOperationsMax)
        #expect(throws: Never.self) { try KVProposal(command: .txn(KVTxn(compares: [], success: ops))).validate() }
        #expect(throws: KVCommandError.self) {
            try KVProposal(command: .txn(KVTxn(compares: [], success: ops + [ops[0]]))).validate()
        }
    }
}
