// Byte layout: docs/KV-COMMANDS.md "Apply result". Used for stored session results and
// available to the RPC layer for responses.

extension KVApplyResult {
    /// The result format version written first.
    public static let formatVersion: UInt8 = 1
    /// The longest error reason the decoder accepts.
    static let reasonBytesMax = 64 * 1024
    /// The fewest bytes one encoded key-value takes (u32 key length + minimal record): bounds
    /// decoded counts by the input size before anything is reserved.
    static let keyValueBytesMin = 4 + 29

    /// The encoding of docs/KV-COMMANDS.md "Apply result" (also the stored session result).
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(KVApplyResult.formatVersion)
        w.u64(revision.rawValue)
        w.u8(isReplay ? 0x01 : 0)
        switch outcome {
        case .success(let succeeded, let results):
            w.u8(0)
            w.flag(succeeded)
            w.u16(UInt16(clamping: results.count))
            for result in results { result.encode(into: &w) }
        case .alreadyExists(let key):
            w.u8(1)
            w.lengthPrefixed(key)
        case .compacted(let requested, let compacted):
            w.u8(2)
            w.u64(requested.rawValue)
            w.u64(compacted.rawValue)
        case .futureRevision(let requested, let current):
            w.u8(3)
            w.u64(requested.rawValue)
            w.u64(current.rawValue)
        case .invalid(let error):
            w.u8(4)
            w.u8(error.code.wireValue)
            w.lengthPrefixed(Array(error.reason.utf8.prefix(KVApplyResult.reasonBytesMax)))
        case .sessionExpired(let sequence, let lastApplied):
            w.u8(5)
            w.u64(sequence.rawValue)
            w.flag(lastApplied != nil)
            if let lastApplied { w.u64(lastApplied.rawValue) }
        }
        return w.bytes
    }

    /// Decodes `encoded()`; checks the size and every count before allocating; never traps.
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        guard bytes.count <= KVLimits.resultBytesMax else {
            throw KVDecodingError(.limitExceeded, "result: got \(bytes.count) bytes, want <= \(KVLimits.resultBytesMax)")
        }
        var r = ByteReader(bytes, context: "result")
        try self.init(from: &r)
        try r.finish()
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let format = try r.u8("format version")
        guard format == KVApplyResult.formatVersion else {
            throw KVDecodingError(.unsupportedVersion, "result format version: got \(format), want \(KVApplyResult.formatVersion)")
        }
        let revision = Revision(try r.u64("revision"))
        let flags = try r.flags("flags", allowed: 0x01)
        let outcome: KVOutcome
        switch try r.u8("outcome tag") {
        case 0:
            let succeeded = try r.flag("succeeded")
            let n = Int(try r.u16("result count"))
            guard n <= r.remaining else {
                throw KVDecodingError(.truncated, "result count: got \(n), want <= \(r.remaining) remaining bytes")
            }
            var results: [KVOperationResult] = []
            results.reserveCapacity(n)
            for _ in 0..<n { results.append(try KVOperationResult(from: &r)) }
            outcome = .success(succeeded: succeeded, results: results)
        case 1: outcome = .alreadyExists(key: try r.lengthPrefixed("key", max: KVLimits.keyBytesMax))
        case 2: outcome = .compacted(requested: Revision(try r.u64("requested")), compacted: Revision(try r.u64("compacted")))
        case 3: outcome = .futureRevision(requested: Revision(try r.u64("requested")), current: Revision(try r.u64("current")))
        case 4:
            let rawCode = try r.u8("error code")
            guard let code = KVCommandError.Code(wireValue: rawCode) else {
                throw KVDecodingError(.unknownTag, "error code: got \(rawCode), want 0...5")
            }
            let reason = try r.lengthPrefixed("reason", max: KVApplyResult.reasonBytesMax)
            outcome = .invalid(KVCommandError(code, String(decoding: reason, as: UTF8.self)))
        case 5:
            let sequence = SequenceNumber(try r.u64("sequence"))
            let last: SequenceNumber? = try r.flag("has last applied") ? SequenceNumber(r.u64("last applied")) : nil
            outcome = .sessionExpired(sequence: sequence, lastApplied: last)
        case let tag: throw KVDecodingError(.unknownTag, "outcome tag: got \(tag), want 0...5")
        }
        self.init(revision: revision, outcome: outcome, isReplay: flags & 0x01 != 0)
    }
}

