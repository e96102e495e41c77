// Byte layout: docs/KV-COMMANDS.md "Proposal". Fixed-width big-endian integers, a format
// version first, reserved flag bits checked to be zero, nothing left over at the end.

extension KVProposal {
    /// The proposal format version written first.
    public static let formatVersion: UInt8 = 1

    /// The entry payload. The caller validates first (`validate()`); encoding does not check.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(KVProposal.formatVersion)
        if let session {
            w.u8(principal != nil ? 0x03 : 0x01)
            w.u64(session.clientID.rawValue)
            w.u64(session.sequence.rawValue)
        } else {
            w.u8(principal != nil ? 0x02 : 0)
        }
        if let principal { w.lengthPrefixed(principal) }
        command.encode(into: &w)
        return w.bytes
    }

    /// Decodes and validates an entry payload. Checks the total size before reading and every
    /// length before allocating; throws on any input `encoded()` of a valid proposal cannot
    /// produce. Never traps.
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        guard bytes.count <= KVLimits.proposalBytesMax else {
            throw KVDecodingError(.limitExceeded, "proposal: got \(bytes.count) bytes, want <= \(KVLimits.proposalBytesMax)")
        }
        var r = ByteReader(bytes, context: "proposal")
        let format = try r.u8("format version")
        guard format == KVProposal.formatVersion else {
            throw KVDecodingError(.unsupportedVersion, "proposal format version: got \(format), want \(KVProposal.formatVersion)")
        }
        let flags = try r.flags("flags", allowed: 0x03)
        var session: ClientSession?
        if flags & 0x01 != 0 {
            let clientID = ClientID(try r.u64("client ID"))
            session = ClientSession(clientID: clientID, sequence: SequenceNumber(try r.u64("sequence")))
        }
        let principal: [UInt8]? = flags & 0x02 != 0 ? try r.lengthPrefixed("principal", max: KVAuthLimits.nameBytesMax) : nil
        let command = try KVCommand(from: &r)
        try r.finish()
        self.init(session: session, command: command, principal: principal)
        do {
            try validateRules()
        } catch {
            throw KVDecodingError(.invalidValue, "proposal: \(error.reason)")
        }
    }
}

extension KVProposal {
    /// `bytes` (a client's encoded proposal, without a principal) with `principal` added:
    /// what the leader proposes for a client's write, without decoding and encoding it again.
    /// nil if `bytes` already name a principal or are too short to be a proposal.
    public static func adding(principal: [UInt8], to bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 3, bytes[0] == formatVersion, bytes[1] & 0x02 == 0 else { return nil }
        let at = bytes[1] & 0x01 != 0 ? 18 : 2
        guard bytes.count > at else { return nil }
        var w = ByteWriter()
        w.bytes.reserveCapacity(bytes.count + 4 + principal.count)
        w.bytes.append(contentsOf: bytes[0..<at])
        w.bytes[1] |= 0x02
        w.lengthPrefixed(principal)
        w.bytes.append(contentsOf: bytes[at...])
        return w.bytes
    }
}

extension KVCommand {
    enum Tag: UInt8 {
        case put = 1, deleteRange = 2, txn = 3, compact = 4, initCluster = 5, upgradeLeaves = 6
        case leaseGrant = 7, leaseRevoke = 8, leaseCheckpoint = 9, auth = 10, upgradeState = 11
    }

