extension KVStateMachine {
    /// The first bytes of the digest stream.
    public static let digestMagic: [UInt8] = Array("FKVD".utf8)
    /// The digest stream format version.
    public static let digestFormatVersion: UInt8 = 1

    /// Feeds the canonical bytes of the whole current key-value state to `sink`, in order,
    /// for the caller to hash (FaunaStore: SHA-256) and compare across replicas, like etcd's
    /// HashKV. Replicas that applied the same entries produce identical streams.
    ///
    /// Stream (docs/KV-COMMANDS.md "Digest stream"): `"FKVD" | u8 1 | u64 current revision |
    /// u64 compacted revision`, then per key in ascending order `u8 0x01 | u32 keyLength |
    /// key | record (KVRecord.encoded)`, then `u8 0x00 | u64 key count`. One `sink` call per
    /// header, key and trailer. Reads the committed backend only (commit the batch first).
    public func digestStream(on backend: some KVBackend, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        var header = ByteWriter()
        header.bytes.append(contentsOf: KVStateMachine.digestMagic)
        header.u8(KVStateMachine.digestFormatVersion)
        header.u64(try view.currentRevision().rawValue)
        header.u64(try view.compactedRevision().rawValue)
        try header.bytes.withUnsafeBytes(sink)
        var count: UInt64 = 0
        try backend.scanRecords(in: .all, reverse: false) { key, record in
            var w = ByteWriter()
            w.bytes.reserveCapacity(34 + key.count + record.value.count)
            w.u8(0x01)
            w.lengthPrefixed(key)
            record.encode(into: &w)
            try w.bytes.withUnsafeBytes(sink)
            count += 1
            return true
        }
        var trailer = ByteWriter()
        trailer.u8(0x00)
        trailer.u64(count)
        try trailer.bytes.withUnsafeBytes(sink)
    }
}