extension KVOperationResult {
    func encode(into w: inout ByteWriter) {
        switch self {
        case .put(let previous):
            w.u8(1)
            w.flag(previous != nil)
            previous?.encode(into: &w)
        case .deleteRange(let deleted, let previous):
            w.u8(2)
            w.u64(UInt64(clamping: deleted))
            encodeKeyValues(previous, into: &w)
        case .range(let result):
            w.u8(3)
            w.u64(UInt64(clamping: result.count))
            w.flag(result.hasMore)
            w.u64(result.revision.rawValue)
            encodeKeyValues(result.records, into: &w)
        case .lease(let id, let ttl):
            w.u8(4)
            w.u64(id)
            w.u64(ttl)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        switch try r.u8("operation result tag") {
        case 1:
            self = .put(previous: try r.flag("has previous") ? KVRecord(from: &r) : nil)
        case 2:
            let deleted = try r.count("deleted", max: Int.max)
            self = .deleteRange(deleted: deleted, previous: try decodeKeyValues(&r))
        case 3:
            let count = try r.count("count", max: Int.max)
            let hasMore = try r.flag("has more")
            let revision = Revision(try r.u64("revision"))
            let records = try decodeKeyValues(&r)
            self = .range(KVRangeResult(records: records, count: count, hasMore: hasMore, revision: revision))
        case 4: self = .lease(id: try r.u64("lease ID"), ttlSeconds: try r.u64("lease TTL"))
        case let tag: throw KVDecodingError(.unknownTag, "operation result tag: got \(tag), want 1...4")
        }
    }
}

private func encodeKeyValues(_ entries: [KVKeyValue], into w: inout ByteWriter) {
    w.u32(UInt32(clamping: entries.count))
    for entry in entries {
        w.lengthPrefixed(entry.key)
        entry.record.encode(into: &w)
    }
}

private func decodeKeyValues(_ r: inout ByteReader) throws(KVDecodingError) -> [KVKeyValue] {
    let raw = try r.u32("record count")
    guard let n = Int(exactly: raw), n <= r.remaining / KVApplyResult.keyValueBytesMin else {
        throw KVDecodingError(.limitExceeded, "record count: got \(raw), want <= \(r.remaining / KVApplyResult.keyValueBytesMin) for \(r.remaining) remaining bytes")
    }
    var entries: [KVKeyValue] = []
    entries.reserveCapacity(n)
    for _ in 0..<n {
        let key = try r.lengthPrefixed("record key", max: KVLimits.keyBytesMax)
        entries.append(KVKeyValue(key: key, record: try KVRecord(from: &r)))
    }
    return entries
}

extension KVCommandError.Code {
    /// The code's byte in encoded results; fixed forever.
    var wireValue: UInt8 {
        switch self {
        case .keyLength: 0
        case .valueLength: 1
        case .txnSize: 2
        case .duplicateKeyInTxn: 3
        case .invalidField: 4
        case .malformed: 5
        case .leaseNotFound: 6
        case .leaseExists: 7
        case .leasesFull: 8
        case .authRequired: 9
        case .permissionDenied: 10
        case .authState: 11
        case .reservedKey: 12
        }
    }

    init?(wireValue: UInt8) {
        switch wireValue {
        case 0: self = .keyLength
        case 1: self = .valueLength
        case 2: self = .txnSize
        case 3: self = .duplicateKeyInTxn
        case 4: self = .invalidField
        case 5: self = .malformed
        case 6: self = .leaseNotFound
        case 7: self = .leaseExists
        case 8: self = .leasesFull
        case 9: self = .authRequired
        case 10: self = .permissionDenied
        case 11: self = .authState
        case 12: self = .reservedKey
        default: return nil
        }
    }
}