    func encode(into w: inout ByteWriter) {
        switch self {
        case .put(let put):
            w.u8(Tag.put.rawValue)
            put.encode(into: &w)
        case .deleteRange(let delete):
            w.u8(Tag.deleteRange.rawValue)
            delete.encode(into: &w)
        case .txn(let txn):
            w.u8(Tag.txn.rawValue)
            txn.encode(into: &w)
        case .compact(let revision):
            w.u8(Tag.compact.rawValue)
            w.u64(revision.rawValue)
        case .initCluster(let id):
            w.u8(Tag.initCluster.rawValue)
            w.bytes.append(contentsOf: id)
        case .upgradeLeaves:
            w.u8(Tag.upgradeLeaves.rawValue)
        case .upgradeState(let level):
            w.u8(Tag.upgradeState.rawValue)
            w.u32(level)
        case .leaseGrant(let grant):
            w.u8(Tag.leaseGrant.rawValue)
            w.u64(grant.id)
            w.u64(grant.ttlSeconds)
        case .leaseRevoke(let id):
            w.u8(Tag.leaseRevoke.rawValue)
            w.u64(id)
        case .leaseCheckpoint(let checkpoints):
            w.u8(Tag.leaseCheckpoint.rawValue)
            w.u32(UInt32(clamping: checkpoints.count))
            for c in checkpoints {
                w.u64(c.id)
                w.u64(c.remainingMilliseconds)
            }
        case .auth(let command):
            w.u8(Tag.auth.rawValue)
            command.encode(into: &w)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let raw = try r.u8("command tag")
        switch Tag(rawValue: raw) {
        case .put: self = .put(try KVPut(from: &r))
        case .deleteRange: self = .deleteRange(try KVDeleteRange(from: &r))
        case .txn: self = .txn(try KVTxn(from: &r))
        case .compact: self = .compact(Revision(try r.u64("compact revision")))
        case .initCluster:
            var id: [UInt8] = []
            for _ in 0..<KVLimits.clusterIDBytes { id.append(try r.u8("cluster ID")) }
            self = .initCluster(id)
        case .upgradeLeaves: self = .upgradeLeaves
        case .upgradeState: self = .upgradeState(try r.u32("state level"))
        case .leaseGrant: self = .leaseGrant(KVLeaseGrant(id: try r.u64("lease ID"), ttlSeconds: try r.u64("lease TTL")))
        case .leaseRevoke: self = .leaseRevoke(try r.u64("lease ID"))
        case .leaseCheckpoint:
            let raw = try r.u32("checkpoint count")
            guard let n = Int(exactly: raw), n <= KVLimits.leaseCheckpointsMax, n <= r.remaining / 16 else {
                throw KVDecodingError(.limitExceeded, "checkpoint count: got \(raw), want <= \(min(KVLimits.leaseCheckpointsMax, r.remaining / 16))")
            }
            var list: [KVLeaseCheckpoint] = []
            list.reserveCapacity(n)
            for _ in 0..<n { list.append(KVLeaseCheckpoint(id: try r.u64("lease ID"), remainingMilliseconds: try r.u64("remaining ms"))) }
            self = .leaseCheckpoint(list)
        case .auth: self = .auth(try KVAuthCommand(from: &r))
        case nil: throw KVDecodingError(.unknownTag, "command tag: got \(raw), want 1...10")
        }
    }
}

extension KVPut {
    func encode(into w: inout ByteWriter) {
        w.u8((ifAbsent ? 0x01 : 0) | (returnsPrevious ? 0x02 : 0) | (lease != 0 ? 0x04 : 0))
        w.lengthPrefixed(key)
        w.lengthPrefixed(value)
        if lease != 0 { w.u64(lease) }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let flags = try r.flags("put flags", allowed: 0x07)
        let key = try r.lengthPrefixed("put key", max: KVLimits.keyBytesMax)
        let value = try r.lengthPrefixed("put value", max: KVLimits.valueBytesMax)
        var lease: UInt64 = 0
        if flags & 0x04 != 0 {
            lease = try r.u64("put lease")
            guard lease != 0 else { throw KVDecodingError(.invalidValue, "put lease: got 0 with the lease flag set, want >= 1") }
        }
        self.init(key: key, value: value, ifAbsent: flags & 0x01 != 0, returnsPrevious: flags & 0x02 != 0, lease: lease)
    }
}

extension KVDeleteRange {
    func encode(into w: inout ByteWriter) {
        w.u8(returnsPrevious ? 0x01 : 0)
        range.encode(into: &w)
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let flags = try r.flags("delete range flags", allowed: 0x01)
        self.init(range: try KeyRange(from: &r), returnsPrevious: flags & 0x01 != 0)
    }
}

extension KeyRange {
    func encode(into w: inout ByteWriter) {
        w.lengthPrefixed(start)
        if let end {
            w.u8(1)
            w.lengthPrefixed(end)
        } else {
            w.u8(0)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let start = try r.lengthPrefixed("range start", max: KVLimits.keyBytesMax)
        let end: [UInt8]? =
            try r.flag("range has end") ? r.lengthPrefixed("range end", max: KVLimits.rangeEndBytesMax) : nil
        self.init(start: start, end: end)
    }
}

extension KVRangeRequest {
    func encode(into w: inout ByteWriter) {
        var flags: UInt8 = 0
        if isReversed { flags |= 0x01 }
        if isKeysOnly { flags |= 0x02 }
        if isCountOnly { flags |= 0x04 }
        if limit != nil { flags |= 0x08 }
        if revision != nil { flags |= 0x10 }
        w.u8(flags)
        range.encode(into: &w)
        if let limit { w.u64(UInt64(clamping: limit)) }
        if let revision { w.u64(revision.rawValue) }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let flags = try r.flags("range flags", allowed: 0x1F)
        let range = try KeyRange(from: &r)
        let limit: Int? = try flags & 0x08 != 0 ? r.count("range limit", max: Int.max) : nil
        let revision: Revision? = try flags & 0x10 != 0 ? Revision(r.u64("range revision")) : nil
        self.init(
            range: range, limit: limit, revision: revision, isReversed: flags & 0x01 != 0,
            isKeysOnly: flags & 0x02 != 0, isCountOnly: flags & 0x04 != 0)
    }
}

extension KVTxn {
    func encode(into w: inout ByteWriter) {
        w.u16(UInt16(clamping: compares.count))
        for compare in compares { compare.encode(into: &w) }
        for branch in [success, failure] {
            w.u16(UInt16(clamping: branch.count))
            for op in branch { op.encode(into: &w) }
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let compareCount = try KVTxn.count(&r, "txn compares", max: KVLimits.txnComparesMax)
        var compares: [KVCompare] = []
        compares.reserveCapacity(compareCount)
        for _ in 0..<compareCount { compares.append(try KVCompare(from: &r)) }
        var branches: [[KVOperation]] = []
        for name in ["txn success operations", "txn failure operations"] {
            let n = try KVTxn.count(&r, name, max: KVLimits.txnOperationsMax)
            var ops: [KVOperation] = []
            ops.reserveCapacity(n)
            for _ in 0..<n { ops.append(try KVOperation(from: &r)) }
            branches.append(ops)
        }
        self.init(compares: compares, success: branches[0], failure: branches[1])
    }

    private static func count(_ r: inout ByteReader, _ field: String, max: Int) throws(KVDecodingError) -> Int {
        let raw = try r.u16(field)
        guard Int(raw) <= max else {
            throw KVDecodingError(.limitExceeded, "\(field): got \(raw), want <= \(max)")
        }
        return Int(raw)
    }
}

extension KVOperation {
    func encode(into w: inout ByteWriter) {
        switch self {
        case .put(let put):
            w.u8(1)
            put.encode(into: &w)
        case .deleteRange(let delete):
            w.u8(2)
            delete.encode(into: &w)
        case .range(let request):
            w.u8(3)
            request.encode(into: &w)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        switch try r.u8("operation tag") {
        case 1: self = .put(try KVPut(from: &r))
        case 2: self = .deleteRange(try KVDeleteRange(from: &r))
        case 3: self = .range(try KVRangeRequest(from: &r))
        case let tag: throw KVDecodingError(.unknownTag, "operation tag: got \(tag), want 1...3")
        }
    }
}

extension KVCompare {
    func encode(into w: inout ByteWriter) {
        range.encode(into: &w)
        switch target {
        case .value(let value):
            w.u8(0)
            w.u8(op.rawValue)
            w.lengthPrefixed(value)
        case .version(let version):
            w.u8(1)
            w.u8(op.rawValue)
            w.u64(version)
        case .createRevision(let revision):
            w.u8(2)
            w.u8(op.rawValue)
            w.u64(revision.rawValue)
        case .modRevision(let revision):
            w.u8(3)
            w.u8(op.rawValue)
            w.u64(revision.rawValue)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let range = try KeyRange(from: &r)
        let targetTag = try r.u8("compare target")
        let rawOp = try r.u8("compare operator")
        guard let op = Operator(rawValue: rawOp) else {
            throw KVDecodingError(.unknownTag, "compare operator: got \(rawOp), want 0...3")
        }
        let target: Target
        switch targetTag {
        case 0: target = .value(try r.lengthPrefixed("compare value", max: KVLimits.valueBytesMax))
        case 1: target = .version(try r.u64("compare version"))
        case 2: target = .createRevision(Revision(try r.u64("compare create revision")))
        case 3: target = .modRevision(Revision(try r.u64("compare mod revision")))
        default: throw KVDecodingError(.unknownTag, "compare target: got \(targetTag), want 0...3")
        }
        self.init(range: range, target, op)
    }
}
