extension KVRecord {
    /// The record format version written first.
    public static let formatVersion: UInt8 = 1

    /// The format of a record attached to a lease: version 1 with `u64 lease` after `version`.
    public static let leasedFormatVersion: UInt8 = 2

    /// Storage encoding (`kv` CF value): `u8 version=1 | u64 createRevision | u64 modRevision |
    /// u64 version | u32 valueLength | value`, integers big-endian; a record attached to a
    /// lease is `u8 version=2 | ... | u64 version | u64 lease | u32 valueLength | value`.
    public var encoded: [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(29 + value.count)
        encode(into: &w)
        return w.bytes
    }

    func encode(into w: inout ByteWriter) {
        w.u8(lease == 0 ? KVRecord.formatVersion : KVRecord.leasedFormatVersion)
        w.u64(createRevision.rawValue)
        w.u64(modRevision.rawValue)
        w.u64(version)
        if lease != 0 { w.u64(lease) }
        w.lengthPrefixed(value)
    }

    /// Decodes `encoded`, checking the invariants; throws on anything else (never traps).
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "record")
        try self.init(from: &r)
        try r.finish()
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let format = try r.u8("format version")
        guard format == KVRecord.formatVersion || format == KVRecord.leasedFormatVersion else {
            throw KVDecodingError(.unsupportedVersion, "record format version: got \(format), want 1 or 2")
        }
        let create = Revision(try r.u64("create revision"))
        let mod = Revision(try r.u64("mod revision"))
        let version = try r.u64("version")
        var lease: UInt64 = 0
        if format == KVRecord.leasedFormatVersion {
            lease = try r.u64("lease")
            guard lease != 0 else { throw KVDecodingError(.invalidValue, "record version 2: lease 0, want >= 1 (version 1 has none)") }
        }
        let value = try r.lengthPrefixed("value", max: KVLimits.valueBytesMax)
        guard version >= 1, create >= Revision(1), create <= mod else {
            throw KVDecodingError(
                .invalidValue,
                "record: got version \(version), create \(create), mod \(mod); want version >= 1, 1 <= create <= mod")
        }
        self.init(value: value, createRevision: create, modRevision: mod, version: version, lease: lease)
    }
}

extension KVHistoryValue {
    /// Storage encoding (`history` CF value): `u8 0` for a tombstone, or `u8 1 ‖ record`
    /// (`KVRecord.encoded`).
    public var encoded: [UInt8] {
        var w = ByteWriter()
        switch self {
        case .tombstone: w.u8(0)
        case .record(let record):
            w.bytes.reserveCapacity(30 + record.value.count)
            w.u8(1)
            record.encode(into: &w)
        }
        return w.bytes
    }

    /// Decodes `encoded`; throws on anything else (never traps).
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "history value")
        switch try r.u8("tag") {
        case 0: self = .tombstone
        case 1: self = .record(try KVRecord(from: &r))
        case let tag: throw KVDecodingError(.unknownTag, "history value tag: got \(tag), want 0 or 1")
        }
        try r.finish()
    }
}
