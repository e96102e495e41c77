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
        try Self.digestRecords(sink) { visit in try backend.scanRecords(in: .all, reverse: false, visit) }
    }

    /// The body and trailer of a digest stream: `u8 0x01 | bytes key | record` per record that
    /// `scan` visits, then `u8 0x00 | u64 count`.
    static func digestRecords(
        _ sink: (UnsafeRawBufferPointer) throws -> Void,
        scan: (_ visit: ([UInt8], KVRecord) throws -> Bool) throws -> Void
    ) throws {
        var count: UInt64 = 0
        try withoutActuallyEscaping(sink) { sink in
            try scan { key, record in
                var w = ByteWriter()
                w.bytes.reserveCapacity(34 + key.count + record.value.count)
                w.u8(0x01)
                w.lengthPrefixed(key)
                record.encode(into: &w)
                try w.bytes.withUnsafeBytes(sink)
                count += 1
                return true
            }
        }
        var trailer = ByteWriter()
        trailer.u8(0x00)
        trailer.u64(count)
        try trailer.bytes.withUnsafeBytes(sink)
    }
}

extension KVStateMachine {
    /// The digest stream format version of `digestStream(at:on:_:)`.
    public static let digestAtRevisionFormatVersion: UInt8 = 2

    /// Feeds the canonical bytes of the key-value state as of `revision` to `sink`: a function
    /// of the entries up to `revision` only, so replicas that applied different amounts beyond
    /// it still agree (what `fctl audit` compares at a common revision).
    ///
    /// Stream (docs/KV-COMMANDS.md "Digest stream"): `"FKVD" | u8 2 | u64 revision`, then per
    /// key live at `revision`, ascending, `u8 0x01 | u32 keyLength | key | record`, then
    /// `u8 0x00 | u64 key count`. A key's record is taken from the current state when it has
    /// not changed since `revision`, else from history (which holds every older version) — so
    /// a change to either, made behind the state machine's back, changes the digest. The
    /// compacted revision is not part of it (a later compaction would change it).
    ///
    /// `revision` is a log index: entries without writes (a leader's no-op) do not advance the
    /// current revision, so a revision above it reads the current state. The caller bounds
    /// `revision` by its applied index.
    /// - Throws: `KVReadError.compacted` below the compacted revision; backend errors unchanged.
    public func digestStream(at revision: Revision, on backend: some KVBackend, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let view = KVReadView(backend: backend, base: KVWriteBatch())
        let compacted = try view.compactedRevision()
        guard revision >= compacted else { throw KVReadError.compacted(requested: revision, compacted: compacted) }
        let at = revision
        var header = ByteWriter()
        header.bytes.append(contentsOf: KVStateMachine.digestMagic)
        header.u8(KVStateMachine.digestAtRevisionFormatVersion)
        header.u64(at.rawValue)
        try header.bytes.withUnsafeBytes(sink)
        try Self.digestRecords(sink) { visit in
            try KVStateMachine.scanRecords(in: .all, at: at, reverse: false, step: historyScanStep, view, visit)
        }
    }
}
